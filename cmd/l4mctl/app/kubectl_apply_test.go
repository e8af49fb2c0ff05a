package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/yaml"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/manifest"
	"github.com/left4me/left4me/apis/server/servertest"
	"github.com/left4me/left4me/cmd/l4mctl/app"
)

// samplesDir is config/samples, as a user's clone has it.
const samplesDir = "../../../config/samples/"

// kubectl runs the machine's kubectl (Debian's kubernetes-client in CI)
// against the test server as the admin, the way the README says to
// (--server, --token, --certificate-authority), with a HOME of its own so
// no kubeconfig or cache of the developer's takes part; it fails the test
// when kubectl fails.
func (e *env) kubectl(args ...string) string {
	e.t.Helper()
	out, err := e.kubectlErr(args...)
	if err != nil {
		e.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// kubectlErr is kubectl, returning its failure.
func (e *env) kubectlErr(args ...string) (string, error) {
	e.t.Helper()
	out, err := servertest.KubectlCmd(e.t, e.srv, args...).CombinedOutput()
	return string(out), err
}

// appliedAnnotations maps each object of the manifests at path (by its
// ID) to its annotations as stored.
func (e *env) appliedAnnotations(path string) map[string]map[string]string {
	e.t.Helper()
	docs, err := manifest.Read([]string{path}, false, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	got := map[string]map[string]string{}
	for _, d := range docs {
		ns := ""
		if d.Resource.Namespaced {
			ns = "default"
		}
		obj, err := e.cl.Get(context.Background(), d.Resource, ns, d.Object.GetName())
		if err != nil {
			e.t.Fatalf("%s: %v", d.ID(), err)
		}
		got[d.ID()] = obj.GetAnnotations()
	}
	return got
}

// allUnchanged checks that apply's output (kubectl's or l4mctl's) says
// "unchanged" of each of n objects and of nothing else.
func allUnchanged(t *testing.T, who, out string, n int) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines {
		if !strings.HasSuffix(l, " unchanged") {
			t.Fatalf("%s apply changed something:\n%s", who, out)
		}
	}
	if len(lines) != n {
		t.Fatalf("%s apply: %d lines for %d objects:\n%s", who, len(lines), n, out)
	}
}

// TestKubectlAndL4mctlApplyAgree: the samples applied with kubectl, then
// with l4mctl, are unchanged for l4mctl, and the other way round; either
// way every object carries kubectl's last-applied annotation alone, with the
// same bytes whichever tool wrote it.
func TestKubectlAndL4mctlApplyAgree(t *testing.T) {
	byKubectl := newEnv(t)
	out := byKubectl.kubectl("apply", "-f", samplesDir)
	n := strings.Count(out, " created")
	if n < 9 || n != strings.Count(out, "\n") {
		t.Fatalf("kubectl apply of the samples:\n%s", out)
	}
	allUnchanged(t, "l4mctl", byKubectl.mustRun("apply", "-f", samplesDir), n)
	kubectlWrote := byKubectl.appliedAnnotations(samplesDir)
	if out, _, err := byKubectl.run("", "diff", "-f", samplesDir); err != nil || out != "" {
		t.Fatalf("l4mctl diff of what kubectl applied: %v\n%s", err, out)
	}

	byL4mctl := newEnv(t)
	if out := byL4mctl.mustRun("apply", "-f", samplesDir); strings.Count(out, " created") != n {
		t.Fatalf("l4mctl apply of the samples:\n%s", out)
	}
	l4mctlWrote := byL4mctl.appliedAnnotations(samplesDir)
	allUnchanged(t, "kubectl", byL4mctl.kubectl("apply", "-f", samplesDir), n)
	if out, err := byL4mctl.kubectlErr("diff", "-f", samplesDir); err != nil || out != "" {
		t.Fatalf("kubectl diff of what l4mctl applied: %v\n%s", err, out)
	}
	if after := byL4mctl.appliedAnnotations(samplesDir); !equalAnnotations(after, l4mctlWrote) {
		t.Fatalf("kubectl apply rewrote l4mctl's annotations:\n%v\nwas\n%v", after, l4mctlWrote)
	}

	for id, k := range kubectlWrote {
		l := l4mctlWrote[id]
		if len(k) != 1 || len(l) != 1 {
			t.Errorf("%s: want kubectl's last-applied annotation alone; kubectl left %v, l4mctl %v", id, keys(k), keys(l))
		}
		if k[v1.AnnotationLastApplied] == "" || k[v1.AnnotationLastApplied] != l[v1.AnnotationLastApplied] {
			t.Errorf("%s: last-applied differs\nkubectl: %q\nl4mctl:  %q", id, k[v1.AnnotationLastApplied], l[v1.AnnotationLastApplied])
		}
	}
	// What kubectl writes, to the byte: the namespace filled in, an empty
	// annotations map, keys sorted, a newline at the end.
	const coopMotd = `{"apiVersion":"left4me.io/v1alpha1","kind":"Overlay","metadata":{"annotations":{},"labels":{"app.kubernetes.io/part-of":"samples"},"name":"coop-motd","namespace":"default"},"spec":{"description":"message of the day and an extra cfg, carried in the manifest","source":{"files":{"left4dead2/cfg/server_coop_extra.cfg":"sv_alltalk 1\n","left4dead2/motd.txt":"Welcome to a left4me coop server. Be nice to the witch.\n"}}}}` + "\n"
	if got := l4mctlWrote["overlay.left4me.io/coop-motd"][v1.AnnotationLastApplied]; got != coopMotd {
		t.Errorf("l4mctl's last-applied of coop-motd:\n%q\nwant\n%q", got, coopMotd)
	}
}

func equalAnnotations(a, b map[string]map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for id, x := range a {
		y, ok := b[id]
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || w != v {
				return false
			}
		}
	}
	return true
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// withoutArgsAndCoopLabel is the Blueprints sample with two fields removed:
// versus's args, and coop's labels.
func withoutArgsAndCoopLabel(t *testing.T, sample string) string {
	t.Helper()
	edited := strings.Replace(sample, "  args: [\"-nohltv\"]\n", "", 1)
	edited = strings.Replace(edited, "  labels:\n    app.kubernetes.io/part-of: samples\n", "", 1) // the first: coop's
	if edited == sample || strings.Count(edited, "part-of") != strings.Count(sample, "part-of")-1 || strings.Contains(edited, "nohltv") {
		t.Fatal("config/samples/10-blueprints.yaml changed; update the edit")
	}
	return edited
}

func readSample(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(samplesDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// checkFieldsRemoved checks that the edit of withoutArgsAndCoopLabel reached
// the Blueprints, and that what else was applied stayed.
func (e *env) checkFieldsRemoved(how string) {
	e.t.Helper()
	versus := e.get(blueprints, "versus").(*v1.Blueprint)
	coop := e.get(blueprints, "coop").(*v1.Blueprint)
	if len(versus.Spec.Args) != 0 {
		e.t.Errorf("%s: versus's args, removed from the file, are still %q", how, versus.Spec.Args)
	}
	if _, ok := coop.Labels["app.kubernetes.io/part-of"]; ok {
		e.t.Errorf("%s: coop's label, removed from the file, is still there: %v", how, coop.Labels)
	}
	if versus.Labels["app.kubernetes.io/part-of"] != "samples" || versus.Spec.Game.Tickrate != 60 || coop.Spec.Game.Map != "c1m1_hotel" {
		e.t.Errorf("%s: fields still in the file were lost: versus labels %v tickrate %d, coop map %q", how, versus.Labels, versus.Spec.Game.Tickrate, coop.Spec.Game.Map)
	}
}

// TestFieldRemovedByTheOtherTool: a field removed from the file is removed
// from the object whichever tool applied it before, because each tool's
// three-way merge takes the other's last-applied manifest as the original.
func TestFieldRemovedByTheOtherTool(t *testing.T) {
	sample := readSample(t, "10-blueprints.yaml")

	t.Run("kubectl then l4mctl", func(t *testing.T) {
		e := newEnv(t)
		f := e.write("10-blueprints.yaml", sample)
		e.kubectl("apply", "-f", f)
		e.write("10-blueprints.yaml", withoutArgsAndCoopLabel(t, sample))
		out, _, err := e.run("", "diff", "-f", f)
		if !isExit(err, 1) || !strings.Contains(out, "-  - -nohltv") || !strings.Contains(out, "-    app.kubernetes.io/part-of: samples") {
			t.Fatalf("l4mctl diff of the removals: %v\n%s", err, out)
		}
		out = e.mustRun("apply", "-f", f)
		if out != "blueprint.left4me.io/coop configured\nblueprint.left4me.io/versus configured\n" {
			t.Fatalf("l4mctl apply of the removals:\n%s", out)
		}
		e.checkFieldsRemoved("l4mctl after kubectl")
		allUnchanged(t, "kubectl", e.kubectl("apply", "-f", f), 2)
	})

	t.Run("l4mctl then kubectl", func(t *testing.T) {
		e := newEnv(t)
		f := e.write("10-blueprints.yaml", sample)
		e.mustRun("apply", "-f", f)
		e.write("10-blueprints.yaml", withoutArgsAndCoopLabel(t, sample))
		out := e.kubectl("apply", "-f", f)
		if out != "blueprint.left4me.io/coop configured\nblueprint.left4me.io/versus configured\n" {
			t.Fatalf("kubectl apply of the removals:\n%s", out)
		}
		e.checkFieldsRemoved("kubectl after l4mctl")
		allUnchanged(t, "l4mctl", e.mustRun("apply", "-f", f), 2)
	})
}

func isExit(err error, code int) bool {
	var ee *app.ExitError
	return errors.As(err, &ee) && ee.Code == code
}

// createAsOlderL4mctl creates the objects of the manifest at path the way
// l4mctl apply did before it used kubectl's key: the manifest with its
// namespace, as compact JSON, in left4me.io/last-applied-configuration.
func (e *env) createAsOlderL4mctl(path string) {
	e.t.Helper()
	docs, err := manifest.Read([]string{path}, false, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, d := range docs {
		var m map[string]any
		if err := json.Unmarshal(d.JSON, &m); err != nil {
			e.t.Fatal(err)
		}
		md := m["metadata"].(map[string]any)
		if d.Resource.Namespaced {
			md["namespace"] = "default"
		}
		original, err := json.Marshal(m)
		if err != nil {
			e.t.Fatal(err)
		}
		md["annotations"] = map[string]any{v1.LegacyAnnotationLastApplied: string(original)}
		modified, err := json.Marshal(m)
		if err != nil {
			e.t.Fatal(err)
		}
		if _, err := e.cl.CreateRaw(context.Background(), d.Resource, md["namespace"].(string), modified, false); err != nil {
			e.t.Fatalf("create %s as an older l4mctl did: %v", d.ID(), err)
		}
	}
}

// TestApplyMigratesTheLegacyAnnotation: objects an older l4mctl applied
// carry left4me.io/last-applied-configuration. l4mctl diff and apply read it
// as the original (a field removed from the file is removed), and one
// apply leaves kubectl's annotation alone, as kubectl would write it.
func TestApplyMigratesTheLegacyAnnotation(t *testing.T) {
	sample := readSample(t, "10-blueprints.yaml")
	e := newEnv(t)
	f := e.write("10-blueprints.yaml", sample)
	e.createAsOlderL4mctl(f)

	// Nothing the file says would change: diff shows nothing, though apply
	// swaps the annotations.
	if out, _, err := e.run("", "diff", "-f", f); err != nil || out != "" {
		t.Fatalf("l4mctl diff of an unchanged file over legacy annotations: %v\n%s", err, out)
	}
	if out := e.mustRun("describe", "blueprint", "versus"); strings.Contains(out, "last-applied") {
		t.Fatalf("describe should hide the legacy last-applied annotation:\n%s", out)
	}
	e.write("10-blueprints.yaml", withoutArgsAndCoopLabel(t, sample))
	out, _, err := e.run("", "diff", "-f", f)
	if !isExit(err, 1) || !strings.Contains(out, "-  - -nohltv") || strings.Contains(out, "last-applied") {
		t.Fatalf("l4mctl diff of the removals over legacy annotations: %v\n%s", err, out)
	}
	if out := e.mustRun("apply", "-f", f); out != "blueprint.left4me.io/coop configured\nblueprint.left4me.io/versus configured\n" {
		t.Fatalf("l4mctl apply over legacy annotations:\n%s", out)
	}
	e.checkFieldsRemoved("l4mctl over an older l4mctl's annotation")
	migrated := e.appliedAnnotations(f)
	for id, ann := range migrated {
		if _, ok := ann[v1.LegacyAnnotationLastApplied]; ok || len(ann) != 1 || ann[v1.AnnotationLastApplied] == "" {
			t.Errorf("%s after one apply: annotations %v, want kubectl's last-applied alone", id, keys(ann))
		}
	}
	allUnchanged(t, "l4mctl", e.mustRun("apply", "-f", f), 2)
	allUnchanged(t, "kubectl", e.kubectl("apply", "-f", f), 2)
	if after := e.appliedAnnotations(f); !equalAnnotations(after, migrated) {
		t.Fatalf("kubectl rewrote the migrated annotations:\n%v\nwas\n%v", after, migrated)
	}

	// An unedited file migrates too: "configured", the manifest the same.
	other := newEnv(t)
	g := other.write("10-blueprints.yaml", sample)
	other.createAsOlderL4mctl(g)
	if out := other.mustRun("apply", "-f", g); strings.Count(out, " configured") != 2 {
		t.Fatalf("l4mctl apply of an unedited file over legacy annotations:\n%s", out)
	}
	for id, ann := range other.appliedAnnotations(g) {
		if len(ann) != 1 || ann[v1.AnnotationLastApplied] == "" {
			t.Errorf("%s: annotations %v, want kubectl's last-applied alone", id, keys(ann))
		}
	}
	if versus := other.get(blueprints, "versus").(*v1.Blueprint); len(versus.Spec.Args) != 1 {
		t.Errorf("the migration changed the spec: args %q", versus.Spec.Args)
	}
	allUnchanged(t, "kubectl", other.kubectl("apply", "-f", g), 2)

	// kubectl applied after an older l4mctl: both keys. l4mctl drops the
	// legacy one and leaves kubectl's as kubectl wrote it.
	both := newEnv(t)
	h := both.write("10-blueprints.yaml", sample)
	both.createAsOlderL4mctl(h)
	both.kubectl("apply", "-f", h)
	byKubectl := both.appliedAnnotations(h)
	for id, ann := range byKubectl {
		if len(ann) != 2 {
			t.Fatalf("%s after kubectl over an older l4mctl: annotations %v, want both last-applied keys", id, keys(ann))
		}
		delete(ann, v1.LegacyAnnotationLastApplied)
	}
	if out := both.mustRun("apply", "-f", h); strings.Count(out, " configured") != 2 {
		t.Fatalf("l4mctl apply over both annotations:\n%s", out)
	}
	if after := both.appliedAnnotations(h); !equalAnnotations(after, byKubectl) {
		t.Fatalf("l4mctl over both annotations left\n%v\nwant kubectl's alone, as kubectl wrote it:\n%v", after, byKubectl)
	}
	allUnchanged(t, "l4mctl", both.mustRun("apply", "-f", h), 2)
}

// TestPruneDeletesWhatKubectlApplied: l4mctl apply --prune counts an object
// kubectl applied, or an older l4mctl, as applied, and deletes it once it
// leaves the files; an object made by hand stays.
func TestPruneDeletesWhatKubectlApplied(t *testing.T) {
	e := newEnv(t)
	f := e.write("fleet.yaml", fleet)
	e.kubectl("apply", "-f", f)
	old := e.write("old.yaml", strings.ReplaceAll(strings.Split(fleet, "---")[2], "srv2", "srv3"))
	e.createAsOlderL4mctl(old)
	hand, err := yaml.YAMLToJSON([]byte(strings.ReplaceAll(strings.Split(fleet, "---")[2], "srv2", "by-hand")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.cl.CreateRaw(context.Background(), instances, "default", hand, false); err != nil {
		t.Fatal(err)
	}
	// srv2 leaves the file; srv3 was never in it.
	e.write("fleet.yaml", strings.Join(strings.Split(fleet, "---")[:2], "---"))
	out := e.mustRun("apply", "-f", f, "--prune", "-l", "fleet=eu")
	want := "blueprint.left4me.io/coop unchanged\ninstance.left4me.io/srv1 unchanged\ninstance.left4me.io/srv2 pruned\ninstance.left4me.io/srv3 pruned\n"
	if out != want {
		t.Fatalf("l4mctl apply --prune:\n%s\nwant:\n%s", out, want)
	}
	for _, name := range []string{"srv2", "srv3"} {
		if _, err := e.cl.Get(context.Background(), instances, "default", name); !apierrors.IsNotFound(err) {
			t.Errorf("%s should be pruned: %v", name, err)
		}
	}
	e.get(instances, "by-hand")
	e.get(instances, "srv1")
}
