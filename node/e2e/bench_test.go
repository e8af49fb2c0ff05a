package e2e

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/node/a2s"
)

// TestNodeBenchmark measures, in one run on one sandbox host, how long an
// Instance takes from the API write to UnitActive and to Ready, side by side
// with bare `systemd-run` starting the same game double (to active, and to
// answering A2S). It also reads the agent's RSS and idle CPU with all the
// Instances running. Run it with `make bench-node` (L4M_BENCH=1); N sets
// the number of Instances (default 50).
func TestNodeBenchmark(t *testing.T) {
	if os.Getenv("L4M_BENCH") == "" {
		t.Skip("a benchmark: run with L4M_BENCH=1 (make bench-node)")
	}
	n := 50
	if v, err := strconv.Atoi(os.Getenv("N")); err == nil && v > 0 {
		n = v
	}
	e := setup(t)
	ctx := context.Background()
	os.WriteFile(e.sb.Left4meDir+"/installation/left4dead2/cfg/server.cfg", []byte("hostname bare\n"), 0o644)

	// Bare systemd-run: the same binary as a plain unit, no agent.
	bare := func(tag string, base int, props []string) (active, ready []time.Duration) {
		for i := 0; i < n; i++ {
			port := base + i
			args := []string{"systemd-run", "--unit=bare-" + tag + strconv.Itoa(i), "-p", "WorkingDirectory=/var/lib/left4me/installation"}
			for _, p := range props {
				args = append(args, "-p", p)
			}
			args = append(args, "/var/lib/left4me/installation/srcds_run", "-game", "left4dead2", "+ip", "0.0.0.0", "+hostport", strconv.Itoa(port),
				"+clientport", strconv.Itoa(port+1000), "-nohltv")
			start := time.Now()
			e.sb.MustExec(t, args...)
			active = append(active, time.Since(start))
			if !waitA2S(port) {
				logs, _ := e.sb.Exec("journalctl", "-u", "bare-"+tag+strconv.Itoa(i), "--no-pager")
				t.Fatalf("bare unit on port %d never answered:\n%s", port, logs)
			}
			ready = append(ready, time.Since(start))
		}
		for i := 0; i < n; i++ {
			e.sb.Exec("systemctl", "stop", "bare-"+tag+strconv.Itoa(i))
		}
		return active, ready
	}
	bareActive, bareReady := bare("plain", 33000, nil)

	// Through left4me: write, then follow the Instance's watch events.
	e.create(&v1.Blueprint{ObjectMeta: meta_("bench"), Spec: v1.BlueprintSpec{Game: v1.GameSpec{MaxPlayers: 4}}})
	w, err := e.admin.Watch(ctx, instances, "default", client.ListOptions{LabelSelector: "bench=yes"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var apiActive, apiReady []time.Duration
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("bench-%d", i)
		in := &v1.Instance{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"bench": "yes"}},
			Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "bench"}, NodeName: e.node, Port: int32(31000 + i)}}
		start := time.Now()
		if _, err := e.admin.Create(ctx, instances, in, false); err != nil {
			t.Fatal(err)
		}
		var active time.Duration
		deadline := time.After(60 * time.Second)
	follow:
		for {
			select {
			case ev := <-w.ResultChan():
				got, ok := ev.Object.(*v1.Instance)
				if !ok || ev.Type == watch.Deleted || got.Name != name {
					continue
				}
				if active == 0 && meta.IsStatusConditionTrue(got.Status.Conditions, v1.InstanceUnitActive) {
					active = time.Since(start)
				}
				if meta.IsStatusConditionTrue(got.Status.Conditions, v1.ConditionReady) {
					apiReady = append(apiReady, time.Since(start))
					break follow
				}
			case <-deadline:
				logs, _ := e.sb.Exec("journalctl", "-u", "l4m-node", "--no-pager", "-n", "30", "-o", "cat")
				t.Fatalf("%s not Ready within 60s: %+v\n%s", name, e.get(name).Status, logs)
			}
		}
		apiActive = append(apiActive, active)
	}

	pid := strings.TrimSpace(e.sb.MustExec(t, "systemctl", "show", "-P", "MainPID", "l4m-node"))
	rss := strings.TrimSpace(e.sb.MustExec(t, "sh", "-c", "awk '/VmRSS/{print $2}' /proc/"+pid+"/stat* /proc/"+pid+"/status 2>/dev/null | head -1"))
	cpu0 := cpuTicks(t, e, pid)
	time.Sleep(30 * time.Second)
	cpu1 := cpuTicks(t, e, pid)
	idle := float64(cpu1-cpu0) / 100 / 30 * 100 // clock ticks (100/s) → percent of one core
	if os.Getenv("L4M_AGENT_DUMP") != "" {
		top, _ := e.sb.Exec("sh", "-c", "top -b -n 1 -H -p "+pid+" | head -20")
		os.WriteFile("/tmp/agent.top", []byte(top), 0o644)
		e.sb.Exec("kill", "-QUIT", pid)
		time.Sleep(time.Second)
		dump, _ := e.sb.Exec("journalctl", "-u", "l4m-node", "--no-pager", "-o", "cat")
		os.WriteFile("/tmp/agent.dump", []byte(dump), 0o644)
	}

	if os.Getenv("L4M_AGENT_V") != "" {
		logs, _ := e.sb.Exec("journalctl", "-u", "l4m-node", "--no-pager", "-o", "cat")
		os.WriteFile("/tmp/agent.log", []byte(logs), 0o644)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "n=%d, one at a time\tmedian\tp99\t\n", n)
	row := func(name string, d []time.Duration) {
		fmt.Fprintf(tw, "%s\t%v\t%v\t\n", name, pct(d, 0.5), pct(d, 0.99))
	}
	row("bare systemd-run → active", bareActive)
	row("bare systemd-run → A2S answers", bareReady)
	row("API write → UnitActive", apiActive)
	row("API write → Ready (A2S)", apiReady)
	fmt.Fprintf(tw, "ratio write→UnitActive / bare → active\t%.1fx\t\t\n", float64(pct(apiActive, 0.5))/float64(pct(bareActive, 0.5)))
	fmt.Fprintf(tw, "ratio write→Ready / bare → A2S\t%.1fx\t\t\n", float64(pct(apiReady, 0.5))/float64(pct(bareReady, 0.5)))
	fmt.Fprintf(tw, "l4m-node RSS with %d Instances\t%s KiB\t\t\n", n, rss)
	fmt.Fprintf(tw, "l4m-node CPU when idle (30 s)\t%.2f%%\t\t\n", idle)
	tw.Flush()
}

func cpuTicks(t *testing.T, e *env, pid string) int {
	stat := e.sb.MustExec(t, "cat", "/proc/"+pid+"/stat")
	f := strings.Fields(stat[strings.LastIndex(stat, ")")+2:])
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return u + s
}

func waitA2S(port int) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_, err := a2s.QueryInfo(ctx, "127.0.0.1:"+strconv.Itoa(port))
		cancel()
		if err == nil {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

func pct(d []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)].Round(time.Millisecond)
}
