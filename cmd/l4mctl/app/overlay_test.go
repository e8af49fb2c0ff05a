package app_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
)

const archiveSum = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// Digests as the nodes and the control plane would report them.
var (
	smDigest    = "sha256:" + strings.Repeat("a1", 32) // sourcemod, wanted
	smOld       = "sha256:" + strings.Repeat("b2", 32) // sourcemod, the previous archive
	cfgDigest   = "sha256:" + strings.Repeat("c3", 32) // competitive
	filesSource = map[string]string{"left4dead2/cfg/server_extra.cfg": "sv_alltalk 0\n"}
)

// overlayFleet has one Overlay of each source, the shapes, and
// Instances that stack them on nodes n1, n2 and n3:
//
//	sourcemod (archive)  coop: n1 (Ready), n2 (Failed: ChecksumMismatch); n3 not reported yet
//	competitive (git)    versus: n1 Ready at commit …; n4 still holds it, no Instance there uses it
//	maps (workshop)      coop: resolved by nobody yet
//	extra (files)        coop: its digest follows from its content
//	legacy (path)        versus: not fetched at all
const overlayFleet = `apiVersion: left4me.io/v1alpha1
kind: Overlay
metadata: {name: sourcemod}
spec: {source: {archive: {url: "https://example.org/sm.tar.gz", sha256: "` + archiveSum + `", into: left4dead2}}}
---
apiVersion: left4me.io/v1alpha1
kind: Overlay
metadata: {name: competitive}
spec: {source: {git: {url: "https://github.com/owner/repo.git", ref: v1.2.0, subPath: cfg, into: left4dead2/cfg}}}
---
apiVersion: left4me.io/v1alpha1
kind: Overlay
metadata: {name: maps}
spec: {source: {workshop: {items: ["123456789", "223456789", "323456789", "423456789"], collections: ["121115793"]}}}
---
apiVersion: left4me.io/v1alpha1
kind: Overlay
metadata: {name: extra}
spec: {source: {files: {"left4dead2/cfg/server_extra.cfg": "sv_alltalk 0\n"}}}
---
apiVersion: left4me.io/v1alpha1
kind: Overlay
metadata: {name: legacy}
spec: {source: {path: mods/legacy}}
---
apiVersion: left4me.io/v1alpha1
kind: Blueprint
metadata: {name: coop}
spec: {overlays: [extra, maps, sourcemod]}
---
apiVersion: left4me.io/v1alpha1
kind: Blueprint
metadata: {name: versus}
spec: {overlays: [competitive, legacy]}
---
apiVersion: left4me.io/v1alpha1
kind: Instance
metadata: {name: coop-1}
spec: {blueprintRef: {name: coop}, nodeName: n1}
---
apiVersion: left4me.io/v1alpha1
kind: Instance
metadata: {name: coop-2}
spec: {blueprintRef: {name: coop}, nodeName: n2}
---
apiVersion: left4me.io/v1alpha1
kind: Instance
metadata: {name: coop-3}
spec: {blueprintRef: {name: coop}, nodeName: n3}
---
apiVersion: left4me.io/v1alpha1
kind: Instance
metadata: {name: vs-1}
spec: {blueprintRef: {name: versus}, nodeName: n1}
---
apiVersion: left4me.io/v1alpha1
kind: Instance
metadata: {name: vs-2}
spec: {blueprintRef: {name: versus}, nodeName: n5, state: Stopped}
`

const checksumMismatch = "https://example.org/sm.tar.gz: sha256 is 5e88489, the spec says 0123456"

