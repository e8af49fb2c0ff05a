package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
)

// This file is the child process: the simulated nodes, each with its own
// node credential and connection, doing what an idle agent does to the
// API. They run in a process of their own so that the parent's CPU time
// is the API server's and etcd's alone.

// agentsSpec is what the parent hands the child (a JSON file).
type agentsSpec struct {
	Server string   `json:"server"`
	CA     []byte   `json:"ca"`
	Tokens []string `json:"tokens"` // node-<i>'s is Tokens[i]
	// Old: a full status PATCH every period. New: a Lease renewal every
	// period, a watch on the node's own Node, and the status every Report.
	Old    bool          `json:"old"`
	Period time.Duration `json:"period"`
	Report time.Duration `json:"report"`
}

// counts are the requests the simulated nodes sent, for the parent's
// window (read with a "mark" line on stdin).
type counts struct {
	StatusPatches int64 `json:"statusPatches"`
	LeaseRenewals int64 `json:"leaseRenewals"`
	Errors        int64 `json:"errors"`
	Watching      int64 `json:"watching"`
}

type agentCounters struct {
	status, lease, errors, watching atomic.Int64
}

func (c *agentCounters) snapshot() counts {
	return counts{StatusPatches: c.status.Load(), LeaseRenewals: c.lease.Load(), Errors: c.errors.Load(), Watching: c.watching.Load()}
}

// runAgents runs the simulated nodes until stdin closes, answering each
// "mark" line on stdin with the counters as one JSON line on stdout.
func runAgents(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read the agents' spec: %w", err)
	}
	var spec agentsSpec
	if err := json.Unmarshal(data, &spec); err != nil {
		return fmt.Errorf("decode the agents' spec: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var c agentCounters
	var wg sync.WaitGroup
	for i, tok := range spec.Tokens {
		cl, err := client.New(client.Config{Server: spec.Server, Token: tok, CAData: spec.CA})
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cl.Close()
			simulateNode(ctx, cl, fmt.Sprintf("node-%d", i), spec, &c)
		}()
	}
	in := bufio.NewScanner(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		if err := out.Encode(c.snapshot()); err != nil {
			break
		}
	}
	cancel()
	wg.Wait()
	return nil
}

// simulateNode is one idle agent. Each starts at a random point of its
// period, as agents started at different times would; in the new way its
// status report falls at a random point of the report period.
func simulateNode(ctx context.Context, cl *client.Client, name string, spec agentsSpec, c *agentCounters) {
	if !sleepCtx(ctx, rand.N(spec.Period)) {
		return
	}
	t := time.NewTicker(spec.Period)
	defer t.Stop()
	var nextReport time.Time
	if !spec.Old {
		go watchOwnNode(ctx, cl, name, c)
		nextReport = time.Now().Add(rand.N(spec.Report))
	}
	var lease *v1.Lease
	for {
		if spec.Old || !time.Now().Before(nextReport) {
			if err := patchStatus(ctx, cl, name); err != nil {
				c.errors.Add(1)
			} else {
				c.status.Add(1)
			}
			nextReport = nextReport.Add(spec.Report)
		}
		if !spec.Old {
			var err error
			if lease, err = renewLease(ctx, cl, name, lease); err != nil {
				c.errors.Add(1)
			} else {
				c.lease.Add(1)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// patchStatus is the agent's status write: its whole status, as
// node/agent's statusPatch makes it.
func patchStatus(ctx context.Context, cl *client.Client, name string) error {
	now := metav1.Now()
	since := metav1.NewTime(now.Add(-time.Hour))
	st := v1.NodeStatus{
		Addresses: []string{"10.0.0.7"}, HeartbeatTime: &now, AgentVersion: "bench",
		Installation:  v1.LegacyInstallation{Present: false},
		Installations: []v1.NodeInstallation{{Name: "l4d2", Phase: v1.InstallReady, Builds: []string{"18500000"}, LatestSeen: "18500000", CheckedAt: &since}},
		LogsEndpoint:  &v1.LogsEndpoint{Port: 6444, CertSHA256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
		Conditions: []metav1.Condition{
			{Type: v1.ConditionReady, Status: metav1.ConditionTrue, Reason: "AgentHeartbeat", Message: "l4m-node is running", LastTransitionTime: since},
			{Type: v1.NodeInstancesSynced, Status: metav1.ConditionTrue, Reason: "Synced", Message: "every Instance bound here reconciled since l4m-node started", LastTransitionTime: since},
		},
	}
	patch, err := json.Marshal(map[string]any{"status": st})
	if err != nil {
		return err
	}
	_, err = cl.PatchStatus(ctx, resources.Nodes, "", name, patch)
	return err
}

// renewLease is the agent's renewal: an update of the copy last returned,
// read or created again only when there is none or it is stale.
func renewLease(ctx context.Context, cl *client.Client, name string, cur *v1.Lease) (*v1.Lease, error) {
	now := metav1.NowMicro()
	for attempt := 0; ; attempt++ {
		if cur == nil {
			obj, err := cl.Get(ctx, resources.Leases, "", name)
			if err == nil {
				cur = obj.(*v1.Lease)
			} else if !apierrors.IsNotFound(err) {
				return nil, err
			}
		}
		var out v1.Object
		var err error
		if cur == nil {
			l := &v1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: v1.LeaseSpec{HolderIdentity: name, LeaseDurationSeconds: v1.NodeLeaseDurationSeconds, AcquireTime: &now, RenewTime: &now}}
			out, err = cl.Create(ctx, resources.Leases, l, false)
		} else {
			l := cur.DeepCopy()
			l.Spec.RenewTime = &now
			out, err = cl.Update(ctx, resources.Leases, l, false)
		}
		if err == nil {
			return out.(*v1.Lease), nil
		}
		if attempt > 0 || !(apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) || apierrors.IsNotFound(err)) {
			return nil, err
		}
		cur = nil
	}
}

// watchOwnNode holds the agent's watch on its own Node, relisting when it
// ends, as node/agent's watchOwnNode does.
func watchOwnNode(ctx context.Context, cl *client.Client, name string, c *agentCounters) {
	sel := "metadata.name=" + name
	for ctx.Err() == nil {
		list, err := cl.List(ctx, resources.Nodes, "", client.ListOptions{FieldSelector: sel})
		if err != nil {
			sleepCtx(ctx, time.Second)
			continue
		}
		w, err := cl.Watch(ctx, resources.Nodes, "", client.ListOptions{FieldSelector: sel, ResourceVersion: list.GetResourceVersion()})
		if err != nil {
			sleepCtx(ctx, time.Second)
			continue
		}
		c.watching.Add(1)
		for range w.ResultChan() {
		}
		c.watching.Add(-1)
		w.Stop()
	}
}

// sleepCtx waits d; false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
