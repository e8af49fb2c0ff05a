package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/node/store"
	"github.com/left4me/left4me/node/unit"
)

// countingFiles is the files materializer, counting what it writes, and
// failing while fail is set.
type countingFiles struct {
	FilesMaterializer
	mu     sync.Mutex
	writes int
	fail   error
}

func (c *countingFiles) Materialize(ctx context.Context, ov *v1.Overlay, pin Fetched, dir string) (Fetched, error) {
	c.mu.Lock()
	c.writes++
	fail := c.fail
	c.mu.Unlock()
	if fail != nil {
		return Fetched{}, fail
	}
	return c.FilesMaterializer.Materialize(ctx, ov, pin, dir)
}

func (c *countingFiles) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes
}

func (c *countingFiles) failWith(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fail = err
}

func withFiles(c *countingFiles) func(*server.Server, *Options) {
	return func(_ *server.Server, o *Options) {
		o.Materializers = map[string]Materializer{v1.SourceFiles: c}
	}
}

func filesOverlay(name string, files map[string]string) *v1.Overlay {
	return &v1.Overlay{ObjectMeta: om(name), Spec: v1.OverlaySpec{Source: v1.OverlaySource{Files: files}}}
}

// entryOf is the store entry of a files spec.
func (h *harness) entryOf(files map[string]string) string {
	h.t.Helper()
	k, err := store.NewKey(store.SchemeFiles, v1.FilesDigest(files))
	if err != nil {
		h.t.Fatal(err)
	}
	return filepath.Join(h.root, "overlays", store.DirName, k.Name(), "tree")
}

// lowers is the mount unit's lowerdir list, top first.
func lowers(t *testing.T, mount string) []string {
	t.Helper()
	_, opts, ok := strings.Cut(mount, "lowerdir=")
	if !ok {
		t.Fatalf("no lowerdir in:\n%s", mount)
	}
	list, _, _ := strings.Cut(opts, ",")
	return strings.Split(list, ":")
}

// editFiles replaces an Overlay's files.
func (h *harness) editFiles(name string, files map[string]string) {
	h.t.Helper()
	for {
		obj, err := h.admin.Get(context.Background(), overlayRes, "default", name)
		if err != nil {
			h.t.Fatal(err)
		}
		ov := obj.(*v1.Overlay)
		ov.Spec.Source.Files = files
		if _, err = h.admin.Update(context.Background(), overlayRes, ov, false); err == nil {
			return
		} else if !apierrors.IsConflict(err) {
			h.t.Fatal(err)
		}
	}
}

// nodeOverlay waits until the node reports default/name as cond wants.
func (h *harness) nodeOverlay(name, what string, cond func(*v1.NodeOverlay) bool) *v1.NodeOverlay {
	h.t.Helper()
	var last *v1.NodeOverlay
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		obj, err := h.admin.Get(context.Background(), nodeRes, "", "n1")
		if err != nil {
			continue
		}
		last = obj.(*v1.Node).Status.NodeOverlayFor("default", name)
		if cond(last) {
			return last
		}
	}
	h.t.Fatalf("node n1 never reported overlay %s %s; last: %+v", name, what, last)
	return nil
}

// storeEntries lists the store's entries by name.
func (h *harness) storeEntries() []string {
	h.t.Helper()
	list, err := os.ReadDir(filepath.Join(h.root, "overlays", store.DirName))
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, e := range list {
		if _, err := store.ParseKey(e.Name()); err == nil {
			out = append(out, e.Name())
		}
	}
	return out
}

// waitEntries waits until the store holds exactly the entries of these
// files specs.
func (h *harness) waitEntries(what string, specs ...map[string]string) {
	h.t.Helper()
	var want []string
	for _, f := range specs {
		want = append(want, filepath.Base(filepath.Dir(h.entryOf(f))))
	}
	slices.Sort(want)
	var got []string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got = h.storeEntries(); slices.Equal(got, want) {
			return
		}
	}
	h.t.Fatalf("store %s: holds %v, want %v", what, got, want)
}

