package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/apis/server/servertest"
	"github.com/left4me/left4me/controllers/controllertest"
	"github.com/left4me/left4me/node/gameuser"
	"github.com/left4me/left4me/node/systemd"
	"github.com/left4me/left4me/node/unit"
)

// harness runs the agent against a real API server with an in-memory
// systemd, so the decisions (what to write, start, restart, remove) are
// checked without a sandbox host. The sandbox e2e proves the real systemd.
type harness struct {
	t     *testing.T
	admin *client.Client
	sd    *systemd.Fake
	root  string
	// accounts are the games' uids and gids, handed out without touching
	// the host's user database.
	accounts *gameuser.Fake
	agent    *Agent
	// stop cancels Run's context; done receives what Run returned (a test
	// that takes it puts it back for the cleanup).
	stop context.CancelFunc
	done chan error
	// opts are the agent's options (restart starts another with them).
	opts Options
}

// generatedLayer is the first lowerdir of a rendered mount unit.
func generatedLayer(t *testing.T, mount string) string {
	t.Helper()
	_, opts, ok := strings.Cut(mount, "lowerdir=")
	if !ok {
		t.Fatalf("no lowerdir in:\n%s", mount)
	}
	first, _, _ := strings.Cut(opts, ":")
	if !strings.Contains(first, "/generated/") {
		t.Fatalf("the topmost layer %s is not the generated one", first)
	}
	return first
}

func start(t *testing.T) *harness { return startWith(t, nil) }

// startWith is start with options of the test's own (change may be nil).
func startWith(t *testing.T, change func(*server.Server, *Options)) *harness {
	if os.Geteuid() != 0 {
		t.Skip("the agent chowns files: run as root")
	}
	srv, admin := controllertest.StartWithControllers(t)
	return startOn(t, srv, admin, change)
}

// startBare is startWith against an API server without controllers:
// nothing schedules (Instances name their node and port) and nothing
// approves a rollout, so the test decides when a game may restart.
func startBare(t *testing.T, change func(*server.Server, *Options)) *harness {
	if os.Geteuid() != 0 {
		t.Skip("the agent chowns files: run as root")
	}
	srv, admin := servertest.Start(t)
	return startOn(t, srv, admin, change)
}

