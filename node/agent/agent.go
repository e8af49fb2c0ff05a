package agent

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/workqueue"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/node/gameuser"
	"github.com/left4me/left4me/node/systemd"
	"github.com/left4me/left4me/node/unit"
)

// Finalizer keeps an Instance until its node has cleaned up after it.
const Finalizer = v1.FinalizerNodeCleanup

// Options configure an Agent.
type Options struct {
	Client   *client.Client
	NodeName string
	Root     string
	PortMin  int32
	PortMax  int32
	// Capacity is what the scheduler may place here.
	Capacity v1.NodeCapacity
	Labels   map[string]string
	Systemd  systemd.Manager
	Log      logr.Logger
	// Address is where players reach this node (status.address).
	Address string
	// MountDriver is unit.DriverOverlayfs (default) or unit.DriverFuseOverlayfs.
	MountDriver string
	// HostMounts detaches the host's copies of kernel overlays that their
	// game units could not (hostmount.Host). Nil: they stay until the
	// host unmounts them.
	HostMounts HostMounter
	// Accounts gives each Instance's game a uid and gid of its own
	// (default gameuser.System with the default id range).
	Accounts gameuser.Accounts
	// LogsListen is where the log server listens ("" : none); CAPEM is the
	// cluster CA its clients' certificates must chain to.
	LogsListen string
	CAPEM      []byte
	// MetricsListen is where /metrics is served over plain HTTP ("": not
	// served).
	MetricsListen string
	// CgroupRoot is where cgroup v2 is mounted (default DefaultCgroupRoot),
	// read for the games' CPU time and memory.
	CgroupRoot string
	// ProcRoot is procfs (default /proc), where a game's resident memory is
	// read when its cgroup has no memory controller.
	ProcRoot string
	// Workers is how many Instances are reconciled at once (default
	// DefaultWorkers).
	Workers int
	// ParallelStarts is how many games may be starting at once, from the
	// host mount of their overlay to their unit active (default
	// DefaultParallelStarts; see startSlots).
	ParallelStarts int
	// SteamcmdDir is steamcmd's directory, whose linux32/steamclient.so the
	// agent copies for the games (default <Root>/steamcmd).
	SteamcmdDir string
	// Steamcmd fetches the builds of Installations (nil: this node installs
	// nothing, and Blueprints naming an Installation wait).
	Steamcmd Steamcmd
	// Materializers write the fetched Overlay sources into the node's
	// store, by source kind (v1alpha1.SourceFiles, ...). FilesMaterializer
	// is the default for files; a kind without one (archive, git, workshop
	// until the fetcher plugs in) holds its Instances with
	// OverlaySourceNotSupported.
	Materializers map[string]Materializer
	// Heartbeat, Resync and Probe are the loop periods (defaults 10s, 60s,
	// 3s). Resync is the safety net of a level-triggered loop; watches and
	// unit signals do the real work. Each Heartbeat renews the node's
	// Lease; the Node's status is written only when it changed.
	Heartbeat, Resync, Probe time.Duration
	// StatusReport is how long the Node's status may go unwritten while
	// nothing it reports changes (default DefaultStatusReport), so readers
	// of status.heartbeatTime alone still see it move.
	StatusReport time.Duration
}