// collected runs a collection of the store now (as the agent does when
// woken) and checks it holds exactly the entries of these specs.
func (h *harness) collected(what string, specs ...map[string]string) {
	h.t.Helper()
	h.agent.collectStore()
	var want []string
	for _, f := range specs {
		want = append(want, filepath.Base(filepath.Dir(h.entryOf(f))))
	}
	slices.Sort(want)
	if got := h.storeEntries(); !slices.Equal(got, want) {
		h.t.Fatalf("store %s: holds %v after a collection, want %v", what, got, want)
	}
}

// TestFilesOverStoreAndPath: a Blueprint stacking a files Overlay over a
// path Overlay runs with the store entry as a lower layer, in order; the
// entry holds the files, root's and read-only; the Node and the Overlay
// report it Ready. Editing the files is a new digest: the rollout restarts
// the (empty) game onto it, and the old entry stays as the previous one.
func TestFilesOverStoreAndPath(t *testing.T) {
	h := start(t)
	v1files := map[string]string{
		"left4dead2/cfg/extra.cfg":                         "sv_alltalk 0\n",
		"left4dead2/addons/sourcemod/configs/admins.cfg":   "\"Admins\" {}\r\n",
		"left4dead2/cfg/server.cfg":                        "sv_cheats 0\n", // an overlay's own server.cfg, exec'd by the node's
		"left4dead2/addons/sourcemod/configs/core.cfg":     "\"Core\" {}\n",
		"left4dead2/addons/sourcemod/configs/databases.cf": "x",
	}
	h.create(
		filesOverlay("cfgs", v1files),
		&v1.Overlay{ObjectMeta: om("mods"), Spec: v1.OverlaySpec{Source: v1.OverlaySource{Path: "mods"}}},
		&v1.Blueprint{ObjectMeta: om("stack"), Spec: v1.BlueprintSpec{Overlays: []string{"cfgs", "mods"}}},
		&v1.Instance{ObjectMeta: om("srv"), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "stack"}, NodeName: "n1"}},
	)
	in := h.until("srv", "Ready overlays and a running unit", func(in *v1.Instance) bool {
		return meta.IsStatusConditionTrue(in.Status.Conditions, v1.InstanceOverlaysReady) && meta.IsStatusConditionTrue(in.Status.Conditions, v1.InstanceUnitActive)
	})
	if c := meta.FindStatusCondition(in.Status.Conditions, v1.InstanceOverlaysReady); !strings.Contains(c.Message, "2 overlays resolved") || !strings.Contains(c.Message, "1 from the node's store") {
		t.Errorf("OverlaysReady: %q", c.Message)
	}
	entry := h.entryOf(v1files)
	ls := lowers(t, h.mountOf("srv"))
	if len(ls) != 4 || !strings.Contains(ls[0], "/generated/") || ls[1] != entry || ls[2] != filepath.Join(h.root, "overlays/mods") || ls[3] != filepath.Join(h.root, "installation") {
		t.Fatalf("lowerdir %v, want generated, %s, overlays/mods, installation", ls, entry)
	}
	for p, content := range v1files {
		full := filepath.Join(entry, p)
		data, err := os.ReadFile(full)
		if err != nil || string(data) != content {
			t.Errorf("%s in the entry: %q %v", p, data, err)
		}
		fi, _ := os.Lstat(full)
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != 0 || fi.Mode() != 0o644 {
			t.Errorf("%s: %d:%d %v, want root's 0644", p, st.Uid, st.Gid, fi.Mode())
		}
	}
	if fi, err := os.Lstat(filepath.Dir(entry)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the entry's directory: %v %v, want 0700", fi.Mode(), err)
	}
	// The files overlay's own server.cfg is exec'd like a path overlay's.
	cfg, err := os.ReadFile(filepath.Join(ls[0], "left4dead2/cfg/server_overlay_1_cfgs.cfg"))
	if err != nil || string(cfg) != "sv_cheats 0\n" {
		t.Errorf("the files overlay's server.cfg as the node stages it: %q %v", cfg, err)
	}
	rec, err := os.ReadFile(filepath.Join(h.root, "instances", unit.ID("default", "srv"), "spec.json"))
	if err != nil || !strings.Contains(string(rec), `"cfgs": "`+filepath.Base(filepath.Dir(entry))+`"`) {
		t.Errorf("spec.json does not record the entry %s: %s %v", filepath.Base(filepath.Dir(entry)), rec, err)
	}
	digest := v1.FilesDigest(v1files)
	h.nodeOverlay("cfgs", "Ready", func(e *v1.NodeOverlay) bool {
		return e != nil && e.Phase == v1.OverlayPhaseReady && e.Digest == digest && slices.Equal(e.Digests, []string{digest})
	})
	h.overlayStatus("cfgs", "Ready on the one node", func(ov *v1.Overlay) bool {
		return ov.Status.Digest == digest && ov.Status.Nodes == 1 && ov.Status.Ready == 1 && meta.IsStatusConditionTrue(ov.Status.Conditions, v1.ConditionReady)
	})
	if e := h.nodeOverlay("cfgs", "listed once", func(*v1.NodeOverlay) bool { return true }); e == nil {
		t.Fatal("no entry")
	}
	if n, _ := h.admin.Get(context.Background(), nodeRes, "", "n1"); len(n.(*v1.Node).Status.Overlays) != 1 {
		t.Errorf("status.overlays lists a path overlay too: %+v", n.(*v1.Node).Status.Overlays)
	}

	// Edited: a new entry, and the empty game restarts onto it.
	v2files := map[string]string{"left4dead2/cfg/extra.cfg": "sv_alltalk 1\n"}
	before := len(h.sd.JobLog())
	h.editFiles("cfgs", v2files)
	next := h.entryOf(v2files)
	h.until("srv", "restarted onto the new entry", func(in *v1.Instance) bool {
		return in.Status.PendingTemplateHash == "" && in.Status.ObservedBlueprint == "1//cfgs=2/mods=1" &&
			slices.Contains(lowers(t, h.mountOf("srv")), next)
	})
	// New layers: the game stops, its overlay unit is rewritten, and the
	// game starts again (pulling the overlay unit in: Requires=), not a
	// restart onto the old file.
	svc, mnt := unit.ServiceName(unit.ID("default", "srv")), unit.OverlayServiceName(unit.ID("default", "srv"))
	jobs := h.sd.JobLog()[before:]
	stopped, started := slices.Index(jobs, "stop "+svc), slices.Index(jobs, "start "+svc)
	if count(jobs, "stop "+svc) != 1 || count(jobs, "start "+svc) != 1 || !(stopped < started) || stopped < 0 || count(jobs, "restart "+svc) != 0 {
		t.Errorf("jobs %v, want the game stopped once, then started on the new stack", jobs)
	}
	if !strings.Contains(h.sd.Files()[svc], "Requires="+mnt) {
		t.Errorf("the game unit does not pull in its overlay unit:\n%s", h.sd.Files()[svc])
	}
	if data, err := os.ReadFile(filepath.Join(next, "left4dead2/cfg/extra.cfg")); err != nil || string(data) != "sv_alltalk 1\n" {
		t.Errorf("the new entry holds %q %v", data, err)
	}
	d2 := v1.FilesDigest(v2files)
	h.nodeOverlay("cfgs", "holding the new and the previous digest", func(e *v1.NodeOverlay) bool {
		return e != nil && e.Phase == v1.OverlayPhaseReady && e.Digest == d2 && slices.Equal(e.Digests, []string{d2, digest})
	})
	h.collected("keeping the previous entry for rollback", v1files, v2files)
	h.overlayStatus("cfgs", "Ready with the new digest", func(ov *v1.Overlay) bool {
		return ov.Status.Digest == d2 && ov.Status.Ready == 1 && meta.IsStatusConditionTrue(ov.Status.Conditions, v1.ConditionReady)
	})

	// Deleted: nothing of it stays, in the store or in the Node's status.
	if _, _, err := h.admin.Delete(context.Background(), instanceRes, "default", "srv", false); err != nil {
		t.Fatal(err)
	}
	h.gone("srv")
	h.waitEntries("after the only Instance went")
	h.nodeOverlay("cfgs", "gone from status", func(e *v1.NodeOverlay) bool { return e == nil })
}

