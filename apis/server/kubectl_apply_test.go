package server_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/left4me/left4me/apis/server/servertest"
)

// samplesDir is config/samples, as a user's clone has it.
const samplesDir = "../../config/samples/"

// writeManifest writes one manifest into a temporary file for kubectl -f.
func writeManifest(t *testing.T, yaml string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "m.yaml")
	if err := os.WriteFile(f, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

const coopWithColour = `apiVersion: left4me.io/v1alpha1
kind: Instance
metadata:
  name: coop-typo
spec:
  blueprintRef:
    name: coop
  colour: red
`

// TestKubectlApplyDiffDelete is a user's kubectl session over the
// samples: apply with validation on (the OpenAPI documents tell kubectl
// the server validates fields), apply again (unchanged), diff an edit
// (shown, nothing changed), delete -f.
func TestKubectlApplyDiffDelete(t *testing.T) {
	s, _ := servertest.Start(t)
	out := kubectl(t, s, "apply", "-f", samplesDir)
	for _, want := range []string{"installation.left4me.io/l4d2 created", "overlay.left4me.io/coop-maps created", "blueprint.left4me.io/coop created", "instance.left4me.io/coop-1 created"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl apply: no %q in\n%s", want, out)
		}
	}
	if out := kubectl(t, s, "apply", "-f", samplesDir); strings.Count(out, "unchanged") != strings.Count(out, "\n") {
		t.Errorf("second kubectl apply changed something:\n%s", out)
	}

	// diff: an edited Blueprint shows its change and kubectl exits 1; the
	// server stores nothing (dry run).
	edited := writeManifest(t, strings.Replace(readSample(t, "10-blueprints.yaml"), "c1m1_hotel", "c2m1_highway", 1))
	out, err := kubectlErr(t, s, "diff", "-f", edited)
	if err == nil || !strings.Contains(out, "+") || !strings.Contains(out, "c2m1_highway") {
		t.Errorf("kubectl diff of an edit: %v\n%s", err, out)
	}
	if got := kubectl(t, s, "get", "blueprint", "coop", "-o", "jsonpath={.spec.game.map}"); got != "c1m1_hotel" {
		t.Errorf("kubectl diff stored its dry run: map %s", got)
	}
	if out, err := kubectlErr(t, s, "diff", "-f", samplesDir); err != nil || out != "" {
		t.Errorf("kubectl diff of what is applied: %v\n%s", err, out)
	}

	out = kubectl(t, s, "delete", "-f", samplesDir)
	if !strings.Contains(out, `instance.left4me.io "coop-1" deleted`) || !strings.Contains(out, `overlay.left4me.io "sourcemod" deleted`) {
		t.Errorf("kubectl delete -f:\n%s", out)
	}
}

// TestKubectlExplain: kubectl explain reads the fields, their
// documentation, required marks and enums from /openapi/v3.
func TestKubectlExplain(t *testing.T) {
	servertest.RequireKubectl(t, 27) // explain's layout since 1.27
	s, _ := servertest.Start(t)
	out := kubectl(t, s, "explain", "instance.spec")
	for _, want := range []string{"KIND:       Instance", "blueprintRef\t<LocalObjectReference> -required-", "enum: Running, Stopped", "Port is the game port"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl explain instance.spec: no %q in\n%s", want, out)
		}
	}
	if out := kubectl(t, s, "explain", "blueprint.spec.cvars"); !strings.Contains(out, "server.cfg lines") {
		t.Errorf("kubectl explain blueprint.spec.cvars:\n%s", out)
	}
}

