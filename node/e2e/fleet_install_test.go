package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
)

// Builds "Steam" publishes on the public branch during the fleet test, in
// the range of real Left 4 Dead 2 build ids.
const (
	buildA = "17910101"
	buildB = "17920202"
	buildC = "17930303"
	// buildSize is what app_info_print reports for each build (8 GiB, about
	// the real server's size); the double writes far less.
	buildSize = 8 << 30
)

// steamRemote is the steamcmd double's remote.json: what "Steam" holds.
type steamRemote struct {
	Branches map[string]steamBranch `json:"branches"`
	Failure  string                 `json:"failure,omitempty"`
}

type steamBranch struct {
	BuildID string `json:"buildid"`
	Size    int64  `json:"size"`
}

// installSteamcmd puts the steamcmd double where l4m-node looks for
// steamcmd by default (<root>/steamcmd/steamcmd.sh), the srcds double
// beside it (what it installs as srcds_run) and "Steam" holding buildA.
func (f *fleet) installSteamcmd(host string) {
	dir := filepath.Join(host, "steamcmd")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.t.Fatal(err)
	}
	copyPath(f.t, filepath.Join(f.bin, "steamcmd-double"), filepath.Join(dir, "steamcmd.sh"))
	copyPath(f.t, filepath.Join(f.bin, "srcds_run"), filepath.Join(dir, "srcds-double"))
	f.writeRemote(host, steamRemote{Branches: map[string]steamBranch{"public": {BuildID: buildA, Size: buildSize}}})
}

// writeRemote replaces a host's remote.json in one rename: a steamcmd run
// reads either the old or the new one.
func (f *fleet) writeRemote(host string, r steamRemote) {
	f.t.Helper()
	data, _ := json.Marshal(r)
	path := filepath.Join(host, "steamcmd", "remote.json")
	if err := os.WriteFile(path+".tmp", data, 0o644); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		f.t.Fatal(err)
	}
}

// publish is Valve shipping a build: every host's "Steam" has it, and the
// named hosts' downloads fail the given way.
func (f *fleet) publish(build string, failures map[string]string) {
	for name, sb := range f.hosts {
		f.writeRemote(sb.Left4meDir, steamRemote{Branches: map[string]steamBranch{"public": {BuildID: build, Size: buildSize}}, Failure: failures[name]})
	}
}

// requestCheck is the admin's `l4mctl annotate installation l4d2
// left4me.io/checkRequestedAt=... --overwrite` after Valve's announcement.
func (f *fleet) requestCheck(name string) {
	f.patchInstallation(name, fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, v1.AnnotationCheckRequestedAt, time.Now().UTC().Format(time.RFC3339Nano)))
}

func (f *fleet) patchInstallation(name, body string) {
	f.t.Helper()
	if _, err := f.admin.Patch(context.Background(), resources.Installations, "", name, "application/merge-patch+json", []byte(body), false); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fleet) installationObj(name string) *v1.Installation {
	f.t.Helper()
	obj, err := f.admin.Get(context.Background(), resources.Installations, "", name)
	if err != nil {
		f.t.Fatal(err)
	}
	return obj.(*v1.Installation)
}

// nodeInstallation is what a Node reports of an Installation.
func (f *fleet) nodeInstallation(node, name string) v1.NodeInstallation {
	f.t.Helper()
	obj, err := f.admin.Get(context.Background(), resources.Nodes, "", node)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, ni := range obj.(*v1.Node).Status.Installations {
		if ni.Name == name {
			return ni
		}
	}
	return v1.NodeInstallation{}
}

// buildsOnDisk lists installation/<name>/builds/ on a host, sorted.
func (f *fleet) buildsOnDisk(node, name string) []string {
	entries, _ := os.ReadDir(filepath.Join(f.hosts[node].Left4meDir, "installation", name, "builds"))
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	slices.Sort(out)
	return out
}

