package agent

import (
	"context"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
)

// followReferences keeps one watch of Blueprints and one of Overlays in each
// namespace where this node runs Instances (the node role may read only
// those), so an edit restarts the affected games within moments instead of
// at the next resync. It returns when ctx ends, and only once every watch it
// started has stopped (Run's promise depends on it).
func (a *Agent) followReferences(ctx context.Context) {
	running := map[string]context.CancelFunc{}
	var watches sync.WaitGroup
	defer func() {
		for _, cancel := range running {
			cancel()
		}
		watches.Wait()
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
					watches.Add(1)
					go func() {
						defer watches.Done()
						a.watchReferences(nctx, res, ns)
					}()
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

// watchReferences keeps a copy of a namespace's Blueprints or Overlays
// (reconciles read them from here, not from the API) and requeues the
// namespace's Instances whenever one changes (a reconcile finds out whether
// it matters: an unchanged rendering restarts nothing).
func (a *Agent) watchReferences(ctx context.Context, res *resources.Resource, ns string) {
	defer referenceWatchEnded()
	defer a.dropReferences(res, ns)
	a.follow(ctx, res, ns, func(fresh map[string]v1.Object) {
		a.refsMu.Lock()
		a.refs[refKey(res, ns)] = fresh
		a.refsMu.Unlock()
		// Whatever changed while nobody watched is caught by looking at
		// every Instance here once more.
		a.requeueNamespace(ns)
	}, func(t watch.EventType, obj v1.Object) {
		a.refsMu.Lock()
		if t == watch.Deleted {
			delete(a.refs[refKey(res, ns)], obj.GetName())
		} else {
			a.refs[refKey(res, ns)][obj.GetName()] = obj
		}
		a.refsMu.Unlock()
		a.requeueNamespace(ns)
	})
}

// follow keeps a copy of one kind's objects in a namespace ("" for a
// cluster-scoped kind) until ctx ends: reset gets every object after each
// complete list, apply each watch event after it. A failed list or watch
// is retried after a pause; a watch that ends or answers an ERROR event
// (410 Gone) is followed by a new list, so nothing missed is lost.
func (a *Agent) follow(ctx context.Context, res *resources.Resource, ns string, reset func(map[string]v1.Object), apply func(watch.EventType, v1.Object)) {
	a.followSelected(ctx, res, ns, "", reset, apply)
}

// followSelected is follow for the objects fieldSelector picks.
func (a *Agent) followSelected(ctx context.Context, res *resources.Resource, ns, fieldSelector string, reset func(map[string]v1.Object), apply func(watch.EventType, v1.Object)) {
	for ctx.Err() == nil {
		list, err := a.o.Client.List(ctx, res, ns, client.ListOptions{FieldSelector: fieldSelector})
		if err != nil {
			if ctx.Err() == nil {
				a.o.Log.V(1).Info("cannot list; retrying", "resource", res.Plural, "namespace", ns, "error", err.Error())
			}
			sleep(ctx, 2*time.Second)
			continue
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			a.o.Log.Error(err, "the API's list answer holds no items; retrying", "resource", res.Plural, "namespace", ns)
			sleep(ctx, 2*time.Second)
			continue
		}
		fresh := map[string]v1.Object{}
		for _, item := range items {
			if o, ok := item.(v1.Object); ok {
				fresh[o.GetName()] = o
			}
		}
		reset(fresh)
		w, err := a.o.Client.Watch(ctx, res, ns, client.ListOptions{FieldSelector: fieldSelector, ResourceVersion: list.GetResourceVersion()})
		if err != nil {
			sleep(ctx, 2*time.Second)
			continue
		}
		for ev := range w.ResultChan() {
			obj, ok := ev.Object.(v1.Object)
			if !ok {
				break // an ERROR event (410 Gone): list again
			}
			apply(ev.Type, obj)
		}
		w.Stop()
	}
}

// referenceWatchEnded is called last by a reference watch that ends (a
// test holds watches here to check that Run waits for them).
var referenceWatchEnded = func() {}

func refKey(res *resources.Resource, ns string) string { return res.Plural + "/" + ns }

func (a *Agent) dropReferences(res *resources.Resource, ns string) {
	a.refsMu.Lock()
	delete(a.refs, refKey(res, ns))
	a.refsMu.Unlock()
}

// reference returns a Blueprint or Overlay: from the watched copy when
// there is one, else from the API (the first Instance of a namespace, before
// its watch is up).
func (a *Agent) reference(ctx context.Context, res *resources.Resource, ns, name string) (v1.Object, error) {
	a.refsMu.Lock()
	objs, synced := a.refs[refKey(res, ns)]
	obj := objs[name]
	a.refsMu.Unlock()
	if obj != nil {
		return obj, nil
	}
	if synced {
		return nil, apierrors.NewNotFound(res.GroupResource(), name)
	}
	return a.o.Client.Get(ctx, res, ns, name)
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
