package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/hack/sandboxtest"
)

// TestFleetBenchmark starts N Instances (default 300) over the three
// sandbox hosts of the fleet test, from the API write to all Ready, side by
// side in the same run with starting the same game double N times directly
// with systemd-run on the same hosts (one starter per host, as one agent
// per host) until all answer A2S. Run it with `make bench-fleet`
// (L4M_BENCH=1; N sets the count, at most 300: 100 ports per host).
func TestFleetBenchmark(t *testing.T) {
	if os.Getenv("L4M_BENCH") == "" {
		t.Skip("a benchmark: run with L4M_BENCH=1 (make bench-fleet)")
	}
	if !inFleetNetns(t) {
		return
	}
	n := 300
	if v, err := strconv.Atoi(os.Getenv("N")); err == nil && v > 0 && v <= 300 {
		n = v
	}
	// The admin's per-credential limit (100/s by default; clients wait out
	// 429s) would measure the limiter, not the fleet.
	f := newFleet(t, true, "--rate-limit", "0")
	perHost := map[string]int{}
	for i := range n {
		perHost[fmt.Sprintf("fleet-%d", i%3+1)]++
	}

	// Bare: per host, one systemd-run after another (each returns once its
	// unit started), every unit timed from its call to its first A2S answer.
	bareEach, bareTotal := f.bareStarts(perHost, bareMode{})
	f.stopBare(perHost, bareMode{})
	// The same with each of what left4me adds on the host: the game unit's
	// sandbox; an overlay mount per game (systemd-mount, a transient .mount
	// unit), the game started in it.
	hardEach, hardTotal := f.bareStarts(perHost, bareMode{hardened: true})
	f.stopBare(perHost, bareMode{hardened: true})
	mountEach, mountTotal := f.bareStarts(perHost, bareMode{mount: true})
	f.stopBare(perHost, bareMode{mount: true})

	// Through left4me: n creates (16 at a time), each timed from its create
	// call to the watch event that says Ready.
	f.apply(&v1.Blueprint{ObjectMeta: meta_("bench"), Spec: v1.BlueprintSpec{Game: v1.GameSpec{MaxPlayers: 4}}})
	apiEach, apiTotal := f.createAll(n)

	if dump := os.Getenv("L4M_AGENT_DUMP"); dump != "" {
		logs, _ := f.hosts["fleet-1"].Exec("journalctl", "-u", "l4m-node", "--no-pager", "-o", "short-precise")
		os.WriteFile(dump, []byte(logs), 0o644)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%d games over 3 hosts\tmedian each\tp99 each\ttotal\t\n", n)
	fmt.Fprintf(tw, "bare systemd-run → A2S answers\t%v\t%v\t%v\t\n", pct(bareEach, 0.5), pct(bareEach, 0.99), bareTotal.Round(time.Millisecond))
	fmt.Fprintf(tw, "bare systemd-run with a game unit's hardening → A2S\t%v\t%v\t%v\t\n", pct(hardEach, 0.5), pct(hardEach, 0.99), hardTotal.Round(time.Millisecond))
	fmt.Fprintf(tw, "bare systemd-mount overlay + systemd-run → A2S\t%v\t%v\t%v\t\n", pct(mountEach, 0.5), pct(mountEach, 0.99), mountTotal.Round(time.Millisecond))
	fmt.Fprintf(tw, "API create → Ready (A2S, via the agent)\t%v\t%v\t%v\t\n", pct(apiEach, 0.5), pct(apiEach, 0.99), apiTotal.Round(time.Millisecond))
	fmt.Fprintf(tw, "ratio left4me / bare systemd-run\t%.1fx\t\t%.1fx\t\n",
		float64(pct(apiEach, 0.5))/float64(pct(bareEach, 0.5)), float64(apiTotal)/float64(bareTotal))
	fmt.Fprintf(tw, "ratio left4me / bare hardened\t%.1fx\t\t%.1fx\t\n",
		float64(pct(apiEach, 0.5))/float64(pct(hardEach, 0.5)), float64(apiTotal)/float64(hardTotal))
	fmt.Fprintf(tw, "ratio left4me / bare mount + run\t%.1fx\t\t%.1fx\t\n",
		float64(pct(apiEach, 0.5))/float64(pct(mountEach, 0.5)), float64(apiTotal)/float64(mountTotal))
	tw.Flush()
}

// bareStarts starts perHost game doubles on each host without left4me, as
// m says, and times each from its first command to its first A2S answer.
func (f *fleet) bareStarts(perHost map[string]int, m bareMode) ([]time.Duration, time.Duration) {
	var mu sync.Mutex
	var each []time.Duration
	var wg sync.WaitGroup
	began := time.Now()
	for name, sb := range f.hosts {
		os.WriteFile(sb.Left4meDir+"/installation/left4dead2/cfg/server.cfg", []byte("hostname bare\n"), 0o644)
		addr := "10.77.0.1" + name[len("fleet-"):]
		wg.Add(1)
		go func(sb *sandboxtest.Sandbox) {
			defer wg.Done()
			started := make([]time.Time, perHost[name])
			for i := range perHost[name] {
				started[i] = time.Now()
				if err := m.start(sb, i, 33000+i, 34000+i); err != nil {
					f.t.Error(err)
					return
				}
			}
			pending := map[int]bool{}
			for i := range perHost[name] {
				pending[i] = true
			}
			deadline := time.Now().Add(2 * time.Minute)
			for len(pending) > 0 && time.Now().Before(deadline) {
				for i := range pending {
					if _, err := queryAt(addr, int32(33000+i)); err == nil {
						mu.Lock()
						each = append(each, time.Since(started[i]))
						mu.Unlock()
						delete(pending, i)
					}
				}
			}
			if len(pending) > 0 {
				f.t.Errorf("%d bare games on %s never answered", len(pending), name)
			}
		}(sb)
	}
	wg.Wait()
	if f.t.Failed() {
		f.t.FailNow()
	}
	return each, time.Since(began)
}

func (f *fleet) stopBare(perHost map[string]int, m bareMode) {
	for name, sb := range f.hosts {
		for i := range perHost[name] {
			m.stop(sb, i)
		}
	}
}

func (f *fleet) createAll(n int) ([]time.Duration, time.Duration) {
	ctx := context.Background()
	w, err := f.admin.Watch(ctx, resources.Instances, "default", client.ListOptions{LabelSelector: "bench=yes"})
	if err != nil {
		f.t.Fatal(err)
	}
	defer w.Stop()
	var mu sync.Mutex
	created := map[string]time.Time{}
	began := time.Now()
	go func() {
		sem := make(chan struct{}, 16)
		for i := range n {
			sem <- struct{}{}
			go func() {
				defer func() { <-sem }()
				name := fmt.Sprintf("bench-%03d", i)
				in := &v1.Instance{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"bench": "yes"}},
					Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "bench"}}}
				mu.Lock()
				created[name] = time.Now()
				mu.Unlock()
				if _, err := f.admin.Create(ctx, resources.Instances, in, false); err != nil {
					f.t.Error(err)
				}
			}()
		}
	}()
	var each []time.Duration
	done := map[string]bool{}
	stages := newStageTimes()
	defer stages.print()
	timeout := time.After(5 * time.Minute)
	for len(done) < n {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				f.t.Fatal("the watch ended")
			}
			in, isInstance := ev.Object.(*v1.Instance)
			if !isInstance || ev.Type == watch.Deleted || done[in.Name] {
				continue
			}
			mu.Lock()
			since := time.Since(created[in.Name])
			mu.Unlock()
			stages.observe(in, since)
			if !meta.IsStatusConditionTrue(in.Status.Conditions, v1.ConditionReady) {
				continue
			}
			each = append(each, since)
			done[in.Name] = true
		case <-timeout:
			f.t.Fatalf("only %d of %d Ready after 5 minutes", len(done), n)
		}
	}
	return each, time.Since(began)
}

