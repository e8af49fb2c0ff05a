package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"text/tabwriter"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

// TestInstallBenchmark: N Instances (default 300) run over the fleet
// test's three sandbox hosts; Valve "publishes" a new build and the admin
// asks the nodes to check. Timed: from that request to every (empty)
// Instance running the new build — the nodes' check, download, seal,
// re-render and the rollout's restarts — side by side in the same run with
// the steamcmd double's own download of the same build (its two passes run
// directly on a host, no left4me), the floor the node's part is compared
// to. Run it with `make bench-install`.
func TestInstallBenchmark(t *testing.T) {
	if os.Getenv("L4M_BENCH") == "" {
		t.Skip("a benchmark: run with L4M_BENCH=1 (make bench-install)")
	}
	if !inFleetNetns(t) {
		return
	}
	n := 300
	if v, err := strconv.Atoi(os.Getenv("N")); err == nil && v > 0 && v <= 300 {
		n = v
	}
	f := newFleet(t, false, "--rate-limit", "0")
	// The floor: the double's two passes into a fresh directory, 5 times.
	var bare []time.Duration
	for i := range 5 {
		bare = append(bare, f.bareDownload(fmt.Sprintf("/var/lib/left4me/bench-download-%d", i)))
	}

	f.apply(&v1.Installation{ObjectMeta: metav1.ObjectMeta{Name: "l4d2"}, Spec: v1.InstallationSpec{Build: v1.BuildLatest}})
	f.eventually("l4d2 ready on all three", 2*time.Minute, func() (bool, string) {
		in := f.installationObj("l4d2")
		return in.Status.Ready == 3, fmt.Sprintf("%+v", in.Status)
	})
	// Every empty Instance at once: the rollout's limit is not what is
	// measured here.
	f.apply(&v1.Blueprint{ObjectMeta: meta_("bench"), Spec: v1.BlueprintSpec{Game: v1.GameSpec{MaxPlayers: 4},
		Rollout: v1.RolloutSpec{MaxUnavailable: int32(n)}}})
	f.createAll(n)

	var rounds []time.Duration
	for i, build := range []string{buildB, buildC} {
		before := f.snapshot()
		began := time.Now()
		f.publish(build, nil)
		f.requestCheck("l4d2")
		f.eventually(fmt.Sprintf("all %d Instances on build %s", n, build), 10*time.Minute, func() (bool, string) {
			all := f.instances()
			on := 0
			for _, in := range all {
				if ready(in) && in.Status.Build == build && in.Status.MainPID != before[in.Name].pid {
					on++
				}
			}
			return on == n && len(all) == n, fmt.Sprintf("%d of %d", on, n)
		})
		rounds = append(rounds, time.Since(began))
		t.Logf("round %d: build %s on all %d Instances after %v", i+1, build, n, rounds[i])
	}
	slices.Sort(bare)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "new build, %d Instances over 3 hosts\tmedian\tall\t\n", n)
	fmt.Fprintf(tw, "steamcmd double alone: two-pass download on a host\t%v\t%v\t\n", bare[len(bare)/2].Round(time.Millisecond), bare)
	fmt.Fprintf(tw, "left4me: check request → every Instance on the build\t%v\t%v\t\n", median(rounds).Round(time.Millisecond), rounds)
	fmt.Fprintf(tw, "ratio left4me / download alone\t%.1fx\t\t\n", float64(median(rounds))/float64(bare[len(bare)/2]))
	tw.Flush()
}

// bareDownload runs the steamcmd double's two passes on fleet-1 directly
// (as root, no unit, no checks), the way a script would, and times them.
func (f *fleet) bareDownload(dir string) time.Duration {
	sb := f.hosts["fleet-1"]
	exe := "/var/lib/left4me/steamcmd/steamcmd.sh"
	began := time.Now()
	for _, platform := range []string{"windows", "linux"} {
		sb.MustExec(f.t, exe, "+@sSteamCmdForcePlatformType", platform, "+force_install_dir", dir,
			"+login", "anonymous", "+app_update", "222860", "validate", "+quit")
	}
	took := time.Since(began)
	os.RemoveAll(filepath.Join(sb.Left4meDir, filepath.Base(dir)))
	return took
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
