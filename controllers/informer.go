// Package controllers holds the control-plane loops that run inside
// l4m-server on the elected leader: the scheduler, node lifecycle and
// rollouts. Each is level-triggered: informers keep an in-memory copy of
// the objects it reads, changes put keys into a rate-limited work queue,
// and workers reconcile a key from what is there now, never from the event.
package controllers

import (
	"context"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/watch"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/storage"
)

// Informer mirrors one resource from the store: it lists, then watches,
// and relists whenever the watch ends (410 Gone included).
type Informer struct {
	res   *resources.Resource
	store *storage.Store
	log   logr.Logger

	mu       sync.RWMutex
	objects  map[string]v1.Object
	synced   chan struct{}
	handlers []func(old, cur v1.Object)
}

// NewInformer returns an informer; add handlers before Run.
func NewInformer(store *storage.Store, res *resources.Resource, log logr.Logger) *Informer {
	return &Informer{res: res, store: store, log: log.WithValues("resource", res.Plural), objects: map[string]v1.Object{}, synced: make(chan struct{})}
}

// OnChange registers a handler called with (old, cur) for every change;
// old is nil for a new object, cur nil for a deleted one.
func (i *Informer) OnChange(f func(old, cur v1.Object)) { i.handlers = append(i.handlers, f) }

// Key is how informers and queues name an object: "ns/name" or "name".
func Key(obj v1.Object) string {
	if obj.GetNamespace() == "" {
		return obj.GetName()
	}
	return obj.GetNamespace() + "/" + obj.GetName()
}

// Get returns the cached object (shared: do not modify it).
func (i *Informer) Get(key string) v1.Object {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return i.objects[key]
}

// List returns every cached object (shared: do not modify them).
func (i *Informer) List() []v1.Object {
	i.mu.RLock()
	defer i.mu.RUnlock()
	out := make([]v1.Object, 0, len(i.objects))
	for _, o := range i.objects {
		out = append(out, o)
	}
	return out
}

// WaitForSync waits until every informer has listed once; false if ctx
// ended first. Controllers decide nothing from a half-filled cache.
func WaitForSync(ctx context.Context, informers ...*Informer) bool {
	for _, inf := range informers {
		select {
		case <-inf.synced:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// Run keeps the cache until ctx ends.
func (i *Informer) Run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	first := true
	for ctx.Err() == nil {
		rv, err := i.relist(ctx)
		if err != nil {
			i.log.Info("cannot list; retrying", "error", err.Error(), "in", backoff)
			sleep(ctx, backoff)
			backoff = min(2*backoff, 10*time.Second)
			continue
		}
		if first {
			close(i.synced)
			first = false
		}
		w, err := i.store.Watch(ctx, i.res, storage.ListOptions{ResourceVersion: rv})
		if err != nil {
			sleep(ctx, backoff)
			continue
		}
		backoff = 100 * time.Millisecond
		i.follow(w)
		w.Stop()
	}
}

func (i *Informer) relist(ctx context.Context) (string, error) {
	list, err := i.store.List(ctx, i.res, storage.ListOptions{})
	if err != nil {
		return "", err
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return "", err
	}
	fresh := make(map[string]v1.Object, len(items))
	for _, item := range items {
		if o, ok := item.(v1.Object); ok {
			fresh[Key(o)] = o
		}
	}
	i.mu.Lock()
	old := i.objects
	i.objects = fresh
	i.mu.Unlock()
	for k, o := range old {
		if fresh[k] == nil {
			i.notify(o, nil)
		}
	}
	for k, o := range fresh {
		if prev := old[k]; prev == nil || prev.GetResourceVersion() != o.GetResourceVersion() {
			i.notify(prev, o)
		}
	}
	return list.GetResourceVersion(), nil
}

func (i *Informer) follow(w watch.Interface) {
	for ev := range w.ResultChan() {
		obj, ok := ev.Object.(v1.Object)
		if !ok || ev.Type == watch.Error {
			return // relist
		}
		k := Key(obj)
		i.mu.Lock()
		prev := i.objects[k]
		if ev.Type == watch.Deleted {
			delete(i.objects, k)
		} else {
			i.objects[k] = obj
		}
		i.mu.Unlock()
		if ev.Type == watch.Deleted {
			i.notify(prev, nil)
		} else {
			i.notify(prev, obj)
		}
	}
}

func (i *Informer) notify(old, cur v1.Object) {
	for _, h := range i.handlers {
		h(old, cur)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
