package e2e

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrapeValue GETs the agent's /metrics and returns the sample of name
// with exactly these labels (as the text format prints them, sorted), or
// ok false when there is none.
func (e *env) scrapeValue(name, labels string) (float64, bool, string) {
	e.t.Helper()
	resp, err := http.Get("http://" + e.metrics + "/metrics")
	if err != nil {
		return 0, false, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	prefix := name + "{" + labels + "} "
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil, string(body)
		}
	}
	return 0, false, string(body)
}

// waitMetric scrapes until name{labels} satisfies cond, and returns it.
func (e *env) waitMetric(name, labels, what string, cond func(float64) bool) float64 {
	e.t.Helper()
	var body string
	for deadline := time.Now().Add(45 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		v, ok, b := e.scrapeValue(name, labels)
		body = b
		if ok && cond(v) {
			return v
		}
	}
	logs, _ := e.sb.Exec("journalctl", "-u", "l4m-node", "--no-pager", "-n", "40")
	e.t.Fatalf("%s{%s}: no %s within 45s; last scrape:\n%s\nl4m-node:\n%s", name, labels, what, body, logs)
	return 0
}

// TestMetricsOfARealGame scrapes a real l4m-node on a sandbox host: the
// game answers (up 1), a player joining shows, memory comes from the
// unit's real cgroup, and a game killed and restarted by systemd counts as
// a restart.
func TestMetricsOfARealGame(t *testing.T) {
	e := setup(t)
	port := e.runCoop1()
	inst := `instance="coop-1",namespace="default"`
	is := func(want float64) func(float64) bool { return func(v float64) bool { return v == want } }
	e.waitMetric("left4me_instance_up", inst, "up 1", is(1))
	e.waitMetric("left4me_instance_max_players", inst, "4 slots", is(4))
	e.waitMetric("left4me_instance_players", inst, "empty server", is(0))
	e.waitMetric("left4me_instance_memory_bytes", inst, "memory from the cgroup", func(v float64) bool { return v > 0 })
	e.waitMetric("left4me_instance_cpu_seconds_total", inst, "CPU time from the cgroup", func(v float64) bool { return v >= 0 })
	e.waitMetric("left4me_instance_a2s_duration_seconds_count", inst, "answered probes", func(v float64) bool { return v > 0 })
	e.waitMetric("left4me_node_instances", `phase="Running"`, "one Running Instance", is(1))
	e.waitMetric("left4me_node_installation_build_info", `build="2.2.4.3",installation="installation/"`, "the hand-made installation's build", is(1))

	joinPlayer(t, e, "coop-1", port, "Zoey")
	e.waitMetric("left4me_instance_players", inst, "the player who joined", is(1))

	before := e.waitMetric("left4me_instance_restarts_total", inst, "a restart count", func(float64) bool { return true })
	e.sb.MustExec(t, "systemctl", "kill", "-s", "KILL", "l4m-default.coop-1.service")
	e.waitMetric("left4me_instance_restarts_total", inst, "the restart systemd made", func(v float64) bool { return v == before+1 })
	e.waitMetric("left4me_instance_up", inst, "up again after the restart", is(1))
}
