// Command bench-scheduler measures the scheduler: how fast it binds 5,000
// Instances over 100 simulated Nodes (Nodes whose heartbeats this program
// writes every 10 s, as agents would; no agents run), side by side in the
// same run with the limit it stands on: the same number of etcd
// transactions of the same shape (one object put plus one claim key)
// written straight through the in-process etcd client with as many
// writers as the scheduler has workers.
//
// Two ways are measured: a backlog (all Instances exist, then the
// scheduler starts) and a stream (the scheduler runs while they are
// created). It prints medians of -runs runs and the spread check (each
// node's count, ports unique per node). Run it with `make bench-scheduler`.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/go-logr/logr"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/storage"
	"github.com/left4me/left4me/apis/validation"
	"github.com/left4me/left4me/controllers"
	"github.com/left4me/left4me/controllers/scheduler"
)

const workers = 4 // the scheduler's default

func main() {
	n := flag.Int("instances", 5000, "Instances to schedule")
	nodes := flag.Int("nodes", 100, "simulated Nodes")
	runs := flag.Int("runs", 3, "runs per measurement (the median is printed)")
	flag.Parse()
	if err := run(*n, *nodes, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "bench-scheduler:", err)
		os.Exit(1)
	}
}

type result struct {
	backlog, stream, raw time.Duration
}

func run(n, nodes, runs int) error {
	dir, err := os.MkdirTemp("", "l4m-bench-scheduler")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e, err := storage.StartEmbedded(ctx, storage.EmbeddedOptions{Dir: dir + "/etcd"}, logr.Discard())
	if err != nil {
		return err
	}
	defer e.Close()
	var results []result
	for r := 0; r < runs; r++ {
		var res result
		if res.raw, err = rawTxns(ctx, e.Client, fmt.Sprintf("/raw%d", r), n); err != nil {
			return err
		}
		if res.backlog, err = schedule(ctx, e.Client, fmt.Sprintf("/backlog%d", r), n, nodes, false); err != nil {
			return err
		}
		if res.stream, err = schedule(ctx, e.Client, fmt.Sprintf("/stream%d", r), n, nodes, true); err != nil {
			return err
		}
		results = append(results, res)
		fmt.Fprintf(os.Stderr, "run %d: raw %s, backlog %s, stream %s\n", r+1, res.raw.Round(time.Millisecond), res.backlog.Round(time.Millisecond), res.stream.Round(time.Millisecond))
	}
	med := func(f func(result) time.Duration) time.Duration {
		var ds []time.Duration
		for _, r := range results {
			ds = append(ds, f(r))
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)/2]
	}
	raw, backlog, stream := med(func(r result) time.Duration { return r.raw }), med(func(r result) time.Duration { return r.backlog }), med(func(r result) time.Duration { return r.stream })
	rate := func(d time.Duration) float64 { return float64(n) / d.Seconds() }
	fmt.Printf("\n%d Instances over %d Nodes, medians of %d runs, embedded etcd\n\n", n, nodes, runs)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "what\ttotal\tper second\tvs raw etcd txns")
	fmt.Fprintf(tw, "raw etcd txns (put + claim key, %d writers)\t%s\t%.0f\t1.00\n", workers, raw.Round(time.Millisecond), rate(raw))
	fmt.Fprintf(tw, "scheduler, backlog (all exist, then it starts)\t%s\t%.0f\t%.2f\n", backlog.Round(time.Millisecond), rate(backlog), rate(backlog)/rate(raw))
	fmt.Fprintf(tw, "scheduler, stream (bound while being created)\t%s\t%.0f\t%.2f\n", stream.Round(time.Millisecond), rate(stream), rate(stream)/rate(raw))
	tw.Flush()
	return nil
}

// rawTxns writes n transactions shaped like a binding: compare the object's
// revision and the claim's absence, put both.
func rawTxns(ctx context.Context, c *clientv3.Client, prefix string, n int) (time.Duration, error) {
	in := newInstance("x")
	in.Spec.NodeName, in.Status.Port = "node-000", 27015
	body, err := json.Marshal(in) // what a binding stores
	if err != nil {
		return 0, err
	}
	began := time.Now()
	err = parallel(workers, n, func(i int) error {
		key := prefix + "/instances/" + strconv.Itoa(i)
		claim := prefix + "/claims/" + strconv.Itoa(i)
		_, err := c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", 0), clientv3.Compare(clientv3.CreateRevision(claim), "=", 0)).
			Then(clientv3.OpPut(key, string(body)), clientv3.OpPut(claim, "default/x")).Commit()
		return err
	})
	return time.Since(began), err
}

// parallel runs op for 0..n-1 on w workers and returns the first error.
func parallel(w, n int, op func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := op(i); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return err
	}
	return nil
}

func newInstance(name string) *v1.Instance {
	return &v1.Instance{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}, State: v1.StateRunning}}
}

