// Package rollout tells where a Blueprint's rollout stands, from its
// Instances' status: the rollout controller decides with it, and l4mctl
// rollout status prints it. AssessInstallation does the same for an
// Installation's wanted build across every Blueprint that runs on it.
package rollout

import (
	"sort"

	"k8s.io/apimachinery/pkg/api/meta"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

// Progress is where a Blueprint's rollout stands; l4mctl rollout status
// prints the same numbers.
type Progress struct {
	Total, Updated int
	// Restarting were approved and are not back (Ready) yet.
	Restarting []string
	// Waiting have a pending update and players on them (WhenEmpty).
	Waiting []*v1.Instance
	// Queued have a pending update and wait for their turn.
	Queued []*v1.Instance
	// Forced have a pending update and a forced restart of their own
	// (InstanceForced): they restart now, players or not, turn or not.
	Forced []*v1.Instance
}

// InstanceForced says whether l4mctl rollout restart --force instance/NAME
// asked for a restart the game has not made yet: forceRestartAt is the
// Instance's restartedAt, and the game runs an older one.
func InstanceForced(in *v1.Instance) bool {
	return forced(in.Annotations, in.Status.RestartedAt)
}

// BlueprintForced says whether the Blueprint's forced restart (rollout
// restart --force blueprint/NAME) is one this Instance's game has not made
// yet: it restarts with players on it, in its turn.
func BlueprintForced(bp *v1.Blueprint, in *v1.Instance) bool {
	return forced(bp.Annotations, in.Status.BlueprintRestartedAt)
}

// stampUnseen says whether the Instance's own restartedAt is one its game
// was not started with (the node has not reported it pending yet, or the
// game has not restarted yet).
func stampUnseen(in *v1.Instance) bool {
	at := in.Annotations[v1.AnnotationRestartedAt]
	return at != "" && at != in.Status.RestartedAt
}

func forced(ann map[string]string, running string) bool {
	f := ann[v1.AnnotationForceRestartAt]
	return f != "" && f == ann[v1.AnnotationRestartedAt] && f != running
}

// Assess sorts a Blueprint's Instances by where they are in its rollout;
// overlays are the Blueprint's namespace's, by name.
func Assess(bp *v1.Blueprint, overlays map[string]*v1.Overlay, instances []*v1.Instance) Progress {
	var p Progress
	version := v1.BlueprintVersion(bp, overlays)
	for _, in := range instances {
		if in.Spec.BlueprintRef.Name != bp.Name || in.Namespace != bp.Namespace || in.DeletionTimestamp != nil {
			continue
		}
		p.Total++
		pending := in.Status.PendingTemplateHash
		approved := in.Annotations[v1.AnnotationApprovedTemplate]
		ready := meta.IsStatusConditionTrue(in.Status.Conditions, v1.ConditionReady)
		switch {
		case pending == "" && (in.Spec.State == v1.StateStopped || in.Status.TemplateHash == ""):
			p.Updated++ // runs nothing old: it starts with the current spec
		case pending != "" && approved == pending:
			p.Restarting = append(p.Restarting, in.Name)
		case pending != "" && InstanceForced(in):
			p.Forced = append(p.Forced, in)
		case pending != "" && bp.Spec.Rollout.Policy != v1.RolloutImmediate && in.Status.Players > 0 && !BlueprintForced(bp, in):
			p.Waiting = append(p.Waiting, in)
		case pending != "":
			p.Queued = append(p.Queued, in)
		case approved != "" && approved == in.Status.TemplateHash && !ready && in.Spec.State != v1.StateStopped:
			p.Restarting = append(p.Restarting, in.Name)
		case stampUnseen(in):
			// rollout restart instance/NAME, not reported pending yet
		case in.Status.ObservedBlueprint == version:
			p.Updated++
		}
	}
	sort.Slice(p.Queued, func(i, j int) bool { return p.Queued[i].Name < p.Queued[j].Name })
	sort.Slice(p.Waiting, func(i, j int) bool { return p.Waiting[i].Name < p.Waiting[j].Name })
	sort.Slice(p.Forced, func(i, j int) bool { return p.Forced[i].Name < p.Forced[j].Name })
	return p
}
