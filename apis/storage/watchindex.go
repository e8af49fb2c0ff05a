package storage

import (
	"k8s.io/apimachinery/pkg/fields"
)

// watcherIndex files watchers so that an event is tested only against the
// watchers it may concern. A watcher whose field selector requires one value
// of the resource's indexed field (Instances: spec.nodeName, the selector
// every node watches with) is filed under that value; every other watcher
// is tested on every event. So a node's watch costs the same with 10 nodes
// or 5,000.
type watcherIndex[T comparable] struct {
	byValue map[string]map[T]struct{}
	rest    map[T]struct{}
	n       int
}

func newWatcherIndex[T comparable]() *watcherIndex[T] {
	return &watcherIndex[T]{byValue: map[string]map[T]struct{}{}, rest: map[T]struct{}{}}
}

// indexKey is the value of field that sel requires, if it requires exactly
// one (field "" is no index).
func indexKey(field string, sel fields.Selector) (string, bool) {
	if field == "" || sel == nil {
		return "", false
	}
	return sel.RequiresExactMatch(field)
}

// add files w under key (when keyed) or with the rest.
func (x *watcherIndex[T]) add(w T, key string, keyed bool) {
	if !keyed {
		x.rest[w] = struct{}{}
		x.n++
		return
	}
	set := x.byValue[key]
	if set == nil {
		set = map[T]struct{}{}
		x.byValue[key] = set
	}
	set[w] = struct{}{}
	x.n++
}

// remove drops w, filed as add filed it; it reports whether w was there.
func (x *watcherIndex[T]) remove(w T, key string, keyed bool) bool {
	set := x.rest
	if keyed {
		set = x.byValue[key]
	}
	if _, ok := set[w]; !ok {
		return false
	}
	delete(set, w)
	if keyed && len(set) == 0 {
		delete(x.byValue, key)
	}
	x.n--
	return true
}

// len is the number of watchers filed.
func (x *watcherIndex[T]) len() int { return x.n }

// candidates calls f for every watcher an object whose indexed field was
// before and is now may concern: those filed under either value and the
// rest, each once. f may remove the watcher it is given.
func (x *watcherIndex[T]) candidates(before, now string, f func(T)) {
	for w := range x.rest {
		f(w)
	}
	for w := range x.byValue[now] {
		f(w)
	}
	if before != now {
		for w := range x.byValue[before] {
			f(w)
		}
	}
}

// all calls f for every watcher; f may remove the watcher it is given.
func (x *watcherIndex[T]) all(f func(T)) {
	for w := range x.rest {
		f(w)
	}
	for _, set := range x.byValue {
		for w := range set {
			f(w)
		}
	}
}
