package agent

import (
	"encoding/json"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/yaml"

	"github.com/left4me/left4me/apis/server/servertest"
	"github.com/left4me/left4me/controllers/leader"
)

// exportedNames are the metric names the node's registry and a real
// l4m-server's (controllers included) describe, with the series a
// histogram adds.
func exportedNames(t *testing.T) map[string]bool {
	t.Helper()
	// The leader's gauge is registered by leader.New; the controllers need
	// not run for it to be described.
	srv, _ := servertest.Start(t)
	if _, err := leader.New(leader.Options{Store: srv.Store, Etcd: srv.Etcd, Metrics: srv.MetricsRegistry()}); err != nil {
		t.Fatal(err)
	}
	serverRegistry, ok := srv.MetricsRegistry().(prometheus.Collector)
	if !ok {
		t.Fatalf("the API server's registry %T cannot be described", srv.MetricsRegistry())
	}
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	names := map[string]bool{}
	for _, c := range []prometheus.Collector{newMetricsRegistry(func() nodeSample { return nodeSample{} }), serverRegistry} {
		ch := make(chan *prometheus.Desc, 1024)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			if m := fqName.FindStringSubmatch(d.String()); m != nil {
				for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
					names[m[1]+suffix] = true
				}
			}
		}
	}
	return names
}

// promqlName finds the left4me metric names in a PromQL expression.
var promqlName = regexp.MustCompile(`\bleft4me_[a-zA-Z0-9_]+`)

// TestDashboardUsesExportedMetrics: every metric the Grafana dashboard
// queries is one l4m-node or l4m-server exports (a renamed metric would
// leave an empty panel nobody notices), and the dashboard shows what an
// admin watches.
func TestDashboardUsesExportedMetrics(t *testing.T) {
	data, err := os.ReadFile("../../config/grafana/left4me.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
		Templating struct {
			List []struct{ Query any }
		}
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("config/grafana/left4me.json: %v", err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if q, ok := v.Query.(string); ok {
			exprs = append(exprs, q)
		}
	}
	exported := exportedNames(t)
	used := map[string]bool{}
	for _, e := range exprs {
		for _, name := range promqlName.FindAllString(e, -1) {
			used[name] = true
			if !exported[name] {
				t.Errorf("the dashboard queries %s, which nothing exports (in %q)", name, e)
			}
		}
	}
	for _, want := range []string{"left4me_instance_players", "left4me_instance_up", "left4me_instance_cpu_seconds_total",
		"left4me_instance_memory_bytes", "left4me_instance_restarts_total", "left4me_instance_a2s_duration_seconds_bucket",
		"left4me_node_instances"} {
		if !used[want] {
			t.Errorf("the dashboard shows no %s", want)
		}
	}
	if t.Failed() {
		var names []string
		for n := range exported {
			if strings.HasPrefix(n, "left4me_") {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		t.Logf("exported: %v", names)
	}
}

// TestPrometheusExampleScrapesBoth: the example scrape configuration parses
// and scrapes l4m-node (keeping the Instances' instance label) and
// l4m-server with a bearer token.
func TestPrometheusExampleScrapesBoth(t *testing.T) {
	data, err := os.ReadFile("../../config/prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ScrapeConfigs []struct {
			JobName       string `json:"job_name"`
			HonorLabels   bool   `json:"honor_labels"`
			Scheme        string `json:"scheme"`
			Authorization struct {
				Type            string `json:"type"`
				CredentialsFile string `json:"credentials_file"`
			} `json:"authorization"`
			StaticConfigs []struct {
				Targets []string `json:"targets"`
			} `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("config/prometheus/prometheus.yml: %v", err)
	}
	jobs := map[string]bool{}
	for _, j := range cfg.ScrapeConfigs {
		jobs[j.JobName] = true
		switch j.JobName {
		case "l4m-node":
			if !j.HonorLabels || len(j.StaticConfigs) == 0 || !strings.HasSuffix(j.StaticConfigs[0].Targets[0], ":9740") {
				t.Errorf("l4m-node job: %+v", j)
			}
		case "l4m-server":
			if j.Scheme != "https" || j.Authorization.Type != "Bearer" || j.Authorization.CredentialsFile == "" {
				t.Errorf("l4m-server job: %+v", j)
			}
		}
	}
	if !jobs["l4m-node"] || !jobs["l4m-server"] {
		t.Errorf("jobs %v, want l4m-node and l4m-server", jobs)
	}
}