func startOn(t *testing.T, srv *server.Server, admin *client.Client, change func(*server.Server, *Options)) *harness {
	node := servertest.ClientWithToken(t, srv, servertest.NewToken(t, admin, v1.TokenSpec{Type: v1.TokenNode, NodeName: "n1"}))
	root := t.TempDir()
	for _, d := range []string{"installation", "overlays/mods/left4dead2/cfg"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.WriteFile(filepath.Join(root, "overlays/mods/left4dead2/cfg/server.cfg"), []byte("hostname \"mods\"\n"), 0o644)
	os.Symlink("/etc", filepath.Join(root, "overlays", "escape"))
	h := &harness{t: t, admin: admin, sd: systemd.NewFake(), root: root, accounts: gameuser.NewFake(480000)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	o := Options{Client: node, NodeName: "n1", Root: root, PortMin: 40000, PortMax: 40010, Systemd: h.sd,
		Log: testr.New(t), Accounts: h.accounts, Resync: time.Hour, Probe: time.Hour}
	if change != nil {
		change(srv, &o)
	}
	a := New(o)
	h.agent, h.stop, h.done, h.opts = a, cancel, done, o
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		h.stop() // the agent running now (restart replaces it)
		if err := <-h.done; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	return h
}

// restart stops the agent and starts a new one with the same options on
// the same host (root, systemd, accounts): what l4m-node does after an
// upgrade or a crash.
func (h *harness) restart() {
	h.t.Helper()
	h.stop()
	if err := <-h.done; err != nil {
		h.t.Fatalf("agent: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := New(h.opts)
	h.agent, h.stop = a, cancel
	go func() { h.done <- a.Run(ctx) }()
}

func (h *harness) create(objs ...v1.Object) {
	h.t.Helper()
	for _, o := range objs {
		var err error
		switch o.(type) {
		case *v1.Overlay:
			_, err = h.admin.Create(context.Background(), overlayRes, o, false)
		case *v1.Blueprint:
			_, err = h.admin.Create(context.Background(), blueprintRes, o, false)
		case *v1.Instance:
			_, err = h.admin.Create(context.Background(), instanceRes, o, false)
		}
		if err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *harness) until(name, what string, cond func(*v1.Instance) bool) *v1.Instance {
	h.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		obj, err := h.admin.Get(context.Background(), instanceRes, "default", name)
		if err == nil && cond(obj.(*v1.Instance)) {
			return obj.(*v1.Instance)
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.t.Fatalf("%s: no %s within 15s; jobs %v", name, what, h.sd.JobLog())
	return nil
}

// gone waits until the Instance is deleted (its finalizer released).
func (h *harness) gone(name string) {
	h.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := h.admin.Get(context.Background(), instanceRes, "default", name); apierrors.IsNotFound(err) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.t.Fatalf("%s not deleted within 15s; jobs %v", name, h.sd.JobLog())
}

func om(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: "default"} }

func count(jobs []string, job string) int {
	n := 0
	for _, j := range jobs {
		if j == job {
			n++
		}
	}
	return n
}

func TestRealizeRestartStopDelete(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	h.create(
		&v1.Overlay{ObjectMeta: om("mods"), Spec: v1.OverlaySpec{Source: v1.OverlaySource{Path: "mods"}}},
		&v1.Blueprint{ObjectMeta: om("bp"), Spec: v1.BlueprintSpec{Overlays: []string{"mods"}}},
		&v1.Instance{ObjectMeta: om("srv"), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "bp"}, NodeName: "n1"}},
	)
	id := unit.ID("default", "srv")
	svc, mnt := unit.ServiceName(id), unit.OverlayServiceName(id)
	in := h.until("srv", "UnitActive", func(in *v1.Instance) bool {
		return meta.IsStatusConditionTrue(in.Status.Conditions, v1.InstanceUnitActive)
	})
	if in.Status.Port != 40000 || in.Status.MainPID == 0 || in.Status.UnitName != svc {
		t.Fatalf("status %+v", in.Status)
	}
	files := h.sd.Files()
	if !strings.Contains(files[svc], `"+hostport" "40000"`) || !strings.Contains(files[mnt], h.root+"/overlays/mods") {
		t.Fatalf("units:\n%s\n%s", files[svc], files[mnt])
	}
	// server.cfg is in the generated layer, the topmost lower of the mount,
	// root's and readable by the game's group alone.
	gen := generatedLayer(t, files[mnt])
	cfgPath := filepath.Join(gen, "left4dead2/cfg/server.cfg")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil || !strings.Contains(string(cfg), "exec server_overlay_0_mods.cfg") || !strings.Contains(string(cfg), "rcon_password") {
		t.Fatalf("server.cfg: %s %v", cfg, err)
	}
	acct, _ := h.accounts.Lookup(id)
	if st, err := os.Stat(cfgPath); err != nil || st.Mode().Perm() != 0o640 || st.Sys().(*syscall.Stat_t).Uid != 0 || int(st.Sys().(*syscall.Stat_t).Gid) != acct.GID {
		t.Fatalf("server.cfg mode %v owner %+v, want 0640 root:%d", st.Mode(), st.Sys(), acct.GID)
	}
	if !strings.Contains(files[svc], "User="+acct.Name+"\n") {
		t.Fatalf("the game does not run as its own account %s:\n%s", acct.Name, files[svc])
	}
	jobs := h.sd.JobLog()
	// The agent starts the game alone: its start pulls in the overlay unit.
	if count(jobs, "start "+mnt) != 0 || count(jobs, "start "+svc) != 1 || !strings.Contains(files[svc], "Requires="+mnt+"\n") {
		t.Fatalf("jobs %v, unit:\n%s", jobs, files[svc])
	}

	// instances/<id> records what the game was rendered from, without the
	// RCON password.
	rec, err := os.ReadFile(filepath.Join(h.root, "instances", id, "spec.json"))
	pw, _ := os.ReadFile(filepath.Join(h.root, "instances", id, "rcon_password"))
	if err != nil || !strings.Contains(string(rec), `"templateHash": "`+in.Status.TemplateHash+`"`) ||
		len(pw) < 16 || strings.Contains(string(rec), strings.TrimSpace(string(pw))) {
		t.Fatalf("spec.json (template %s): %s %v", in.Status.TemplateHash, rec, err)
	}
	if env, err := os.ReadFile(filepath.Join(h.root, "instances", id, "instance.env")); err != nil || !strings.Contains(string(env), "L4M_GAME_PORT=40000\n") {
		t.Fatalf("instance.env: %s %v", env, err)
	}
	firstHash := in.Status.TemplateHash

	// The game runs: its namespace holds the overlay. (The host's copy is
	// detached, which needs a real host: node/e2e checks it.) Nothing of
	// it is stopped.
	if jobs := h.sd.JobLog(); count(jobs, "stop "+mnt) != 0 || count(jobs, "stop "+svc) != 0 {
		t.Fatalf("the running game or its overlay unit was stopped (jobs %v)", jobs)
	}
	before := len(h.sd.JobLog())

	// A Blueprint edit restarts the game once, when the rollout approves
	// (no players here); the agent does not unmount for it (the restart's
	// start job mounts what it needs).
	obj, _ := h.admin.Get(ctx, blueprintRes, "default", "bp")
	bp := obj.(*v1.Blueprint)
	bp.Spec.Game.MaxPlayers = 6
	if _, err := h.admin.Update(ctx, blueprintRes, bp, false); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for count(h.sd.JobLog(), "restart "+svc) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	jobs = h.sd.JobLog()[before:]
	if count(jobs, "restart "+svc) != 1 || count(jobs, "stop "+mnt) != 0 {
		t.Fatalf("after the edit, jobs %v", jobs)
	}
	if generatedLayer(t, h.sd.Files()[mnt]) != gen {
		t.Fatal("an edit that changes no config file changed the generated layer")
	}
	in = h.until("srv", "the new template", func(in *v1.Instance) bool {
		return in.Status.TemplateHash != firstHash && in.Status.PendingTemplateHash == "" &&
			in.Annotations[v1.AnnotationApprovedTemplate] == in.Status.TemplateHash &&
			in.Status.ObservedBlueprint == "2//mods=1"
	})
	if c := meta.FindStatusCondition(in.Status.Conditions, v1.InstanceUpdatePending); c == nil || c.Status != metav1.ConditionFalse {
		t.Fatalf("UpdatePending after the restart: %+v", c)
	}

	// Stopped: game and mount stop, files stay.
	if _, err := h.admin.Patch(ctx, instanceRes, "default", "srv", "application/merge-patch+json", []byte(`{"spec":{"state":"Stopped"}}`), false); err != nil {
		t.Fatal(err)
	}
	h.until("srv", "Stopped, with no map or slots shown", func(in *v1.Instance) bool {
		return in.Status.Phase == v1.PhaseStopped && in.Status.Map == "" && in.Status.MaxPlayers == 0
	})
	if st, _ := h.sd.State(ctx, svc); st.ActiveState != "inactive" {
		t.Fatalf("game %s after Stopped", st.ActiveState)
	}
	if _, err := os.Stat(filepath.Join(h.root, "runtime", id, "upper")); err != nil {
		t.Fatal("Stopped removed the upper dir")
	}

	// Delete: units and files go, then the finalizer.
	if _, _, err := h.admin.Delete(ctx, instanceRes, "default", "srv", false); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		_, err := h.admin.Get(ctx, instanceRes, "default", "srv")
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not deleted; jobs %v", h.sd.JobLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(h.sd.Files()) != 0 {
		t.Fatalf("units left: %v", h.sd.Files())
	}
	for _, d := range []string{"runtime/" + id, "instances/" + id} {
		if _, err := os.Stat(filepath.Join(h.root, d)); err == nil {
			t.Fatalf("%s left", d)
		}
	}
	if _, ok := h.accounts.Lookup(id); ok {
		t.Fatal("the deleted Instance's account is still there")
	}
}

func TestRefusedOverlayWritesNothing(t *testing.T) {
	h := start(t)
	h.create(
		&v1.Overlay{ObjectMeta: om("escape"), Spec: v1.OverlaySpec{Source: v1.OverlaySource{Path: "escape"}}},
		&v1.Blueprint{ObjectMeta: om("bad"), Spec: v1.BlueprintSpec{Overlays: []string{"escape"}}},
		&v1.Instance{ObjectMeta: om("srv"), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "bad"}, NodeName: "n1"}},
		&v1.Instance{ObjectMeta: om("lost"), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "missing"}, NodeName: "n1"}},
	)
	in := h.until("srv", "refusal", func(in *v1.Instance) bool { return in.Status.Phase == v1.PhaseFailed })
	c := meta.FindStatusCondition(in.Status.Conditions, v1.InstanceOverlaysReady)
	if c == nil || c.Reason != "InvalidOverlay" || !strings.Contains(c.Message, `"escape"`) {
		t.Fatalf("condition %+v", c)
	}
	lost := h.until("lost", "refusal", func(in *v1.Instance) bool { return in.Status.Phase == v1.PhaseFailed })
	if c := meta.FindStatusCondition(lost.Status.Conditions, v1.ConditionReady); c == nil || c.Reason != "BlueprintNotFound" {
		t.Fatalf("missing blueprint: %+v", c)
	}
	if len(h.sd.Files()) != 0 || len(h.sd.JobLog()) != 0 {
		t.Fatalf("a refused Instance touched systemd: files %v jobs %v", h.sd.Files(), h.sd.JobLog())
	}
}

