// Command bench-watch measures what open watches cost the API server, and
// prints a table: Instance creates per second from 16 clients with 0, 500
// and 5,000 watches open, each selecting one node's Instances
// (fieldSelector spec.nodeName=node-N, as every l4m-node does, each over a
// connection of its own), and the server's memory and CPU with them.
//
// The server runs in a child process (this program started with -serve),
// so that its memory (Go heap and stacks after a GC, and RSS) and CPU
// seconds are its own and not the watch clients'. The creates name nodes
// round robin, so each reaches exactly one open watch; the table's
// "delivered" column counts the events the watches received, which must be
// every create that named a watched node.
//
// Run it with `make bench-watch` (-watchers and -n change the sizes).
// Compare the rates within one run: the machine is shared and noisy.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/hack/internal/benchkit"
)

func main() {
	serve := flag.String("serve", "", "internal: run the API server with its data in this directory, answering on stdin/stdout")
	n := flag.Int("n", 3000, "creates per measured round (three rounds per watcher count)")
	counts := flag.String("watchers", "0,500,5000", "watcher counts to measure, comma-separated")
	profile := flag.String("cpuprofile", "", "write the server's CPU profile here")
	heap := flag.String("heapprofile", "", "write the server's heap profile here, with the most watchers open")
	flag.Parse()
	var err error
	if *serve != "" {
		if *profile != "" {
			f, err := os.Create(*profile)
			if err == nil {
				pprof.StartCPUProfile(f)
				defer pprof.StopCPUProfile()
			}
		}
		err = serveChild(*serve)
	} else {
		err = run(*n, *counts, *profile, *heap)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-watch:", err)
		os.Exit(1)
	}
}

// serveChild is the measured side: an l4m-server serving the API alone. It
// prints its admin config's path, then answers each "stats" line on stdin
// with its memory and CPU, until stdin closes.
func serveChild(dir string) error {
	// Each node has an address of its own; here every watch comes from
	// 127.0.0.1, so the cap on one address's connections is lifted.
	srv, err := server.Start(context.Background(), server.Options{DataDir: dir, Listen: "127.0.0.1:0", Log: logr.Discard(), MaxConnsPerAddress: -1})
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Println(srv.AdminConfigPath)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if path, ok := strings.CutPrefix(in.Text(), "heap "); ok {
			f, err := os.Create(path)
			if err != nil {
				return err
			}
			err = pprof.WriteHeapProfile(f)
			f.Close()
			if err != nil {
				return err
			}
			continue
		}
		if in.Text() != "stats" {
			continue
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		cpu := benchkit.CPUTime()
		fmt.Printf("%d %d %d %d %d\n", ms.HeapInuse, ms.StackInuse, rss(), cpu.Nanoseconds(), runtime.NumGoroutine())
	}
	return in.Err()
}

// rss is this process's resident set in bytes (0 if /proc says otherwise).
func rss() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// stats is one reading of the child's memory and CPU.
type stats struct {
	heap, stacks, rss int64
	cpu               time.Duration
	goroutines        int
}

// child is the server process and the pipe that asks it for stats.
type child struct {
	cmd    *exec.Cmd
	in     *os.File
	out    *bufio.Scanner
	config string
}

func startChild(dir, profile string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-serve", dir, "-cpuprofile", profile)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, out: bufio.NewScanner(stdout)}
	c.in = stdin.(*os.File)
	if !c.out.Scan() {
		c.stop()
		return nil, errors.New("the server process ended before it was ready")
	}
	c.config = c.out.Text()
	return c, nil
}

func (c *child) stats() (stats, error) {
	if _, err := fmt.Fprintln(c.in, "stats"); err != nil {
		return stats{}, err
	}
	if !c.out.Scan() {
		return stats{}, errors.New("the server process ended")
	}
	var s stats
	var cpu int64
	if _, err := fmt.Sscan(c.out.Text(), &s.heap, &s.stacks, &s.rss, &cpu, &s.goroutines); err != nil {
		return stats{}, fmt.Errorf("the server's stats %q: %w", c.out.Text(), err)
	}
	s.cpu = time.Duration(cpu)
	return s, nil
}

