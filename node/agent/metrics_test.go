package agent

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/node/safefs"
	"github.com/left4me/left4me/node/unit"
)

// gather scrapes a registry holding only c.
func gather(t *testing.T, c prometheus.Collector) map[string]*dto.MetricFamily {
	t.Helper()
	r := prometheus.NewPedanticRegistry()
	r.MustRegister(c)
	fams, err := r.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

// sample is the metric of family name whose labels include want (nil: none).
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	f := fams[name]
	if f == nil {
		return nil
	}
	for _, m := range f.Metric {
		ok := true
		for k, v := range want {
			found := false
			for _, l := range m.Label {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			ok = ok && found
		}
		if ok {
			return m
		}
	}
	return nil
}

func value(m *dto.Metric) float64 {
	switch {
	case m == nil:
		return -1
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	return -1
}

func TestCollectorFormatsTheState(t *testing.T) {
	var lat latency
	lat.observe(0.0003)
	lat.observe(0.02)
	lat.observe(3) // above every bucket: counted, in +Inf only
	state := nodeSample{
		Instances: []instanceSample{
			{Namespace: "team", Name: "a", Blueprint: "versus", Phase: v1.PhaseRunning, Up: true, Players: 3, MaxPlayers: 8, Restarts: 2,
				HasCgroup: true, CPUSeconds: 1.5, MemoryBytes: 4096, Latency: lat},
			{Namespace: "team", Name: "b", Blueprint: "coop", Phase: v1.PhaseFailed},
			{Namespace: "team", Name: "c", Blueprint: "coop", Phase: "Bogus"},
		},
		Builds:  map[string][]string{"l4d2": {"9001", "9000"}},
		Fetches: map[string]fetchCount{"git": {Started: 4, Failed: 1}},
	}
	fams := gather(t, nodeCollector{read: func() nodeSample { return state }})
	a := map[string]string{"namespace": "team", "instance": "a"}
	b := map[string]string{"namespace": "team", "instance": "b"}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"left4me_instance_up", a, 1}, {"left4me_instance_up", b, 0},
		{"left4me_instance_players", a, 3}, {"left4me_instance_max_players", a, 8},
		{"left4me_instance_restarts_total", a, 2},
		{"left4me_instance_cpu_seconds_total", a, 1.5}, {"left4me_instance_memory_bytes", a, 4096},
		{"left4me_instance_info", map[string]string{"instance": "a", "blueprint": "versus", "phase": "Running"}, 1},
		{"left4me_instance_info", map[string]string{"instance": "c", "phase": "Unknown"}, 1},
		{"left4me_node_instances", map[string]string{"phase": "Running"}, 1},
		{"left4me_node_instances", map[string]string{"phase": "Failed"}, 1},
		{"left4me_node_instances", map[string]string{"phase": "Unknown"}, 1},
		{"left4me_node_instances", map[string]string{"phase": "Stopped"}, 0},
		{"left4me_node_installation_build_info", map[string]string{"installation": "l4d2", "build": "9000"}, 1},
		{"left4me_node_overlay_fetches_total", map[string]string{"source": "git"}, 4},
		{"left4me_node_overlay_fetch_failures_total", map[string]string{"source": "git"}, 1},
		{"left4me_node_build_info", nil, 1},
	} {
		if got := value(sample(fams, c.name, c.labels)); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// A game without a cgroup (stopped) has no CPU or memory series rather
	// than a misleading 0.
	if m := sample(fams, "left4me_instance_memory_bytes", b); m != nil {
		t.Errorf("memory of an Instance without a cgroup: %v", m)
	}
	h := sample(fams, "left4me_instance_a2s_duration_seconds", a).GetHistogram()
	if h.GetSampleCount() != 3 || h.GetSampleSum() != 3.0203 {
		t.Errorf("A2S histogram count %d sum %v", h.GetSampleCount(), h.GetSampleSum())
	}
	for _, bk := range h.Bucket {
		want := map[float64]uint64{0.0005: 1, 0.025: 2, 1: 2}[bk.GetUpperBound()]
		if want != 0 && bk.GetCumulativeCount() != want {
			t.Errorf("bucket le=%v: %d, want %d", bk.GetUpperBound(), bk.GetCumulativeCount(), want)
		}
	}
}

// writeCgroup makes a unit's cgroup files below root.
func writeCgroup(t *testing.T, root, service, cpuStat, memory string) {
	t.Helper()
	dir := filepath.Join(root, unit.Slice, service)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "cpu.stat"), []byte(cpuStat), 0o644)
	os.WriteFile(filepath.Join(dir, "memory.current"), []byte(memory), 0o644)
}