// TestDashedAndLongNamesStopAndDelete: systemd escapes "-" in a mount
// unit's name as "\x2d"; an Instance whose name has dashes (every sample
// has) or is 63 characters long must unmount when Stopped and leave no
// unit, mount or file when deleted.
func TestDashedAndLongNamesStopAndDelete(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	long := "coop-" + strings.Repeat("x", 58)
	h.create(&v1.Blueprint{ObjectMeta: om("coop"), Spec: v1.BlueprintSpec{}})
	for _, name := range []string{"coop-2", long} {
		h.create(&v1.Instance{ObjectMeta: om(name), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}, NodeName: "n1"}})
	}
	for _, name := range []string{"coop-2", long} {
		id := unit.ID("default", name)
		svc, mnt := unit.ServiceName(id), unit.OverlayServiceName(id)
		h.until(name, "UnitActive", func(in *v1.Instance) bool {
			return meta.IsStatusConditionTrue(in.Status.Conditions, v1.InstanceUnitActive)
		})
		if _, err := h.admin.Patch(ctx, instanceRes, "default", name, "application/merge-patch+json", []byte(`{"spec":{"state":"Stopped"}}`), false); err != nil {
			t.Fatal(err)
		}
		h.until(name, "Stopped", func(in *v1.Instance) bool { return in.Status.Phase == v1.PhaseStopped })
		for _, u := range []string{svc, mnt} {
			if st, _ := h.sd.State(ctx, u); st.ActiveState != "inactive" {
				t.Fatalf("%s is %s after Stopped", u, st.ActiveState)
			}
		}
		if _, _, err := h.admin.Delete(ctx, instanceRes, "default", name, false); err != nil {
			t.Fatal(err)
		}
		h.gone(name)
		files := h.sd.Files()
		if _, ok := files[svc]; ok {
			t.Fatalf("%s left after delete", svc)
		}
		if _, ok := files[mnt]; ok {
			t.Fatalf("%s left after delete", mnt)
		}
		for _, d := range []string{"runtime/" + id, "instances/" + id} {
			if _, err := os.Lstat(filepath.Join(h.root, d)); !os.IsNotExist(err) {
				t.Fatalf("%s left after delete (%v)", d, err)
			}
		}
	}
}

