package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/hack/sandboxtest"
	"github.com/left4me/left4me/hack/steam-api-double/steamapi"
	"github.com/left4me/left4me/node/rcon"
	"github.com/left4me/left4me/node/unit"
)

// sourcemodRelease is a SourceMod-like release, as its archive is laid
// out (the paths below left4dead2/), plugin naming its version. It also
// ships a stale copy of a Workshop item and a sourcemod.cfg, both of
// which the Overlays above it hide.
func sourcemodRelease(t *testing.T, plugin, staleVPK string) []byte {
	return tarGz(t,
		tarEntry{Name: "addons/", Dir: true},
		tarEntry{Name: "addons/metamod.vdf", Body: "\"Plugin\"\n{\n\t\"file\"\t\"../left4dead2/addons/metamod/bin/server\"\n}\n"},
		tarEntry{Name: "addons/sourcemod/plugins/x.smx", Body: plugin},
		tarEntry{Name: "addons/" + staleVPK + ".vpk", Body: "a stale copy shipped in the archive\n"},
		tarEntry{Name: "cfg/sourcemod/sourcemod.cfg", Body: "// sourcemod.cfg from the archive\n"},
	)
}

// gameTree is where the host reaches an Instance's merged tree as its game
// sees it: through the game's own mount namespace, which holds the
// overlay (the host's copy is unmounted once the game runs).
func gameTree(t *testing.T, sb *sandboxtest.Sandbox, instance string) string {
	t.Helper()
	pid := strings.TrimSpace(sb.MustExec(t, "systemctl", "show", "-P", "MainPID", unit.ServiceName(unit.ID("default", instance))))
	if pid == "" || pid == "0" {
		t.Fatalf("%s's game does not run (MainPID %q)", instance, pid)
	}
	return "/proc/" + pid + "/root/var/lib/left4me/runtime/default." + instance + "/merged"
}

// merged reads a file of an Instance's merged tree as its game sees it.
func (e *env) merged(instance, rel string) string {
	e.t.Helper()
	out, err := e.sb.Exec("cat", gameTree(e.t, e.sb, instance)+"/"+rel)
	if err != nil {
		e.t.Fatalf("%s's merged tree: %v\n%s", instance, err, e.journal())
	}
	return out
}

// rconAs runs an RCON command on an Instance's game with the password its
// node generated.
func (e *env) rconAs(in *v1.Instance, command string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := rcon.Dial(ctx, fmt.Sprintf("127.0.0.1:%d", in.Status.Port), e.rconPassword(in.Name))
	if err != nil {
		e.t.Fatalf("rcon to %s: %v", in.Name, err)
	}
	defer c.Close()
	if _, err := c.Exec(ctx, command); err != nil {
		e.t.Fatalf("rcon %q on %s: %v", command, in.Name, err)
	}
}

func (e *env) rconPassword(instance string) string {
	e.t.Helper()
	pw, err := os.ReadFile(filepath.Join(e.sb.Left4meDir, "instances", "default."+instance, "rcon_password"))
	if err != nil || len(strings.TrimSpace(string(pw))) < 8 {
		e.t.Fatalf("%s's RCON password: %q %v", instance, pw, err)
	}
	return strings.TrimSpace(string(pw))
}