// overlayStatus waits until the Overlay's status satisfies cond.
func (h *harness) overlayStatus(name, what string, cond func(*v1.Overlay) bool) *v1.Overlay {
	h.t.Helper()
	var last *v1.Overlay
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		obj, err := h.admin.Get(context.Background(), overlayRes, "default", name)
		if err == nil {
			if last = obj.(*v1.Overlay); cond(last) {
				return last
			}
		}
	}
	h.t.Fatalf("Overlay %s never %s; last status: %+v", name, what, last.Status)
	return nil
}

// TestSharedOverlayWrittenOnce: Instances of two Blueprints stacking the
// same files Overlay, reconciled at once, share one entry, written once.
func TestSharedOverlayWrittenOnce(t *testing.T) {
	files := &countingFiles{}
	h := startWith(t, withFiles(files))
	cfgs := map[string]string{"left4dead2/cfg/shared.cfg": "sv_allow_lobby_connect_only 0\n"}
	h.create(filesOverlay("cfgs", cfgs),
		&v1.Blueprint{ObjectMeta: om("coop"), Spec: v1.BlueprintSpec{Overlays: []string{"cfgs"}}},
		&v1.Blueprint{ObjectMeta: om("versus"), Spec: v1.BlueprintSpec{Overlays: []string{"cfgs"}, Game: v1.GameSpec{Mode: "versus"}}})
	names := []string{"coop-1", "coop-2", "coop-3", "versus-1"}
	for _, name := range names {
		bp, _, _ := strings.Cut(name, "-")
		h.create(&v1.Instance{ObjectMeta: om(name), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: bp}, NodeName: "n1"}})
	}
	entry := h.entryOf(cfgs)
	for _, name := range names {
		h.until(name, "running", func(in *v1.Instance) bool {
			return meta.IsStatusConditionTrue(in.Status.Conditions, v1.InstanceUnitActive)
		})
		if !slices.Contains(lowers(t, h.mountOf(name)), entry) {
			t.Errorf("%s does not stack %s:\n%s", name, entry, h.mountOf(name))
		}
	}
	if n := files.count(); n != 1 {
		t.Errorf("the files were written %d times for %d Instances, want once", n, len(names))
	}
	h.waitEntries("one entry for all", cfgs)
	if names, _ := os.ReadDir(filepath.Join(h.root, "overlays", store.DirName, ".staging")); len(names) != 0 {
		t.Errorf("staging holds %v", names)
	}
}

