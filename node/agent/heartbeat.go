package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/version"
)

// The heartbeat, as Kubernetes' node leases (KEP-589): every period the
// agent renews its Lease, a write of a few hundred bytes that only the
// node lifecycle controller watches; the Node's status, which every
// watcher of Nodes receives, is written when what the node reports
// changes (nudgeStatus writes it at once), when the Lease cannot be
// renewed (an API server that serves no Leases still hears the node), and
// at least every StatusReport, so a reader of status.heartbeatTime alone
// (an older controller) still sees it move.

// DefaultStatusReport is how long the Node's status goes unwritten at
// most while nothing it reports changes: kubelet's default
// nodeStatusReportFrequency.
const DefaultStatusReport = 5 * time.Minute

// heartbeatState is what the heartbeat knows of the API.
type heartbeatState struct {
	// writing serializes the status writes, each from what it reports to
	// the API's reply: a write decided while another is in flight would
	// compare with the Node as it was before that one, and repeat it.
	writing sync.Mutex

	mu sync.Mutex
	// lease is this node's Lease as the API last returned it (nil: not
	// known; the next renewal reads or creates it).
	lease *v1.Lease
	// leaseRenewed says whether the last renewal got through;
	// leaseFailing that the last one did not (neither: none yet).
	leaseRenewed, leaseFailing bool
	// node is this node's Node as the API last returned it: a status
	// write's reply or watchOwnNode's latest (nil: not known yet).
	node *v1.Node
}

// heartbeat renews the Lease every period, then writes the Node's status
// if statusWriteDue says so; a nudge writes the status, if it changed,
// without waiting for the period.
func (a *Agent) heartbeat(ctx context.Context) {
	t := time.NewTicker(a.o.Heartbeat)
	defer t.Stop()
	a.renewLease(ctx)
	for {
		if err := a.syncNodeStatus(ctx); err != nil && ctx.Err() == nil {
			a.o.Log.Info("heartbeat failed", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.renewLease(ctx)
		case <-a.statusNudge:
		}
	}
}

// renewLease renews this node's Lease and records whether that got
// through. A failure is logged, not returned: the status write that
// follows is then the heartbeat.
func (a *Agent) renewLease(ctx context.Context) {
	err := a.renewLeaseOnce(ctx)
	a.hb.mu.Lock()
	failing := a.hb.leaseFailing
	a.hb.leaseRenewed, a.hb.leaseFailing = err == nil, err != nil
	a.hb.mu.Unlock()
	if err != nil && !failing && ctx.Err() == nil {
		a.o.Log.Info("cannot renew the node's Lease; heartbeating through the Node's status until it can", "error", err.Error())
	}
}

// renewLeaseOnce writes the Lease renewed: an update of the copy the API
// last returned, so a renewal is one request; the Lease is read (or
// created) again only when that copy is missing or stale.
func (a *Agent) renewLeaseOnce(ctx context.Context) error {
	now := metav1.NowMicro()
	duration := int32(max(v1.NodeLeaseDurationSeconds, 4*int(a.o.Heartbeat/time.Second)))
	a.hb.mu.Lock()
	cur := a.hb.lease
	a.hb.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if cur == nil {
			obj, err := a.o.Client.Get(ctx, leaseRes, "", a.o.NodeName)
			switch {
			case apierrors.IsNotFound(err): // created below
			case err != nil:
				return fmt.Errorf("read Lease %s: %w", a.o.NodeName, err)
			default:
				cur = obj.(*v1.Lease)
			}
		}
		next := renewedLease(cur, a.o.NodeName, now, duration)
		var out v1.Object
		var err error
		if cur == nil {
			out, err = a.o.Client.Create(ctx, leaseRes, next, false)
		} else {
			out, err = a.o.Client.Update(ctx, leaseRes, next, false)
		}
		l, _ := out.(*v1.Lease)
		a.hb.mu.Lock()
		a.hb.lease = l
		a.hb.mu.Unlock()
		if err == nil {
			return nil
		}
		// Stale: changed, removed or created by someone else since it was
		// read. A create answered 404 is a server that serves no Leases
		// (older than them): trying again now would change nothing.
		stale := apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) || (cur != nil && apierrors.IsNotFound(err))
		if !stale || attempt > 0 {
			return fmt.Errorf("renew Lease %s: %w", a.o.NodeName, err)
		}
		cur = nil // changed or removed by someone else: read it again
	}
}