// TestOverlaySourcesEndToEnd: an archive (over HTTP, with its sha256),
// Workshop items (through the Steam Web API double), a git branch (a
// file:// repository below node.yaml's overlayFileRoots) and inline files,
// stacked by one Blueprint on 20 Instances of a real host: each source is
// downloaded once, the games see the stack, a killed agent fetches nothing
// again, a new archive version rolls out to the empty games only, a
// poisoned one is refused while the games keep what they run, a pushed
// branch rolls out at its checkInterval, and deleting everything leaves
// the store empty.
//
// The git check (at most every minute) runs only after the archive's
// steps, which keep every game's PID in view: they take well under that.
func TestOverlaySourcesEndToEnd(t *testing.T) {
	began := time.Now()
	ctx := context.Background()
	archives := newArchiveServer(t)
	items := []string{"2718281828", "3141592653"}
	var catalog steamapi.Catalog
	for i, id := range items {
		catalog.Items = append(catalog.Items, steamapi.Item{ID: id, Title: fmt.Sprintf("Campaign %d", i+1),
			TimeUpdated: 1700000000 + int64(i), Content: steamapi.VPK(id, 8<<10)})
	}
	steam := steamapi.New(catalog)
	steamSrv := httptest.NewServer(steam)
	t.Cleanup(steamSrv.Close)

	e := setupWith(t, nodeSettings{SteamAPIURL: steamSrv.URL, OverlayFileRoots: []string{"/var/lib/left4me/repos"}})
	repo := newGitRemote(t, filepath.Join(e.sb.Left4meDir, "repos", "comp.git"))
	commit := repo.commit("competitive configs", map[string]string{
		"README.md":                "competitive configs (not shipped: the Overlay takes l4d2/ only)\n",
		"l4d2/cfg/competitive.cfg": "// competitive rules from git\n",
	})

	v1URL, v1Sum := archives.serve("/sourcemod-1.tar.gz", sourcemodRelease(t, "x.smx release 1\n", items[0]))
	const hostname = "Modded By The Files Overlay"
	// Topmost first: files over the Workshop over git over the archive.
	stack := []string{"server-cfg", "addons", "comp", "sourcemod"}
	e.create(
		&v1.Overlay{ObjectMeta: meta_("sourcemod"), Spec: v1.OverlaySpec{Source: v1.OverlaySource{
			Archive: &v1.ArchiveSource{URL: v1URL, SHA256: v1Sum, Into: "left4dead2"}}}},
		&v1.Overlay{ObjectMeta: meta_("server-cfg"), Spec: v1.OverlaySpec{Source: v1.OverlaySource{Files: map[string]string{
			"left4dead2/cfg/server.cfg":              "hostname \"" + hostname + "\"\n",
			"left4dead2/cfg/sourcemod/sourcemod.cfg": "// sourcemod.cfg from the files overlay\n",
		}}}},
		&v1.Overlay{ObjectMeta: meta_("addons"), Spec: v1.OverlaySpec{Source: v1.OverlaySource{
			Workshop: &v1.WorkshopSource{Items: items}}}},
		&v1.Overlay{ObjectMeta: meta_("comp"), Spec: v1.OverlaySpec{Source: v1.OverlaySource{Git: &v1.GitSource{
			URL: "file:///var/lib/left4me/repos/comp.git", Ref: "main", SubPath: "l4d2", Into: "left4dead2", CheckInterval: "1m"}}}},
	)
	e.create(&v1.Blueprint{ObjectMeta: meta_("modded"), Spec: v1.BlueprintSpec{Overlays: stack,
		Game:    v1.GameSpec{Map: "c1m1_hotel", MaxPlayers: 8},
		Rollout: v1.RolloutSpec{Policy: v1.RolloutWhenEmpty, MaxUnavailable: 20}}})
	names := names("mod", 20)
	for _, n := range names {
		e.create(&v1.Instance{ObjectMeta: meta_(n), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "modded"}, NodeName: e.node}})
	}
	e.allReady("20 Instances Ready on the stack", names, 120*time.Second)
	t.Logf("20 Instances Ready after %s", time.Since(began).Round(time.Millisecond))

	// What the game sees: the files Overlay's hostname, the archive's
	// plugin, and each layer hiding what the one below it ships.
	first := e.get(names[0])
	if info := queryInfo(t, first.Status.Port); info.Name != hostname {
		t.Fatalf("A2S name %q, want the files Overlay's %q", info.Name, hostname)
	}
	if got := e.merged(names[0], "left4dead2/addons/sourcemod/plugins/x.smx"); got != "x.smx release 1\n" {
		t.Fatalf("the archive's plugin in the merged tree: %q", got)
	}
	if got := e.merged(names[0], "left4dead2/addons/metamod.vdf"); !strings.Contains(got, "metamod/bin/server") {
		t.Fatalf("the archive's metamod.vdf in the merged tree: %q", got)
	}
	if got := e.merged(names[0], "left4dead2/cfg/sourcemod/sourcemod.cfg"); got != "// sourcemod.cfg from the files overlay\n" {
		t.Fatalf("the files Overlay should hide the archive's sourcemod.cfg: %q", got)
	}
	for _, id := range items {
		got := e.merged(names[0], "left4dead2/addons/"+id+".vpk")
		if want := string(steamapi.VPK(id, 8<<10)); got != want {
			t.Fatalf("Workshop item %s in the merged tree: %d bytes, not the %d Steam serves (the archive's stale copy must be hidden)", id, len(got), len(want))
		}
	}
	if got := e.merged(names[0], "left4dead2/cfg/competitive.cfg"); got != "// competitive rules from git\n" {
		t.Fatalf("the git Overlay's config in the merged tree: %q", got)
	}
	if out, err := e.sb.Exec("ls", gameTree(t, e.sb, names[0])+"/README.md"); err == nil {
		t.Fatalf("the git Overlay shipped more than its subPath: %s", out)
	}
	e.noPasswordReported(names)

	// 20 Instances, one download of each source.
	if n := archives.requests("/sourcemod-1.tar.gz"); n != 1 {
		t.Fatalf("the archive was requested %d times for 20 Instances, want 1", n)
	}
	for _, id := range items {
		if n := steam.Downloads(id); n != 1 {
			t.Fatalf("Workshop item %s was downloaded %d times for 20 Instances, want 1", id, n)
		}
	}
	// l4mctl describe overlay shows the items as Steam described them.
	e.overlayDigest("addons", "")
	e.until("the Workshop items in the Overlay's status", 30*time.Second, func() (bool, string) {
		got := e.overlayObj("addons").Status.Items
		ok := len(got) == len(items)
		for i := range got {
			ok = ok && got[i].ID == items[i] && got[i].Title == catalog.Items[i].Title && got[i].Size == 8<<10 &&
				got[i].TimeUpdated != nil && got[i].TimeUpdated.Unix() == catalog.Items[i].TimeUpdated
		}
		return ok, fmt.Sprintf("%+v", got)
	})
	// ... and the commit the branch resolved to.
	e.overlayDigest("comp", "")
	e.until("the git commit in the Overlay's status", 30*time.Second, func() (bool, string) {
		st := e.overlayObj("comp").Status
		no := e.nodeObj().Status.NodeOverlayFor("default", "comp")
		return st.Commit == commit && no != nil && no.Commit == commit, fmt.Sprintf("Overlay %+v, node %+v", st, no)
	})
	digest1 := e.overlayDigest("sourcemod", "")
	if entries := e.storeEntries(); len(entries) != len(stack) || !slices.Contains(entries, treeKey(digest1)) {
		t.Fatalf("the store holds %v, want one entry per Overlay (%d), the archive's %s among them", entries, len(stack), treeKey(digest1))
	}

	// The agent killed and started again: the store and its index are
	// still there, so nothing is fetched again and no game restarts.
	pids := e.pids(names)
	e.sb.MustExec(t, "systemctl", "kill", "-s", "KILL", "l4m-node")
	e.waitAgentGone()
	restarted := time.Now()
	e.startAgent()
	e.waitSynced(restarted)
	e.until("the Node reports the Overlays Ready again", 30*time.Second, func() (bool, string) {
		for _, o := range stack {
			no := e.nodeObj().Status.NodeOverlayFor("default", o)
			if no == nil || no.Phase != v1.OverlayPhaseReady {
				return false, fmt.Sprintf("%s: %+v", o, no)
			}
		}
		return true, ""
	})
	e.allReady("the games answering the restarted agent's probes", names, 30*time.Second)
	for _, n := range names {
		if in := e.get(n); in.Status.MainPID != pids[n] {
			t.Fatalf("%s restarted with the agent: pid %d (was %d), %s", n, in.Status.MainPID, pids[n], conditionSummary(in))
		}
	}
	if n := archives.requests("/sourcemod-1.tar.gz"); n != 1 {
		t.Fatalf("the restarted agent fetched the archive again (%d requests)", n)
	}
	for _, id := range items {
		if n := steam.Downloads(id); n != 1 {
			t.Fatalf("the restarted agent downloaded Workshop item %s again (%d downloads)", id, n)
		}
	}

	// A new release: the empty games restart onto it, the one with a
	// player keeps the old one until the player leaves.
	occupied := e.get(names[7])
	e.rconAs(occupied, "l4m_join Zoey")
	e.waitFor(occupied.Name, "the player in status", func(in *v1.Instance) bool { return in.Status.Players == 1 })
	pids = e.pids(names)
	v2URL, v2Sum := archives.serve("/sourcemod-2.tar.gz", sourcemodRelease(t, "x.smx release 2\n", items[0]))
	e.setArchive(v2URL, v2Sum)
	digest2 := e.overlayDigest("sourcemod", digest1)
	empty := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == occupied.Name })
	e.until("the empty Instances restarted onto release 2", 90*time.Second, func() (bool, string) {
		for _, n := range empty {
			in := e.get(n)
			if !ready(in) || in.Status.MainPID == pids[n] || in.Status.PendingTemplateHash != "" {
				return false, fmt.Sprintf("%s: ready %v pid %d (was %d) pending %q", n, ready(in), in.Status.MainPID, pids[n], in.Status.PendingTemplateHash)
			}
		}
		return true, ""
	})
	for _, n := range empty {
		if got := e.merged(n, "left4dead2/addons/sourcemod/plugins/x.smx"); got != "x.smx release 2\n" {
			t.Fatalf("%s restarted but its merged tree has %q", n, got)
		}
	}
	busy := e.get(occupied.Name)
	if c := meta.FindStatusCondition(busy.Status.Conditions, v1.InstanceUpdatePending); busy.Status.MainPID != pids[occupied.Name] ||
		c == nil || c.Status != metav1.ConditionTrue || c.Reason != v1.ReasonWaitingForRollout {
		t.Fatalf("the occupied Instance was restarted or is not waiting: pid %d (was %d), %s", busy.Status.MainPID, pids[occupied.Name], conditionSummary(busy))
	}
	if got := e.merged(occupied.Name, "left4dead2/addons/sourcemod/plugins/x.smx"); got != "x.smx release 1\n" {
		t.Fatalf("the occupied game's tree changed under it: %q", got)
	}
	if n := archives.requests("/sourcemod-2.tar.gz"); n != 1 {
		t.Fatalf("release 2 was requested %d times, want 1", n)
	}
	if entries := e.storeEntries(); !slices.Contains(entries, treeKey(digest1)) || !slices.Contains(entries, treeKey(digest2)) {
		t.Fatalf("the store holds %v: want both releases (one is in use)", entries)
	}
	e.rconAs(busy, "l4m_leave Zoey")
	e.waitFor(occupied.Name, "the emptied Instance on release 2", func(in *v1.Instance) bool {
		return ready(in) && in.Status.MainPID != pids[occupied.Name] && in.Status.PendingTemplateHash == ""
	})
	if got := e.merged(occupied.Name, "left4dead2/addons/sourcemod/plugins/x.smx"); got != "x.smx release 2\n" {
		t.Fatalf("the emptied game restarted onto %q", got)
	}
	// No game runs release 1 now; the store keeps it as the previous one.
	e.until("release 1 kept as the previous", 30*time.Second, func() (bool, string) {
		no := e.nodeObj().Status.NodeOverlayFor("default", "sourcemod")
		entries := e.storeEntries()
		return no != nil && slices.Equal(no.Digests, []string{digest2, digest1}) && slices.Contains(entries, treeKey(digest1)),
			fmt.Sprintf("node %+v, store %v", no, entries)
	})

	// Poisoned releases: refused with the entry named, nothing of them
	// stored or mounted, every game on release 2.
	pids = e.pids(names)
	entries := e.storeEntries()
	for i, poison := range []struct {
		entry tarEntry
		name  string
	}{
		{tarEntry{Name: "../../etc/x", Body: "planted\n"}, "../../etc/x"},
		{tarEntry{Name: "addons/etc", Link: "/etc"}, "addons/etc"},
	} {
		path := fmt.Sprintf("/sourcemod-poisoned-%d.tar.gz", i)
		url, sum := archives.serve(path, tarGz(t, tarEntry{Name: "addons/sourcemod/plugins/x.smx", Body: "poisoned\n"}, poison.entry))
		e.setArchive(url, sum)
		e.until("the node refuses "+poison.name, 60*time.Second, func() (bool, string) {
			no := e.nodeObj().Status.NodeOverlayFor("default", "sourcemod")
			if no == nil {
				return false, "the Node reports no sourcemod Overlay"
			}
			return no.Phase == v1.OverlayPhaseFailed && no.Reason == "UnsafeEntry" && strings.Contains(no.Message, poison.name),
				fmt.Sprintf("%+v", *no)
		})
		e.until("the Instances say why", 30*time.Second, func() (bool, string) {
			for _, n := range names {
				c := meta.FindStatusCondition(e.get(n).Status.Conditions, v1.InstanceOverlaysReady)
				if c == nil || c.Status != metav1.ConditionFalse || c.Reason != "UnsafeEntry" || !strings.Contains(c.Message, poison.name) {
					return false, fmt.Sprintf("%s: OverlaysReady %+v", n, c)
				}
			}
			return true, ""
		})
		if got := e.storeEntries(); !slices.Equal(got, entries) {
			t.Fatalf("the poisoned release changed the store: %v, was %v", got, entries)
		}
		e.until("the poisoned release's staging removed", 10*time.Second, func() (bool, string) {
			left := e.stagingLeft()
			return len(left) == 0, fmt.Sprintf("%v, %d requests of %s", left, archives.requests(path), path)
		})
		// 20 Instances share the failure: one download until the retry.
		if n := archives.requests(path); n != 1 {
			t.Fatalf("%s was requested %d times, want once for the 20 Instances sharing it", path, n)
		}
		if out, err := e.sb.Exec("ls", "-la", "/etc/x"); err == nil {
			t.Fatalf("the poisoned entry landed on the host: %s", out)
		}
		if mounts := e.sb.MustExec(t, "cat", "/proc/self/mountinfo"); strings.Contains(mounts, "poisoned") {
			t.Fatalf("a mount on the host names the poisoned release:\n%s", mounts)
		}
		// Each game's own namespace holds its overlay: release 2's.
		for _, n := range names {
			mounts := e.sb.MustExec(t, "cat", "/proc/"+strconv.Itoa(int(pids[n]))+"/mountinfo")
			if strings.Contains(mounts, "poisoned") || !strings.Contains(mounts, treeKey(digest2)) {
				t.Fatalf("%s's mount should stack release 2 and nothing poisoned:\n%s", n, mounts)
			}
		}
		for _, n := range names {
			in := e.get(n)
			if in.Status.MainPID != pids[n] || !meta.IsStatusConditionTrue(in.Status.Conditions, v1.InstanceUnitActive) {
				t.Fatalf("%s was stopped or restarted by the poisoned release: pid %d (was %d), %s", n, in.Status.MainPID, pids[n], conditionSummary(in))
			}
		}
		if got := e.merged(names[3], "left4dead2/addons/sourcemod/plugins/x.smx"); got != "x.smx release 2\n" {
			t.Fatalf("a running game's tree after the poisoned release: %q", got)
		}
		// The Overlay says the new spec failed: not Ready on the
		// strength of the release the node still holds.
		e.until("the Overlay's status: the node failed "+poison.name, 30*time.Second, func() (bool, string) {
			ov := e.overlayObj("sourcemod")
			c := meta.FindStatusCondition(ov.Status.Conditions, v1.ConditionReady)
			return ov.Status.Failed == 1 && ov.Status.Ready == 0 && c != nil && c.Status == metav1.ConditionFalse && strings.Contains(c.Message, "UnsafeEntry"),
				fmt.Sprintf("%+v", ov.Status)
		})
	}
	for _, id := range items {
		if n := steam.Downloads(id); n != 1 {
			t.Fatalf("Workshop item %s was downloaded %d times, want 1 (its Overlay never changed)", id, n)
		}
	}

	// Back to release 2: still in the store, so nothing is fetched, the
	// games keep running, and the failure is gone from every status.
	e.setArchive(v2URL, v2Sum)
	e.until("the Instances stack release 2 again", 30*time.Second, func() (bool, string) {
		for _, n := range names {
			if c := meta.FindStatusCondition(e.get(n).Status.Conditions, v1.InstanceOverlaysReady); c == nil || c.Status != metav1.ConditionTrue {
				return false, fmt.Sprintf("%s: OverlaysReady %+v", n, c)
			}
		}
		no := e.nodeObj().Status.NodeOverlayFor("default", "sourcemod")
		return no != nil && no.Phase == v1.OverlayPhaseReady && no.Digest == digest2, fmt.Sprintf("node %+v", no)
	})
	if n := archives.requests("/sourcemod-2.tar.gz"); n != 1 {
		t.Fatalf("going back to release 2 fetched it again (%d requests)", n)
	}
	for _, n := range names {
		if in := e.get(n); in.Status.MainPID != pids[n] {
			t.Fatalf("%s restarted going back to the release it runs: pid %d (was %d)", n, in.Status.MainPID, pids[n])
		}
	}

	// The branch moves: at its checkInterval the node finds the new
	// commit, fetches it, and the (empty) games restart onto it.
	pids = e.pids(names)
	commit2 := repo.commit("stricter rules", map[string]string{"l4d2/cfg/competitive.cfg": "// competitive rules from git, take 2\n"})
	moved := time.Now()
	e.until("the games restarted onto the moved branch", 150*time.Second, func() (bool, string) {
		st := e.overlayObj("comp").Status
		if st.Commit != commit2 {
			return false, fmt.Sprintf("the Overlay's commit %s", st.Commit)
		}
		for _, n := range names {
			in := e.get(n)
			if !ready(in) || in.Status.MainPID == pids[n] || in.Status.PendingTemplateHash != "" {
				return false, fmt.Sprintf("%s: ready %v pid %d (was %d) pending %q", n, ready(in), in.Status.MainPID, pids[n], in.Status.PendingTemplateHash)
			}
		}
		return true, ""
	})
	t.Logf("the moved branch rolled out %s after the push", time.Since(moved).Round(time.Second))
	if got := e.merged(names[5], "left4dead2/cfg/competitive.cfg"); got != "// competitive rules from git, take 2\n" {
		t.Fatalf("restarted onto the moved branch, but the merged tree has %q", got)
	}
	if got := e.merged(names[5], "left4dead2/addons/sourcemod/plugins/x.smx"); got != "x.smx release 2\n" {
		t.Fatalf("the archive's release after the branch moved: %q", got)
	}

	// A Workshop author uploads a new version (time_updated moves). The
	// admin asks for a check rather than wait the hour: the node finds
	// the new version, fetches it, and the empty games restart onto it.
	pids = e.pids(names)
	updated := catalog
	updated.Items = append([]steamapi.Item(nil), catalog.Items...)
	updated.Items[0].TimeUpdated += 3600
	updated.Items[0].Content = steamapi.VPK(items[0]+" v2", 8<<10)
	steam.SetCatalog(updated)
	oldDigest := e.overlayObj("addons").Status.Digest
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, v1.AnnotationCheckRequestedAt, time.Now().UTC().Format(time.RFC3339))
	if _, err := e.admin.Patch(ctx, resources.Overlays, "default", "addons", "application/merge-patch+json", []byte(patch), false); err != nil {
		t.Fatal(err)
	}
	e.until("the games restarted onto the updated Workshop item", 90*time.Second, func() (bool, string) {
		st := e.overlayObj("addons").Status
		if st.Digest == oldDigest || len(st.Items) != len(items) || st.Items[0].TimeUpdated == nil || st.Items[0].TimeUpdated.Unix() != updated.Items[0].TimeUpdated {
			return false, fmt.Sprintf("the Overlay's status: %+v", st)
		}
		for _, n := range names {
			in := e.get(n)
			if !ready(in) || in.Status.MainPID == pids[n] || in.Status.PendingTemplateHash != "" {
				return false, fmt.Sprintf("%s: ready %v pid %d (was %d) pending %q", n, ready(in), in.Status.MainPID, pids[n], in.Status.PendingTemplateHash)
			}
		}
		return true, ""
	})
	if got := e.merged(names[7], "left4dead2/addons/"+items[0]+".vpk"); got != string(updated.Items[0].Content) {
		t.Fatalf("restarted onto the updated item, but the merged tree's %s.vpk is not its new version (%d bytes)", items[0], len(got))
	}
	if n := steam.Downloads(items[0]); n != 2 {
		t.Fatalf("the updated item was downloaded %d times in all, want 2 (once per version, for 20 Instances)", n)
	}

	// Nor after the rollout's and the failures' events.
	e.noPasswordReported(names)

	// Delete everything: no entry, no fetcher unit, no mount is left.
	for _, n := range names {
		if _, _, err := e.admin.Delete(ctx, instances, "default", n, false); err != nil {
			t.Fatal(err)
		}
	}
	e.until("every Instance gone", 90*time.Second, func() (bool, string) {
		list, err := e.admin.List(ctx, instances, "default", client.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		items, _ := meta.ExtractList(list)
		return len(items) == 0, fmt.Sprintf("%d Instances left", len(items))
	})
	// The Overlays still exist, but no Instance here uses them: their
	// entries, previous ones included, go.
	e.until("the store emptied", 60*time.Second, func() (bool, string) {
		got := e.storeEntries()
		return len(got) == 0, fmt.Sprint(got)
	})
	var index struct {
		Overlays map[string]any `json:"overlays"`
		Sources  map[string]any `json:"sources"`
	}
	if data, err := os.ReadFile(filepath.Join(e.sb.Left4meDir, "overlays", ".store", "index.json")); err != nil || json.Unmarshal(data, &index) != nil ||
		len(index.Overlays)+len(index.Sources) != 0 {
		t.Fatalf("the store's index still names entries: %s %v", data, err)
	}
	e.until("the Node reports no Overlay", 30*time.Second, func() (bool, string) {
		ovs := e.nodeObj().Status.Overlays
		return len(ovs) == 0, fmt.Sprintf("%+v", ovs)
	})
	if _, _, err := e.admin.Delete(ctx, blueprints, "default", "modded", false); err != nil {
		t.Fatal(err)
	}
	for _, o := range stack {
		if _, _, err := e.admin.Delete(ctx, resources.Overlays, "default", o, false); err != nil {
			t.Fatal(err)
		}
	}
	if left := e.stagingLeft(); len(left) != 0 {
		t.Fatalf("staging directories left: %v", left)
	}
	if units, _ := e.sb.Exec("systemctl", "list-units", "--all", "--no-legend", "--plain", "l4m-fetch-*"); strings.TrimSpace(units) != "" {
		t.Fatalf("fetcher units left:\n%s", units)
	}
	if mounts := e.sb.MustExec(t, "cat", "/proc/self/mountinfo"); strings.Contains(mounts, "/var/lib/left4me/") {
		t.Fatalf("mounts left:\n%s", mounts)
	}
	for _, n := range names {
		assertGone(t, e, "default."+n)
	}
	t.Logf("done in %s", time.Since(began).Round(time.Millisecond))
}

