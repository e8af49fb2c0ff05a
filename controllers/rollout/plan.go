package rollout

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/rollout"
)

// approval is one restart the controller allows now, and the event that
// tells the Instance's users why.
type approval struct {
	Instance *v1.Instance
	// Why is the short reason for the log ("no players on it").
	Why string
	// Event is the RolloutRestart event's message.
	Event string
}

// plan decides which of a Blueprint's Instances (instances may hold other
// Blueprints' too) may restart onto their pending template now: every one
// with a forced restart of its own, whoever is on it and however many
// restart already; then those queued (empty, or policy Immediate, or the
// Blueprint's restart forced), until maxUnavailable restart at once.
func plan(bp *v1.Blueprint, instances []*v1.Instance) []approval {
	// Approvals depend on what nodes report pending, not on which version
	// counts as current: no Overlays needed here.
	p := rollout.Assess(bp, nil, instances)
	var out []approval
	for _, in := range p.Forced {
		out = append(out, approve(bp, in, fmt.Sprintf("forced by l4mctl rollout restart --force instance/%s, %s on it", in.Name, players(in))))
	}
	budget := max(int(bp.Spec.Rollout.MaxUnavailable), 1) - len(p.Restarting) - len(p.Forced)
	for _, in := range p.Queued[:max(min(budget, len(p.Queued)), 0)] {
		why := "no players on it"
		switch {
		case rollout.BlueprintForced(bp, in) && in.Status.Players > 0:
			why = fmt.Sprintf("forced by l4mctl rollout restart --force blueprint/%s, %s on it", bp.Name, players(in))
		case bp.Spec.Rollout.Policy == v1.RolloutImmediate:
			why = fmt.Sprintf("policy Immediate, %s", players(in))
		}
		out = append(out, approve(bp, in, why))
	}
	return out
}

func approve(bp *v1.Blueprint, in *v1.Instance, why string) approval {
	a := approval{Instance: in, Why: why}
	cond := meta.FindStatusCondition(in.Status.Conditions, v1.InstanceUpdatePending)
	switch {
	case cond == nil || cond.Reason != v1.ReasonRestartRequested:
		a.Event = fmt.Sprintf("Restarting onto Blueprint %s's new spec (template %s): %s", bp.Name, in.Status.PendingTemplateHash, why)
	case in.Annotations[v1.AnnotationRestartedAt] != "" && in.Annotations[v1.AnnotationRestartedAt] != in.Status.RestartedAt:
		a.Event = fmt.Sprintf("Restarting as requested by l4mctl rollout restart of Instance %s (at %s): %s",
			in.Name, in.Annotations[v1.AnnotationRestartedAt], why)
	default:
		a.Event = fmt.Sprintf("Restarting as requested by l4mctl rollout restart of Blueprint %s (at %s): %s",
			bp.Name, bp.Annotations[v1.AnnotationRestartedAt], why)
	}
	return a
}

func players(in *v1.Instance) string {
	if in.Status.Players == 1 {
		return "1 player"
	}
	return fmt.Sprintf("%d players", in.Status.Players)
}