func TestReadCgroup(t *testing.T) {
	root := t.TempDir()
	writeCgroup(t, root, "l4m-team.a.service", "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n", "1048576\n")
	writeCgroup(t, root, "l4m-team.garbled.service", "usage_usec lots\n", "1\n")
	writeCgroup(t, root, "l4m-team.huge.service", "usage_usec 1\n"+strings.Repeat("x", 2*cgroupFileMax), "1\n")
	// A link in place of a unit's cgroup is not followed.
	os.Symlink(filepath.Join(root, unit.Slice, "l4m-team.a.service"), filepath.Join(root, unit.Slice, "l4m-team.link.service"))
	// A cgroup without the memory controller (a hybrid v1/v2 host): the
	// resident memory of its processes, from procfs.
	proc := t.TempDir()
	writeCgroup(t, root, "l4m-team.v1.service", "usage_usec 1000000\n", "")
	os.Remove(filepath.Join(root, unit.Slice, "l4m-team.v1.service", "memory.current"))
	os.WriteFile(filepath.Join(root, unit.Slice, "l4m-team.v1.service", "cgroup.procs"), []byte("12\n13\n99\nbogus\n"), 0o644)
	for pid, statm := range map[string]string{"12": "1000 3 1 0 0 0 0\n", "13": "500 2 1 0 0 0 0\n"} {
		os.MkdirAll(filepath.Join(proc, pid), 0o755)
		os.WriteFile(filepath.Join(proc, pid, "statm"), []byte(statm), 0o644)
	}
	d, err := safefs.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if cpu, mem, ok := readCgroup(d, "l4m-team.a.service", proc); !ok || cpu != 2.5 || mem != 1048576 {
		t.Errorf("cgroup of a: cpu %v mem %v ok %v", cpu, mem, ok)
	}
	if cpu, mem, ok := readCgroup(d, "l4m-team.v1.service", proc); !ok || cpu != 1 || mem != float64(5*os.Getpagesize()) {
		t.Errorf("cgroup without memory.current: cpu %v mem %v ok %v", cpu, mem, ok)
	}
	for _, svc := range []string{"l4m-team.garbled.service", "l4m-team.huge.service", "l4m-team.link.service", "l4m-team.missing.service"} {
		if _, _, ok := readCgroup(d, svc, proc); ok {
			t.Errorf("%s: read as a cgroup", svc)
		}
	}
}

// scrape GETs the agent's /metrics.
func scrape(t *testing.T, a *Agent) string {
	t.Helper()
	resp, err := http.Get("http://" + a.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s\n%s", resp.Status, body)
	}
	return string(body)
}

// TestMetricsFollowTheInstances: the agent's /metrics shows an Instance
// bound here with its unit's cgroup, and drops it once it is deleted.
func TestMetricsFollowTheInstances(t *testing.T) {
	cg := t.TempDir()
	h := startWith(t, func(_ *server.Server, o *Options) { o.MetricsListen, o.CgroupRoot = "127.0.0.1:0", cg })
	h.create(
		&v1.Overlay{ObjectMeta: om("mods"), Spec: v1.OverlaySpec{Source: v1.OverlaySource{Path: "mods"}}},
		&v1.Blueprint{ObjectMeta: om("bp"), Spec: v1.BlueprintSpec{Overlays: []string{"mods"}}},
		&v1.Instance{ObjectMeta: om("srv"), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "bp"}, NodeName: "n1"}},
	)
	writeCgroup(t, cg, unit.ServiceName(unit.ID("default", "srv")), "usage_usec 7000000\n", "123456\n")
	h.until("srv", "Starting or Running", func(in *v1.Instance) bool {
		return in.Status.Phase == v1.PhaseStarting || in.Status.Phase == v1.PhaseRunning
	})
	waitScrape(t, h.agent, `left4me_instance_memory_bytes{instance="srv",namespace="default"} 123456`)
	body := scrape(t, h.agent)
	for _, want := range []string{`left4me_instance_cpu_seconds_total{instance="srv",namespace="default"} 7`,
		`left4me_instance_info{blueprint="bp",instance="srv",namespace="default"`, `left4me_node_build_info{`, `go_goroutines `} {
		if !strings.Contains(body, want) {
			t.Errorf("no %s in:\n%s", want, body)
		}
	}
	if _, _, err := h.admin.Delete(context.Background(), instanceRes, "default", "srv", false); err != nil {
		t.Fatal(err)
	}
	h.gone("srv")
	waitScrape(t, h.agent, `instance="srv"`, true)
}

// waitScrape scrapes until the body holds want (or, with absent, until
// it does not).
func waitScrape(t *testing.T, a *Agent, want string, absent ...bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		body := scrape(t, a)
		if strings.Contains(body, want) != (len(absent) > 0 && absent[0]) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 15s, present is %v for %s in:\n%s", !(len(absent) > 0 && absent[0]), want, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
