package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/version"
	"github.com/left4me/left4me/node/safefs"
	"github.com/left4me/left4me/node/unit"
)

// The node's metrics are read from the agent's state when Prometheus
// scrapes (a custom Collector), not kept in gauges the agent would have to
// update by hand: an Instance that is gone has no series at the next
// scrape, and nothing can drift. Reading the state (snapshot) and
// formatting it (nodeCollector) are apart, so each is tested alone.

// DefaultCgroupRoot is where cgroup v2 is mounted; game units live in
// <root>/left4me.slice/l4m-<ns>.<name>.service.
const DefaultCgroupRoot = "/sys/fs/cgroup"

// a2sBuckets are the A2S answer-time histogram's upper bounds in seconds:
// a healthy game on loopback answers in well under a millisecond, a busy
// one in a few, a hung one not within the probe's 1 s timeout.
var a2sBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}

// latency is one game's A2S answer times as a histogram's counts, kept in
// its probe (and so dropped with it).
type latency struct {
	counts []uint64 // per bucket, not cumulative
	count  uint64
	sum    float64
}

func (l *latency) observe(seconds float64) {
	if l.counts == nil {
		l.counts = make([]uint64, len(a2sBuckets))
	}
	for i, b := range a2sBuckets {
		if seconds <= b {
			l.counts[i]++
			break
		}
	}
	l.count++
	l.sum += seconds
}

// cumulative is the histogram's buckets as Prometheus wants them.
func (l latency) cumulative() map[float64]uint64 {
	out := make(map[float64]uint64, len(a2sBuckets))
	var n uint64
	for i, b := range a2sBuckets {
		if l.counts != nil {
			n += l.counts[i]
		}
		out[b] = n
	}
	return out
}

// instanceSample is what the metrics say of one Instance bound here.
type instanceSample struct {
	Namespace, Name, Blueprint string
	Phase                      v1.InstancePhase
	// Up: the game answers A2S (as readiness counts it).
	Up                  bool
	Players, MaxPlayers int32
	// Restarts is systemd's NRestarts of the unit, as the agent last read it.
	Restarts int32
	// HasCgroup: CPUSeconds and MemoryBytes were read from the unit's cgroup.
	HasCgroup   bool
	CPUSeconds  float64
	MemoryBytes float64
	Latency     latency
}

// fetchCount is the overlay fetches of one source kind since the agent
// started.
type fetchCount struct {
	Started, Failed uint64
}

// nodeSample is everything the node's metrics say at one scrape.
type nodeSample struct {
	Instances []instanceSample
	// Builds are the ready builds by Installation.
	Builds  map[string][]string
	Fetches map[string]fetchCount
}

// fetchStats counts overlay fetches by source kind.
type fetchStats struct {
	mu sync.Mutex
	by map[string]fetchCount
}

func (f *fetchStats) add(kind string, failed bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.by == nil {
		f.by = map[string]fetchCount{}
	}
	c := f.by[kind]
	if failed {
		c.Failed++
	} else {
		c.Started++
	}
	f.by[kind] = c
}

func (f *fetchStats) snapshot() map[string]fetchCount {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]fetchCount, len(f.by))
	for k, v := range f.by {
		out[k] = v
	}
	return out
}