// TestOccupiedGameKeepsItsEntry: without a rollout approval (no
// controllers here: as for a game with players under WhenEmpty) the game
// keeps the entry it started with through two edits, and the store keeps
// it; once the game restarts onto the newest, the entry it left goes and
// the previous one stays. A failed fetch of new content holds the game as
// it is, and says why.
func TestOccupiedGameKeepsItsEntry(t *testing.T) {
	files := &countingFiles{}
	h := startBare(t, withFiles(files))
	ctx := context.Background()
	first := map[string]string{"left4dead2/cfg/extra.cfg": "// v1\n"}
	second := map[string]string{"left4dead2/cfg/extra.cfg": "// v2\n"}
	third := map[string]string{"left4dead2/cfg/extra.cfg": "// v3\n"}
	h.create(filesOverlay("cfgs", first),
		&v1.Blueprint{ObjectMeta: om("coop"), Spec: v1.BlueprintSpec{Overlays: []string{"cfgs"}}},
		&v1.Instance{ObjectMeta: om("srv"), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}, NodeName: "n1", Port: 40000}})
	in := h.until("srv", "running", func(in *v1.Instance) bool {
		return meta.IsStatusConditionTrue(in.Status.Conditions, v1.InstanceUnitActive)
	})
	pid, hash := h.pid("srv"), in.Status.TemplateHash

	h.editFiles("cfgs", second)
	h.until("srv", "an update pending", func(in *v1.Instance) bool { return in.Status.PendingTemplateHash != "" })
	h.editFiles("cfgs", third)
	in = h.until("srv", "the newest update pending", func(in *v1.Instance) bool {
		return in.Status.PendingTemplateHash != "" && in.Status.ObservedBlueprint == "1//cfgs=3"
	})
	h.collected("holding the running entry, the newest and the previous", first, second, third)
	if h.pid("srv") != pid || in.Status.TemplateHash != hash || !slices.Contains(lowers(t, h.mountOf("srv")), h.entryOf(first)) {
		t.Fatalf("the game did not keep what it runs: pid %d -> %d, template %s -> %s", pid, h.pid("srv"), hash, in.Status.TemplateHash)
	}
	digests := func(specs ...map[string]string) []string {
		var out []string
		for _, s := range specs {
			out = append(out, v1.FilesDigest(s))
		}
		return out
	}
	h.nodeOverlay("cfgs", "holding three digests", func(e *v1.NodeOverlay) bool {
		return e != nil && e.Digest == v1.FilesDigest(third) && slices.Equal(e.Digests, digests(third, second, first))
	})

	// New content that cannot be written: the game runs on, the reason shows.
	files.failWith(overlayFailure{"DiskFull", errors.New("no space left on device")})
	fourth := map[string]string{"left4dead2/cfg/extra.cfg": "// v4\n"}
	h.editFiles("cfgs", fourth)
	in = h.until("srv", "held with the reason", func(in *v1.Instance) bool {
		c := meta.FindStatusCondition(in.Status.Conditions, v1.InstanceOverlaysReady)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == "DiskFull"
	})
	if c := meta.FindStatusCondition(in.Status.Conditions, v1.InstanceOverlaysReady); !strings.Contains(c.Message, "Overlay cfgs: no space left on device; the game keeps running") {
		t.Errorf("OverlaysReady: %q", c.Message)
	}
	if h.pid("srv") != pid || in.Status.Phase == v1.PhaseFailed || !meta.IsStatusConditionTrue(in.Status.Conditions, v1.InstanceUnitActive) {
		t.Fatalf("a failed fetch touched the game: pid %d -> %d, phase %s", pid, h.pid("srv"), in.Status.Phase)
	}
	h.nodeOverlay("cfgs", "Failed", func(e *v1.NodeOverlay) bool {
		return e != nil && e.Phase == v1.OverlayPhaseFailed && e.Reason == "DiskFull" && e.Digest == v1.FilesDigest(fourth)
	})
	files.failWith(nil)
	h.editFiles("cfgs", third) // rolled back: its entry is here, nothing is written
	writes := files.count()
	in = h.until("srv", "the third update pending", func(in *v1.Instance) bool {
		return in.Status.PendingTemplateHash != "" && meta.IsStatusConditionTrue(in.Status.Conditions, v1.InstanceOverlaysReady)
	})
	if files.count() != writes {
		t.Errorf("rolling back to a stored version wrote the files again")
	}

	// Approved (what the rollout controller does once the game is empty).
	approve := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, v1.AnnotationApprovedTemplate, in.Status.PendingTemplateHash)
	if _, err := h.admin.Patch(ctx, instanceRes, "default", "srv", "application/merge-patch+json", []byte(approve), false); err != nil {
		t.Fatal(err)
	}
	h.until("srv", "restarted onto the newest", func(in *v1.Instance) bool {
		return in.Status.PendingTemplateHash == "" && in.Status.TemplateHash != hash
	})
	if !slices.Contains(lowers(t, h.mountOf("srv")), h.entryOf(third)) {
		t.Fatalf("restarted, but not onto the newest entry:\n%s", h.mountOf("srv"))
	}
	// The first entry, which only the game kept, goes; the previous stays.
	h.waitEntries("after the game left its entry", third, second)
}

