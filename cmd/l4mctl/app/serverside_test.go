package app_test

import (
	"strings"
	"testing"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
)

// TestApplyServerSide: l4mctl apply --server-side applies the samples as
// manager l4mctl; another manager changing a field l4mctl applied is
// refused naming the field and l4mctl (with what to do about it), and
// --force-conflicts takes it over; kubectl's server-side apply of the same
// file shares the fields without conflict.
func TestApplyServerSide(t *testing.T) {
	e := newEnv(t)
	out := e.mustRun("apply", "--server-side", "-f", samplesDir)
	if !strings.Contains(out, "blueprint.left4me.io/coop serverside-applied") || !strings.Contains(out, "instance.left4me.io/coop-1 serverside-applied") {
		t.Fatalf("apply --server-side:\n%s", out)
	}
	bp := e.get(resources.Blueprints, "coop").(*v1.Blueprint)
	if len(bp.ManagedFields) != 1 || bp.ManagedFields[0].Manager != "l4mctl" || bp.ManagedFields[0].Operation != "Apply" {
		t.Fatalf("managedFields: %+v", bp.ManagedFields)
	}
	if _, ok := bp.Annotations[v1.AnnotationLastApplied]; ok {
		t.Error("server-side apply wrote the client-side last-applied annotation")
	}
	if out := e.kubectl("apply", "--server-side", "-f", samplesDir+"10-blueprints.yaml"); !strings.Contains(out, "serverside-applied") {
		t.Errorf("kubectl apply --server-side of the same file:\n%s", out)
	}

	edited := e.write("coop.yaml", strings.Replace(readSample(t, "10-blueprints.yaml"), "maxPlayers: 4", "maxPlayers: 6", 1))
	_, stderr, err := e.run("", "apply", "--server-side", "--field-manager=ops-console", "-f", edited)
	if err == nil || !strings.Contains(stderr, ".spec.game.maxPlayers") || !strings.Contains(stderr, `"l4mctl"`) || !strings.Contains(stderr, "--force-conflicts") {
		t.Fatalf("conflicting apply: %v\n%s", err, stderr)
	}
	if got := e.get(resources.Blueprints, "coop").(*v1.Blueprint).Spec.Game.MaxPlayers; got != 4 {
		t.Errorf("a refused apply changed maxPlayers to %d", got)
	}
	if out := e.mustRun("apply", "--server-side", "--dry-run=server", "--field-manager=ops-console", "--force-conflicts", "-f", edited); !strings.Contains(out, "serverside-applied (server dry run)") {
		t.Errorf("dry run: %s", out)
	}
	if got := e.get(resources.Blueprints, "coop").(*v1.Blueprint).Spec.Game.MaxPlayers; got != 4 {
		t.Errorf("a dry run changed maxPlayers to %d", got)
	}
	e.mustRun("apply", "--server-side", "--field-manager=ops-console", "--force-conflicts", "-f", edited)
	if got := e.get(resources.Blueprints, "coop").(*v1.Blueprint).Spec.Game.MaxPlayers; got != 6 {
		t.Errorf("forced apply: maxPlayers %d, want 6", got)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"apply", "--force-conflicts", "-f", edited}, "--force-conflicts only goes with --server-side"},
		{[]string{"apply", "--server-side", "--prune", "-l", "a=b", "-f", edited}, "--prune does not go with --server-side"},
		{[]string{"apply", "--server-side", "--dry-run=client", "-f", edited}, "--dry-run=client does not go with --server-side"},
	} {
		if _, stderr, err := e.run("", c.args...); err == nil || !strings.Contains(err.Error()+stderr, c.want) {
			t.Errorf("l4mctl %s: %v %s", strings.Join(c.args, " "), err, stderr)
		}
	}
}
