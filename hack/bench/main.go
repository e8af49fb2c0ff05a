// Command bench measures the API server against the etcd it stands on, side
// by side in one run, and prints a table:
//
//   - raw etcd puts through clientv3 vs Instance creates through the HTTP
//     API, with 1 and 16 concurrent clients, against the same embedded etcd.
//     Raw puts are measured twice: through a gRPC client over loopback TCP
//     with TLS and a client certificate (what an etcd client in another
//     process sees) and through the
//     in-process client the API server itself uses (etcd's ceiling here);
//   - listing 10,000 Instances (whole, and in pages of 500);
//   - the latency from a write to its watch event arriving at a client.
//
// Run it with `make bench`. Numbers vary with the machine: compare the
// ratios, not the absolute rates.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/go-logr/logr"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/hack/internal/benchkit"
)

var instances = resources.Instances

func main() {
	n := flag.Int("n", 3000, "writes per throughput run")
	listN := flag.Int("list", 10000, "instances to list")
	watchN := flag.Int("watch", 500, "writes timed through a watch")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile here")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	if err := run(*n, *listN, *watchN); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func newInstance(name string) *v1.Instance {
	return &v1.Instance{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1.APIVersion, Kind: "Instance"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"fleet": "bench"}},
		Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}, Hostname: "bench server " + name,
			NodeName: "node-1", State: v1.StateRunning},
	}
}

func median(v []float64) float64 {
	sort.Float64s(v)
	return v[len(v)/2]
}

func percentile(d []time.Duration, p float64) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[int(float64(len(d)-1)*p)]
}

func run(n, listN, watchN int) error {
	dir, err := os.MkdirTemp("", "l4m-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	// The API alone (server.Start runs no controllers): the scheduler would
	// also write to every Instance made here.
	srv, err := server.Start(ctx, server.Options{DataDir: dir, Listen: "127.0.0.1:0", Log: logr.Discard(),
		// The embedded etcd listens on nothing by default; open its
		// client-certificate port to measure a client in another process.
		EmbeddedEtcdClientAddr: "127.0.0.1:0"})
	if err != nil {
		return err
	}
	defer srv.Close()
	cl, _, err := benchkit.AdminClient(srv)
	if err != nil {
		return err
	}
	payload, _ := json.Marshal(newInstance("payload"))
	// What any etcd client in another process sees: gRPC over loopback TCP
	// (TLS with a client certificate, the only way in).
	tcp, err := clientv3.New(clientv3.Config{Endpoints: srv.EtcdEndpoints, TLS: srv.EtcdClientTLS, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer tcp.Close()

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "writes (n=%d, median of 3)\tclients\tetcd put/s (TCP+TLS client)\tetcd put/s (in-process)\tAPI create/s\tAPI/TCP put\tAPI/in-process put\t\n", n)
	// Alternate the runs, three of each, and report medians: the machine is
	// shared and noisy, and alternating spreads the noise over all three.
	for _, c := range []int{1, 16} {
		var tcps, inprocs, apis []float64
		for round := 0; round < 3; round++ {
			for _, raw := range []struct {
				cl  *clientv3.Client
				out *[]float64
			}{{tcp, &tcps}, {srv.Etcd, &inprocs}} {
				rate, err := benchkit.Parallel(c, n, func(i int) error {
					_, err := raw.cl.Put(ctx, fmt.Sprintf("/bench/raw/%d-%d-%d/%d", c, round, len(*raw.out), i), string(payload))
					return err
				})
				if err != nil {
					return fmt.Errorf("raw puts: %w", err)
				}
				*raw.out = append(*raw.out, rate)
			}
			api, err := benchkit.Parallel(c, n, func(i int) error {
				_, err := cl.Create(ctx, instances, newInstance(fmt.Sprintf("w%d-%d-%d", c, round, i)), false)
				return err
			})
			if err != nil {
				return fmt.Errorf("API creates: %w", err)
			}
			apis = append(apis, api)
		}
		t, in, api := median(tcps), median(inprocs), median(apis)
		fmt.Fprintf(tw, "\t%d\t%.0f\t%.0f\t%.0f\t%.2f\t%.2f\t\n", c, t, in, api, api/t, api/in)
	}
	tw.Flush()

	// Fill a namespace of its own with exactly listN Instances, then list it.
	namespaces := resources.Namespaces
	if _, err := cl.Create(ctx, namespaces, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "list"}}, false); err != nil {
		return err
	}
	if _, err := benchkit.Parallel(16, listN, func(i int) error {
		in := newInstance(fmt.Sprintf("l-%d", i))
		in.Namespace = "list"
		_, err := cl.Create(ctx, instances, in, false)
		return err
	}); err != nil {
		return err
	}
	fmt.Println()
	tw = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "list\titems\tmedian\tmin\t\n")
	for _, limit := range []int64{0, 500} {
		if listN == 0 {
			break
		}
		var times []time.Duration
		items := 0
		for r := 0; r < 5; r++ {
			start := time.Now()
			opts := client.ListOptions{Limit: limit}
			items = 0
			for {
				l, err := cl.List(ctx, instances, "list", opts)
				if err != nil {
					return err
				}
				extracted, _ := meta.ExtractList(l)
				items += len(extracted)
				if l.GetContinue() == "" {
					break
				}
				opts.Continue = l.GetContinue()
			}
			times = append(times, time.Since(start))
		}
		name := "whole list"
		if limit > 0 {
			name = fmt.Sprintf("pages of %d", limit)
		}
		fmt.Fprintf(tw, "%s\t%d\t%v\t%v\t\n", name, items, percentile(times, 0.5).Round(time.Millisecond), percentile(times, 0).Round(time.Millisecond))
	}
	tw.Flush()

	// Watch latency: one watcher, sequential writes, time from the start of
	// each write (and from its acknowledgement) to its event.
	w, err := cl.Watch(ctx, instances, "default", client.ListOptions{LabelSelector: "fleet=watch"})
	if err != nil {
		return err
	}
	defer w.Stop()
	var fromStart, fromAck []time.Duration
	for i := 0; i < watchN; i++ {
		in := newInstance(fmt.Sprintf("watch-%d", i))
		in.Labels["fleet"] = "watch"
		start := time.Now()
		if _, err := cl.Create(ctx, instances, in, false); err != nil {
			return err
		}
		ack := time.Now()
		select {
		case <-w.ResultChan():
		case <-time.After(10 * time.Second):
			return fmt.Errorf("no watch event for write %d within 10s", i)
		}
		now := time.Now()
		fromStart = append(fromStart, now.Sub(start))
		fromAck = append(fromAck, now.Sub(ack))
	}
	fmt.Println()
	tw = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "watch (n=%d)\tmedian\tp99\t\n", watchN)
	fmt.Fprintf(tw, "write start → event\t%v\t%v\t\n", percentile(fromStart, 0.5).Round(10*time.Microsecond), percentile(fromStart, 0.99).Round(10*time.Microsecond))
	fmt.Fprintf(tw, "write ack → event\t%v\t%v\t\n", percentile(fromAck, 0.5).Round(10*time.Microsecond), percentile(fromAck, 0.99).Round(10*time.Microsecond))
	return tw.Flush()
}
