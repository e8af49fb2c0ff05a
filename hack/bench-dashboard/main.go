// Command bench-dashboard measures the dashboard against the API it reads
// through, side by side in one run, and prints a table:
//
//   - the fleet page (/ui/) with -instances Instances over -nodes Nodes,
//     every one Running and Ready, stored in a real l4m-server (embedded
//     etcd, HTTPS): the time to its first byte (the server lists, renders
//     and sends the page whole, so that is the render) and to its last,
//     and the bytes sent, next to the API's own LIST of the same
//     Instances (the limit: the store's list, encoded as JSON). The server
//     does not compress; the gzip column is what gzip would make of it;
//   - Ready → browser: headless Chromium on the fleet page (logged in
//     through the form); the program writes an Instance's Ready condition
//     through the status subresource, as its node would, and times until
//     the page's row says Ready True (a MutationObserver on the table,
//     stamped with the browser's clock, whose offset from this program's
//     is read before each write), next to a plain API watch delivering
//     the same write (the limit; its events are stamped as they come). Each round first turns the Instance unready and waits for
//     both to see that, so each measured write starts from quiet.
//
// Run it with `make bench-dashboard` (Chromium at /usr/bin/chromium, or
// -chromium PATH; without one the second part is skipped).
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptrace"
	"net/url"
	"os"
	"regexp"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/hack/internal/benchkit"
)

const (
	user       = "bench"
	password   = "a long enough bench password"
	namespaces = 4
)

func main() {
	n := flag.Int("instances", 1000, "Instances on the fleet page")
	nodes := flag.Int("nodes", 20, "Nodes")
	requests := flag.Int("requests", 50, "fleet page requests (and API lists) timed")
	rounds := flag.Int("transitions", 20, "Ready transitions timed in the browser")
	chromium := flag.String("chromium", "/usr/bin/chromium", "headless Chromium to drive")
	flag.Parse()
	if err := run(*n, *nodes, *requests, *rounds, *chromium); err != nil {
		fmt.Fprintln(os.Stderr, "bench-dashboard:", err)
		os.Exit(1)
	}
}

func run(n, nodes, requests, rounds int, chromium string) error {
	dir, err := os.MkdirTemp("", "l4m-bench-dashboard-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, admin, token, err := benchkit.StartServer(ctx, dir)
	if err != nil {
		return err
	}
	defer srv.Close()
	start := time.Now()
	if err := seed(ctx, admin, n, nodes); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	fmt.Printf("seeded %d Nodes and %d Instances (Running, Ready) over %d namespaces through the API in %s\n\n", nodes, n, namespaces, time.Since(start).Round(time.Millisecond))

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	if err := renderTable(tw, srv, token, n, requests); err != nil {
		return err
	}
	tw.Flush()
	fmt.Println()
	if _, err := os.Stat(chromium); err != nil {
		fmt.Printf("Ready → browser: skipped (%v)\n", err)
		return nil
	}
	if err := readyTable(ctx, tw, srv, admin, chromium, n, rounds); err != nil {
		return err
	}
	return tw.Flush()
}

func instanceName(i int) (ns, name string) {
	return fmt.Sprintf("team-%d", i%namespaces), fmt.Sprintf("srv-%04d", i)
}

// seed writes the fleet: Nodes with a Ready heartbeat, the namespaces, a
// Blueprint in each, and n Instances bound round robin to the Nodes, each
// with the status its node would write (Running, an address, a map,
// players, Ready). Eight writers at once.
func seed(ctx context.Context, admin *client.Client, n, nodes int) error {
	ready := []metav1.Condition{{Type: v1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Heartbeat", LastTransitionTime: metav1.Now()}}
	if _, err := admin.Create(ctx, resources.Users, &v1.User{ObjectMeta: metav1.ObjectMeta{Name: user},
		Spec: v1.UserSpec{Roles: []v1.RoleBinding{{Role: "admin"}}, Password: password}}, false); err != nil {
		return err
	}
	for i := 0; i < nodes; i++ {
		name := fmt.Sprintf("node-%02d", i)
		if _, err := admin.Create(ctx, resources.Nodes, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.NodeSpec{Capacity: v1.NodeCapacity{Instances: int32(n/nodes + 10)}}}, false); err != nil {
			return err
		}
		st, _ := json.Marshal(map[string]any{"status": v1.NodeStatus{Addresses: []string{"192.0.2.1"}, Conditions: ready,
			Installations: []v1.NodeInstallation{{Name: "l4d2", Phase: "Ready", Builds: []string{"9001"}}}}})
		if _, err := admin.PatchStatus(ctx, resources.Nodes, "", name, st); err != nil {
			return err
		}
	}
	for i := 0; i < namespaces; i++ {
		ns := fmt.Sprintf("team-%d", i)
		if _, err := admin.Create(ctx, resources.Namespaces, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, false); err != nil {
			return err
		}
		if _, err := admin.Create(ctx, resources.Blueprints, &v1.Blueprint{ObjectMeta: metav1.ObjectMeta{Name: "coop", Namespace: ns}}, false); err != nil {
			return err
		}
	}
	return parallel(8, n, func(i int) error {
		ns, name := instanceName(i)
		node := fmt.Sprintf("node-%02d", i%nodes)
		if _, err := admin.Create(ctx, resources.Instances, &v1.Instance{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}, NodeName: node}}, false); err != nil {
			return err
		}
		_, err := admin.PatchStatus(ctx, resources.Instances, ns, name, instanceStatus(node, 27015+int32(i/nodes), metav1.ConditionTrue))
		return err
	})
}

