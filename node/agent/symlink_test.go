package agent

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/node/unit"
)

// sentinels are a file and a directory outside LEFT4ME_ROOT that a hostile
// game or tenant points its symlinks at.
type sentinels struct{ file, dir string }

func newSentinels(t *testing.T) sentinels {
	t.Helper()
	outside := t.TempDir()
	s := sentinels{file: filepath.Join(outside, "shadow"), dir: filepath.Join(outside, "etc")}
	if err := os.WriteFile(s.file, []byte("root:$6$secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(s.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "passwd"), []byte("root:x:0:0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// check fails the test if a sentinel changed: content, mode, owner, or
// what the directory holds.
func (s sentinels) check(t *testing.T, when string) {
	t.Helper()
	if b, err := os.ReadFile(s.file); err != nil || string(b) != "root:$6$secret\n" {
		t.Fatalf("%s: the sentinel file now holds %q (%v)", when, b, err)
	}
	for path, mode := range map[string]os.FileMode{s.file: 0o600, s.dir: 0o755} {
		st, err := os.Stat(path)
		if err != nil || st.Mode().Perm() != mode || st.Sys().(*syscall.Stat_t).Uid != 0 || st.Sys().(*syscall.Stat_t).Gid != 0 {
			t.Fatalf("%s: %s is now %v owned %d:%d (%v)", when, path, st.Mode(), st.Sys().(*syscall.Stat_t).Uid, st.Sys().(*syscall.Stat_t).Gid, err)
		}
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil || len(entries) != 1 || entries[0].Name() != "passwd" {
		t.Fatalf("%s: the sentinel directory now holds %v (%v)", when, entries, err)
	}
}

// plant makes link -> target as the game would (owned by its uid).
func plant(t *testing.T, link, target string, uid int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	// The agent may be putting its own file there (a reconcile the
	// Overlay's status brought): the game, racing it, tries again.
	for attempt := 0; ; attempt++ {
		os.RemoveAll(link)
		err := os.Symlink(target, link)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || attempt == 100 {
			t.Fatal(err)
		}
	}
	if err := os.Lchown(link, uid, uid); err != nil {
		t.Fatal(err)
	}
}

// TestGameSymlinksNeverLeadTheAgentOut: a game plants symlinks to a file
// and a directory outside its tree at every path the agent touches in the
// directories the game can write; through re-render, restart, stop, start
// and delete, the agent changes neither.
func TestGameSymlinksNeverLeadTheAgentOut(t *testing.T) {
	h := start(t)
	s := newSentinels(t)
	ctx := context.Background()
	// steamcmd's client library exists, so the agent links it into the home.
	os.MkdirAll(filepath.Join(h.root, "steamcmd/linux32"), 0o755)
	os.WriteFile(filepath.Join(h.root, "steamcmd/linux32/steamclient.so"), []byte("\x7fELF"), 0o644)
	h.create(
		&v1.Overlay{ObjectMeta: om("mods"), Spec: v1.OverlaySpec{Source: v1.OverlaySource{Path: "mods"}}},
		&v1.Blueprint{ObjectMeta: om("coop"), Spec: v1.BlueprintSpec{Overlays: []string{"mods"}}},
		&v1.Instance{ObjectMeta: om("coop-1"), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}, NodeName: "n1"}},
	)
	id := unit.ID("default", "coop-1")
	active := func(in *v1.Instance) bool {
		return meta.IsStatusConditionTrue(in.Status.Conditions, v1.InstanceUnitActive)
	}
	in := h.until("coop-1", "UnitActive", active)
	acct, _ := h.accounts.Lookup(id)
	upperCfg := filepath.Join(h.root, "runtime", id, "upper/left4dead2/cfg")
	home := filepath.Join(h.root, "instances", id, "home")

	// The game, holding its own tree, plants links where the agent works.
	for link, target := range map[string]string{
		filepath.Join(upperCfg, "server.cfg.tmp"):               s.file, // the old staging name
		filepath.Join(upperCfg, "server.cfg"):                   s.file,
		filepath.Join(upperCfg, "server_overlay_0_mods.cfg"):    s.file,
		filepath.Join(upperCfg, ".server.cfg.tmp.1.1"):          s.file,
		filepath.Join(h.root, "runtime", id, "upper/addons"):    s.dir,
		filepath.Join(home, "secrets"):                          s.file,
		filepath.Join(home, ".steam"):                           s.dir,
		filepath.Join(h.root, "runtime", id, "upper/etc-owned"): s.dir,
	} {
		plant(t, link, target, acct.UID)
	}

	// Re-render: a cvar changes server.cfg, so a new generated layer and a
	// remount.
	obj, _ := h.admin.Get(ctx, blueprintRes, "default", "coop")
	bp := obj.(*v1.Blueprint)
	bp.Spec.Cvars = []v1.Cvar{{Name: "sv_cheats", Value: "0"}}
	if _, err := h.admin.Update(ctx, blueprintRes, bp, false); err != nil {
		t.Fatal(err)
	}
	first := in.Status.TemplateHash
	in = h.until("coop-1", "the new template", func(in *v1.Instance) bool {
		return in.Status.TemplateHash != first && in.Status.PendingTemplateHash == "" && active(in)
	})
	s.check(t, "after a re-render")
	if fi, err := os.Lstat(filepath.Join(upperCfg, "server.cfg")); err == nil {
		t.Fatalf("the game's server.cfg link still hides the generated one (%v)", fi.Mode())
	}

	// Restart (l4mctl rollout restart), then Stopped, then Running again.
	patch := func(res string, name, body string) {
		t.Helper()
		r := blueprintRes
		if res == "instance" {
			r = instanceRes
		}
		if _, err := h.admin.Patch(ctx, r, "default", name, "application/merge-patch+json", []byte(body), false); err != nil {
			t.Fatal(err)
		}
	}
	patch("blueprint", "coop", `{"metadata":{"annotations":{"`+v1.AnnotationRestartedAt+`":"2026-12-02T05:00:00Z"}}}`)
	second := in.Status.TemplateHash
	h.until("coop-1", "the restart", func(in *v1.Instance) bool { return in.Status.TemplateHash != second && active(in) })
	s.check(t, "after a restart")
	patch("instance", "coop-1", `{"spec":{"state":"Stopped"}}`)
	h.until("coop-1", "Stopped", func(in *v1.Instance) bool { return in.Status.Phase == v1.PhaseStopped })
	s.check(t, "after Stopped")
	plant(t, filepath.Join(upperCfg, "server.cfg"), s.file, acct.UID)
	patch("instance", "coop-1", `{"spec":{"state":"Running"}}`)
	h.until("coop-1", "UnitActive again", active)
	s.check(t, "after starting again")

	// Before the delete, the game swaps whole directories for links.
	plant(t, upperCfg, s.dir, acct.UID)
	plant(t, filepath.Join(h.root, "runtime", id, "upper/left4dead2/addons"), s.dir, acct.UID)
	if _, _, err := h.admin.Delete(ctx, instanceRes, "default", "coop-1", false); err != nil {
		t.Fatal(err)
	}
	h.gone("coop-1")
	s.check(t, "after delete")
	for _, d := range []string{"runtime/" + id, "instances/" + id} {
		if _, err := os.Lstat(filepath.Join(h.root, d)); !os.IsNotExist(err) {
			t.Fatalf("%s left after delete (%v)", d, err)
		}
	}
}

// TestTenantSymlinkInOverlayIsNotCopied: an Overlay whose cfg/server.cfg is
// a link to a root-only file is refused; the file's content goes nowhere.
func TestTenantSymlinkInOverlayIsNotCopied(t *testing.T) {
	h := start(t)
	s := newSentinels(t)
	os.MkdirAll(filepath.Join(h.root, "overlays/linked/left4dead2/cfg"), 0o755)
	os.Symlink(s.file, filepath.Join(h.root, "overlays/linked/left4dead2/cfg/server.cfg"))
	h.create(
		&v1.Overlay{ObjectMeta: om("linked"), Spec: v1.OverlaySpec{Source: v1.OverlaySource{Path: "linked"}}},
		&v1.Blueprint{ObjectMeta: om("coop"), Spec: v1.BlueprintSpec{Overlays: []string{"linked"}}},
		&v1.Instance{ObjectMeta: om("coop-1"), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}, NodeName: "n1"}},
	)
	in := h.until("coop-1", "refusal", func(in *v1.Instance) bool { return in.Status.Phase == v1.PhaseFailed })
	c := meta.FindStatusCondition(in.Status.Conditions, v1.InstanceOverlaysReady)
	if c == nil || c.Reason != "InvalidOverlay" || !strings.Contains(c.Message, "Overlay linked") || !strings.Contains(c.Message, "symlink") {
		t.Fatalf("condition %+v", c)
	}
	filepath.Walk(h.root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), "$6$secret") {
				t.Errorf("the sentinel's content was copied to %s", p)
			}
		}
		return nil
	})
	if len(h.sd.Files()) != 0 {
		t.Fatalf("a refused Instance got units: %v", h.sd.Files())
	}
	s.check(t, "after the refusal")
}

