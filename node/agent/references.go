package agent

import (
	"context"
	"time"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
)

// followReferences keeps one watch of Blueprints and one of Overlays in each
// namespace where this node runs Instances (the node role may read only
// those), so an edit restarts the affected games within moments instead of
// at the next resync.
func (a *Agent) followReferences(ctx context.Context) {
	running := map[string]context.CancelFunc{}
	defer func() {
		for _, cancel := range running {
			cancel()
		}
	}()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		want := map[string]bool{}
		a.mu.Lock()
		for _, in := range a.instances {
			want[in.Namespace] = true
		}
		a.mu.Unlock()
		for ns := range want {
			if running[ns] == nil {
				nctx, cancel := context.WithCancel(ctx)
				running[ns] = cancel
				for _, res := range []*resources.Resource{blueprintRes, overlayRes} {
					go a.watchReferences(nctx, res, ns)
				}
			}
		}
		for ns, cancel := range running {
			if !want[ns] {
				cancel()
				delete(running, ns)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// watchReferences requeues the Instances of a namespace whenever one of its
// Blueprints or Overlays changes (a reconcile finds out whether it matters:
// an unchanged rendering restarts nothing).
func (a *Agent) watchReferences(ctx context.Context, res *resources.Resource, ns string) {
	rv := ""
	for ctx.Err() == nil {
		w, err := a.o.Client.Watch(ctx, res, ns, client.ListOptions{ResourceVersion: rv})
		if err != nil {
			rv = ""
			sleep(ctx, 2*time.Second)
			continue
		}
		if rv == "" {
			// Watching from now: whatever changed before is caught by
			// looking at every Instance here once more.
			a.requeueNamespace(ns)
		}
		for ev := range w.ResultChan() {
			obj, ok := ev.Object.(v1.Object)
			if !ok {
				rv = ""
				break
			}
			rv = obj.GetResourceVersion()
			a.requeueNamespace(ns)
		}
		w.Stop()
	}
}

func (a *Agent) requeueNamespace(ns string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, in := range a.instances {
		if in.Namespace == ns {
			a.queue.Add(k)
		}
	}
}