func newOverlayEnv(t *testing.T) *env {
	e := newEnv(t)
	e.mustRun("apply", "-f", e.write("fleet.yaml", overlayFleet))
	e.patchStatus(resources.Overlays, "default", "sourcemod", v1.OverlayStatus{Digest: smDigest, Nodes: 3, Ready: 1, Failed: 1})
	e.patchStatus(resources.Overlays, "default", "competitive", v1.OverlayStatus{Digest: cfgDigest, Commit: strings.Repeat("4d", 20), Nodes: 1, Ready: 1})
	updated := metav1.NewTime(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	e.patchStatus(resources.Overlays, "default", "maps", v1.OverlayStatus{Nodes: 3,
		Items: []v1.WorkshopItem{{ID: "123456789", Title: "Dead Before Dawn", Size: 310 << 20, TimeUpdated: &updated}}})
	for name, entries := range map[string][]v1.NodeOverlay{
		"n1": {
			{Namespace: "default", Name: "sourcemod", Digest: smDigest, Phase: v1.OverlayPhaseReady, Digests: []string{smDigest, smOld}},
			{Namespace: "default", Name: "competitive", Digest: cfgDigest, Phase: v1.OverlayPhaseReady, Digests: []string{cfgDigest}},
		},
		"n2": {{Namespace: "default", Name: "sourcemod", Digest: smDigest, Phase: v1.OverlayPhaseFailed, Reason: "ChecksumMismatch",
			Message: checksumMismatch, Digests: []string{smOld}}},
		"n3": nil,
		"n5": nil, // only a Stopped Instance: needs nothing fetched
		"n4": {{Namespace: "default", Name: "competitive", Digest: cfgDigest, Phase: v1.OverlayPhaseReady, Digests: []string{cfgDigest}}},
	} {
		if _, err := e.cl.Create(context.Background(), resources.Nodes, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, false); err != nil {
			t.Fatal(err)
		}
		if entries != nil {
			e.patchStatus(resources.Nodes, "", name, v1.NodeStatus{Overlays: entries})
		}
	}
	return e
}

func TestGetOverlays(t *testing.T) {
	e := newOverlayEnv(t)
	filesDigest := v1.FilesDigest(filesSource)
	for _, kind := range []string{"overlays", "overlay", "ov"} {
		out := e.mustRun("get", kind)
		if !strings.HasPrefix(out, "NAME          SOURCE     DIGEST         READY   AGE\n") {
			t.Fatalf("get %s header:\n%s", kind, out)
		}
		rows := fields(t, out)
		for name, want := range map[string]map[string]string{
			"sourcemod":   {"SOURCE": "archive", "DIGEST": "a1a1a1a1a1a1", "READY": "1/3"},
			"competitive": {"SOURCE": "git", "DIGEST": "c3c3c3c3c3c3", "READY": "1/1"},
			"maps":        {"SOURCE": "workshop", "DIGEST": "<none>", "READY": "0/3"},
			"extra":       {"SOURCE": "files", "DIGEST": filesDigest[len("sha256:"):][:12], "READY": "0/0"},
			"legacy":      {"SOURCE": "path", "DIGEST": "<none>", "READY": "-"},
		} {
			for col, v := range want {
				if rows[name][col] != v {
					t.Errorf("get %s, %s: %s is %q, want %q\n%s", kind, name, col, rows[name][col], v, out)
				}
			}
		}
	}
	wide := fields(t, e.mustRun("get", "overlays", "-o", "wide"))
	for name, want := range map[string]string{
		"sourcemod":   "https://example.org/sm.tar.gz",
		"competitive": "https://github.com/owner/repo.git@v1.2.0",
		"maps":        "items:123456789,223456789,323456789,+1;collections:121115793",
		"extra":       "left4dead2/cfg/server_extra.cfg",
		"legacy":      "mods/legacy",
	} {
		if wide[name]["FROM"] != want {
			t.Errorf("get -o wide, %s: FROM %q, want %q", name, wide[name]["FROM"], want)
		}
	}
	// More than one inline file: the first path, and how many more.
	e.mustRun("apply", "-f", e.write("more.yaml", `apiVersion: left4me.io/v1alpha1
kind: Overlay
metadata: {name: extra}
spec: {source: {files: {"left4dead2/cfg/server_extra.cfg": "sv_alltalk 0\n", "left4dead2/cfg/b.cfg": "", "left4dead2/motd.txt": "hi"}}}
`))
	if from := fields(t, e.mustRun("get", "overlay", "extra", "-o", "wide"))["extra"]["FROM"]; from != "left4dead2/cfg/b.cfg,+2" {
		t.Errorf("get -o wide, three files: FROM %q", from)
	}
	if out := e.mustRun("get", "overlay", "competitive", "-o", "yaml"); !strings.Contains(out, "commit: "+strings.Repeat("4d", 20)) || !strings.Contains(out, "ref: v1.2.0") {
		t.Errorf("-o yaml lacks the source or the commit:\n%s", out)
	}
}

func TestDescribeOverlay(t *testing.T) {
	e := newOverlayEnv(t)
	out := e.mustRun("describe", "overlay", "sourcemod")
	for _, want := range []string{
		"Kind:         Overlay\n", "  source:\n    archive:\n", "      sha256: " + archiveSum + "\n",
		"Source:       archive https://example.org/sm.tar.gz\n", "Digest:       " + smDigest + "\n",
		"Nodes:\n  NODE   PHASE ", "DIGEST", "HELD", "REASON", "MESSAGE",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("describe overlay sourcemod lacks %q", want)
		}
	}
	for node, want := range map[string][]any{
		"n1": {"Ready", "a1a1a1a1a1a1", "a1a1a1a1a1a1,b2b2b2b2b2b2"},
		"n2": {"Failed", "a1a1a1a1a1a1", " b2b2b2b2b2b2 ", "ChecksumMismatch", checksumMismatch},
		"n3": {"<none>", "not reported yet"},
	} {
		row := installationRow(t, out, node)
		for _, w := range want {
			if !contains(row, w) {
				t.Errorf("node %s's row lacks %q: %q", node, w, row)
			}
		}
	}
	if strings.Contains(out, "  n4 ") {
		t.Errorf("n4 neither uses nor holds sourcemod:\n%s", out)
	}
	if t.Failed() {
		t.Log(out)
	}

	// A node that holds an Overlay no Instance of it uses says so.
	out = e.mustRun("describe", "overlay", "competitive")
	if !strings.Contains(out, "Source:       git https://github.com/owner/repo.git@v1.2.0\n") || !strings.Contains(out, "Commit:       "+strings.Repeat("4d", 20)+"\n") {
		t.Errorf("describe overlay competitive, source:\n%s", out)
	}
	if strings.Contains(out, "  n5 ") {
		t.Errorf("describe overlay competitive lists n5, whose only Instance of it is Stopped:\n%s", out)
	}
	if row := installationRow(t, out, "n4"); !strings.Contains(row, "no Instance bound here uses it") {
		t.Errorf("n4's row: %q", row)
	}
	if row := installationRow(t, out, "n1"); !strings.Contains(row, "Ready") || strings.Contains(row, "no Instance") {
		t.Errorf("n1's row: %q", row)
	}

	// Inline files: the digest follows from the content.
	out = e.mustRun("describe", "overlay", "extra")
	if want := "Digest:       " + v1.FilesDigest(filesSource) + " (from the files' content)\n"; !strings.Contains(out, want) {
		t.Errorf("describe overlay extra lacks %q:\n%s", want, out)
	}
	if !strings.Contains(out, "left4dead2/cfg/server_extra.cfg: |\n        sv_alltalk 0\n") {
		t.Errorf("describe overlay extra does not show the files:\n%s", out)
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		if row := installationRow(t, out, n); !strings.Contains(row, "not reported yet") {
			t.Errorf("extra on %s: %q", n, row)
		}
	}

	// Workshop: the items Steam described.
	out = e.mustRun("describe", "overlay", "maps")
	for _, want := range []string{"Source:       workshop items:123456789,", "Digest:       <none>\n", "title: Dead Before Dawn", "timeUpdated: \"2025-03-01T12:00:00Z\"", "checkInterval: 1h", "into: left4dead2/addons"} {
		if !strings.Contains(out, want) {
			t.Errorf("describe overlay maps lacks %q:\n%s", want, out)
		}
	}
	if row := installationRow(t, out, "123456789"); !contains(row, "Dead Before Dawn") || !contains(row, "310.0 MiB") || !contains(row, "2025-03-01T12:00:00Z") {
		t.Errorf("describe overlay maps, the item's row: %q\n%s", row, out)
	}

	// A path source is not fetched: no node table.
	out = e.mustRun("describe", "overlay", "legacy")
	if !strings.Contains(out, "Source:       path mods/legacy\nNodes:        <none>: a path source is not fetched; each node mounts overlays/mods/legacy as it is\n") {
		t.Errorf("describe overlay legacy:\n%s", out)
	}
}