// TestStoreUnavailableHoldsFetchedOverlaysOnly: a store the node cannot
// trust (a symlink in its place) fails Instances stacking fetched
// Overlays, naming the cause; path overlays run on.
func TestStoreUnavailableHoldsFetchedOverlaysOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the agent chowns files: run as root")
	}
	var root string
	h := startWith(t, func(_ *server.Server, o *Options) {
		root = o.Root
		os.MkdirAll(filepath.Join(root, "overlays"), 0o755)
		os.Symlink("/tmp", filepath.Join(root, "overlays", store.DirName))
	})
	h.create(filesOverlay("cfgs", map[string]string{"cfg/a.cfg": "x"}),
		&v1.Overlay{ObjectMeta: om("mods"), Spec: v1.OverlaySpec{Source: v1.OverlaySource{Path: "mods"}}},
		&v1.Blueprint{ObjectMeta: om("stack"), Spec: v1.BlueprintSpec{Overlays: []string{"cfgs", "mods"}}},
		&v1.Blueprint{ObjectMeta: om("plain"), Spec: v1.BlueprintSpec{Overlays: []string{"mods"}}},
		&v1.Instance{ObjectMeta: om("stacked"), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "stack"}, NodeName: "n1"}},
		&v1.Instance{ObjectMeta: om("plain"), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "plain"}, NodeName: "n1"}},
	)
	in := h.until("stacked", "refused", func(in *v1.Instance) bool { return in.Status.Phase == v1.PhaseFailed })
	if c := meta.FindStatusCondition(in.Status.Conditions, v1.InstanceOverlaysReady); c == nil || c.Status != metav1.ConditionFalse ||
		c.Reason != ReasonStoreUnavailable || !strings.Contains(c.Message, store.DirName) {
		t.Fatalf("OverlaysReady %+v", c)
	}
	h.nodeOverlay("cfgs", "Failed", func(e *v1.NodeOverlay) bool {
		return e != nil && e.Phase == v1.OverlayPhaseFailed && e.Reason == ReasonStoreUnavailable
	})
	h.overlayStatus("cfgs", "failing on the node", func(ov *v1.Overlay) bool { return ov.Status.Failed == 1 && ov.Status.Nodes == 1 })
	h.until("plain", "running", func(in *v1.Instance) bool {
		return meta.IsStatusConditionTrue(in.Status.Conditions, v1.InstanceUnitActive)
	})
	if _, ok := h.sd.Files()[unit.OverlayServiceName(unit.ID("default", "stacked"))]; ok {
		t.Fatal("a mount unit was written for the refused Instance")
	}
	if names, _ := os.ReadDir("/tmp"); slices.ContainsFunc(names, func(e os.DirEntry) bool { return e.Name() == ".staging" }) {
		t.Fatal("the store was made through the symlink")
	}
}