// TestRestartKeepsAdminNodeSpec: a host registers its Node with its port
// range and capacity; an admin then changes the capacity. When the agent
// restarts with other flags, it re-applies its labels but leaves the spec
// alone (its node token may not change it), and it still comes up.
func TestRestartKeepsAdminNodeSpec(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the agent chowns files: run as root")
	}
	srv, admin := servertest.Start(t)
	node := servertest.ClientWithToken(t, srv, servertest.NewToken(t, admin, v1.TokenSpec{Type: v1.TokenNode, NodeName: "n1"}))
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "installation"), 0o755)
	run := func(o Options, until func(*v1.Node) bool, what string) *v1.Node {
		t.Helper()
		o.Client, o.NodeName, o.Root, o.Systemd = node, "n1", root, systemd.NewFake()
		o.Log, o.Accounts, o.Resync, o.Probe, o.Heartbeat = logr.Discard(), gameuser.NewFake(480000), time.Hour, time.Hour, 100*time.Millisecond
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- New(o).Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("agent: %v", err)
			}
		}()
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			obj, err := admin.Get(context.Background(), nodeRes, "", "n1")
			if err == nil && until(obj.(*v1.Node)) {
				return obj.(*v1.Node)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("no %s within 15s", what)
		return nil
	}
	first := run(Options{PortMin: 40000, PortMax: 40010, Capacity: v1.NodeCapacity{Instances: 20}, Labels: map[string]string{"zone": "a"}},
		func(n *v1.Node) bool { return n.Status.HeartbeatTime != nil }, "registered Node")
	if first.Spec.PortRange != (v1.PortRange{Min: 40000, Max: 40010}) || first.Spec.Capacity.Instances != 20 || first.Labels["zone"] != "a" {
		t.Fatalf("Node as registered: spec %+v labels %v", first.Spec, first.Labels)
	}
	if _, err := admin.Patch(context.Background(), nodeRes, "", "n1", "application/merge-patch+json", []byte(`{"spec":{"capacity":{"instances":5}}}`), false); err != nil {
		t.Fatal(err)
	}
	second := run(Options{PortMin: 41000, PortMax: 41010, Capacity: v1.NodeCapacity{Instances: 50}, Labels: map[string]string{"zone": "b"}},
		// Its labels are applied as it registers, before its first status
		// write (which, nothing else having changed, may well carry the
		// same second as the first agent's: no later one is needed).
		func(n *v1.Node) bool {
			return n.Labels["zone"] == "b" && !n.Status.HeartbeatTime.Before(first.Status.HeartbeatTime)
		}, "relabelled Node")
	if second.Spec.PortRange != first.Spec.PortRange || second.Spec.Capacity.Instances != 5 {
		t.Fatalf("the restarted agent rewrote the admin's spec: %+v", second.Spec)
	}
}

