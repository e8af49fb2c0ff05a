package agent

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/node/overlay"
	"github.com/left4me/left4me/node/store"
)

// overlayStack is a Blueprint's overlays as this node stacks them, top
// first: a path source is its directory below overlays/, checked on the
// real filesystem; every other source is its entry in the node's store.
type overlayStack struct {
	layers []*overlay.Layer
	used   map[string]*v1.Overlay
	// entries are the store entries stacked, by Overlay name (spec.json's
	// OverlayEntries).
	entries map[string]string
	pinned  []store.Key
	// refused: nothing of the Instance may run (an Overlay missing, a path
	// that leads out of overlays/, a broken store entry).
	refused *overlayRefusal
	// missing: a fetched Overlay's content is not in the store (its source
	// is not fetched yet, or fetching failed). A game that runs keeps its
	// stack; nothing new starts.
	missing *overlayRefusal
}

type overlayRefusal struct{ reason, msg string }

// stackOverlays resolves the Blueprint's overlays, fetching what the store
// lacks. The entries it resolves stay pinned (not collected) until
// release. Refusals are in the stack; the error is for a retry (the API,
// the reconcile's context).
func (a *Agent) stackOverlays(ctx context.Context, in *v1.Instance, bp *v1.Blueprint) (*overlayStack, error) {
	stk := &overlayStack{used: map[string]*v1.Overlay{}, entries: map[string]string{}}
	// Which fetched Overlays the Instance uses is recorded before any is
	// resolved: the store's collection keeps the history of used ones
	// only, and may run as soon as an entry is resolved.
	var ovs []*v1.Overlay
	var fetched []string
	for _, name := range bp.Spec.Overlays {
		obj, err := a.reference(ctx, overlayRes, in.Namespace, name)
		if apierrors.IsNotFound(err) {
			stk.refused = &overlayRefusal{"OverlayNotFound", fmt.Sprintf("Overlay %q does not exist", name)}
			break
		}
		if err != nil {
			return stk, err
		}
		ov := obj.(*v1.Overlay)
		stk.used[name] = ov
		ovs = append(ovs, ov)
		if ov.Spec.Source.Kind() != v1.SourcePath {
			fetched = append(fetched, key(in.Namespace, name))
		}
	}
	a.useOverlays(key(in.Namespace, in.Name), fetched)
	if stk.refused != nil {
		return stk, nil
	}
	for _, ov := range ovs {
		name := ov.Name
		if ov.Spec.Source.Kind() == v1.SourcePath {
			l, err := overlay.Resolve(a.paths.Overlays(), ov.Spec.Source.Path)
			if err != nil {
				stk.refused = &overlayRefusal{"InvalidOverlay", fmt.Sprintf("Overlay %s: %v", name, err)}
				return stk, nil
			}
			stk.layers = append(stk.layers, l)
			continue
		}
		k, err := a.ensureOverlay(ctx, ov)
		if err != nil {
			if ctx.Err() != nil {
				return stk, err
			}
			if stk.missing == nil {
				stk.missing = &overlayRefusal{overlayReason(err), fmt.Sprintf("Overlay %s: %v", name, err)}
			}
			continue
		}
		stk.pinned = append(stk.pinned, k)
		// The entry is root's and immutable, but resolved like any layer:
		// the mount names the kernel's path of what was checked, and
		// Verify catches a swap after mounting.
		l, err := overlay.Resolve(a.storeRoot(), k.Name()+"/tree")
		if err != nil {
			stk.refused = &overlayRefusal{"InvalidOverlay", fmt.Sprintf("Overlay %s: its store entry %s: %v", name, k.Name(), err)}
			return stk, nil
		}
		stk.layers = append(stk.layers, l)
		stk.entries[name] = k.Name()
	}
	if len(stk.entries) == 0 {
		stk.entries = nil
	}
	return stk, nil
}

// release unpins the stack's entries: from now on the Instance's record
// and mount unit keep them.
func (stk *overlayStack) release(a *Agent) {
	if stk == nil {
		return
	}
	for _, k := range stk.pinned {
		a.unpin(k)
	}
	stk.pinned = nil
}

// summary is the OverlaysReady message.
func (stk *overlayStack) summary(a *Agent) string {
	msg := fmt.Sprintf("%d overlays resolved below %s", len(stk.layers), a.paths.Overlays())
	if n := len(stk.entries); n > 0 {
		msg += fmt.Sprintf(" (%d from the node's store)", n)
	}
	return msg
}

// refuseOverlay is refuse for an Overlay that cannot be stacked: nothing
// runs, and OverlaysReady says why.
func (a *Agent) refuseOverlay(ctx context.Context, id string, st *v1.InstanceStatus, r overlayRefusal) error {
	if err := a.refuse(ctx, id, st, r.reason, r.msg); err != nil {
		return err
	}
	setCond(st, v1.InstanceOverlaysReady, false, r.reason, r.msg)
	return nil
}