func TestReasonWord(t *testing.T) {
	for in, want := range map[string]string{
		"DiskFull": "DiskFull", "disk-full": "FetchFaileddiskfull", "Über": "FetchFailedber", "": "FetchFailed",
		"A" + strings.Repeat("b", 80): "A" + strings.Repeat("b", 63),
	} {
		if got := reasonWord(in); got != want {
			t.Errorf("reasonWord(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestStoreSurvivesAgentRestart: a restarted agent adopts the running game
// on its entry, writes nothing again, and still knows which entry was the
// previous one (the store's index), so a collection keeps it.
func TestStoreSurvivesAgentRestart(t *testing.T) {
	files := &countingFiles{}
	h := startWith(t, withFiles(files))
	first := map[string]string{"left4dead2/cfg/extra.cfg": "// v1\n"}
	second := map[string]string{"left4dead2/cfg/extra.cfg": "// v2\n"}
	h.create(filesOverlay("cfgs", first),
		&v1.Blueprint{ObjectMeta: om("coop"), Spec: v1.BlueprintSpec{Overlays: []string{"cfgs"}}},
		&v1.Instance{ObjectMeta: om("srv"), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}, NodeName: "n1"}})
	h.until("srv", "running", func(in *v1.Instance) bool {
		return meta.IsStatusConditionTrue(in.Status.Conditions, v1.InstanceUnitActive)
	})
	h.editFiles("cfgs", second)
	h.until("srv", "restarted onto the second entry", func(in *v1.Instance) bool {
		return in.Status.PendingTemplateHash == "" && slices.Contains(lowers(t, h.mountOf("srv")), h.entryOf(second))
	})
	pid, writes := h.pid("srv"), files.count()

	h.restart()
	h.nodeOverlay("cfgs", "Ready after the restart, holding both", func(e *v1.NodeOverlay) bool {
		return e != nil && e.Phase == v1.OverlayPhaseReady && slices.Equal(e.Digests, []string{v1.FilesDigest(second), v1.FilesDigest(first)})
	})
	h.nodeSynced()
	h.collected("after the restart", first, second)
	if h.pid("srv") != pid || files.count() != writes {
		t.Errorf("the restart touched the game or the store: pid %d -> %d, writes %d -> %d", pid, h.pid("srv"), writes, files.count())
	}
}

// nodeSynced waits until the agent has reconciled every Instance since it
// started (InstancesSynced on its Node).
func (h *harness) nodeSynced() {
	h.t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		h.agent.mu.Lock()
		synced := !h.agent.syncedAt.IsZero()
		h.agent.mu.Unlock()
		if synced {
			return
		}
	}
	h.t.Fatal("the agent never reconciled every Instance")
}

// poisonedArchive is an archive-like source whose every fetch fails as
// an unsafe entry would; it counts Key calls (one per reconcile that
// stacks it) and fetches.
type poisonedArchive struct {
	mu                sync.Mutex
	resolves, fetches int
}

func (p *poisonedArchive) Scheme() store.Scheme { return store.SchemeTree }

func (p *poisonedArchive) Key(*v1.Overlay) (store.Key, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.resolves++
	return store.Key{}, false, nil
}

func (p *poisonedArchive) Materialize(context.Context, *v1.Overlay, Fetched, string) (Fetched, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fetches++
	return Fetched{}, overlayFailure{ReasonUnsafeEntry, fmt.Errorf("entry %q: unsafe: the fetch number %d", "../../etc/x", p.fetches)}
}

func (p *poisonedArchive) counts() (resolves, fetches int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.resolves, p.fetches
}

// TestFailedFetchNotRepeated: Instances sharing an Overlay whose fetch
// fails get that one failure, however often they are reconciled, until
// the retry's backoff has passed: the source is not fetched again by
// each of them on every reconcile.
func TestFailedFetchNotRepeated(t *testing.T) {
	poisoned := &poisonedArchive{}
	h := startWith(t, func(_ *server.Server, o *Options) {
		o.Materializers = map[string]Materializer{v1.SourceArchive: poisoned}
		o.Resync = 100 * time.Millisecond // reconciles come often
	})
	h.create(&v1.Overlay{ObjectMeta: om("sm"), Spec: v1.OverlaySpec{Source: v1.OverlaySource{Archive: &v1.ArchiveSource{
		URL: "https://mirror.example/sourcemod.tar.gz", SHA256: strings.Repeat("a", 64)}}}},
		&v1.Blueprint{ObjectMeta: om("coop"), Spec: v1.BlueprintSpec{Overlays: []string{"sm"}}})
	names := []string{"coop-1", "coop-2", "coop-3"}
	for _, n := range names {
		h.create(&v1.Instance{ObjectMeta: om(n), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}, NodeName: "n1"}})
	}
	for _, n := range names {
		h.until(n, "refused with the entry", func(in *v1.Instance) bool {
			c := meta.FindStatusCondition(in.Status.Conditions, v1.InstanceOverlaysReady)
			return c != nil && c.Reason == ReasonUnsafeEntry && strings.Contains(c.Message, "../../etc/x")
		})
	}
	resolves, _ := poisoned.counts()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if now, _ := poisoned.counts(); now >= resolves+10*len(names) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the Instances were not reconciled again")
		}
	}
	if _, fetches := poisoned.counts(); fetches != 1 {
		t.Errorf("fetched %d times, want once until the retry's backoff (%s) has passed", fetches, firstFetchRetry)
	}
	h.nodeOverlay("sm", "Failed with the first fetch's reason", func(e *v1.NodeOverlay) bool {
		return e != nil && e.Phase == v1.OverlayPhaseFailed && e.Reason == ReasonUnsafeEntry && strings.Contains(e.Message, "fetch number 1")
	})
	// An admin who fixed the mirror asks for a check: one fetch now, not
	// after the backoff, and one only however many Instances stack it.
	h.annotateOverlay("sm", v1.AnnotationCheckRequestedAt, "2026-12-02T17:00:00Z")
	h.nodeOverlay("sm", "fetched again on request", func(e *v1.NodeOverlay) bool {
		return e != nil && e.Phase == v1.OverlayPhaseFailed && strings.Contains(e.Message, "fetch number 2")
	})
	resolves, _ = poisoned.counts()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if now, _ := poisoned.counts(); now >= resolves+10*len(names) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the Instances were not reconciled again")
		}
	}
	if _, fetches := poisoned.counts(); fetches != 2 {
		t.Errorf("fetched %d times after one check request, want 2", fetches)
	}
}

func TestFetchRetryAfter(t *testing.T) {
	for n, want := range map[int]time.Duration{1: 30 * time.Second, 2: time.Minute, 3: 2 * time.Minute, 6: 10 * time.Minute, 100: 10 * time.Minute} {
		if got := fetchRetryAfter(n); got != want {
			t.Errorf("fetchRetryAfter(%d) = %s, want %s", n, got, want)
		}
	}
}
