package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/server/servertest"
	"github.com/left4me/left4me/hack/sandboxtest"
	"github.com/left4me/left4me/node/a2s"
	"github.com/left4me/left4me/node/rcon"
	"github.com/left4me/left4me/node/unit"
)

// The fleet test runs in a network namespace of its own (made by the outer
// test, deleted after it): a bridge with 10.77.0.1 for the control plane,
// and one veth per sandbox host. Nothing reaches the machine's network.
const (
	fleetNetnsEnv = "L4M_FLEET_NETNS"
	fleetBinEnv   = "L4M_FLEET_BIN"
	fleetBridge   = "l4mbr0"
	fleetGateway  = "10.77.0.1"
	// Short periods, so the test fits CI: heartbeats every 2 s, a node lost
	// after 10 s of silence, its Instances moved 5 s later. The defaults
	// are 10 s, 40 s and 5 min.
	fleetHeartbeat  = "2s"
	fleetNodeGrace  = "10s"
	fleetReschedule = "5s"
)

func TestFleet(t *testing.T) {
	if inFleetNetns(t) {
		runFleet(t)
	}
}

// inFleetNetns reports whether this process runs inside the fleet's
// network namespace. When it does not, it makes the namespace and runs the
// calling test again inside it (and the caller returns).
func inFleetNetns(t *testing.T) bool {
	t.Helper()
	sandboxtest.Skip(t)
	for _, bin := range []string{"/usr/bin/etcd", "ip", "nsenter"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("the fleet test needs %s (Debian packages etcd-server, iproute2, util-linux)", bin)
		}
	}
	if os.Getenv(fleetNetnsEnv) != "" {
		return true
	}
	runInFleetNetns(t)
	return false
}

// runInFleetNetns makes the namespace and bridge, builds the binaries, and
// runs the test again inside the namespace.
func runInFleetNetns(t *testing.T) {
	ns := fmt.Sprintf("l4mfleet%d", os.Getpid())
	bin := t.TempDir()
	for pkg, name := range map[string]string{"cmd/l4m-server": "l4m-server", "cmd/l4m-node": "l4m-node", "hack/srcds-double": "srcds_run", "hack/steamcmd-double": "steamcmd-double"} {
		build(t, "github.com/left4me/left4me/"+pkg, filepath.Join(bin, name))
	}
	testNetns{name: ns, bridge: fleetBridge, gateway: fleetGateway,
		boxes: []string{"fleet-1", "fleet-2", "fleet-3"}, timeout: "30m"}.runInside(t, fleetNetnsEnv+"="+ns, fleetBinEnv+"="+bin)
}

// proc is a control-plane process the test started (and kills by PID).
type proc struct {
	name string
	args []string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	log  string
}