// renewedLease is the Lease to write at now: cur renewed, or a new one
// (cur nil). Taking it from another holder, or holding it for the first
// time, is an acquisition.
func renewedLease(cur *v1.Lease, node string, now metav1.MicroTime, durationSeconds int32) *v1.Lease {
	l := &v1.Lease{ObjectMeta: metav1.ObjectMeta{Name: node}}
	if cur != nil {
		l = cur.DeepCopy()
	}
	if l.Spec.HolderIdentity != node || l.Spec.AcquireTime == nil {
		acquired := now
		l.Spec.AcquireTime = &acquired
	}
	renewed := now
	l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.RenewTime = node, durationSeconds, &renewed
	return l
}

// syncNodeStatus writes the Node's status when statusWriteDue says so.
func (a *Agent) syncNodeStatus(ctx context.Context) error {
	a.hb.writing.Lock()
	defer a.hb.writing.Unlock()
	now := metav1.Now()
	patch, err := statusPatch(a.reportedStatus(now))
	if err != nil {
		return err
	}
	a.hb.mu.Lock()
	var stored *v1.NodeStatus
	if a.hb.node != nil {
		stored = &a.hb.node.Status
	}
	renewed := a.hb.leaseRenewed
	a.hb.mu.Unlock()
	due, why, err := statusWriteDue(stored, patch, renewed, now.Time, a.o.StatusReport)
	if err != nil || !due {
		return err
	}
	a.o.Log.V(1).Info("writing the Node's status", "why", why)
	return a.patchNodeStatus(ctx, patch)
}

// writeNodeStatus writes the Node's status now, changed or not
// (registering, and once every Instance is reconciled).
func (a *Agent) writeNodeStatus(ctx context.Context) error {
	a.hb.writing.Lock()
	defer a.hb.writing.Unlock()
	patch, err := statusPatch(a.reportedStatus(metav1.Now()))
	if err != nil {
		return err
	}
	return a.patchNodeStatus(ctx, patch)
}

// statusWriteDue decides whether the heartbeat writes the Node's status:
// when the API's copy (stored) is not known; when the Lease was not
// renewed (the status is then the heartbeat, as it was before Leases);
// when the patch would change stored beyond heartbeatTime; and when
// stored's heartbeatTime is report old (or ahead of now: the node's clock
// went back). why says which, for the log.
func statusWriteDue(stored *v1.NodeStatus, patch []byte, leaseRenewed bool, now time.Time, report time.Duration) (due bool, why string, err error) {
	if stored == nil {
		return true, "the Node's status in the API is not known yet", nil
	}
	if !leaseRenewed {
		return true, "the Lease was not renewed: the status is the heartbeat", nil
	}
	changed, err := statusChanged(*stored, patch)
	if err != nil {
		return false, "", err
	}
	if changed {
		return true, "what the node reports changed", nil
	}
	if hb := stored.HeartbeatTime; hb == nil || now.Sub(hb.Time) >= report || now.Before(hb.Time) {
		return true, "the status report period is over", nil
	}
	return false, "", nil
}

// statusChanged reports whether the status merge patch would change
// stored in anything but heartbeatTime, compared as the API stores them,
// in JSON (times in seconds, as metav1.Time keeps them).
func statusChanged(stored v1.NodeStatus, patch []byte) (bool, error) {
	after, err := mergeStatus(stored, patch)
	if err != nil {
		return false, err
	}
	before := stored
	before.HeartbeatTime, after.HeartbeatTime = nil, nil
	b, err := json.Marshal(before)
	if err != nil {
		return false, fmt.Errorf("encode the stored Node status: %w", err)
	}
	a, err := json.Marshal(after)
	if err != nil {
		return false, fmt.Errorf("encode the patched Node status: %w", err)
	}
	return !bytes.Equal(b, a), nil
}

// mergeStatus is stored with the status patch applied as the API server
// applies it: a JSON merge patch, so what the patch does not name stays.
func mergeStatus(stored v1.NodeStatus, patch []byte) (v1.NodeStatus, error) {
	cur, err := json.Marshal(map[string]any{"status": stored})
	if err != nil {
		return v1.NodeStatus{}, fmt.Errorf("encode the stored Node status: %w", err)
	}
	merged, err := jsonpatch.MergePatch(cur, patch)
	if err != nil {
		return v1.NodeStatus{}, fmt.Errorf("apply the Node status patch: %w", err)
	}
	var after struct {
		Status v1.NodeStatus `json:"status"`
	}
	if err := json.Unmarshal(merged, &after); err != nil {
		return v1.NodeStatus{}, fmt.Errorf("decode the patched Node status: %w", err)
	}
	return after.Status, nil
}

