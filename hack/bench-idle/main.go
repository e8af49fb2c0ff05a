// Command bench-idle measures what an idle fleet costs the control plane:
// -nodes simulated nodes (default 1,000), each holding -per-node
// Instances, nothing changing, every node doing what its agent does to
// the API when it has nothing to report:
//
//   - old: the whole Node status PATCHed every heartbeat period (10 s), as
//     agents did before Leases;
//   - new: its Lease renewed every period, a watch held on its own Node,
//     and the status written once per status report period (5 min, at a
//     random point of it per node).
//
// Both run against the same embedded etcd and in-process API server, and
// are measured over the same -window of steady state: etcd writes per
// second (revision delta), bytes written to etcd per second (keys and
// values of the window's revisions), the API server's process CPU seconds
// per second (getrusage around the window; the simulated nodes run in a
// child process, so that is the API server and etcd alone), and the
// events a watcher of Nodes and a watcher of Leases receive (as the
// controllers' informers do). Then it repeats with more Instances per
// node: neither way's cost follows the number of Instances, and the
// table shows it.
//
// Run it with `make bench-idle`. Numbers vary with the machine: compare
// old with new in the same run.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/go-logr/logr"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/apis/storage"
	"github.com/left4me/left4me/hack/internal/benchkit"
	"github.com/left4me/left4me/node/agent"
)

func main() {
	nodes := flag.Int("nodes", 1000, "simulated nodes")
	perNode := flag.String("per-node", "10,50", "Instances per node, one measurement (old and new) each, comma-separated and rising")
	period := flag.Duration("period", 10*time.Second, "the heartbeat period")
	report := flag.Duration("status-report", agent.DefaultStatusReport, "the new way's status report period")
	window := flag.Duration("window", 30*time.Second, "steady state measured per row")
	agents := flag.String("agents", "", "internal: run the simulated nodes this spec file describes (the child process)")
	flag.Parse()
	if *agents != "" {
		if err := runAgents(*agents); err != nil {
			fmt.Fprintln(os.Stderr, "bench-idle agents:", err)
			os.Exit(1)
		}
		return
	}
	var counts []int
	for _, s := range strings.Split(*perNode, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 || (len(counts) > 0 && n < counts[len(counts)-1]) {
			fmt.Fprintf(os.Stderr, "bench-idle: -per-node %q: want rising counts\n", *perNode)
			os.Exit(2)
		}
		counts = append(counts, n)
	}
	if err := run(*nodes, counts, *period, *report, *window); err != nil {
		fmt.Fprintln(os.Stderr, "bench-idle:", err)
		os.Exit(1)
	}
}

// result is one row: one way, one fleet size, over one window.
type result struct {
	instances      int
	old            bool
	seconds        float64
	writes, bytes  int64
	cpu            time.Duration
	nodeEvents     int64
	leaseEvents    int64
	agents         counts
	nodes          int
	watchingAtMark int64
}

func run(nodes int, perNode []int, period, report, window time.Duration) error {
	dir, err := os.MkdirTemp("", "l4m-bench-idle-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The API alone (server.Start runs no controllers; their informers are
	// stood in for by the two watchers below), no cap on connections from
	// one address: every simulated node connects from loopback.
	srv, err := server.Start(ctx, server.Options{DataDir: filepath.Join(dir, "server"), Listen: "127.0.0.1:0", Log: logr.Discard(), MaxConnsPerAddress: -1})
	if err != nil {
		return err
	}
	defer srv.Close()
	admin, _, err := benchkit.AdminClient(srv)
	if err != nil {
		return err
	}
	began := time.Now()
	fmt.Fprintf(os.Stderr, "registering %d nodes and their tokens...\n", nodes)
	tokens, err := registerNodes(ctx, srv, admin, nodes)
	if err != nil {
		return err
	}
	var nodeEvents, leaseEvents atomic.Int64
	for _, w := range []struct {
		res *resources.Resource
		n   *atomic.Int64
	}{{resources.Nodes, &nodeEvents}, {resources.Leases, &leaseEvents}} {
		wt, err := srv.Store.Watch(ctx, w.res, storage.ListOptions{})
		if err != nil {
			return fmt.Errorf("watch %s: %w", w.res.Plural, err)
		}
		defer wt.Stop()
		go func() {
			for range wt.ResultChan() {
				w.n.Add(1)
			}
		}()
	}
	spec := agentsSpec{Server: srv.URL(), CA: srv.CAPEM, Tokens: tokens, Period: period, Report: report}
	var results []result
	have := 0
	for _, per := range perNode {
		fmt.Fprintf(os.Stderr, "creating Instances: %d per node (%d in all)...\n", per, per*nodes)
		if err := createInstances(ctx, srv.Store, nodes, have, per); err != nil {
			return err
		}
		have = per
		for _, old := range []bool{true, false} {
			spec.Old = old
			fmt.Fprintf(os.Stderr, "measuring %s with %d Instances: %s to settle, %s measured...\n", way(old), per*nodes, period+2*time.Second, window)
			r, err := measure(ctx, srv, dir, spec, period+2*time.Second, window, &nodeEvents, &leaseEvents)
			if err != nil {
				return err
			}
			r.instances, r.old, r.nodes = per*nodes, old, nodes
			results = append(results, r)
		}
	}
	printTable(results, nodes, period, report, window)
	fmt.Fprintf(os.Stderr, "bench-idle took %s\n", time.Since(began).Round(time.Second))
	return nil
}

func way(old bool) string {
	if old {
		return "old: status PATCH every period"
	}
	return "new: Lease renewal, status on change"
}

// registerNodes creates node-0..node-<n-1> (straight through the store,
// as registered agents left them) and a node token for each (through the
// API, which is what makes tokens).
func registerNodes(ctx context.Context, srv *server.Server, admin *client.Client, n int) ([]string, error) {
	now := metav1.Now()
	tokens := make([]string, n)
	_, err := benchkit.Parallel(16, n, func(i int) error {
		name := fmt.Sprintf("node-%d", i)
		mem := resource.MustParse("64Gi")
		node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"region": "eu", "zone": fmt.Sprintf("eu-%d", i%3)}},
			Spec: v1.NodeSpec{PortRange: v1.PortRange{Min: 27015, Max: 27914}, Capacity: v1.NodeCapacity{Instances: 100, Memory: &mem}},
			Status: v1.NodeStatus{Addresses: []string{"10.0.0.7"}, HeartbeatTime: &now, AgentVersion: "bench",
				Conditions: []metav1.Condition{{Type: v1.ConditionReady, Status: metav1.ConditionTrue, Reason: "AgentHeartbeat", Message: "l4m-node is running", LastTransitionTime: now}}}}
		if _, err := srv.Store.Create(ctx, resources.Nodes, node, storage.CreateOptions{}); err != nil {
			return fmt.Errorf("create Node %s: %w", name, err)
		}
		out, err := admin.Create(ctx, resources.Tokens, &v1.Token{ObjectMeta: metav1.ObjectMeta{Name: "bench-" + name},
			Spec: v1.TokenSpec{Type: v1.TokenNode, NodeName: name}}, false)
		if err != nil {
			return fmt.Errorf("create the token of %s: %w", name, err)
		}
		tokens[i] = out.(*v1.Token).Status.Token
		return nil
	})
	return tokens, err
}