func startProc(t *testing.T, dir, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, args: args, log: filepath.Join(dir, name+".log")}
	p.start(t)
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *proc) start(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(p.args[0], p.args[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	// Should this test binary die, so do its etcd and servers.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	done := make(chan struct{})
	p.done = done
	go func() { p.cmd.Wait(); f.Close(); close(done) }()
}

// kill is kill -9 of this process only; it returns once it has exited.
func (p *proc) kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

func (p *proc) tail() string {
	data, _ := os.ReadFile(p.log)
	if len(data) > 3000 {
		data = data[len(data)-3000:]
	}
	return string(data)
}

type fleet struct {
	t       *testing.T
	dir     string
	bin     string
	etcd    []*proc
	servers []*proc
	urls    []string
	admin   *client.Client
	hosts   map[string]*sandboxtest.Sandbox // node name -> host
	// handMadeInstall gives each host an installation/ of its own at boot
	// (the benchmark's games run on it); else hosts start bare and the
	// game comes from an Installation.
	handMadeInstall bool
	timings         [][2]string
}

func (f *fleet) record(what string, d time.Duration) {
	f.timings = append(f.timings, [2]string{what, d.Round(100 * time.Millisecond).String()})
	f.t.Logf("fleet: %-62s %s", what, d.Round(100*time.Millisecond))
}

// newFleet boots the control plane (extra flags for both l4m-servers) and
// three hosts.
func newFleet(t *testing.T, handMadeInstall bool, serverFlags ...string) *fleet {
	began := time.Now()
	f := &fleet{t: t, dir: t.TempDir(), bin: os.Getenv(fleetBinEnv), hosts: map[string]*sandboxtest.Sandbox{}, handMadeInstall: handMadeInstall}
	f.startEtcd()
	f.startServers(serverFlags)
	for i := 1; i <= 3; i++ {
		f.startHost(fmt.Sprintf("fleet-%d", i), fmt.Sprintf("10.77.0.1%d", i))
	}
	f.record("boot: 3 etcd members, 2 l4m-servers, 3 sandbox hosts", time.Since(began))
	return f
}

func runFleet(t *testing.T) {
	began := time.Now()
	f := newFleet(t, false)
	f.installs()
	f.spread()
	f.rollout()
	f.leaderDies()
	f.etcdMemberDies()
	f.hostCutOff("fleet-3")
	f.hostKilled("fleet-2")
	f.record("whole fleet test", time.Since(began))
}

func (f *fleet) startEtcd() {
	var cluster []string
	for i := 1; i <= 3; i++ {
		cluster = append(cluster, fmt.Sprintf("m%d=http://127.0.0.1:%d2380", i, i))
	}
	var endpoints []string
	for i := 1; i <= 3; i++ {
		client := fmt.Sprintf("http://127.0.0.1:%d2379", i)
		endpoints = append(endpoints, client)
		f.etcd = append(f.etcd, startProc(f.t, f.dir, fmt.Sprintf("etcd-m%d", i), "/usr/bin/etcd",
			"--name", fmt.Sprintf("m%d", i), "--data-dir", filepath.Join(f.dir, fmt.Sprintf("m%d.etcd", i)),
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d2380", i),
			"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d2380", i),
			"--initial-cluster", strings.Join(cluster, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "l4m-fleet"))
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		f.t.Fatal(err)
	}
	defer c.Close()
	f.eventually("etcd cluster healthy", 30*time.Second, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := c.Put(ctx, "/fleet-test", "ok")
		return err == nil, fmt.Sprint(err)
	})
}

func (f *fleet) etcdEndpoints() string {
	return "http://127.0.0.1:12379,http://127.0.0.1:22379,http://127.0.0.1:32379"
}

// startServers runs two l4m-servers on the etcd cluster. They share one
// PKI (the second gets a copy of the first's), as servers behind one name do.
func (f *fleet) startServers(extra []string) {
	for i, name := range []string{"server-a", "server-b"} {
		data := filepath.Join(f.dir, name)
		if i == 1 {
			os.MkdirAll(data, 0o700)
			copyPath(f.t, filepath.Join(f.dir, "server-a", "pki"), filepath.Join(data, "pki"))
		}
		listen := fmt.Sprintf("%s:%d", fleetGateway, 6443+i)
		f.urls = append(f.urls, "https://"+listen)
		args := append([]string{filepath.Join(f.bin, "l4m-server"),
			"--data-dir", data, "--listen", listen, "--etcd-endpoints", f.etcdEndpoints(),
			"--node-grace-period", fleetNodeGrace, "--leader-lease-ttl", "5s", "--identity", name}, extra...)
		f.servers = append(f.servers, startProc(f.t, f.dir, name, args...))
		f.eventually(name+" up", 30*time.Second, func() (bool, string) {
			_, err := os.Stat(filepath.Join(data, "admin.yaml"))
			return err == nil, f.servers[i].tail()
		})
	}
	cfg, err := client.LoadFile(filepath.Join(f.dir, "server-a", "admin.yaml"))
	if err != nil {
		f.t.Fatal(err)
	}
	f.admin, err = client.New(client.Config{Server: strings.Join(f.urls, ","), Token: cfg.Token, CAData: []byte(cfg.CertificateAuthorityData)})
	if err != nil {
		f.t.Fatal(err)
	}
}

// copyPath copies a file or a directory tree (cp -a keeps modes).
func copyPath(t *testing.T, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("copy %s: %v: %s", from, err, out)
	}
}