// reportedStatus is what the agent reports in its Node's status at now.
// Ready's transition time is the first heartbeat that got through after
// the agent started or after heartbeats failed (the node was away from
// the API).
func (a *Agent) reportedStatus(now metav1.Time) v1.NodeStatus {
	build, present := installationBuild(a.paths.Installation())
	a.mu.Lock()
	if a.readySince.IsZero() {
		a.readySince = now
	}
	since := a.readySince
	synced := metav1.Condition{Type: v1.NodeInstancesSynced, Status: metav1.ConditionFalse, Reason: "Syncing",
		Message: "reconciling the Instances bound here since l4m-node started", LastTransitionTime: since}
	if !a.syncedAt.IsZero() {
		synced = metav1.Condition{Type: v1.NodeInstancesSynced, Status: metav1.ConditionTrue, Reason: "Synced",
			Message: "every Instance bound here reconciled since l4m-node started", LastTransitionTime: a.syncedAt}
	}
	a.mu.Unlock()
	return v1.NodeStatus{
		Addresses: []string{a.o.Address}, HeartbeatTime: &now, AgentVersion: version.Get().Version,
		Installation:  v1.LegacyInstallation{Present: present, Build: build},
		Installations: a.nodeInstallations(),
		Overlays:      a.nodeOverlays(),
		LogsEndpoint:  a.logsEndpoint(),
		Conditions: []metav1.Condition{{Type: v1.ConditionReady, Status: metav1.ConditionTrue, Reason: "AgentHeartbeat",
			Message: "l4m-node is running", LastTransitionTime: since}, synced},
	}
}

// statusPatch is the merge patch that writes st. status.installations and
// status.overlays are always sent, so an Installation that no longer
// selects this node, or an Overlay no Instance here uses, drops out (a
// merge patch leaves what it does not name).
func statusPatch(st v1.NodeStatus) ([]byte, error) {
	fields, err := jsonMarshal(st)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(fields, &m); err != nil {
		return nil, err
	}
	m["installations"] = st.Installations
	m["overlays"] = st.Overlays
	return jsonMarshal(map[string]any{"status": m})
}

// patchNodeStatus writes the patch; a failure is a failed heartbeat (Ready
// will have a new transition time once one gets through).
func (a *Agent) patchNodeStatus(ctx context.Context, patch []byte) error {
	obj, err := a.o.Client.PatchStatus(ctx, nodeRes, "", a.o.NodeName, patch)
	if err != nil {
		a.mu.Lock()
		a.readySince = metav1.Time{}
		a.mu.Unlock()
		return err
	}
	if n, ok := obj.(*v1.Node); ok {
		a.sawNode(n)
	}
	return nil
}

// sawNode records the Node as the API returned it, unless what is known
// is newer (a watch event may arrive after the reply to a later write);
// it reports whether n was newer. Installations select nodes by the
// labels the Node has in the API (an admin's included).
func (a *Agent) sawNode(n *v1.Node) bool {
	a.hb.mu.Lock()
	var known int64
	if a.hb.node != nil {
		known = rv(a.hb.node)
	}
	newer := a.hb.node == nil || rv(n) > known
	if newer || rv(n) == known {
		a.hb.node = n
	}
	a.hb.mu.Unlock()
	if newer {
		a.inst.mu.Lock()
		a.inst.labels = n.Labels
		a.inst.mu.Unlock()
	}
	return newer
}

// watchOwnNode follows this node's Node (fieldSelector
// metadata.name=<node>, which the node role may list and watch): its
// labels, which Installations select nodes by and an admin may change at
// any time, and its status as the API holds it, which the heartbeat
// compares what it reports with. A watch, not a GET every heartbeat: now
// that the status is written only on change, the Node rarely changes, and
// an idle watch costs the API server nothing, where 1,000 nodes reading
// their Node every 10 s would be 100 requests a second. And a change
// someone else made (the node lifecycle controller's Ready=Unknown) is
// seen at once: the nudge writes the status again if it no longer says
// what the node reports.
func (a *Agent) watchOwnNode(ctx context.Context) {
	seen := func(o v1.Object) {
		if n, ok := o.(*v1.Node); ok && n.Name == a.o.NodeName && a.sawNode(n) {
			a.nudgeStatus()
		}
	}
	a.followSelected(ctx, nodeRes, "", "metadata.name="+a.o.NodeName, func(fresh map[string]v1.Object) {
		if n := fresh[a.o.NodeName]; n != nil {
			seen(n)
		}
	}, func(t watch.EventType, o v1.Object) {
		if t == watch.Deleted {
			a.hb.mu.Lock()
			a.hb.node = nil
			a.hb.mu.Unlock()
			return
		}
		seen(o)
	})
}