func TestDescribeNodeShowsOverlays(t *testing.T) {
	e := newOverlayEnv(t)
	out := e.mustRun("describe", "node", "n2")
	if !strings.Contains(out, "Overlays:\n  OVERLAY             PHASE ") {
		t.Fatalf("describe node lacks the Overlays table:\n%s", out)
	}
	row := installationRow(t, out, "default/sourcemod")
	for _, w := range []string{"Failed", "a1a1a1a1a1a1", "b2b2b2b2b2b2", "ChecksumMismatch", checksumMismatch} {
		if !strings.Contains(row, w) {
			t.Errorf("row lacks %q: %q", w, row)
		}
	}
	if strings.Contains(out, "overlays:") {
		t.Errorf("status YAML repeats the table:\n%s", out)
	}
	if out := e.mustRun("describe", "node", "n3"); !strings.Contains(out, "Overlays:     <none>\n") {
		t.Errorf("a node with no overlays:\n%s", out)
	}
}

// TestApplyOverlayBadInput: what the API refuses reaches the user through
// l4mctl apply with the field it is about.
func TestApplyOverlayBadInput(t *testing.T) {
	e := newEnv(t)
	for spec, want := range map[string]string{
		`{source: {files: {"left4dead2/../x": "a"}}}`:                              `spec.source.files[left4dead2/../x]: Invalid value: "left4dead2/../x": must not contain '..'`,
		`{source: {archive: {url: "https://example.org/sm.tar.gz"}}}`:              "spec.source.archive.sha256: Required value: required for https URLs",
		`{source: {archive: {url: "https://u:p@example.org/a.zip", sha256: "x"}}}`: "spec.source.archive.url: Invalid value: \"https://u:p@example.org/a.zip\": must not hold credentials",
		`{source: {workshop: {items: ["12x"]}}}`:                                   `spec.source.workshop.items[0]: Invalid value: "12x": must be a Steam Workshop id`,
		`{source: {path: mods, git: {url: "https://h/r.git", ref: main}}}`:         "spec.source.git: Forbidden: an Overlay has one source, and path is set",
		`{source: {}}`: "spec.source: Required value: set one of path, archive, git, workshop, files",
		`{source: {archive: {url: "https://h/a.zip", sha: "x"}}}`: `unknown field "spec.source.archive.sha"`,
	} {
		doc := "apiVersion: left4me.io/v1alpha1\nkind: Overlay\nmetadata: {name: bad}\nspec: " + spec + "\n"
		_, errOut, err := e.run("", "apply", "-f", e.write("bad.yaml", doc))
		if err == nil || !strings.Contains(err.Error()+errOut, want) {
			t.Errorf("apply %s: %v %q, want %q", spec, err, errOut, want)
		}
	}
	if _, err := e.cl.Get(context.Background(), resources.Overlays, "default", "bad"); err == nil {
		t.Fatal("a refused Overlay was stored")
	}
}