// TestSteamClientCopiedNotLinked: the games get a root-owned copy of
// steamcmd's client library, never a path into steamcmd's directory
// (its account could swap the library or the directory at any time); a
// library that is a link the account planted is not copied.
func TestSteamClientCopiedNotLinked(t *testing.T) {
	h := start(t)
	s := newSentinels(t)
	lib := filepath.Join(h.root, "steamcmd/linux32/steamclient.so")
	os.MkdirAll(filepath.Dir(lib), 0o755)
	os.Symlink(s.file, lib)
	h.create(&v1.Blueprint{ObjectMeta: om("coop")},
		&v1.Instance{ObjectMeta: om("coop-1"), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}, NodeName: "n1"}})
	h.until("coop-1", "UnitActive", func(in *v1.Instance) bool {
		return meta.IsStatusConditionTrue(in.Status.Conditions, v1.InstanceUnitActive)
	})
	copied := filepath.Join(h.root, "steamclient", "steamclient.so")
	if _, err := os.Lstat(copied); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a planted link was copied for the games: %v", err)
	}
	s.check(t, "after a planted library")

	// The real library: copied, root's, read-only to others.
	os.Remove(lib)
	os.WriteFile(lib, []byte("\x7fELF steamclient"), 0o644)
	h.create(&v1.Instance{ObjectMeta: om("coop-2"), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}, NodeName: "n1"}})
	h.until("coop-2", "UnitActive", func(in *v1.Instance) bool {
		return meta.IsStatusConditionTrue(in.Status.Conditions, v1.InstanceUnitActive)
	})
	data, err := os.ReadFile(copied)
	if err != nil || string(data) != "\x7fELF steamclient" {
		t.Fatalf("the games' copy: %q, %v", data, err)
	}
	if fi, _ := os.Lstat(copied); fi.Mode().Perm() != 0o644 || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Fatalf("the games' copy is %v uid %d", fi.Mode(), fi.Sys().(*syscall.Stat_t).Uid)
	}
	link, err := os.Readlink(filepath.Join(h.root, "instances", unit.ID("default", "coop-2"), "home/.steam/sdk32/steamclient.so"))
	if err != nil || link != copied {
		t.Fatalf("the game's home links %q (%v), want %s", link, err, copied)
	}
}