// Agent is one node's control loop.
type Agent struct {
	o Options
	// bgCtx is Run's context, for the background overlay fetches (bg),
	// which Run waits for.
	bgCtx context.Context
	bg    sync.WaitGroup
	paths unit.Paths
	// steamClientMu serializes copySteamClient.
	steamClientMu sync.Mutex
	queue         workqueue.TypedRateLimitingInterface[string]

	logs      *logServer
	metrics   *metricsServer
	fetches   fetchStats
	mu        sync.Mutex
	instances map[string]*v1.Instance // by "ns/name", as the watch last saw them
	own       map[string]string       // by "ns/name": resourceVersion of this agent's last write
	// readySince is Ready's transition time (zero: the last heartbeat failed).
	readySince metav1.Time
	// hb is the heartbeat's state: the Lease and the Node as the API last
	// returned them.
	hb heartbeatState
	// listed is closed after the first complete list of this node's
	// Instances. Until then an Instance missing from the map says nothing
	// (the API may be down): nothing is torn down or started.
	listed     chan struct{}
	listedOnce sync.Once
	// unsynced are the keys of the first full list (and orphan units) not
	// reconciled yet since the agent started; syncedAt is when the last of
	// them was (zero: not yet), which the heartbeat reports.
	unsynced map[string]bool
	syncedAt metav1.Time

	inst *installations
	// ov is the fetched Overlays and the store they are kept in.
	ov *overlayState
	// statusNudge asks the heartbeat for a status write now, if it changed.
	statusNudge chan struct{}

	refsMu sync.Mutex
	refs   map[string]map[string]v1.Object // "blueprints/<ns>" -> name -> object
	probes map[string]*probe               // by unit ID
	// slots bounds the games starting at once (see startSlots).
	slots *startSlots
	// steamClientErr is why the last game got no Steam client library, so
	// that it is logged when it changes, not at every start (under mu).
	steamClientErr string
}

var (
	instanceRes  = resources.Instances
	blueprintRes = resources.Blueprints
	overlayRes   = resources.Overlays
	nodeRes      = resources.Nodes
	leaseRes     = resources.Leases
)

// New returns an agent; Run starts it.
func New(o Options) *Agent {
	if o.Heartbeat == 0 {
		o.Heartbeat = 10 * time.Second
	}
	if o.Resync == 0 {
		o.Resync = time.Minute
	}
	if o.Probe == 0 {
		o.Probe = 3 * time.Second
	}
	if o.StatusReport == 0 {
		o.StatusReport = DefaultStatusReport
	}
	if o.Address == "" {
		o.Address = "127.0.0.1"
	}
	if o.Accounts == nil {
		o.Accounts = &gameuser.System{}
	}
	ms := map[string]Materializer{v1.SourceFiles: FilesMaterializer{}}
	for kind, m := range o.Materializers {
		ms[kind] = m
	}
	o.Materializers = ms
	return &Agent{
		o: o, paths: unit.Paths{Root: o.Root, SteamcmdDir: o.SteamcmdDir},
		queue:     workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		instances: map[string]*v1.Instance{}, own: map[string]string{}, probes: map[string]*probe{}, listed: make(chan struct{}),
		slots: newStartSlots(o.ParallelStarts),
		refs:  map[string]map[string]v1.Object{}, inst: newInstallations(), ov: newOverlayState(), statusNudge: make(chan struct{}, 1),
	}
}