// startHost boots a sandbox host on the bridge and runs l4m-node in it,
// with a node token and both servers' URLs.
func (f *fleet) startHost(name, addr string) {
	sb := sandboxtest.BootWith(f.t, name, sandboxtest.Options{Addr: addr + "/24", Bridge: fleetBridge})
	f.hosts[name] = sb
	host := sb.Left4meDir
	for _, d := range []string{"overlays", "bin"} {
		os.MkdirAll(filepath.Join(host, d), 0o755)
	}
	copyPath(f.t, filepath.Join(f.bin, "l4m-node"), filepath.Join(host, "bin", "l4m-node"))
	f.installSteamcmd(host)
	if f.handMadeInstall {
		// The predecessor's layout, an installation/ put there by hand:
		// what a node runs games on while no Installation object exists.
		os.MkdirAll(filepath.Join(host, "installation/left4dead2/cfg"), 0o755)
		copyPath(f.t, filepath.Join(f.bin, "srcds_run"), filepath.Join(host, "installation", "srcds_run"))
		os.WriteFile(filepath.Join(host, "installation/left4dead2/steam.inf"), []byte("PatchVersion=2.2.4.3\n"), 0o644)
	}
	token := servertest.NewToken(f.t, f.admin, v1.TokenSpec{Type: v1.TokenNode, NodeName: name})
	ca, _ := os.ReadFile(filepath.Join(f.dir, "server-a", "pki", "ca.crt"))
	cfg, _ := yaml.Marshal(client.File{Server: strings.Join(f.urls, ","), Token: token, CertificateAuthorityData: string(ca)})
	os.WriteFile(filepath.Join(host, "node.yaml"), cfg, 0o600)
	args := []string{"systemd-run", "--unit=l4m-node", "-p", "ProtectSystem=strict", "-p", "ReadWritePaths=/var/lib/left4me /run/systemd/system /etc",
		"/var/lib/left4me/bin/l4m-node", "--config", "/var/lib/left4me/node.yaml", "--node-name", name, "--address", addr,
		"--port-range", "27015-27114", "--heartbeat-interval", fleetHeartbeat}
	if v := os.Getenv("L4M_AGENT_V"); v != "" {
		args = append(args, "-v", v)
	}
	if v := os.Getenv("L4M_AGENT_WORKERS"); v != "" {
		args = append(args, "--workers", v)
	}
	if v := os.Getenv("L4M_AGENT_STARTS"); v != "" {
		args = append(args, "--max-parallel-starts", v)
	}
	sb.MustExec(f.t, args...)
	f.eventually(name+" Ready", 30*time.Second, func() (bool, string) {
		n, err := f.admin.Get(context.Background(), resources.Nodes, "", name)
		if err != nil {
			return false, err.Error()
		}
		return meta.IsStatusConditionTrue(n.(*v1.Node).Status.Conditions, v1.ConditionReady), "not ready"
	})
}

// logWarnings logs the Warning events (failed scheduling, lost nodes, ...).
func (f *fleet) logWarnings() {
	list, err := f.admin.List(context.Background(), resources.Events, "default", client.ListOptions{})
	if err != nil {
		f.t.Logf("events: %v", err)
		return
	}
	for _, ev := range list.(*v1.EventList).Items {
		if ev.Type == v1.EventTypeWarning {
			f.t.Logf("event: %s %s/%s %s (x%d): %s", ev.LastTimestamp.Format(time.TimeOnly), ev.InvolvedObject.Kind, ev.InvolvedObject.Name, ev.Reason, ev.Count, ev.Message)
		}
	}
}

func (f *fleet) eventually(what string, timeout time.Duration, cond func() (bool, string)) time.Duration {
	f.t.Helper()
	began := time.Now()
	var last string
	for time.Since(began) < timeout {
		var ok bool
		if ok, last = cond(); ok {
			return time.Since(began)
		}
		time.Sleep(100 * time.Millisecond)
	}
	f.logWarnings()
	f.t.Fatalf("%s: not within %s; last: %s", what, timeout, last)
	return 0
}

func (f *fleet) instances() []*v1.Instance {
	f.t.Helper()
	list, err := f.admin.List(context.Background(), resources.Instances, "default", client.ListOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	var out []*v1.Instance
	for i := range list.(*v1.InstanceList).Items {
		out = append(out, &list.(*v1.InstanceList).Items[i])
	}
	return out
}

func (f *fleet) get(name string) *v1.Instance {
	obj, err := f.admin.Get(context.Background(), resources.Instances, "default", name)
	if err != nil {
		f.t.Fatal(err)
	}
	return obj.(*v1.Instance)
}

func (f *fleet) apply(objs ...v1.Object) {
	f.t.Helper()
	for _, o := range objs {
		res, _ := resources.ByKind(strings.TrimPrefix(fmt.Sprintf("%T", o), "*v1alpha1."))
		if _, err := f.admin.Create(context.Background(), res, o, false); err != nil {
			f.t.Fatal(err)
		}
	}
}

// allReady waits until every named Instance is Ready on a node other than
// the excluded ones and answers A2S at the address its status gives.
func (f *fleet) allReady(what string, names []string, timeout time.Duration, exclude ...string) time.Duration {
	f.t.Helper()
	return f.eventually(what, timeout, func() (bool, string) {
		for _, n := range names {
			in := f.get(n)
			if !ready(in) || in.Status.NodeName != in.Spec.NodeName || contains(exclude, in.Spec.NodeName) {
				return false, fmt.Sprintf("%s on %q: %s", n, in.Spec.NodeName, conditionSummary(in))
			}
			if _, err := queryAt(in.Status.Address, in.Status.Port); err != nil {
				return false, fmt.Sprintf("%s: A2S at %s:%d: %v", n, in.Status.Address, in.Status.Port, err)
			}
		}
		return true, ""
	})
}

func conditionSummary(in *v1.Instance) string {
	var parts []string
	for _, c := range in.Status.Conditions {
		parts = append(parts, fmt.Sprintf("%s=%s(%s)", c.Type, c.Status, c.Reason))
	}
	return strings.Join(parts, " ")
}

func queryAt(addr string, port int32) (*a2s.Info, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return a2s.QueryInfo(ctx, addr+":"+strconv.Itoa(int(port)))
}

func names(prefix string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s-%02d", prefix, i))
	}
	return out
}