// snapshot reads the agent's current state: the Instances the watch last
// saw (their status as this agent wrote it), the probes' latest answers and
// the units' cgroups.
func (a *Agent) snapshot() nodeSample {
	a.mu.Lock()
	ins := make([]*v1.Instance, 0, len(a.instances))
	for _, in := range a.instances {
		ins = append(ins, in)
	}
	probes := make(map[string]*probe, len(a.probes))
	for id, p := range a.probes {
		probes[id] = p
	}
	a.mu.Unlock()
	cg, err := safefs.Open(a.cgroupRoot())
	if err != nil {
		cg = nil
	} else {
		defer cg.Close()
	}
	out := nodeSample{Builds: map[string][]string{}, Fetches: a.fetches.snapshot()}
	for _, in := range ins {
		id := unit.ID(in.Namespace, in.Name)
		s := instanceSample{Namespace: in.Namespace, Name: in.Name, Blueprint: in.Spec.BlueprintRef.Name,
			Phase: in.Status.Phase, Players: in.Status.Players, Restarts: in.Status.Restarts}
		if p := probes[id]; p != nil {
			up, info, _ := p.result()
			s.Up = up
			if up {
				s.Players, s.MaxPlayers = int32(info.Players), int32(info.MaxPlayers)
			}
			p.mu.Lock()
			s.Latency = latency{counts: append([]uint64(nil), p.latency.counts...), count: p.latency.count, sum: p.latency.sum}
			p.mu.Unlock()
		}
		if cg != nil {
			s.CPUSeconds, s.MemoryBytes, s.HasCgroup = readCgroup(cg, unit.ServiceName(id), a.procRoot())
		}
		out.Instances = append(out.Instances, s)
	}
	for _, inst := range a.nodeInstallations() {
		out.Builds[inst.Name] = inst.Builds
	}
	if build, present := installationBuild(a.paths.Installation()); present && build != "" {
		// The predecessor's hand-made installation/, which no Installation
		// names ("/" keeps it apart from every Installation's name).
		out.Builds[legacyInstallation] = []string{build}
	}
	return out
}

func (a *Agent) procRoot() string {
	if a.o.ProcRoot != "" {
		return a.o.ProcRoot
	}
	return "/proc"
}

func (a *Agent) cgroupRoot() string {
	if a.o.CgroupRoot != "" {
		return a.o.CgroupRoot
	}
	return DefaultCgroupRoot
}

// legacyInstallation is the installation label of the hand-made
// installation/ directory's build.
const legacyInstallation = "installation/"

// cgroupFileMax bounds what is read of one cgroup file.
const cgroupFileMax = 4096

// readCgroup reads a unit's CPU time (cpu.stat usage_usec) and memory
// (memory.current) below the cgroup root, through safefs: no symlink is
// followed and nothing is read past cgroupFileMax. Where the memory
// controller is not enabled for the unit (a host on the hybrid v1/v2
// layout), memory is its processes' resident memory, read from procRoot.
// A unit without a cgroup (stopped) has none (ok false).
func readCgroup(root *safefs.Dir, service, procRoot string) (cpuSeconds, memoryBytes float64, ok bool) {
	dir := unit.Slice + "/" + service
	stat, err := root.ReadFile(dir+"/cpu.stat", cgroupFileMax)
	if err != nil {
		return 0, 0, false
	}
	usec, ok := cpuStatUsage(string(stat))
	if !ok {
		return 0, 0, false
	}
	if mem, err := root.ReadFile(dir+"/memory.current", cgroupFileMax); err == nil {
		bytes, err := strconv.ParseUint(strings.TrimSpace(string(mem)), 10, 64)
		if err != nil {
			return 0, 0, false
		}
		return float64(usec) / 1e6, float64(bytes), true
	}
	procs, err := root.ReadFile(dir+"/cgroup.procs", cgroupProcsMax)
	if err != nil {
		return 0, 0, false
	}
	return float64(usec) / 1e6, residentBytes(string(procs), procRoot), true
}

// cgroupProcsMax bounds what is read of cgroup.procs: far more than the
// games' TasksMax worth of PIDs.
const cgroupProcsMax = 64 << 10

// residentBytes sums the resident memory (statm's second field, in pages)
// of the PIDs listed one per line. A process that is gone counts nothing.
func residentBytes(pids, procRoot string) float64 {
	page := float64(os.Getpagesize())
	var sum float64
	for _, line := range strings.Split(pids, "\n") {
		pid, err := strconv.ParseUint(strings.TrimSpace(line), 10, 31)
		if err != nil || pid == 0 {
			continue
		}
		statm, err := readBounded(filepath.Join(procRoot, strconv.FormatUint(pid, 10), "statm"), cgroupFileMax)
		if err != nil {
			continue
		}
		fields := strings.Fields(string(statm))
		if len(fields) < 2 {
			continue
		}
		if pages, err := strconv.ParseUint(fields[1], 10, 64); err == nil {
			sum += float64(pages) * page
		}
	}
	return sum
}