func readSample(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(samplesDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestKubectlFieldValidation: kubectl's --validate modes reach the server
// as fieldValidation: strict (the default) refuses an unknown field naming
// it and stores nothing, warn stores and warns, false stores silently.
func TestKubectlFieldValidation(t *testing.T) {
	servertest.RequireKubectl(t, 27) // server-side field validation, --validate=warn
	s, _ := servertest.Start(t)
	f := writeManifest(t, coopWithColour)
	out, err := kubectlErr(t, s, "apply", "-f", f)
	if err == nil || !strings.Contains(out, `unknown field "spec.colour"`) {
		t.Fatalf("kubectl apply of an unknown field: %v\n%s", err, out)
	}
	if out, err := kubectlErr(t, s, "get", "instance", "coop-typo"); err == nil {
		t.Fatalf("a refused apply stored the Instance:\n%s", out)
	}
	out = kubectl(t, s, "apply", "--validate=warn", "-f", f)
	if !strings.Contains(out, `Warning: unknown field "spec.colour"`) || !strings.Contains(out, "instance.left4me.io/coop-typo created") {
		t.Errorf("kubectl apply --validate=warn:\n%s", out)
	}
	kubectl(t, s, "delete", "instance", "coop-typo")
	out = kubectl(t, s, "apply", "--validate=false", "-f", f)
	if strings.Contains(out, "Warning") || !strings.Contains(out, "instance.left4me.io/coop-typo created") {
		t.Errorf("kubectl apply --validate=false:\n%s", out)
	}
	if out := kubectl(t, s, "get", "instance", "coop-typo", "-o", "jsonpath={.spec}"); strings.Contains(out, "colour") || !strings.Contains(out, "coop") {
		t.Errorf("the unknown field was stored:\n%s", out)
	}
}

// TestKubectlServerSideApply: kubectl apply --server-side creates the
// samples with kubectl as their manager; a second manager changing a
// field kubectl applied is refused naming the field and kubectl, and
// --force-conflicts takes it over; diff --server-side shows an edit.
func TestKubectlServerSideApply(t *testing.T) {
	s, _ := servertest.Start(t)
	out := kubectl(t, s, "apply", "--server-side", "-f", samplesDir)
	if !strings.Contains(out, "blueprint.left4me.io/coop serverside-applied") || !strings.Contains(out, "instance.left4me.io/coop-1 serverside-applied") {
		t.Fatalf("kubectl apply --server-side:\n%s", out)
	}
	if out := kubectl(t, s, "get", "blueprint", "coop", "-o", "jsonpath={.metadata.managedFields[*].manager}/{.metadata.managedFields[*].operation}"); out != "kubectl/Apply" {
		t.Errorf("managedFields after kubectl's apply: %q", out)
	}
	edited := writeManifest(t, strings.Replace(readSample(t, "10-blueprints.yaml"), "maxPlayers: 4", "maxPlayers: 6", 1))
	out, err := kubectlErr(t, s, "apply", "--server-side", "--field-manager=ops-console", "-f", edited)
	if err == nil || !strings.Contains(out, `Apply failed with 1 conflict: conflict with "kubectl": .spec.game.maxPlayers`) {
		t.Fatalf("conflicting apply: %v\n%s", err, out)
	}
	if got := kubectl(t, s, "get", "blueprint", "coop", "-o", "jsonpath={.spec.game.maxPlayers}"); got != "4" {
		t.Errorf("a refused apply changed maxPlayers to %s", got)
	}
	out, err = kubectlErr(t, s, "diff", "--server-side", "--field-manager=ops-console", "--force-conflicts", "-f", edited)
	if err == nil || !strings.Contains(out, "+    maxPlayers: 6") {
		t.Errorf("kubectl diff --server-side: %v\n%s", err, out)
	}
	kubectl(t, s, "apply", "--server-side", "--field-manager=ops-console", "--force-conflicts", "-f", edited)
	if got := kubectl(t, s, "get", "blueprint", "coop", "-o", "jsonpath={.spec.game.maxPlayers}"); got != "6" {
		t.Errorf("forced apply: maxPlayers %s, want 6", got)
	}
	if out := kubectl(t, s, "delete", "-f", samplesDir); !strings.Contains(out, `blueprint.left4me.io "coop" deleted`) {
		t.Errorf("kubectl delete -f:\n%s", out)
	}
}