// spread: 30 Instances without a node land 10 per host, no port twice on
// a host, each answering A2S at its host's address.
func (f *fleet) spread() {
	f.apply(&v1.Blueprint{ObjectMeta: meta_("coop"), Spec: v1.BlueprintSpec{RescheduleAfterNodeLost: fleetReschedule}})
	srv := names("srv", 30)
	began := time.Now()
	for _, n := range srv {
		f.apply(&v1.Instance{ObjectMeta: meta_(n), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}}})
	}
	f.allReady("30 Instances Ready", srv, 120*time.Second)
	f.record("30 Instances: create to all Ready and answering A2S", time.Since(began))
	if time.Since(began) > 20*time.Second {
		f.logWarnings() // slow: say what got in the way
	}
	perNode := map[string]map[int32]string{}
	for _, in := range f.instances() {
		if perNode[in.Spec.NodeName] == nil {
			perNode[in.Spec.NodeName] = map[int32]string{}
		}
		if other, dup := perNode[in.Spec.NodeName][in.GamePort()]; dup {
			f.t.Fatalf("port %d on %s given to %s and %s", in.GamePort(), in.Spec.NodeName, other, in.Name)
		}
		perNode[in.Spec.NodeName][in.GamePort()] = in.Name
		if want := "10.77.0.1" + strings.TrimPrefix(in.Spec.NodeName, "fleet-"); in.Status.Address != want {
			f.t.Fatalf("%s on %s reports address %s", in.Name, in.Spec.NodeName, in.Status.Address)
		}
	}
	for node, ports := range perNode {
		if len(ports) != 10 {
			f.t.Fatalf("spread put %d Instances on %s, want 10 on each host", len(ports), node)
		}
	}
}

// rcon runs a command on an Instance's game with the password only its
// host knows.
func (f *fleet) rcon(in *v1.Instance, command string) {
	f.t.Helper()
	pw, err := os.ReadFile(filepath.Join(f.hosts[in.Spec.NodeName].Left4meDir, "instances", "default."+in.Name, "rcon_password"))
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := rcon.Dial(ctx, fmt.Sprintf("%s:%d", in.Status.Address, in.Status.Port), strings.TrimSpace(string(pw)))
	if err != nil {
		f.t.Fatalf("rcon to %s: %v", in.Name, err)
	}
	defer c.Close()
	if _, err := c.Exec(ctx, command); err != nil {
		f.t.Fatal(err)
	}
}