// schedule measures the time until n Instances are bound by a scheduler on
// a fresh store under prefix.
func schedule(ctx context.Context, c *clientv3.Client, prefix string, n, nodes int, stream bool) (time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := storage.New(c, storage.Options{Prefix: prefix, Log: logr.Discard()})
	if err := s.StartWatching(ctx); err != nil {
		return 0, err
	}
	if err := s.EnsureNamespace(ctx, "default"); err != nil {
		return 0, err
	}
	bp := &v1.Blueprint{ObjectMeta: metav1.ObjectMeta{Name: "coop", Namespace: "default"}}
	validation.Default(bp)
	if _, err := s.Create(ctx, resources.Blueprints, bp, storage.CreateOptions{}); err != nil {
		return 0, err
	}
	for i := 0; i < nodes; i++ {
		node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%03d", i)},
			Spec: v1.NodeSpec{PortRange: v1.PortRange{Min: 27015, Max: 27114}}}
		if _, err := s.Create(ctx, resources.Nodes, node, storage.CreateOptions{}); err != nil {
			return 0, err
		}
	}
	heartbeats := func() error {
		for i := 0; i < nodes; i++ {
			if err := heartbeat(ctx, s, fmt.Sprintf("node-%03d", i)); err != nil {
				return err
			}
		}
		return nil
	}
	if err := heartbeats(); err != nil {
		return 0, err
	}
	// Agents keep writing heartbeats (every 10 s each) while the scheduler works.
	go func() {
		t := time.NewTicker(10 * time.Second / time.Duration(nodes))
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				heartbeat(ctx, s, fmt.Sprintf("node-%03d", i%nodes))
			}
		}
	}()
	create := func() error {
		return parallelCreate(ctx, s, n)
	}
	if !stream {
		if err := create(); err != nil {
			return 0, err
		}
	}
	bound := make(chan struct{})
	var count atomic.Int64
	ins := controllers.NewInformer(s, resources.Instances, logr.Discard())
	seen := map[string]bool{}
	var mu sync.Mutex
	ins.OnChange(func(_, cur v1.Object) {
		if cur == nil || cur.(*v1.Instance).Spec.NodeName == "" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !seen[cur.GetName()] {
			seen[cur.GetName()] = true
			if count.Add(1) == int64(n) {
				close(bound)
			}
		}
	})
	runAll := startScheduler(ctx, s, ins)
	began := time.Now()
	runAll()
	if stream {
		if err := create(); err != nil {
			return 0, err
		}
	}
	select {
	case <-bound:
	case <-time.After(5 * time.Minute):
		return 0, fmt.Errorf("only %d of %d bound after 5 minutes", count.Load(), n)
	}
	took := time.Since(began)
	return took, check(ctx, s, n, nodes)
}

func heartbeat(ctx context.Context, s *storage.Store, name string) error {
	for {
		obj, err := s.Get(ctx, resources.Nodes, "", name)
		if err != nil {
			return err
		}
		node := obj.(*v1.Node)
		now := metav1.Now()
		node.Status.HeartbeatTime = &now
		meta.SetStatusCondition(&node.Status.Conditions, metav1.Condition{Type: v1.ConditionReady, Status: metav1.ConditionTrue, Reason: "AgentHeartbeat"})
		_, err = s.Update(ctx, resources.Nodes, node, storage.UpdateOptions{Status: true})
		if err == nil || ctx.Err() != nil {
			return nil
		}
	}
}

func parallelCreate(ctx context.Context, s *storage.Store, n int) error {
	return parallel(16, n, func(i int) error {
		_, err := s.Create(ctx, resources.Instances, newInstance(fmt.Sprintf("srv-%05d", i)), storage.CreateOptions{})
		return err
	})
}

// startScheduler wires a scheduler as l4m-server does; the returned func
// starts it.
func startScheduler(ctx context.Context, s *storage.Store, ins *controllers.Informer) func() {
	log := logr.Discard()
	nodes := controllers.NewInformer(s, resources.Nodes, log)
	bps := controllers.NewInformer(s, resources.Blueprints, log)
	insts := controllers.NewInformer(s, resources.Installations, log)
	rec := controllers.NewRecorder(s, "l4m-scheduler", log)
	sched := scheduler.New(scheduler.Options{Store: s, Instances: ins, Nodes: nodes, Blueprints: bps, Installations: insts, Recorder: rec, Log: log})
	return func() {
		for _, f := range []func(context.Context){ins.Run, nodes.Run, bps.Run, insts.Run, rec.Run, sched.Run} {
			go f(ctx)
		}
	}
}

// check: every node holds n/nodes Instances (spread), no port twice.
func check(ctx context.Context, s *storage.Store, n, nodes int) error {
	list, err := s.List(ctx, resources.Instances, storage.ListOptions{})
	if err != nil {
		return err
	}
	ports := map[string]map[int32]bool{}
	for _, in := range list.(*v1.InstanceList).Items {
		if ports[in.Spec.NodeName] == nil {
			ports[in.Spec.NodeName] = map[int32]bool{}
		}
		if ports[in.Spec.NodeName][in.GamePort()] {
			return fmt.Errorf("port %d given twice on %s", in.GamePort(), in.Spec.NodeName)
		}
		ports[in.Spec.NodeName][in.GamePort()] = true
	}
	if len(ports) != nodes {
		return fmt.Errorf("the Instances landed on %d nodes, want %d", len(ports), nodes)
	}
	for node, p := range ports {
		if len(p) != n/nodes {
			return fmt.Errorf("%s holds %d Instances, want %d (spread)", node, len(p), n/nodes)
		}
	}
	return nil
}