// allReady waits until every named Instance is Ready.
func (e *env) allReady(what string, names []string, timeout time.Duration) {
	e.t.Helper()
	e.until(what, timeout, func() (bool, string) {
		for _, n := range names {
			obj, err := e.admin.Get(context.Background(), instances, "default", n)
			if err != nil {
				return false, err.Error()
			}
			if in := obj.(*v1.Instance); !ready(in) {
				return false, n + ": " + conditionSummary(in)
			}
		}
		return true, ""
	})
}

func (e *env) pids(names []string) map[string]int32 {
	out := map[string]int32{}
	for _, n := range names {
		out[n] = e.get(n).Status.MainPID
	}
	return out
}

// setArchive points the sourcemod Overlay at another archive.
func (e *env) setArchive(url, sum string) {
	e.t.Helper()
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"source": map[string]any{"archive": map[string]any{"url": url, "sha256": sum}}}})
	if _, err := e.admin.Patch(context.Background(), resources.Overlays, "default", "sourcemod", "application/merge-patch+json", patch, false); err != nil {
		e.t.Fatalf("point the sourcemod Overlay at %s: %v", url, err)
	}
}

// overlayDigest waits until the Overlay's status names a digest other
// than not (and the node holds it), and returns it.
func (e *env) overlayDigest(name, not string) string {
	e.t.Helper()
	var d string
	e.until("Overlay "+name+"'s digest", 60*time.Second, func() (bool, string) {
		ov := e.overlayObj(name)
		d = ov.Status.Digest
		no := e.nodeObj().Status.NodeOverlayFor("default", name)
		return d != "" && d != not && no != nil && no.HasDigest(d), fmt.Sprintf("status %+v, node %+v", ov.Status, no)
	})
	return d
}

// noPasswordReported: no Instance's RCON password is in the Node's or an
// Instance's status, or in an event.
func (e *env) noPasswordReported(names []string) {
	e.t.Helper()
	ctx := context.Background()
	var reported []string
	node, _ := json.Marshal(e.nodeObj())
	reported = append(reported, "the Node: "+string(node))
	for _, kind := range []*resources.Resource{instances, resources.Events, resources.Overlays} {
		list, err := e.admin.List(ctx, kind, "default", client.ListOptions{})
		if err != nil {
			e.t.Fatal(err)
		}
		data, _ := json.Marshal(list)
		reported = append(reported, kind.Kind+": "+string(data))
	}
	for _, n := range names {
		pw := e.rconPassword(n)
		for _, r := range reported {
			if strings.Contains(r, pw) {
				e.t.Fatalf("%s's RCON password is reported in %s", n, r[:strings.Index(r, ":")])
			}
		}
	}
}