// createInstances tops every node up from have to want Instances, straight
// through the store: bound, running and Ready, as their agents reported.
func createInstances(ctx context.Context, st *storage.Store, nodes, have, want int) error {
	now := metav1.Now()
	per := want - have
	_, err := benchkit.Parallel(32, nodes*per, func(i int) error {
		node, k := i/per, have+i%per
		name := fmt.Sprintf("n%d-srv%d", node, k)
		in := &v1.Instance{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: v1.DefaultNamespace, Labels: map[string]string{"fleet": "bench"}},
			Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}, NodeName: fmt.Sprintf("node-%d", node),
				Hostname: "bench server " + name, State: v1.StateRunning},
			Status: v1.InstanceStatus{Phase: v1.PhaseRunning, Port: int32(27015 + k), UnitName: "l4m-default-" + name + ".service", Map: "c1m1_hotel",
				Conditions: []metav1.Condition{
					{Type: v1.InstanceScheduled, Status: metav1.ConditionTrue, Reason: "Scheduled", Message: "bound to node-x", LastTransitionTime: now},
					{Type: v1.ConditionReady, Status: metav1.ConditionTrue, Reason: "A2SAnswered", Message: "the game answers A2S_INFO", LastTransitionTime: now},
				}}}
		if _, err := st.Create(ctx, resources.Instances, in, storage.CreateOptions{}); err != nil {
			return fmt.Errorf("create Instance %s: %w", name, err)
		}
		return nil
	})
	return err
}