// instanceStatus is a Running game's status, Ready or not.
func instanceStatus(node string, port int32, ready metav1.ConditionStatus) []byte {
	st, _ := json.Marshal(map[string]any{"status": map[string]any{"phase": v1.PhaseRunning, "nodeName": node, "address": "192.0.2.1", "port": port,
		"map": "c1m1_hotel", "players": 3, "maxPlayers": 8,
		"conditions": []metav1.Condition{{Type: v1.ConditionReady, Status: ready, Reason: "Bench", Message: "written by bench-dashboard", LastTransitionTime: metav1.Now()}}}})
	return st
}

func parallel(workers, total int, op func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < total && errs[w] == nil; i = int(next.Add(1)) - 1 {
				errs[w] = op(i)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// httpClient trusts the server's CA and keeps its connection alive, as a
// browser does: what is timed is the answer, not a TLS handshake.
func httpClient(srv *server.Server) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(srv.CAPEM)
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// login logs hc in to the dashboard through its form.
func login(hc *http.Client, base string) error {
	resp, err := hc.Get(base + "/ui/login")
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfField.FindSubmatch(body)
	if m == nil {
		return errors.New("the login page has no CSRF field")
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/ui/login", bytes.NewBufferString(url.Values{"csrf": {string(m[1])}, "username": {user}, "password": {password}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	resp, err = hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		return fmt.Errorf("login: %s", resp.Status)
	}
	return nil
}

// timing is one request's time to first byte, to last, and its size.
type timing struct {
	first, last time.Duration
	bytes       int
	body        []byte
}

func timed(hc *http.Client, req *http.Request) (timing, error) {
	var t timing
	start := time.Now()
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{GotFirstResponseByte: func() { t.first = time.Since(start) }}))
	resp, err := hc.Do(req)
	if err != nil {
		return t, err
	}
	defer resp.Body.Close()
	t.body, err = io.ReadAll(resp.Body)
	t.last, t.bytes = time.Since(start), len(t.body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s %s: %s", req.Method, req.URL.Path, resp.Status)
	}
	return t, err
}

// renderTable times the fleet page and the API's LIST of the same
// Instances, alternating them request by request.
func renderTable(tw io.Writer, srv *server.Server, token string, n, requests int) error {
	base := srv.URL()
	page, api := httpClient(srv), httpClient(srv)
	if err := login(page, base); err != nil {
		return err
	}
	var pages, lists []timing
	for i := -3; i < requests; i++ { // three warm-ups
		req, _ := http.NewRequest(http.MethodGet, base+"/ui/", nil)
		p, err := timed(page, req)
		if err != nil {
			return err
		}
		req, _ = http.NewRequest(http.MethodGet, base+client.Path(resources.Instances, "", "", ""), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		l, err := timed(api, req)
		if err != nil {
			return err
		}
		if i >= 0 {
			pages, lists = append(pages, p), append(lists, l)
		}
	}
	if rows := bytes.Count(pages[0].body, []byte(`<tr data-key="team-`)); rows != n {
		return fmt.Errorf("the fleet page has %d Instance rows, want %d", rows, n)
	}
	var list v1.InstanceList
	if err := json.Unmarshal(lists[0].body, &list); err != nil || len(list.Items) != n {
		return fmt.Errorf("the API listed %d Instances (%v), want %d", len(list.Items), err, n)
	}
	limit := median(lists, func(t timing) time.Duration { return t.first })
	fmt.Fprintf(tw, "%d Instances, %d requests each\tfirst byte median\tp99\tlast byte median\tp99\tbytes\tgzip -6 bytes\tfirst byte / API LIST\t\n", n, requests)
	for _, r := range []struct {
		name string
		t    []timing
	}{{"fleet page GET /ui/ (HTML)", pages}, {"API LIST instances (JSON)", lists}} {
		first := median(r.t, func(t timing) time.Duration { return t.first })
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%.2f\t\n", r.name, benchkit.Round(first), benchkit.Round(p99(r.t, func(t timing) time.Duration { return t.first })),
			benchkit.Round(median(r.t, func(t timing) time.Duration { return t.last })), benchkit.Round(p99(r.t, func(t timing) time.Duration { return t.last })),
			r.t[0].bytes, gzipped(r.t[0].body), float64(first)/float64(limit))
	}
	return nil
}

func gzipped(b []byte) int {
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, 6)
	w.Write(b)
	w.Close()
	return buf.Len()
}

func median(ts []timing, f func(timing) time.Duration) time.Duration { return pct(ts, f, 0.5) }
func p99(ts []timing, f func(timing) time.Duration) time.Duration    { return pct(ts, f, 0.99) }

func pct(ts []timing, f func(timing) time.Duration, p float64) time.Duration {
	var d []time.Duration
	for _, t := range ts {
		d = append(d, f(t))
	}
	return benchkit.Percentile(d, p)
}
