package storage

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
)

// subscriberBuffer is how many events a client may fall behind before the
// server ends its watch (it then resumes from its last resourceVersion).
const subscriberBuffer = 1024

// cacheEvent is one etcd change, decoded once and shared by every watcher.
type cacheEvent struct {
	rev  int64
	typ  watch.EventType
	obj  v1.Object // the object after the change (before it, for a delete)
	prev v1.Object // the object before the change; nil for a create
	// objFields and prevFields are obj's and prev's field sets, made once
	// for every watcher's field selector.
	objFields, prevFields fields.Set
}

// rawEvent is a change as etcd sent it. The cache decodes it only when a
// watcher needs it, so a resource nobody watches costs no decoding.
type rawEvent struct {
	rev     int64
	event   *clientv3.Event
	decoded *cacheEvent
}

// watchCache holds the single etcd watch of one resource, the most recent
// events (so clients can resume without their own etcd watch), and the
// clients following it.
type watchCache struct {
	store *Store
	res   *resources.Resource

	mu sync.Mutex
	// events are the most recent changes, oldest first.
	events []rawEvent
	// known is the revision after which the cache has seen every change,
	// except those already evicted from events.
	known int64
	// evicted is the newest revision that fell out of events.
	evicted int64
	subs    *watcherIndex[*subscriber]
}

// subscriber is one client's watch. It implements watch.Interface.
//
// The cache hands events to its queue, and a pump goroutine delivers them
// on ch: a queue rather than a buffered channel, so a watcher that keeps up
// holds no buffer (a channel of subscriberBuffer events was 32 KiB per
// watch, most of what 5,000 node watches cost).
type subscriber struct {
	res  *resources.Resource
	opts ListOptions
	// key is the value of the resource's IndexedField that opts require,
	// when keyed: where the cache files this subscriber.
	key   string
	keyed bool
	after int64
	ch    chan watch.Event
	done  chan struct{}
	once  sync.Once
	stop  func(*subscriber)

	// mu guards queue and ended, which wake signals to the pump.
	mu    sync.Mutex
	queue []watch.Event
	ended bool
	wake  chan struct{}
}

// push queues ev for the pump; false when the watcher is subscriberBuffer
// events behind.
func (w *subscriber) push(ev watch.Event) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) >= subscriberBuffer {
		return false
	}
	w.queue = append(w.queue, ev)
	w.signal()
	return true
}

// end has the pump close ResultChan once what is queued, and then last
// (when not nil), is delivered. The cache calls it after it dropped w, so
// nothing is pushed after it.
func (w *subscriber) end(last *watch.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if last != nil {
		w.queue = append(w.queue, *last)
	}
	w.ended = true
	w.signal()
}

func (w *subscriber) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// pump delivers the queue on ch until end, Stop or ctx; it alone closes ch.
func (w *subscriber) pump(ctx context.Context) {
	defer close(w.ch)
	for {
		w.mu.Lock()
		batch, ended := w.queue, w.ended
		w.queue = nil
		w.mu.Unlock()
		for _, ev := range batch {
			select {
			case w.ch <- ev:
			case <-w.done:
				return
			case <-ctx.Done():
				w.Stop()
				return
			}
		}
		switch {
		case len(batch) > 0:
			continue
		case ended:
			return
		}
		select {
		case <-w.wake:
		case <-w.done:
			return
		case <-ctx.Done():
			w.Stop()
			return
		}
	}
}

func (w *subscriber) ResultChan() <-chan watch.Event { return w.ch }

// Stop ends the watch; ResultChan is closed soon after.
func (w *subscriber) Stop() { w.once.Do(func() { close(w.done); w.stop(w) }) }

// translate turns a change into what this subscriber should see: an object
// that leaves its selection is DELETED for it, one that enters is ADDED.
func (w *subscriber) translate(ev cacheEvent) (watch.Event, bool) {
	if ev.rev <= w.after {
		return watch.Event{}, false
	}
	now := ev.typ != watch.Deleted && w.opts.matchesFields(w.res, ev.obj, ev.objFields)
	before := ev.prev != nil && w.opts.matchesFields(w.res, ev.prev, ev.prevFields)
	switch {
	case ev.typ == watch.Deleted && before:
		return watch.Event{Type: watch.Deleted, Object: ev.obj}, true
	case now && before:
		return watch.Event{Type: watch.Modified, Object: ev.obj}, true
	case now:
		return watch.Event{Type: watch.Added, Object: ev.obj}, true
	case before:
		return watch.Event{Type: watch.Deleted, Object: ev.obj}, true
	}
	return watch.Event{}, false
}