// stageTimes records, for each Instance condition, when the watch first saw
// it True (from the Instance's create call), so a benchmark shows where the
// time between create and Ready goes.
type stageTimes struct {
	first map[string]map[string]time.Duration // condition → Instance → since create
}

// benchStages are the Instance conditions in the order they become True.
var benchStages = []string{v1.InstanceScheduled, v1.InstanceOverlaysReady, v1.InstanceInstallationReady,
	v1.InstanceMounted, v1.InstanceUnitActive, v1.InstanceReady}

func newStageTimes() *stageTimes {
	s := &stageTimes{first: map[string]map[string]time.Duration{}}
	for _, c := range benchStages {
		s.first[c] = map[string]time.Duration{}
	}
	return s
}

func (s *stageTimes) observe(in *v1.Instance, since time.Duration) {
	for _, c := range benchStages {
		if _, seen := s.first[c][in.Name]; !seen && meta.IsStatusConditionTrue(in.Status.Conditions, c) {
			s.first[c][in.Name] = since
		}
	}
}

// print writes each stage's median and p90 time from create, and the time
// the last Instance reached it.
func (s *stageTimes) print() {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "condition True, from create\tInstances\tmedian\tp90\tlast\t\n")
	for _, c := range benchStages {
		var d []time.Duration
		for _, v := range s.first[c] {
			d = append(d, v)
		}
		if len(d) == 0 {
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%v\t%v\t%v\t\n", c, len(d), pct(d, 0.5), pct(d, 0.9), pct(d, 1))
	}
	tw.Flush()
}