// rollout: a Blueprint change restarts only the empty Instances; the one
// with a player keeps its game (same PID, old spec) until the player leaves.
func (f *fleet) rollout() {
	f.apply(&v1.Blueprint{ObjectMeta: meta_("rollme"), Spec: v1.BlueprintSpec{RescheduleAfterNodeLost: fleetReschedule}})
	rs := names("roll", 3)
	for _, n := range rs {
		f.apply(&v1.Instance{ObjectMeta: meta_(n), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "rollme"}}})
	}
	f.allReady("rollout Instances Ready", rs, 60*time.Second)
	occupied := f.get("roll-01")
	f.rcon(occupied, "l4m_join Louis")
	f.eventually("the player in status", 30*time.Second, func() (bool, string) {
		return f.get("roll-01").Status.Players == 1, "no player yet"
	})
	pids := map[string]int32{}
	for _, n := range rs {
		pids[n] = f.get(n).Status.MainPID
	}
	began := time.Now()
	if _, err := f.admin.Patch(context.Background(), resources.Blueprints, "default", "rollme", "application/merge-patch+json",
		[]byte(`{"spec":{"game":{"maxPlayers":6}}}`), false); err != nil {
		f.t.Fatal(err)
	}
	f.eventually("the empty Instances restarted onto 6 slots", 60*time.Second, func() (bool, string) {
		for _, n := range []string{"roll-00", "roll-02"} {
			in := f.get(n)
			if !ready(in) || in.Status.MaxPlayers != 6 || in.Status.MainPID == pids[n] {
				return false, fmt.Sprintf("%s: %d slots, pid %d", n, in.Status.MaxPlayers, in.Status.MainPID)
			}
		}
		return true, ""
	})
	f.record("rollout: Blueprint edit to both empty Instances restarted", time.Since(began))
	busy := f.get("roll-01")
	if busy.Status.MainPID != pids["roll-01"] || busy.Status.MaxPlayers != 8 ||
		!meta.IsStatusConditionTrue(busy.Status.Conditions, v1.InstanceUpdatePending) {
		f.t.Fatalf("the occupied Instance was touched: pid %d (was %d), %d slots, %s", busy.Status.MainPID, pids["roll-01"], busy.Status.MaxPlayers, conditionSummary(busy))
	}
	if info, err := queryAt(busy.Status.Address, busy.Status.Port); err != nil || info.Players != 1 || info.MaxPlayers != 8 {
		f.t.Fatalf("the occupied game: %+v %v", info, err)
	}
	f.rcon(busy, "l4m_leave Louis")
	began = time.Now()
	f.eventually("the emptied Instance restarted", 60*time.Second, func() (bool, string) {
		in := f.get("roll-01")
		return ready(in) && in.Status.MaxPlayers == 6 && in.Status.MainPID != pids["roll-01"], conditionSummary(in)
	})
	f.record("rollout: last player leaves to that Instance restarted", time.Since(began))
}

// leaderIndex asks each server's /metrics whether it leads (-1: none).
func (f *fleet) leaderIndex() int {
	cfg, _ := client.LoadFile(filepath.Join(f.dir, "server-a", "admin.yaml"))
	hc := servertest.HTTPClientFor([]byte(cfg.CertificateAuthorityData))
	for i, u := range f.urls {
		req, _ := http.NewRequest("GET", u+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+cfg.Token)
		resp, err := hc.Do(req)
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), "\nleft4me_controllers_leader 1\n") {
			return i
		}
	}
	return -1
}

type running struct {
	node  string
	pid   int32
	start string
}

func (f *fleet) snapshot() map[string]running {
	out := map[string]running{}
	for _, in := range f.instances() {
		if in.Status.StartTime != nil {
			out[in.Name] = running{in.Spec.NodeName, in.Status.MainPID, in.Status.StartTime.String()}
		}
	}
	return out
}

func (f *fleet) unchanged(before map[string]running, what string) {
	f.t.Helper()
	after := f.snapshot()
	for name, r := range before {
		if after[name] != r {
			f.t.Fatalf("%s: %s restarted or moved: %+v -> %+v", what, name, r, after[name])
		}
	}
}

// leaderDies: kill -9 of the leading l4m-server. The other leads within the
// lease, new Instances are placed, and no running game notices.
func (f *fleet) leaderDies() {
	var leader int
	f.eventually("a leader", 20*time.Second, func() (bool, string) { leader = f.leaderIndex(); return leader >= 0, "none" })
	before := f.snapshot()
	began := time.Now()
	f.servers[leader].kill()
	f.eventually("the other server leads", 30*time.Second, func() (bool, string) {
		return f.leaderIndex() == 1-leader, fmt.Sprint(f.leaderIndex())
	})
	f.record("leader l4m-server killed (kill -9) to the other leading", time.Since(began))
	extra := names("after-leader", 3)
	for _, n := range extra {
		f.apply(&v1.Instance{ObjectMeta: meta_(n), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}}})
	}
	f.allReady("Instances placed by the new leader", extra, 60*time.Second)
	f.record("leader killed to 3 new Instances Ready", time.Since(began))
	f.unchanged(before, "leader failover")
	f.servers[leader].start(f.t)
}