// StartWatching opens one etcd watch per resource and keeps it until ctx
// ends. Call it once before serving watches.
func (s *Store) StartWatching(ctx context.Context) error {
	rev, err := s.CurrentRevision(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("storage: StartWatching called twice")
	}
	s.started = true
	for _, res := range resources.All {
		c := &watchCache{store: s, res: res, known: rev, evicted: rev, subs: newWatcherIndex[*subscriber]()}
		s.caches[res.Plural] = c
		go c.run(ctx)
	}
	return nil
}

func (c *watchCache) run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		c.mu.Lock()
		from := c.known + 1
		c.mu.Unlock()
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		wch := c.store.client.Watch(wctx, c.store.resourcePrefix(c.res),
			clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithRev(from), clientv3.WithProgressNotify())
		for resp := range wch {
			if resp.CompactRevision != 0 {
				c.reset(ctx, resp.CompactRevision)
				break
			}
			if err := resp.Err(); err != nil {
				c.store.log.Info("watch interrupted, resuming", "resource", c.res.Plural, "error", err.Error())
				break
			}
			backoff = 100 * time.Millisecond
			c.apply(resp)
		}
		cancel()
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	c.mu.Lock()
	c.subs.all(func(w *subscriber) {
		c.subs.remove(w, w.key, w.keyed)
		w.end(nil)
	})
	c.mu.Unlock()
}

// reset handles a cache that fell behind etcd's compaction: its history is
// gone, so every watcher is told to relist (410), and the cache restarts from
// the present.
func (c *watchCache) reset(ctx context.Context, compacted int64) {
	rev, err := c.store.CurrentRevision(ctx)
	if err != nil {
		rev = compacted
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.store.log.Info("watch fell behind compaction; watchers must relist", "resource", c.res.Plural, "compacted", compacted)
	gone := goneEvent(compacted)
	c.subs.all(func(w *subscriber) {
		c.subs.remove(w, w.key, w.keyed)
		w.end(&gone)
	})
	c.events, c.known, c.evicted = nil, rev, rev
}

func (c *watchCache) apply(resp clientv3.WatchResponse) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range resp.Events {
		c.events = append(c.events, rawEvent{rev: e.Kv.ModRevision, event: e})
		if c.subs.len() == 0 {
			continue
		}
		ev, ok := c.decodeAt(len(c.events) - 1)
		if !ok {
			continue
		}
		now := c.res.IndexValue(ev.obj)
		before := now
		if ev.prev != nil {
			before = c.res.IndexValue(ev.prev)
		}
		c.subs.candidates(before, now, func(w *subscriber) {
			out, ok := w.translate(ev)
			if !ok {
				return
			}
			if !w.push(out) {
				// Too slow: end its watch; the client resumes from its last
				// resourceVersion, served from the cache or its own etcd watch.
				c.subs.remove(w, w.key, w.keyed)
				w.end(nil)
			}
		})
	}
	// Trim in batches so that a full cache does not copy itself per event.
	if len(c.events) > c.store.cacheSz+c.store.cacheSz/4 {
		n := len(c.events) - c.store.cacheSz
		c.evicted = c.events[n-1].rev
		c.events = append([]rawEvent(nil), c.events[n:]...)
	}
	if resp.Header.Revision > c.known {
		c.known = resp.Header.Revision
	}
}

// decodeAt decodes events[i] once; callers hold c.mu.
func (c *watchCache) decodeAt(i int) (cacheEvent, bool) {
	re := &c.events[i]
	if re.decoded == nil {
		ev, err := decodeEvent(c.res, re.event)
		if err != nil {
			c.store.log.Error(err, "skipping undecodable watch event", "resource", c.res.Plural, "key", string(re.event.Kv.Key))
			return cacheEvent{}, false
		}
		re.decoded = &ev
		re.event = nil
	}
	return *re.decoded, true
}

func decodeEvent(res *resources.Resource, e *clientv3.Event) (cacheEvent, error) {
	ev := cacheEvent{rev: e.Kv.ModRevision}
	var err error
	if e.PrevKv != nil {
		if ev.prev, err = decode(res, e.PrevKv.Value, e.PrevKv.ModRevision); err != nil {
			return ev, err
		}
		ev.prevFields = res.Fields(ev.prev)
	}
	switch {
	case e.Type == mvccpb.DELETE:
		ev.typ = watch.Deleted
		if ev.prev == nil {
			return ev, fmt.Errorf("delete of %s without its previous value", e.Kv.Key)
		}
		ev.obj = ev.prev.DeepCopyObject().(v1.Object)
		ev.obj.SetResourceVersion(fmt.Sprint(e.Kv.ModRevision))
	case e.IsCreate():
		ev.typ = watch.Added
		ev.obj, err = decode(res, e.Kv.Value, e.Kv.ModRevision)
	default:
		ev.typ = watch.Modified
		ev.obj, err = decode(res, e.Kv.Value, e.Kv.ModRevision)
	}
	if err != nil {
		return ev, err
	}
	ev.objFields = res.Fields(ev.obj)
	return ev, nil
}

