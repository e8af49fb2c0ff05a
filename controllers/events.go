package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/storage"
)

// Recorder writes Events about objects, the way `kubectl describe` users
// expect: the same reason and message on the same object count up one
// Event instead of adding another. Writes happen in the background so a
// controller never waits for its own bookkeeping; when the backlog is full
// an event is dropped (and logged), never the controller's work.
type Recorder struct {
	store     *storage.Store
	component string
	log       logr.Logger
	queue     chan *v1.Event
}

// NewRecorder returns a recorder; Run writes what it records.
func NewRecorder(store *storage.Store, component string, log logr.Logger) *Recorder {
	return &Recorder{store: store, component: component, log: log, queue: make(chan *v1.Event, 4096)}
}

// Eventf records an event about obj (Normal or Warning).
func (r *Recorder) Eventf(obj v1.Object, typ, reason, format string, args ...any) {
	kind := obj.GetObjectKind().GroupVersionKind().Kind
	if kind == "" {
		if res, ok := resources.ByKind(fmt.Sprintf("%T", obj)[len("*v1alpha1."):]); ok {
			kind = res.Kind
		}
	}
	msg := fmt.Sprintf(format, args...)
	sum := sha256.Sum256([]byte(kind + "/" + string(obj.GetUID()) + "/" + typ + "/" + reason + "/" + msg))
	ns := obj.GetNamespace()
	if ns == "" {
		ns = v1.DefaultNamespace // events about cluster-wide objects (Nodes)
	}
	ev := &v1.Event{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: obj.GetName() + "." + hex.EncodeToString(sum[:6])},
		InvolvedObject: v1.ObjectReference{APIVersion: v1.APIVersion, Kind: kind, Namespace: obj.GetNamespace(),
			Name: obj.GetName(), UID: string(obj.GetUID())},
		Type: typ, Reason: reason, Message: msg, Count: 1, Source: v1.EventSource{Component: r.component},
	}
	select {
	case r.queue <- ev:
	default:
		r.log.Info("event dropped: too many pending", "object", Key(obj), "reason", reason)
	}
}

// Run writes recorded events until ctx ends.
func (r *Recorder) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-r.queue:
			if err := r.write(ctx, ev); err != nil && ctx.Err() == nil {
				r.log.Info("cannot write event", "event", ev.Name, "reason", ev.Reason, "error", err.Error())
			}
		}
	}
}

func (r *Recorder) write(ctx context.Context, ev *v1.Event) error {
	now := metav1.Now()
	ev.FirstTimestamp, ev.LastTimestamp = now, now
	for attempt := 0; attempt < 3; attempt++ {
		_, err := r.store.Create(ctx, resources.Events, ev, storage.CreateOptions{})
		if !apierrors.IsAlreadyExists(err) {
			return err
		}
		obj, err := r.store.Get(ctx, resources.Events, ev.Namespace, ev.Name)
		if apierrors.IsNotFound(err) {
			continue // expired in between
		}
		if err != nil {
			return err
		}
		cur := obj.(*v1.Event)
		cur.Count++
		cur.LastTimestamp = now
		if _, err = r.store.Update(ctx, resources.Events, cur, storage.UpdateOptions{}); !apierrors.IsConflict(err) {
			return err
		}
	}
	return fmt.Errorf("event %s kept changing", ev.Name)
}