// readBounded reads at most max bytes of a file the kernel makes (procfs).
func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max))
}

// cpuStatUsage finds usage_usec in a cgroup v2 cpu.stat.
func cpuStatUsage(stat string) (uint64, bool) {
	for _, line := range strings.Split(stat, "\n") {
		if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// instancePhases are the phases left4me_node_instances is reported for,
// each always present (0 when no Instance is in it).
var instancePhases = []v1.InstancePhase{v1.PhasePending, v1.PhaseScheduled, v1.PhaseStarting, v1.PhaseRunning,
	v1.PhaseStopped, v1.PhaseFailed, v1.PhaseTerminating, v1.PhaseUnknown}

var (
	instLabels   = []string{"namespace", "instance"}
	descBuild    = prometheus.NewDesc("left4me_node_build_info", "l4m-node's version (value 1).", []string{"version", "goversion"}, nil)
	descGame     = prometheus.NewDesc("left4me_node_installation_build_info", "A game build ready on this node, by Installation (value 1).", []string{"installation", "build"}, nil)
	descPhase    = prometheus.NewDesc("left4me_node_instances", "Instances bound to this node by phase.", []string{"phase"}, nil)
	descFetches  = prometheus.NewDesc("left4me_node_overlay_fetches_total", "Overlay sources fetched (or written) into the node's store, by source kind.", []string{"source"}, nil)
	descFailures = prometheus.NewDesc("left4me_node_overlay_fetch_failures_total", "Overlay fetches that failed, by source kind.", []string{"source"}, nil)
	descInfo     = prometheus.NewDesc("left4me_instance_info", "An Instance bound to this node (value 1), with its Blueprint and phase.", append(instLabels, "blueprint", "phase"), nil)
	descUp       = prometheus.NewDesc("left4me_instance_up", "1 when the game answers A2S queries, else 0.", instLabels, nil)
	descPlayers  = prometheus.NewDesc("left4me_instance_players", "Players on the game (A2S, else the last status).", instLabels, nil)
	descMax      = prometheus.NewDesc("left4me_instance_max_players", "The game's player limit (A2S; 0 when it does not answer).", instLabels, nil)
	descRestarts = prometheus.NewDesc("left4me_instance_restarts_total", "systemd's automatic restarts of the game's unit (NRestarts; starts again at 0 when the agent starts the unit anew).", instLabels, nil)
	descCPU      = prometheus.NewDesc("left4me_instance_cpu_seconds_total", "CPU time of the game's unit (cgroup cpu.stat usage_usec).", instLabels, nil)
	descMemory   = prometheus.NewDesc("left4me_instance_memory_bytes", "Memory of the game's unit (cgroup memory.current).", instLabels, nil)
	descA2S      = prometheus.NewDesc("left4me_instance_a2s_duration_seconds", "Time the game took to answer the agent's A2S_INFO probes (timeouts excluded).", instLabels, nil)
)

// nodeCollector formats a nodeSample as Prometheus metrics.
type nodeCollector struct {
	read func() nodeSample
}

func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBuild, descGame, descPhase, descFetches, descFailures, descInfo, descUp,
		descPlayers, descMax, descRestarts, descCPU, descMemory, descA2S} {
		ch <- d
	}
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.read()
	v := version.Get()
	ch <- prometheus.MustNewConstMetric(descBuild, prometheus.GaugeValue, 1, v.Version, v.GoVersion)
	for name, builds := range s.Builds {
		for _, b := range builds {
			ch <- prometheus.MustNewConstMetric(descGame, prometheus.GaugeValue, 1, name, b)
		}
	}
	phases := map[v1.InstancePhase]float64{}
	for _, in := range s.Instances {
		phase := in.Phase
		if !knownPhase(phase) {
			phase = v1.PhaseUnknown
		}
		phases[phase]++
	}
	for _, p := range instancePhases {
		ch <- prometheus.MustNewConstMetric(descPhase, prometheus.GaugeValue, phases[p], string(p))
	}
	kinds := make([]string, 0, len(s.Fetches))
	for k := range s.Fetches {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		ch <- prometheus.MustNewConstMetric(descFetches, prometheus.CounterValue, float64(s.Fetches[k].Started), k)
		ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, float64(s.Fetches[k].Failed), k)
	}
	for _, in := range s.Instances {
		l := []string{in.Namespace, in.Name}
		phase := in.Phase
		if !knownPhase(phase) {
			phase = v1.PhaseUnknown
		}
		ch <- prometheus.MustNewConstMetric(descInfo, prometheus.GaugeValue, 1, in.Namespace, in.Name, in.Blueprint, string(phase))
		up := 0.0
		if in.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up, l...)
		ch <- prometheus.MustNewConstMetric(descPlayers, prometheus.GaugeValue, float64(in.Players), l...)
		ch <- prometheus.MustNewConstMetric(descMax, prometheus.GaugeValue, float64(in.MaxPlayers), l...)
		ch <- prometheus.MustNewConstMetric(descRestarts, prometheus.CounterValue, float64(in.Restarts), l...)
		if in.HasCgroup {
			ch <- prometheus.MustNewConstMetric(descCPU, prometheus.CounterValue, in.CPUSeconds, l...)
			ch <- prometheus.MustNewConstMetric(descMemory, prometheus.GaugeValue, in.MemoryBytes, l...)
		}
		ch <- prometheus.MustNewConstHistogram(descA2S, in.Latency.count, in.Latency.sum, in.Latency.cumulative(), l...)
	}
}