// measure starts the simulated nodes in a child process, lets them settle
// (every node holds its watch, then has acted at least once more, its
// connection up), then measures one window.
func measure(ctx context.Context, srv *server.Server, dir string, spec agentsSpec, settle, window time.Duration, nodeEvents, leaseEvents *atomic.Int64) (result, error) {
	data, err := json.Marshal(spec)
	if err != nil {
		return result{}, err
	}
	specPath := filepath.Join(dir, "agents.json")
	if err := os.WriteFile(specPath, data, 0o600); err != nil {
		return result{}, err
	}
	self, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	child := exec.CommandContext(ctx, self, "-agents", specPath)
	child.Stderr = os.Stderr
	stdin, err := child.StdinPipe()
	if err != nil {
		return result{}, err
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		return result{}, err
	}
	if err := child.Start(); err != nil {
		return result{}, fmt.Errorf("start the simulated nodes: %w", err)
	}
	defer func() {
		stdin.Close()
		child.Wait()
	}()
	marks := bufio.NewScanner(stdout)
	mark := func() (counts, error) {
		if _, err := io.WriteString(stdin, "mark\n"); err != nil {
			return counts{}, err
		}
		if !marks.Scan() {
			return counts{}, fmt.Errorf("the simulated nodes ended: %v", marks.Err())
		}
		var c counts
		return c, json.Unmarshal(marks.Bytes(), &c)
	}
	// Every node holds its watch (the new way), then acts once more with
	// nothing left over from starting: the steady state begins then.
	for deadline := time.Now().Add(2 * time.Minute); !spec.Old; time.Sleep(500 * time.Millisecond) {
		c, err := mark()
		if err != nil {
			return result{}, err
		}
		if c.Watching == int64(len(spec.Tokens)) {
			break
		}
		if time.Now().After(deadline) {
			return result{}, fmt.Errorf("only %d of %d simulated nodes hold their Node watch after 2 minutes", c.Watching, len(spec.Tokens))
		}
	}
	time.Sleep(settle)
	rev0, err := srv.Store.CurrentRevision(ctx)
	if err != nil {
		return result{}, err
	}
	c0, err := mark()
	if err != nil {
		return result{}, err
	}
	cpu0, n0, l0, t0 := benchkit.CPUTime(), nodeEvents.Load(), leaseEvents.Load(), time.Now()
	time.Sleep(window)
	cpu1, n1, l1, t1 := benchkit.CPUTime(), nodeEvents.Load(), leaseEvents.Load(), time.Now()
	rev1, err := srv.Store.CurrentRevision(ctx)
	if err != nil {
		return result{}, err
	}
	c1, err := mark()
	if err != nil {
		return result{}, err
	}
	// Outside the window: what the window's revisions wrote.
	bytes, err := writtenBetween(ctx, srv.Etcd, srv.Store.Prefix(), rev0, rev1)
	if err != nil {
		return result{}, err
	}
	return result{
		seconds: t1.Sub(t0).Seconds(), writes: rev1 - rev0, bytes: bytes, cpu: cpu1 - cpu0,
		nodeEvents: n1 - n0, leaseEvents: l1 - l0, watchingAtMark: c1.Watching,
		agents: counts{StatusPatches: c1.StatusPatches - c0.StatusPatches, LeaseRenewals: c1.LeaseRenewals - c0.LeaseRenewals, Errors: c1.Errors - c0.Errors},
	}, nil
}

// writtenBetween sums the keys and values the revisions after from, up
// to and including to, wrote under prefix (deletes count their key).
func writtenBetween(ctx context.Context, etcd *clientv3.Client, prefix string, from, to int64) (int64, error) {
	if to <= from {
		return 0, nil
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var sum int64
	for resp := range etcd.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(from+1)) {
		if err := resp.Err(); err != nil {
			return 0, fmt.Errorf("read back the window's writes: %w", err)
		}
		for _, ev := range resp.Events {
			if ev.Kv.ModRevision > to {
				return sum, nil
			}
			sum += int64(len(ev.Kv.Key) + len(ev.Kv.Value))
			if ev.Kv.ModRevision == to {
				return sum, nil
			}
		}
	}
	return 0, fmt.Errorf("read back the window's writes: %w", wctx.Err())
}

func printTable(results []result, nodes int, period, report, window time.Duration) {
	fmt.Printf("idle fleet: %d simulated nodes, heartbeat every %s, new way's status report every %s, %s measured per row\n\n", nodes, period, report, window)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "Instances\tway\tstatus PATCH/s\tLease PUT/s\tetcd writes/s\tetcd KiB/s\tAPI+etcd CPU s/s\tCPU ms/write\tNode events/s\tLease events/s\terrors\t\n")
	for _, r := range results {
		perS := func(n int64) float64 { return float64(n) / r.seconds }
		cpu := r.cpu.Seconds() / r.seconds
		perWrite := 0.0
		if r.writes > 0 {
			perWrite = r.cpu.Seconds() * 1000 / float64(r.writes)
		}
		fmt.Fprintf(tw, "%d\t%s\t%.1f\t%.1f\t%.1f\t%.1f\t%.3f\t%.2f\t%.1f\t%.1f\t%d\t\n", r.instances, way(r.old),
			perS(r.agents.StatusPatches), perS(r.agents.LeaseRenewals), perS(r.writes), perS(r.bytes)/1024, cpu, perWrite,
			perS(r.nodeEvents), perS(r.leaseEvents), r.agents.Errors)
	}
	tw.Flush()
	fmt.Println()
	tw = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "Instances\tnew/old etcd writes\tnew/old etcd bytes\tnew/old CPU\tnew/old Node events\t\n")
	for i := 0; i+1 < len(results); i += 2 {
		o, n := results[i], results[i+1]
		ratio := func(a, b float64) string {
			if b == 0 {
				return "-"
			}
			return fmt.Sprintf("%.3f", a/b)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t\n", o.instances,
			ratio(float64(n.writes)/n.seconds, float64(o.writes)/o.seconds), ratio(float64(n.bytes)/n.seconds, float64(o.bytes)/o.seconds),
			ratio(n.cpu.Seconds()/n.seconds, o.cpu.Seconds()/o.seconds), ratio(float64(n.nodeEvents)/n.seconds, float64(o.nodeEvents)/o.seconds))
	}
	tw.Flush()
	if last := results[len(results)-1]; last.watchingAtMark < int64(last.nodes) {
		fmt.Printf("\nnote: only %d of %d simulated nodes held their Node watch at the end of the last window\n", last.watchingAtMark, last.nodes)
	}
}
