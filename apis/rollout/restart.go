package rollout

import (
	"encoding/json"
	"fmt"
	"time"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

// RestartPatch is the JSON merge patch (application/merge-patch+json) that
// l4mctl rollout restart sends to a Blueprint or an Instance: restartedAt
// the time, forceRestartAt the same time with force, else removed (an
// earlier force forces nothing new anyway). Any client restarts the same
// way, a dashboard's Restart button among them.
func RestartPatch(now time.Time, force bool) []byte {
	at := now.UTC().Format(time.RFC3339Nano)
	var forceAt any // null removes the annotation
	if force {
		forceAt = at
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{
		v1.AnnotationRestartedAt: at, v1.AnnotationForceRestartAt: forceAt}}})
	return patch
}

// DescribeInstance says where one Instance's restart stands, p being
// Assess of its Blueprint over that Instance alone: what l4mctl rollout
// status instance/NAME prints and the dashboard's Instance page shows.
// force tells the reader how to force a waiting restart, in its own terms
// ("l4mctl rollout restart --force instance/coop-1 restarts it now").
func DescribeInstance(bp *v1.Blueprint, in *v1.Instance, p Progress, force string) string {
	switch {
	case p.Updated == 1:
		return "rollout complete: runs its Blueprint's current spec"
	case len(p.Restarting) == 1:
		return "restarting"
	case len(p.Forced) == 1:
		return "forced restart pending"
	case len(p.Waiting) == 1:
		who := fmt.Sprintf("%d players", in.Status.Players)
		if in.Status.Players == 1 {
			who = "its player"
		}
		return fmt.Sprintf("restart pending, waiting for %s to leave (policy %s; %s)", who, bp.Spec.Rollout.Policy, force)
	case len(p.Queued) == 1:
		return fmt.Sprintf("restart pending, waiting for its turn (maxUnavailable %d; %s)", max(bp.Spec.Rollout.MaxUnavailable, 1), force)
	}
	return "not yet seen by its node"
}
