package rollout

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

const (
	t1 = "2026-03-01T19:00:00Z" // an earlier restart, the game runs it
	t2 = "2026-03-01T20:00:00Z" // the restart asked for now
)

// game is a running Instance of Blueprint coop as its node reports it:
// Ready, players on it, restarted at t1 (its own and the Blueprint's).
func game(name string, players int32, mut ...func(*v1.Instance)) *v1.Instance {
	in := &v1.Instance{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Annotations: map[string]string{v1.AnnotationRestartedAt: t1}},
		Spec:       v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}},
		Status: v1.InstanceStatus{TemplateHash: "old", Players: players, RestartedAt: t1, BlueprintRestartedAt: t1,
			Conditions: []metav1.Condition{{Type: v1.ConditionReady, Status: metav1.ConditionTrue, Reason: "A2SAnswered"}}},
	}
	for _, m := range mut {
		m(in)
	}
	return in
}

// restartAsked is what l4mctl rollout restart [--force] instance/NAME and
// the node make of it: a new restartedAt, the template it makes pending.
func restartAsked(force bool) func(*v1.Instance) {
	return func(in *v1.Instance) {
		in.Annotations[v1.AnnotationRestartedAt] = t2
		if force {
			in.Annotations[v1.AnnotationForceRestartAt] = t2
		}
		pendingFor(v1.ReasonRestartRequested)(in)
	}
}

// pendingFor is the node's report of a pending template, for reason.
func pendingFor(reason string) func(*v1.Instance) {
	return func(in *v1.Instance) {
		in.Status.PendingTemplateHash = "new-" + in.Name
		meta.SetStatusCondition(&in.Status.Conditions, metav1.Condition{Type: v1.InstanceUpdatePending, Status: metav1.ConditionTrue, Reason: reason})
	}
}

// restarting is an Instance whose approved restart is not back yet.
func restarting(in *v1.Instance) {
	pendingFor(v1.ReasonWaitingForRollout)(in)
	in.Annotations[v1.AnnotationApprovedTemplate] = in.Status.PendingTemplateHash
}

func coop(mut ...func(*v1.Blueprint)) *v1.Blueprint {
	bp := &v1.Blueprint{ObjectMeta: metav1.ObjectMeta{Name: "coop", Namespace: "default",
		Annotations: map[string]string{v1.AnnotationRestartedAt: t1}}}
	for _, m := range mut {
		m(bp)
	}
	return bp
}

// blueprintRestart is l4mctl rollout restart [--force] blueprint/coop.
func blueprintRestart(force bool) func(*v1.Blueprint) {
	return func(bp *v1.Blueprint) {
		bp.Annotations[v1.AnnotationRestartedAt] = t2
		if force {
			bp.Annotations[v1.AnnotationForceRestartAt] = t2
		}
	}
}

func TestPlan(t *testing.T) {
	tests := []struct {
		name      string
		bp        *v1.Blueprint
		instances []*v1.Instance
		want      []string // approved, in order
		event     string   // part of the first approval's event
	}{
		{"instance restart of an empty game: approved", coop(),
			[]*v1.Instance{game("x", 0, restartAsked(false)), game("y", 0)},
			[]string{"x"}, "l4mctl rollout restart of Instance x (at " + t2 + "): no players on it"},
		{"instance restart of an occupied game: held", coop(),
			[]*v1.Instance{game("x", 3, restartAsked(false)), game("y", 0)},
			nil, ""},
		{"forced instance restart of an occupied game: approved", coop(),
			[]*v1.Instance{game("x", 3, restartAsked(true)), game("y", 0)},
			[]string{"x"}, "forced by l4mctl rollout restart --force instance/x, 3 players on it"},
		{"forced instance restart does not wait for its turn", coop(),
			[]*v1.Instance{game("w", 0, restarting), game("x", 1, restartAsked(true))},
			[]string{"x"}, "forced"},
		{"a forced instance restart takes the rollout's slot", coop(),
			[]*v1.Instance{game("w", 0, pendingFor(v1.ReasonWaitingForRollout)), game("x", 1, restartAsked(true))},
			[]string{"x"}, ""},
		{"spent force: the next change waits for players", coop(),
			[]*v1.Instance{game("x", 2, func(in *v1.Instance) {
				in.Annotations[v1.AnnotationRestartedAt], in.Annotations[v1.AnnotationForceRestartAt] = t1, t1
			}, pendingFor(v1.ReasonWaitingForRollout))},
			nil, ""},
		{"a later unforced restart is not forced by an older force", coop(),
			[]*v1.Instance{game("x", 2, restartAsked(false), func(in *v1.Instance) { in.Annotations[v1.AnnotationForceRestartAt] = t1 })},
			nil, ""},
		{"forced restart not reported pending yet: nothing to approve", coop(),
			[]*v1.Instance{game("x", 2, func(in *v1.Instance) {
				in.Annotations[v1.AnnotationRestartedAt], in.Annotations[v1.AnnotationForceRestartAt] = t2, t2
			})},
			nil, ""},
		{"blueprint restart unaffected: empty games one at a time, occupied ones wait", coop(blueprintRestart(false)),
			[]*v1.Instance{game("a", 0, pendingFor(v1.ReasonRestartRequested)), game("b", 4, pendingFor(v1.ReasonRestartRequested)),
				game("c", 0, pendingFor(v1.ReasonRestartRequested))},
			[]string{"a"}, "l4mctl rollout restart of Blueprint coop (at " + t2 + "): no players on it"},
		{"forced blueprint restart: occupied games too, in their turn", coop(blueprintRestart(true)),
			[]*v1.Instance{game("b", 4, pendingFor(v1.ReasonRestartRequested)), game("c", 2, pendingFor(v1.ReasonRestartRequested))},
			[]string{"b"}, "forced by l4mctl rollout restart --force blueprint/coop, 4 players on it"},
		{"forced blueprint restart spent on a game that made it", coop(blueprintRestart(true)),
			[]*v1.Instance{game("b", 4, pendingFor(v1.ReasonWaitingForRollout), func(in *v1.Instance) { in.Status.BlueprintRestartedAt = t2 })},
			nil, ""},
		{"other Blueprints' Instances are not this plan's", coop(),
			[]*v1.Instance{game("z", 0, restartAsked(true), func(in *v1.Instance) { in.Spec.BlueprintRef.Name = "versus" })},
			nil, ""},
		{"changed spec: the event names the template", coop(),
			[]*v1.Instance{game("a", 0, pendingFor(v1.ReasonWaitingForRollout))},
			[]string{"a"}, "Restarting onto Blueprint coop's new spec (template new-a): no players on it"},
		{"policy Immediate, two at a time", coop(func(bp *v1.Blueprint) {
			bp.Spec.Rollout = v1.RolloutSpec{Policy: v1.RolloutImmediate, MaxUnavailable: 2}
		}),
			[]*v1.Instance{game("a", 5, pendingFor(v1.ReasonWaitingForRollout)), game("b", 1, pendingFor(v1.ReasonWaitingForRollout)),
				game("c", 0, pendingFor(v1.ReasonWaitingForRollout))},
			[]string{"a", "b"}, "policy Immediate, 5 players"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := plan(tc.bp, tc.instances)
			var names []string
			for _, a := range got {
				names = append(names, a.Instance.Name)
			}
			if fmt.Sprint(names) != fmt.Sprint(tc.want) {
				t.Fatalf("approved %v, want %v", names, tc.want)
			}
			if tc.event != "" && !strings.Contains(got[0].Event, tc.event) {
				t.Fatalf("event %q, want it to say %q", got[0].Event, tc.event)
			}
		})
	}
}