// TestApplyFilesOverlayNearItsLimit: an Overlay holding close to 256 KiB of
// quote-heavy cfg text applies with l4mctl apply (its last-applied copy
// has a bound of its own), and one over the limit is refused by name.
func TestApplyFilesOverlayNearItsLimit(t *testing.T) {
	e := newEnv(t)
	line := `sm_cvar "l4d_survivor_limit" "4" // "quoted" \ text` + "\n"
	cfg := strings.Repeat(line, (250<<10)/len(line))
	doc := func(content string) string {
		q, _ := json.Marshal(content)
		return "apiVersion: left4me.io/v1alpha1\nkind: Overlay\nmetadata: {name: big-cfg}\nspec: {source: {files: {\"left4dead2/cfg/big.cfg\": " + string(q) + "}}}\n"
	}
	if out, errOut, err := e.run("", "apply", "-f", e.write("big.yaml", doc(cfg))); err != nil || !strings.Contains(out, "overlay.left4me.io/big-cfg created") {
		t.Fatalf("apply a %d-byte files Overlay: %v\n%s%s", len(cfg), err, out, errOut)
	}
	_, errOut, err := e.run("", "apply", "-f", e.write("too-big.yaml", doc(cfg+strings.Repeat("x", 10<<10))))
	if err == nil || !strings.Contains(errOut+err.Error(), "spec.source.files") {
		t.Fatalf("an Overlay over 256 KiB of files: %v\n%s", err, errOut)
	}
}