// TestStuckDeletionSaysSo: while a deletion cannot finish on the host, the
// Instance says Terminating and not Ready (its game is stopped), instead
// of Running and Ready; once the host lets go, it is gone.
func TestStuckDeletionSaysSo(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	h.create(
		&v1.Blueprint{ObjectMeta: om("coop"), Spec: v1.BlueprintSpec{}},
		&v1.Instance{ObjectMeta: om("coop-2"), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}, NodeName: "n1"}},
	)
	h.until("coop-2", "UnitActive", func(in *v1.Instance) bool {
		return meta.IsStatusConditionTrue(in.Status.Conditions, v1.InstanceUnitActive)
	})
	h.sd.FailRemovals(errors.New("read-only file system"))
	if _, _, err := h.admin.Delete(ctx, instanceRes, "default", "coop-2", false); err != nil {
		t.Fatal(err)
	}
	in := h.until("coop-2", "Terminating, not Ready", func(in *v1.Instance) bool {
		c := meta.FindStatusCondition(in.Status.Conditions, v1.ConditionReady)
		return in.Status.Phase == v1.PhaseTerminating && c != nil && c.Status == metav1.ConditionFalse &&
			strings.Contains(c.Message, "read-only file system")
	})
	if meta.IsStatusConditionTrue(in.Status.Conditions, v1.InstanceUnitActive) || in.Status.MainPID != 0 {
		t.Fatalf("the stopped game still shows as running: %+v", in.Status)
	}
	h.sd.FailRemovals(nil)
	h.gone("coop-2")
}

// TestUnreadableUnitDirIsNotNoUnit: when the agent cannot tell whether a
// game's unit file exists, it does nothing to the game (no start of a
// second copy, no teardown) and says why in its log, rather than reading
// the error as "no unit".
func TestUnreadableUnitDirIsNotNoUnit(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	h.create(&v1.Blueprint{ObjectMeta: om("coop"), Spec: v1.BlueprintSpec{}})
	h.create(&v1.Instance{ObjectMeta: om("coop-1"), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}, NodeName: "n1"}})
	h.until("coop-1", "UnitActive", func(in *v1.Instance) bool {
		return meta.IsStatusConditionTrue(in.Status.Conditions, v1.InstanceUnitActive)
	})
	jobs := len(h.sd.JobLog())
	h.sd.FailLookups(errors.New("input/output error"))
	// A change that makes the agent look at the game again, stop it included.
	if _, err := h.admin.Patch(ctx, instanceRes, "default", "coop-1", "application/merge-patch+json", []byte(`{"spec":{"state":"Stopped"}}`), false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.admin.Delete(ctx, instanceRes, "default", "coop-1", false); err != nil {
		t.Fatal(err)
	}
	// The deletion waits on the host: the Instance stays, no job ran, its
	// files are there.
	in := h.until("coop-1", "the deletion marked", func(in *v1.Instance) bool { return in.DeletionTimestamp != nil })
	// The agent has tried (and failed) to look several times.
	failed := h.sd.LookupFailures()
	for deadline := time.Now().Add(30 * time.Second); h.sd.LookupFailures() < failed+3; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the agent stopped looking at its units")
		}
	}
	id := unit.ID("default", "coop-1")
	if got := h.sd.JobLog(); len(got) != jobs {
		t.Fatalf("the agent acted on an unreadable unit dir: jobs %v", got[jobs:])
	}
	if _, err := os.Stat(filepath.Join(h.root, "instances", id)); err != nil {
		t.Fatalf("files removed while the units could not be read: %v", err)
	}
	if in.Status.Phase == v1.PhaseStopped {
		t.Fatalf("reported Stopped without stopping: %+v", in.Status)
	}
	h.sd.FailLookups(nil)
	h.gone("coop-1")
}