// Run registers the Node and reconciles until ctx ends. It returns only
// when everything it started has stopped: every goroutine of the agent
// (the loops below, the reference watches followReferences starts per
// namespace, the probes probeLoop sends, the log server and its streams)
// is joined here, directly or by the loop that started it, so a stopped
// agent leaves no watch on the API, no query in flight and no journalctl
// behind (its tests check this with goleak).
func (a *Agent) Run(ctx context.Context) error {
	for _, d := range []string{a.paths.Overlays(), filepath.Join(a.o.Root, "instances"), filepath.Join(a.o.Root, "runtime")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	a.openStore()
	bgCtx, stopBg := context.WithCancel(ctx)
	a.ov.mu.Lock()
	a.bgCtx = bgCtx
	a.ov.mu.Unlock()
	// Last: the background fetches end with Run (their units are stopped).
	defer func() { stopBg(); a.bg.Wait() }()
	// The queue's own goroutines end with it, also when Run gives up early.
	defer a.queue.ShutDown()
	var wg sync.WaitGroup
	defer wg.Wait()
	run := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	if a.o.LogsListen != "" {
		ls, err := a.startLogServer(ctx, a.o.LogsListen, a.o.CAPEM)
		if err != nil {
			return err
		}
		a.logs = ls
		// Deferred after wg.Wait, so it runs first: the log server stops
		// (its streams end with ctx) whether Run returns early or not.
		defer ls.stop()
	}
	if a.o.MetricsListen != "" {
		ms, err := a.startMetricsServer(ctx, a.o.MetricsListen)
		if err != nil {
			return err
		}
		a.mu.Lock()
		a.metrics = ms
		a.mu.Unlock()
		defer ms.stop()
	}
	if err := a.register(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while registering: not a failure
		}
		return err
	}
	changes, err := a.o.Systemd.Changes(ctx)
	if err != nil {
		return err
	}
	run(a.watchInstances)
	run(a.heartbeat)
	run(a.watchOwnNode)
	run(a.probeLoop)
	run(a.followReferences)
	run(a.followInstallations)
	run(a.collectStoreLoop)
	run(func(ctx context.Context) { a.followUnits(ctx, changes) })
	run(func(ctx context.Context) { every(ctx, a.o.Resync, a.enqueueAll) })
	run(func(ctx context.Context) { <-ctx.Done(); a.queue.ShutDown() })
	// Nothing is rendered before both this node's Instances and the
	// Installations are known: an Instance rendered without its
	// Installation would move onto installation/ and restart.
	for _, listed := range []chan struct{}{a.listed, a.inst.listed} {
		select {
		case <-listed:
		case <-ctx.Done():
		}
	}
	workers := a.o.Workers
	if workers <= 0 {
		workers = DefaultWorkers
	}
	for range workers {
		run(a.work)
	}
	// Everything runs until ctx ends; the deferred calls then stop the log
	// server and wait for the rest.
	<-ctx.Done()
	return nil
}

// HostMounter detaches mounts in the host's mount namespace: the copies of
// games' overlays their units could not let go of (see unit.Service).
type HostMounter interface {
	Detach(where string) error
}

// DefaultWorkers is how many Instances one agent realizes at once: starting
// a game is mostly waiting (for systemd, the API, the disk), so a host
// with many games to start should not start them one by one.
const DefaultWorkers = 4

// work reconciles queued Instances until the queue shuts down. The queue
// never hands one key to two workers at once.
func (a *Agent) work(ctx context.Context) {
	for {
		key, quit := a.queue.Get()
		if quit {
			return
		}
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		began := time.Now()
		err := a.reconcile(rctx, key)
		cancel()
		a.markSynced(ctx, key)
		a.slots.done(key)
		for _, k := range a.slots.wake() {
			a.queue.Add(k)
		}
		if log := a.o.Log.V(1); log.Enabled() {
			log.Info("reconciled", "instance", key, "took", time.Since(began), "error", err)
		}
		if err != nil && ctx.Err() == nil {
			a.o.Log.Error(err, "reconcile failed; retrying", "instance", key)
			a.queue.AddRateLimited(key)
		} else {
			a.queue.Forget(key)
		}
		a.queue.Done(key)
	}
}

func key(ns, name string) string { return ns + "/" + name }

// enqueueAll queues every game this node runs or should run. Games whose
// Instance is no longer bound here (deleted while the agent was away, or
// moved to another node while this one was cut off) go first: a copy that
// runs elsewhere now must stop before anything else happens here.
func (a *Agent) enqueueAll() {
	orphans := a.orphanKeys()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, k := range orphans {
		a.queue.Add(k)
	}
	for k := range a.instances {
		a.queue.Add(k)
	}
}