// etcdMemberDies: with one of three members killed the API keeps serving
// reads and writes, and the controllers keep working.
func (f *fleet) etcdMemberDies() {
	f.etcd[2].kill()
	began := time.Now()
	f.apply(&v1.Instance{ObjectMeta: meta_("during-etcd-loss"), Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}}})
	f.allReady("an Instance while an etcd member is down", []string{"during-etcd-loss"}, 60*time.Second)
	f.record("etcd member killed: create to Ready through the API", time.Since(began))
	f.etcd[2].start(f.t)
}

func (f *fleet) on(node string) []string {
	var out []string
	for _, in := range f.instances() {
		if in.Spec.NodeName == node {
			out = append(out, in.Name)
		}
	}
	sort.Strings(out)
	return out
}

func (f *fleet) waitNodeUnknown(node string) time.Duration {
	return f.eventually(node+" Ready=Unknown", 60*time.Second, func() (bool, string) {
		n, err := f.admin.Get(context.Background(), resources.Nodes, "", node)
		if err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(n.(*v1.Node).Status.Conditions, v1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionUnknown, fmt.Sprintf("%+v", c)
	})
}

// gameUnits lists the l4m game units a host runs (active or starting).
func gameUnits(sb *sandboxtest.Sandbox) map[string]bool {
	out, _ := sb.Exec("systemctl", "list-units", "--no-legend", "--plain", "--state=active,activating", "l4m-default.*", "var-lib-left4me-runtime-default.*")
	units := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if ns, name, ok := unit.ParseServiceName(fields[0]); ok && ns == "default" {
			units[name] = true
		} else if strings.HasSuffix(fields[0], "-merged.mount") {
			// A mount without its game counts too: a game is gone only
			// when both are.
			id := strings.TrimSuffix(strings.TrimPrefix(fields[0], "var-lib-left4me-runtime-default."), "-merged.mount")
			units[strings.ReplaceAll(id, `\x2d`, "-")] = true
		}
	}
	return units
}

// hostCutOff: a host loses its network. Its Instances move after the grace
// periods; when it comes back it stops the copies that moved, and keeps
// nothing twice.
func (f *fleet) hostCutOff(node string) {
	moved := f.on(node)
	sb := f.hosts[node]
	if err := sb.Link(false); err != nil {
		f.t.Fatal(err)
	}
	began := time.Now()
	f.record(node+" cut off: to Ready=Unknown", f.waitNodeUnknown(node))
	f.allReady("Instances of the cut-off host Ready elsewhere", moved, 90*time.Second, node)
	f.record(fmt.Sprintf("%s cut off: to its %d Instances Ready on other hosts", node, len(moved)), time.Since(began))
	if units := gameUnits(sb); len(units) != len(moved) {
		f.t.Fatalf("the cut-off host should still run its %d games (nobody told it): %v", len(moved), units)
	}
	if err := sb.Link(true); err != nil {
		f.t.Fatal(err)
	}
	began = time.Now()
	f.eventually("the returned host stops the moved copies", 60*time.Second, func() (bool, string) {
		units := gameUnits(sb)
		return len(units) == 0, fmt.Sprint(units)
	})
	f.record(node+" back: to its moved-away copies stopped", time.Since(began))
	// Every Instance runs exactly once, where the API says.
	count := map[string][]string{}
	for name, h := range f.hosts {
		for u := range gameUnits(h) {
			count[u] = append(count[u], name)
		}
	}
	for _, in := range f.instances() {
		if where := count[in.Name]; len(where) != 1 || where[0] != in.Spec.NodeName {
			f.t.Fatalf("%s runs on %v, bound to %s", in.Name, where, in.Spec.NodeName)
		}
	}
	f.eventually(node+" Ready again", 30*time.Second, func() (bool, string) {
		n, _ := f.admin.Get(context.Background(), resources.Nodes, "", node)
		return n != nil && meta.IsStatusConditionTrue(n.(*v1.Node).Status.Conditions, v1.ConditionReady), "not ready"
	})
}

// hostKilled: a host dies (its systemd and everything under it killed).
func (f *fleet) hostKilled(node string) {
	moved := f.on(node)
	began := time.Now()
	if err := f.hosts[node].Kill(); err != nil {
		f.t.Fatal(err)
	}
	delete(f.hosts, node)
	f.waitNodeUnknown(node)
	f.record(node+" killed: to Ready=Unknown", time.Since(began))
	f.allReady("Instances of the killed host Ready elsewhere", moved, 90*time.Second, node)
	f.record(fmt.Sprintf("%s killed: to its %d Instances Ready on other hosts", node, len(moved)), time.Since(began))
}