// onBuild waits until every named Instance is Ready on build, restarted
// (a PID other than before's) unless keep says it must not have been.
func (f *fleet) onBuild(what string, names []string, build string, before map[string]int32, timeout time.Duration) {
	f.t.Helper()
	f.eventually(what, timeout, func() (bool, string) {
		for _, n := range names {
			in := f.get(n)
			if !ready(in) || in.Status.Build != build || in.Status.Installation != "l4d2" {
				return false, fmt.Sprintf("%s on %s: build %q, %s", n, in.Spec.NodeName, in.Status.Build, conditionSummary(in))
			}
			if before != nil && in.Status.MainPID == before[n] {
				return false, fmt.Sprintf("%s: still pid %d", n, in.Status.MainPID)
			}
		}
		return true, ""
	})
}

func (f *fleet) pids(names []string) map[string]int32 {
	out := map[string]int32{}
	for _, n := range names {
		out[n] = f.get(n).Status.MainPID
	}
	return out
}

// installs: the game's whole lifecycle, from bare hosts. The hosts start
// with no game; the Installation l4d2 has each install buildA through
// steamcmd (the double). Valve ships buildB: two hosts download it beside
// the running games and their empty servers restart onto it, an occupied
// one keeps buildA until its player leaves, and the third host's download
// breaks half way: it says why, keeps its games, and retries once Steam
// serves it. Pinning buildA rolls everything back; a buildC published
// meanwhile is seen but not installed; unpinning installs it, and buildA,
// no longer used nor the previous build, is removed from every host.
func (f *fleet) installs() {
	began := time.Now()
	f.apply(&v1.Installation{ObjectMeta: metav1.ObjectMeta{Name: "l4d2"}, Spec: v1.InstallationSpec{Build: v1.BuildLatest}})
	f.eventually("bare hosts: l4d2 ready on all three", 120*time.Second, func() (bool, string) {
		in := f.installationObj("l4d2")
		return in.Status.Ready == 3 && in.Status.WantedBuild == buildA, fmt.Sprintf("%+v", in.Status)
	})
	f.record("bare hosts: Installation created to its build ready on all 3", time.Since(began))
	for node, sb := range f.hosts {
		if got := f.buildsOnDisk(node, "l4d2"); !slices.Equal(got, []string{buildA}) {
			f.t.Fatalf("%s: builds on disk %v, want [%s]", node, got, buildA)
		}
		// Sealed: root's, so neither steamcmd's account nor a game can
		// change a build once it is in place.
		st, err := os.Lstat(filepath.Join(sb.Left4meDir, "installation", "l4d2", "builds", buildA, "srcds_run"))
		if err != nil || st.Sys().(*syscall.Stat_t).Uid != 0 || !st.Mode().IsRegular() {
			f.t.Fatalf("%s: the build's srcds_run: %v %v", node, err, st)
		}
		if ni := f.nodeInstallation(node, "l4d2"); ni.Phase != v1.InstallReady || !slices.Equal(ni.Builds, []string{buildA}) || ni.LatestSeen != buildA {
			f.t.Fatalf("%s reports %+v", node, ni)
		}
	}

	f.apply(&v1.Blueprint{ObjectMeta: meta_("patchme"), Spec: v1.BlueprintSpec{RescheduleAfterNodeLost: fleetReschedule}})
	games := names("patch", 6)
	for _, n := range games {
		f.apply(&v1.Instance{ObjectMeta: meta_(n), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "patchme"}}})
	}
	f.allReady("the games on buildA", games, 90*time.Second)
	f.onBuild("the games report buildA", games, buildA, nil, 10*time.Second)
	var occupied string
	var onBroken, onGood []string
	for _, n := range games {
		switch in := f.get(n); {
		case in.Spec.NodeName == "fleet-3":
			onBroken = append(onBroken, n)
		case occupied == "":
			occupied = n
		default:
			onGood = append(onGood, n)
		}
	}
	if occupied == "" || len(onGood) == 0 || len(onBroken) == 0 {
		f.t.Fatalf("the games should spread over all hosts: occupied %q, on fleet-1/2 %v, on fleet-3 %v", occupied, onGood, onBroken)
	}
	f.rcon(f.get(occupied), "l4m_join Zoey")
	f.eventually("the player in status", 30*time.Second, func() (bool, string) {
		return f.get(occupied).Status.Players == 1, "no player yet"
	})
	before := f.pids(games)

	// Valve ships buildB; fleet-3's download stops half way.
	began = time.Now()
	f.publish(buildB, map[string]string{"fleet-3": "half"})
	f.requestCheck("l4d2")
	f.eventually("fleet-1 and fleet-2 have buildB beside buildA; fleet-3 failed", 90*time.Second, func() (bool, string) {
		for _, node := range []string{"fleet-1", "fleet-2"} {
			if ni := f.nodeInstallation(node, "l4d2"); ni.Phase != v1.InstallReady || !slices.Equal(ni.Builds, []string{buildB, buildA}) {
				return false, fmt.Sprintf("%s: %+v", node, ni)
			}
		}
		ni := f.nodeInstallation("fleet-3", "l4d2")
		return ni.Phase == v1.InstallFailed && ni.Reason == "IncompleteDownload", fmt.Sprintf("fleet-3: %+v", ni)
	})
	f.record("buildB published: to 2 hosts ready, the third failed", time.Since(began))
	if st := f.installationObj("l4d2").Status; st.WantedBuild != buildB || st.Ready != 2 || st.Failed != 1 {
		f.t.Fatalf("the Installation's status after fleet-3's failure: %+v", st)
	}
	f.onBuild("the empty games on fleet-1/2 restarted onto buildB", onGood, buildB, before, 90*time.Second)
	f.record("buildB published: to the empty games on it", time.Since(began))
	for _, n := range append([]string{occupied}, onBroken...) {
		in := f.get(n)
		if in.Status.MainPID != before[n] || in.Status.Build != buildA || !ready(in) {
			f.t.Fatalf("%s (on %s, occupied or on the failed host) was touched: pid %d (was %d), build %s, %s",
				n, in.Spec.NodeName, in.Status.MainPID, before[n], in.Status.Build, conditionSummary(in))
		}
	}
	if in := f.get(occupied); !meta.IsStatusConditionTrue(in.Status.Conditions, v1.InstanceUpdatePending) {
		f.t.Fatalf("the occupied game should say an update waits: %s", conditionSummary(in))
	}
	if got := f.buildsOnDisk("fleet-3", "l4d2"); !slices.Equal(got, []string{buildA}) {
		f.t.Fatalf("fleet-3's half download became a build: %v", got)
	}

	// Steam serves fleet-3 again; the admin's check request ends its
	// backoff, and the retry succeeds.
	began = time.Now()
	f.publish(buildB, nil)
	f.requestCheck("l4d2")
	f.onBuild("fleet-3's games on buildB after its retry", onBroken, buildB, before, 90*time.Second)
	f.record("fleet-3 retried: to its games on buildB", time.Since(began))
	if in := f.get(occupied); in.Status.MainPID != before[occupied] || in.Status.Build != buildA {
		f.t.Fatalf("the occupied game moved with its player on: %+v", in.Status)
	}
	f.rcon(f.get(occupied), "l4m_leave Zoey")
	f.onBuild("the emptied game on buildB", []string{occupied}, buildB, before, 60*time.Second)

	// Roll back: pin buildA, still kept as the previous build.
	before = f.pids(games)
	began = time.Now()
	f.patchInstallation("l4d2", fmt.Sprintf(`{"spec":{"build":%q}}`, buildA))
	f.onBuild("rolled back onto the pinned buildA", games, buildA, before, 90*time.Second)
	f.record("buildA pinned: to every game back on it", time.Since(began))

	// buildC appears: seen, not installed while buildA is pinned.
	before = f.pids(games)
	f.publish(buildC, nil)
	f.requestCheck("l4d2")
	f.eventually("every node sees buildC", 60*time.Second, func() (bool, string) {
		for node := range f.hosts {
			if ni := f.nodeInstallation(node, "l4d2"); ni.LatestSeen != buildC {
				return false, fmt.Sprintf("%s: %+v", node, ni)
			}
		}
		return true, ""
	})
	for node := range f.hosts {
		if ni := f.nodeInstallation(node, "l4d2"); ni.Downloading != "" || !slices.Equal(f.buildsOnDisk(node, "l4d2"), []string{buildA, buildB}) {
			f.t.Fatalf("%s downloads or holds more than its pinned and previous builds: %+v, on disk %v", node, ni, f.buildsOnDisk(node, "l4d2"))
		}
	}
	if after := f.pids(games); !maps.Equal(after, before) {
		f.t.Fatalf("a pinned build's games restarted: %v -> %v", before, after)
	}

	// Unpinned: buildC everywhere; buildA goes from every disk.
	began = time.Now()
	f.patchInstallation("l4d2", `{"spec":{"build":"latest"}}`)
	f.onBuild("every game on buildC", games, buildC, before, 120*time.Second)
	f.eventually("buildA removed from every host", 60*time.Second, func() (bool, string) {
		for node := range f.hosts {
			if got := f.buildsOnDisk(node, "l4d2"); !slices.Equal(got, []string{buildB, buildC}) {
				return false, fmt.Sprintf("%s: %v", node, got)
			}
		}
		return true, ""
	})
	f.record("unpinned: to every game on buildC, buildA removed", time.Since(began))

	// Deleting the Installation while games run on it: it stays,
	// Terminating, and no game notices.
	before = f.pids(games)
	if _, _, err := f.admin.Delete(context.Background(), resources.Installations, "", "l4d2", false); err != nil {
		f.t.Fatal(err)
	}
	if in := f.installationObj("l4d2"); in.DeletionTimestamp == nil || !slices.Contains(in.Finalizers, v1.FinalizerInstallationInUse) {
		f.t.Fatalf("an Installation games run on should stay, held by its finalizer: %+v", in.ObjectMeta)
	}
	f.eventually("every node knows the Installation is being deleted", 30*time.Second, func() (bool, string) {
		for node := range f.hosts {
			if ni := f.nodeInstallation(node, "l4d2"); ni.Reason != "InstallationDeleting" {
				return false, fmt.Sprintf("%s: %+v", node, ni)
			}
		}
		return true, ""
	})
	f.onBuild("the games keep running on the deleted Installation's build", games, buildC, nil, 10*time.Second)
	if after := f.pids(games); !maps.Equal(after, before) {
		f.t.Fatalf("deleting the Installation restarted games: %v -> %v", before, after)
	}
	// The games go (so the next phases count only their own); then the
	// Installation, and its builds with it.
	for _, n := range games {
		if _, _, err := f.admin.Delete(context.Background(), resources.Instances, "default", n, false); err != nil {
			f.t.Fatal(err)
		}
	}
	f.eventually("the phase's games gone", 60*time.Second, func() (bool, string) {
		left := len(f.instances())
		return left == 0, fmt.Sprintf("%d left", left)
	})
	f.eventually("the Installation gone, and its files from every host", 60*time.Second, func() (bool, string) {
		if _, err := f.admin.Get(context.Background(), resources.Installations, "", "l4d2"); !apierrors.IsNotFound(err) {
			return false, fmt.Sprintf("still there: %v", err)
		}
		for node, sb := range f.hosts {
			if _, err := os.Lstat(filepath.Join(sb.Left4meDir, "installation", "l4d2")); !os.IsNotExist(err) {
				return false, fmt.Sprintf("%s still has installation/l4d2: %v", node, err)
			}
		}
		return true, ""
	})
	// The next phases' games run on it.
	f.apply(&v1.Installation{ObjectMeta: metav1.ObjectMeta{Name: "l4d2"}, Spec: v1.InstallationSpec{Build: v1.BuildLatest}})
	f.eventually("l4d2 installed again", 60*time.Second, func() (bool, string) {
		in := f.installationObj("l4d2")
		return in.Status.Ready == 3 && in.Status.WantedBuild == buildC, fmt.Sprintf("%+v", in.Status)
	})
}