// stop closes the child's stdin (it then shuts down) and waits for it.
func (c *child) stop() {
	c.in.Close()
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

// watchers are open watches, one client (so one connection) each, and what
// they received.
type watchers struct {
	stops     []func()
	delivered atomic.Int64
	wg        sync.WaitGroup
}

// open adds watches for node-<from> .. node-<to-1>.
func (ws *watchers) open(ctx context.Context, cfg client.Config, from, to int) error {
	for i := from; i < to; i++ {
		cl, err := client.New(cfg)
		if err != nil {
			return err
		}
		w, err := cl.Watch(ctx, resources.Instances, "", client.ListOptions{FieldSelector: "spec.nodeName=" + nodeName(i)})
		if err != nil {
			cl.Close()
			return fmt.Errorf("watch %d: %w", i, err)
		}
		ws.stops = append(ws.stops, func() { w.Stop(); cl.Close() })
		ws.wg.Add(1)
		go func() {
			defer ws.wg.Done()
			for range w.ResultChan() {
				ws.delivered.Add(1)
			}
		}()
	}
	return nil
}

func (ws *watchers) close() {
	for _, stop := range ws.stops {
		stop()
	}
	ws.wg.Wait()
}

func nodeName(i int) string { return fmt.Sprintf("node-%d", i) }

// parseCounts reads -watchers, smallest first.
func parseCounts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("-watchers: %q is not a count", f)
		}
		out = append(out, n)
	}
	sort.Ints(out)
	return out, nil
}

func run(n int, countList, profile, heap string) error {
	counts, err := parseCounts(countList)
	if err != nil {
		return err
	}
	nodes := max(counts[len(counts)-1], 1)
	dir, err := os.MkdirTemp("", "l4m-bench-watch-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ch, err := startChild(dir, profile)
	if err != nil {
		return err
	}
	defer ch.stop()
	f, err := client.LoadFile(ch.config)
	if err != nil {
		return err
	}
	cfg, err := f.Config()
	if err != nil {
		return err
	}
	cl, err := client.New(cfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	create := func(i int) error {
		in := &v1.Instance{
			TypeMeta:   metav1.TypeMeta{APIVersion: v1.APIVersion, Kind: "Instance"},
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("i-%d", i), Namespace: "default"},
			Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}, Hostname: "bench",
				NodeName: nodeName(i % nodes), State: v1.StateRunning},
		}
		_, err := cl.Create(ctx, resources.Instances, in, false)
		return err
	}
	// A round nobody measures first: the first creates after a start are
	// slower (connections, etcd's first pages), which would favour the
	// later rows.
	if _, err := benchkit.Parallel(16, n, func(i int) error { return create(-1 - i) }); err != nil {
		return fmt.Errorf("warm-up creates: %w", err)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "watchers\tcreate/s (16 clients, median of 3)\tspread\tvs 0 watchers\tdelivered\tserver CPU ms/create\theap+stacks\tper watcher\tRSS\t\n")
	ws := &watchers{}
	defer ws.close()
	var rate0 float64
	created := 0
	for _, w := range counts {
		// Memory per watcher: the server's before and after the new
		// watches open, at the same number of objects stored.
		m0, err := ch.stats()
		if err != nil {
			return err
		}
		opened := w - len(ws.stops)
		if err := ws.open(ctx, cfg, len(ws.stops), w); err != nil {
			return err
		}
		m1, err := ch.stats()
		if err != nil {
			return err
		}
		before := ws.delivered.Load()
		var rates []float64
		var cpu time.Duration
		want := int64(0)
		for round := 0; round < 3; round++ {
			s0, err := ch.stats()
			if err != nil {
				return err
			}
			first := created
			rate, err := benchkit.Parallel(16, n, func(i int) error { return create(first + i) })
			if err != nil {
				return fmt.Errorf("creates with %d watchers: %w", w, err)
			}
			s1, err := ch.stats()
			if err != nil {
				return err
			}
			cpu += s1.cpu - s0.cpu
			for i := 0; i < n; i++ {
				if (first+i)%nodes < w {
					want++
				}
			}
			created += n
			rates = append(rates, rate)
		}
		// Every event must arrive; wait for the stragglers a while.
		deadline := time.Now().Add(time.Minute)
		for ws.delivered.Load()-before < want && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		got := ws.delivered.Load() - before
		st, err := ch.stats()
		if heap != "" && w == counts[len(counts)-1] {
			fmt.Fprintln(ch.in, "heap "+heap)
		}
		if err != nil {
			return err
		}
		sort.Float64s(rates)
		med := rates[1]
		if w == counts[0] {
			rate0 = med
		}
		mem := st.heap + st.stacks
		per := "-"
		if opened > 0 {
			per = fmt.Sprintf("%.1f KiB", float64(m1.heap+m1.stacks-m0.heap-m0.stacks)/float64(opened)/1024)
		}
		fmt.Fprintf(tw, "%d\t%.0f\t%.0f-%.0f\t%.2f\t%d/%d\t%.3f\t%.1f MiB\t%s\t%.1f MiB\t\n", w, med, rates[0], rates[2], med/rate0,
			got, want, float64(cpu.Microseconds())/1000/float64(3*n), float64(mem)/(1<<20), per, float64(st.rss)/(1<<20))
		if got != want {
			tw.Flush()
			return fmt.Errorf("with %d watchers %d of %d events arrived", w, got, want)
		}
	}
	return tw.Flush()
}