func knownPhase(p v1.InstancePhase) bool {
	for _, k := range instancePhases {
		if k == p {
			return true
		}
	}
	return false
}

// newMetricsRegistry is the node's registry: its own (several agents live
// in one test process), with the Go runtime's and the process's metrics.
func newMetricsRegistry(read func() nodeSample) *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(nodeCollector{read: read}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Metrics server timeouts: a scrape is one small GET.
const (
	metricsReadHeaderTimeout = 5 * time.Second
	metricsWriteTimeout      = 30 * time.Second
	metricsIdleTimeout       = 2 * time.Minute
	metricsStopTimeout       = 5 * time.Second
)

// metricsServer serves /metrics over plain HTTP.
type metricsServer struct {
	listener net.Listener
	srv      *http.Server
	served   chan struct{}
}

// startMetricsServer listens on addr and serves /metrics until stop.
func (a *Agent) startMetricsServer(ctx context.Context, addr string) (*metricsServer, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics server: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(newMetricsRegistry(a.snapshot), promhttp.HandlerOpts{ErrorLog: nil, Timeout: metricsWriteTimeout / 2}))
	s := &metricsServer{listener: l, served: make(chan struct{}), srv: &http.Server{Handler: mux,
		ReadHeaderTimeout: metricsReadHeaderTimeout, ReadTimeout: metricsReadHeaderTimeout, WriteTimeout: metricsWriteTimeout,
		IdleTimeout: metricsIdleTimeout, BaseContext: func(net.Listener) context.Context { return ctx }}}
	go func() {
		defer close(s.served)
		if err := s.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.o.Log.Error(err, "metrics server stopped")
		}
	}()
	return s, nil
}

// Addr is where the server listens (for tests on port 0).
func (s *metricsServer) Addr() string { return s.listener.Addr().String() }

// stop closes the listener and waits for the scrapes in flight.
func (s *metricsServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), metricsStopTimeout)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
	}
	<-s.served
}