// orphanKeys are the Instances this host has a game unit of but that are
// not bound to it (any more).
func (a *Agent) orphanKeys() []string {
	files, err := a.o.Systemd.UnitFiles()
	if err != nil {
		a.o.Log.Error(err, "cannot list this host's game units; orphans wait for the next resync")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var keys []string
	for _, f := range files {
		if ns, name, ok := unit.ParseServiceName(f); ok && a.instances[key(ns, name)] == nil {
			keys = append(keys, key(ns, name))
		}
	}
	return keys
}

// markSynced records that key was reconciled; when that was the last of
// the first full list, the agent says so in its Node's status at once.
func (a *Agent) markSynced(ctx context.Context, key string) {
	a.mu.Lock()
	if a.unsynced == nil || !a.syncedAt.IsZero() {
		a.mu.Unlock()
		return
	}
	delete(a.unsynced, key)
	done := len(a.unsynced) == 0
	if done {
		a.syncedAt = metav1.Now()
		a.o.Log.Info("every Instance reconciled since start")
	}
	a.mu.Unlock()
	if done {
		a.wakeStoreGC() // which Overlays are used is known now
		if err := a.writeNodeStatus(ctx); err != nil && ctx.Err() == nil {
			a.o.Log.Info("heartbeat failed", "error", err.Error())
		}
	}
}

func (a *Agent) followUnits(ctx context.Context, changes <-chan string) {
	for {
		select {
		case <-ctx.Done():
			return
		case name, ok := <-changes:
			if !ok {
				return
			}
			if ns, n, ok := unit.ParseServiceName(name); ok {
				a.queue.Add(key(ns, n))
			}
		}
	}
}

// watchInstances lists, then watches, the Instances bound to this node,
// relisting whenever the watch ends (410 Gone included).
func (a *Agent) watchInstances(ctx context.Context) {
	sel := "spec.nodeName=" + a.o.NodeName
	backoff := time.Second
	for ctx.Err() == nil {
		list, err := a.o.Client.List(ctx, instanceRes, "", client.ListOptions{FieldSelector: sel})
		if err != nil {
			a.o.Log.Info("cannot list instances; retrying", "error", err.Error(), "in", backoff)
			sleep(ctx, backoff)
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = time.Second
		fresh := map[string]*v1.Instance{}
		for i := range list.(*v1.InstanceList).Items {
			in := &list.(*v1.InstanceList).Items[i]
			fresh[key(in.Namespace, in.Name)] = in
		}
		a.mu.Lock()
		for k := range a.instances {
			if fresh[k] == nil {
				a.queue.Add(k)
			}
		}
		a.instances = fresh
		a.mu.Unlock()
		a.listedOnce.Do(func() {
			orphans := a.orphanKeys()
			a.mu.Lock()
			a.unsynced = map[string]bool{}
			for k := range fresh {
				a.unsynced[k] = true
			}
			for _, k := range orphans {
				a.unsynced[k] = true
			}
			a.mu.Unlock()
			close(a.listed)
			a.markSynced(ctx, "") // nothing to do counts as synced
		})
		a.enqueueAll()
		w, err := a.o.Client.Watch(ctx, instanceRes, "", client.ListOptions{FieldSelector: sel, ResourceVersion: list.GetResourceVersion()})
		if err != nil {
			sleep(ctx, backoff)
			continue
		}
		for ev := range w.ResultChan() {
			in, ok := ev.Object.(*v1.Instance)
			if !ok {
				break // an ERROR event: relist
			}
			k := key(in.Namespace, in.Name)
			a.mu.Lock()
			echo := ev.Type != watch.Deleted && a.own[k] == in.ResourceVersion
			switch {
			case ev.Type == watch.Deleted:
				delete(a.instances, k)
				delete(a.own, k)
			case a.instances[k] == nil || rv(a.instances[k]) <= rv(in):
				a.instances[k] = in
			}
			a.mu.Unlock()
			if !echo {
				a.queue.Add(k)
			}
		}
		w.Stop()
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// register creates or updates this node's Node object.
func (a *Agent) register(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		err := a.registerOnce(ctx)
		if err == nil || ctx.Err() != nil {
			return err
		}
		a.o.Log.Info("cannot register the node yet; retrying", "error", err.Error())
		sleep(ctx, min(time.Duration(attempt+1)*time.Second, 10*time.Second))
	}
}

// registerOnce registers this host's Node, described by its flags and
// config file (port range, capacity, labels), when it is missing. Once the
// Node exists its spec is an admin's, as a kubelet cannot edit its Node's
// spec: the node role may change only its status and its labels outside
// node-restriction.left4me.io/. So on later starts the agent re-applies its
// labels, and only says so when its flags disagree with the spec.
func (a *Agent) registerOnce(ctx context.Context) error {
	spec := v1.NodeSpec{PortRange: v1.PortRange{Min: a.o.PortMin, Max: a.o.PortMax}, Capacity: a.o.Capacity}
	obj, err := a.o.Client.Get(ctx, nodeRes, "", a.o.NodeName)
	if apierrors.IsNotFound(err) {
		n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: a.o.NodeName, Labels: a.o.Labels}, Spec: spec}
		_, err = a.o.Client.Create(ctx, nodeRes, n, false)
	} else if err == nil {
		n := obj.(*v1.Node)
		if !sameHostSpec(n.Spec, spec) {
			a.o.Log.Info("this host's port range or capacity differ from its Node's spec, which is an admin's to change once the node is registered; the scheduler follows the spec",
				"node", a.o.NodeName, "specPorts", fmt.Sprintf("%d-%d", n.Spec.PortRange.Min, n.Spec.PortRange.Max), "flagPorts", fmt.Sprintf("%d-%d", spec.PortRange.Min, spec.PortRange.Max))
		}
		err = a.applyLabels(ctx, n)
	}
	if err != nil {
		return fmt.Errorf("register node %s: %w", a.o.NodeName, err)
	}
	return a.writeNodeStatus(ctx)
}

// applyLabels sets the configured labels on the Node where they differ;
// labels an operator added in the API stay.
func (a *Agent) applyLabels(ctx context.Context, n *v1.Node) error {
	changed := false
	for k, v := range a.o.Labels {
		if cur, ok := n.Labels[k]; !ok || cur != v {
			changed = true
		}
	}
	if !changed {
		return nil
	}
	patch, err := jsonMarshal(map[string]any{"metadata": map[string]any{"labels": a.o.Labels}})
	if err != nil {
		return err
	}
	_, err = a.o.Client.Patch(ctx, nodeRes, "", a.o.NodeName, "application/merge-patch+json", patch, false)
	return err
}

// sameHostSpec reports whether the Node's spec holds the port range and
// capacity the host is configured with.
func sameHostSpec(a, b v1.NodeSpec) bool {
	if a.PortRange != b.PortRange || a.Capacity.Instances != b.Capacity.Instances {
		return false
	}
	am, bm := a.Capacity.Memory, b.Capacity.Memory
	return (am == nil) == (bm == nil) && (am == nil || am.Cmp(*bm) == 0)
}

// nudgeStatus has the heartbeat write the Node's status now, if what it
// reports changed.
func (a *Agent) nudgeStatus() {
	select {
	case a.statusNudge <- struct{}{}:
	default:
	}
}

// every calls f each period until ctx ends.
func every(ctx context.Context, period time.Duration, f func()) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// MetricsAddr is where /metrics is served ("" before Run started it, or
// when it is not).
func (a *Agent) MetricsAddr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.metrics == nil {
		return ""
	}
	return a.metrics.Addr()
}

func (a *Agent) logsEndpoint() *v1.LogsEndpoint {
	if a.logs == nil {
		return nil
	}
	e := a.logs.endpoint
	return &e
}

// installationBuild reads PatchVersion from left4dead2/steam.inf.
func installationBuild(dir string) (string, bool) {
	data, err := os.ReadFile(filepath.Join(dir, "left4dead2", "steam.inf"))
	if err != nil {
		_, statErr := os.Stat(filepath.Join(dir, "srcds_run"))
		return "", statErr == nil
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "PatchVersion="); ok {
			return v, true
		}
	}
	return "", true
}

// rconPassword returns the Instance's password, generating it once. It
// lives only on the node (0600, root): never in the API, never logged.
func (a *Agent) rconPassword(id string) (string, error) {
	path := filepath.Join(a.paths.Instance(id), "rcon_password")
	if b, err := os.ReadFile(path); err == nil && len(b) >= 16 {
		return strings.TrimSpace(string(b)), nil
	}
	buf := make([]byte, 18)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	pw := base64.RawURLEncoding.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("store rcon password for %s: %w", id, err)
	}
	return pw, nil
}