// Watch follows changes to the objects that match opts, starting after
// opts.ResourceVersion (or now, when it is empty). A revision that etcd has
// compacted is refused with 410 Gone: the client must list again.
func (s *Store) Watch(ctx context.Context, res *resources.Resource, opts ListOptions) (watch.Interface, error) {
	if opts.FieldSelector != nil {
		if err := res.CheckFieldSelector(opts.FieldSelector); err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
	}
	after, err := parseRV(opts.ResourceVersion)
	if err != nil {
		return nil, err
	}
	if after == 0 {
		if after, err = s.CurrentRevision(ctx); err != nil {
			return nil, err
		}
	} else if err := s.checkRevision(ctx, after); err != nil {
		return nil, err
	}
	s.mu.Lock()
	c := s.caches[res.Plural]
	s.mu.Unlock()
	if c == nil {
		return nil, apierrors.NewServiceUnavailable("watches are not started yet")
	}
	w := &subscriber{res: res, opts: opts, after: after, ch: make(chan watch.Event), done: make(chan struct{}), wake: make(chan struct{}, 1)}
	w.key, w.keyed = indexKey(res.IndexedField, opts.FieldSelector)

	c.mu.Lock()
	if after < c.evicted {
		c.mu.Unlock()
		// Older than the cache remembers, but etcd still has it.
		w.stop = func(*subscriber) {}
		go s.watchDirect(ctx, w)
		return w, nil
	}
	var backlog []watch.Event
	for i := range c.events {
		if c.events[i].rev <= after {
			continue
		}
		if ev, ok := c.decodeAt(i); ok {
			if out, ok := w.translate(ev); ok {
				backlog = append(backlog, out)
			}
		}
	}
	if len(backlog) > subscriberBuffer {
		c.mu.Unlock()
		w.stop = func(*subscriber) {}
		go s.watchDirect(ctx, w)
		return w, nil
	}
	w.queue = backlog
	w.stop = func(w *subscriber) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.subs.remove(w, w.key, w.keyed)
	}
	c.subs.add(w, w.key, w.keyed)
	c.mu.Unlock()
	go w.pump(ctx)
	return w, nil
}

// checkRevision refuses a revision etcd no longer has (410) or does not
// have yet (400).
func (s *Store) checkRevision(ctx context.Context, rev int64) error {
	_, err := s.client.Get(ctx, s.prefix+"/", clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithRev(rev))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, rpctypes.ErrCompacted):
		return apierrors.NewResourceExpired(fmt.Sprintf("resourceVersion %d is too old (compacted): list again and watch from the list's resourceVersion", rev))
	case errors.Is(err, rpctypes.ErrFutureRev):
		return apierrors.NewBadRequest(fmt.Sprintf("resourceVersion %d is newer than the store", rev))
	default:
		return etcdError(err, "check resourceVersion %d", rev)
	}
}

// watchDirect serves a subscriber that is too far behind for the cache from
// its own etcd watch.
func (s *Store) watchDirect(ctx context.Context, w *subscriber) {
	defer close(w.ch)
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	prefix := s.namespacePrefix(w.res, w.opts.Namespace)
	wch := s.client.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithRev(w.after+1))
	for {
		select {
		case <-w.done:
			return
		case resp, ok := <-wch:
			if !ok {
				return
			}
			if resp.CompactRevision != 0 {
				w.send(goneEvent(resp.CompactRevision))
				return
			}
			if resp.Err() != nil {
				return
			}
			for _, e := range resp.Events {
				ev, err := decodeEvent(w.res, e)
				if err != nil {
					s.log.Error(err, "skipping undecodable watch event", "key", string(e.Kv.Key))
					continue
				}
				if out, ok := w.translate(ev); ok && !w.send(out) {
					return
				}
			}
		}
	}
}

func (w *subscriber) send(ev watch.Event) bool {
	select {
	case w.ch <- ev:
		return true
	case <-w.done:
		return false
	}
}

func goneEvent(compacted int64) watch.Event {
	st := apierrors.NewResourceExpired(fmt.Sprintf("the watch fell behind etcd's compaction at revision %d: list again", compacted)).Status()
	return watch.Event{Type: watch.Error, Object: &st}
}