// TestOverlaySourceNotFetchedYet: an Overlay from a source the node does
// not fetch yet (the API accepts it) holds its Instance with a reason that
// says so, and nothing is mounted or started.
func TestOverlaySourceNotFetchedYet(t *testing.T) {
	h := start(t)
	h.create(
		&v1.Overlay{ObjectMeta: om("cfgs"), Spec: v1.OverlaySpec{Source: v1.OverlaySource{Archive: &v1.ArchiveSource{URL: "file:///srv/cfgs.tar.gz"}}}},
		&v1.Blueprint{ObjectMeta: om("coop"), Spec: v1.BlueprintSpec{Overlays: []string{"cfgs"}}},
		&v1.Instance{ObjectMeta: om("coop-1"), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}, NodeName: "n1"}},
	)
	in := h.until("coop-1", "held", func(in *v1.Instance) bool {
		c := meta.FindStatusCondition(in.Status.Conditions, v1.InstanceOverlaysReady)
		return c != nil && c.Reason == "OverlaySourceNotSupported"
	})
	c := meta.FindStatusCondition(in.Status.Conditions, v1.InstanceOverlaysReady)
	if !strings.Contains(c.Message, "Overlay cfgs: its source is archive") {
		t.Fatalf("message %q", c.Message)
	}
	if files := h.sd.Files(); len(files) != 0 {
		t.Fatalf("units written for a held Instance: %v", files)
	}
}
