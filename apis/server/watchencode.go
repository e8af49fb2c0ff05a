package server

import (
	"encoding/json"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
)

// recentEncodings is how many watch events eventEncodings remembers: an
// event goes out to its watchers within moments, so the newest thousand
// cover the fan-out of one, and bound the memory (~1 KiB each).
const recentEncodings = 1024

// eventEncodings encodes each watch event once, however many watchers it
// goes to. The watch cache hands every watcher the same decoded object,
// so an encoding is remembered by that object and the event's type (an
// object that entered one watcher's selection is ADDED for it and MODIFIED
// for another). Redaction is the same for every reader, so one encoding
// serves all of them.
type eventEncodings struct {
	mu   sync.Mutex
	m    map[encodingKey][]byte
	ring [recentEncodings]encodingKey
	next int
	// encoded counts the events encoded (not served from memory), for tests.
	encoded int
}

type encodingKey struct {
	obj runtime.Object
	typ watch.EventType
}

func newEventEncodings() *eventEncodings {
	return &eventEncodings{m: make(map[encodingKey][]byte, recentEncodings)}
}

// encode is the watch stream's line for ev: {"type":…,"object":…}\n.
func (e *eventEncodings) encode(ev watch.Event) ([]byte, error) {
	key := encodingKey{ev.Object, ev.Type}
	e.mu.Lock()
	b, ok := e.m[key]
	e.mu.Unlock()
	if ok {
		return b, nil
	}
	b, err := json.Marshal(watchEvent{Type: ev.Type, Object: redacted(ev.Object)})
	if err != nil {
		return nil, err
	}
	b = append(b, '\n')
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.m[key]; ok {
		return b, nil
	}
	e.encoded++
	if old := e.ring[e.next]; old.obj != nil {
		delete(e.m, old)
	}
	e.ring[e.next] = key
	e.next = (e.next + 1) % recentEncodings
	e.m[key] = b
	return b, nil
}
