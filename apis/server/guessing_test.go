package server_test

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/apis/server/servertest"
)

// clientFrom is an HTTP client whose connections come from ip, another
// loopback address than the 127.0.0.1 every other client uses: to the
// server it is another host.
func clientFrom(s *server.Server, ip string) *http.Client {
	hc := servertest.HTTPClient(s)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	hc.Transport.(*http.Transport).DialContext = d.DialContext
	return hc
}

// get sends GET path with token and returns the response, body closed.
func get(t *testing.T, hc *http.Client, s *server.Server, path, token string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.URL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// madeUpToken is a well-formed bearer token whose ID no Token has.
func madeUpToken(t *testing.T) string {
	b := make([]byte, 32)
	rand.Read(b)
	return fmt.Sprintf("l4m.guess%d.%s", time.Now().UnixNano(), base64.RawURLEncoding.EncodeToString(b))
}

// TestFailedLoginLimitComesBeforeTheTokenCheck: once an address has used up
// its failed-login budget it gets 429 with Retry-After even for a correct
// token, until the budget refills; other addresses are not affected.
func TestFailedLoginLimitComesBeforeTheTokenCheck(t *testing.T) {
	s, _ := servertest.StartWith(t, server.Options{FailedLoginQPS: 1, FailedLoginBurst: 3})
	admin := servertest.AdminToken(t, s)
	guesser := servertest.HTTPClient(s)
	path := base + "/namespaces/default"
	for i := range 3 {
		if resp := get(t, guesser, s, path, madeUpToken(t)); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d, want 401", i+1, resp.StatusCode)
		}
	}
	// The budget is spent: the right token from this address is not even
	// looked at.
	resp := get(t, guesser, s, path, admin)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the right token from an address that has guessed 3 times: %d, want 429", resp.StatusCode)
	}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || secs < 1 {
		t.Fatalf("429 with Retry-After %q, want whole seconds", resp.Header.Get("Retry-After"))
	}
	// Another address is served.
	if resp := get(t, clientFrom(s, "127.0.0.2"), s, path, admin); resp.StatusCode != http.StatusOK {
		t.Fatalf("the admin from another address: %d, want 200", resp.StatusCode)
	}
	// At 1 per second the budget refills: the right token works again.
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp := get(t, guesser, s, path, admin)
		if resp.StatusCode == http.StatusOK {
			break
		}
		if resp.StatusCode != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("the right token after the budget refills: %d", resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// etcdRanges is how many reads (ranges) the embedded etcd in this process
// has served, from its own metric (etcd registers it with Prometheus'
// default registry; the embedded etcd has no endpoint to ask).
func etcdRanges(t *testing.T, _ *server.Server) int64 {
	t.Helper()
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "etcd_mvcc_range_total" {
			var n float64
			for _, m := range f.GetMetric() {
				n += m.GetCounter().GetValue()
			}
			return int64(n)
		}
	}
	t.Fatal("etcd's metrics have no etcd_mvcc_range_total")
	return 0
}

// TestUnknownTokenIDsDoNotReadEtcd: made-up token IDs are refused from
// memory, so guessing costs etcd nothing; a token just created works on its
// first request all the same.
func TestUnknownTokenIDsDoNotReadEtcd(t *testing.T) {
	s, adminClient := servertest.Start(t)
	hc := servertest.HTTPClient(s)
	const guesses = 200
	before := etcdRanges(t, s)
	for i := range guesses {
		if resp := get(t, hc, s, base+"/namespaces/default", madeUpToken(t)); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d, want 401", i, resp.StatusCode)
		}
	}
	reads := etcdRanges(t, s) - before
	if reads >= guesses/10 {
		t.Fatalf("%d guessed token IDs made etcd serve %d reads", guesses, reads)
	}
	t.Logf("%d guessed token IDs: %d etcd reads", guesses, reads)
	// Tokens created a moment ago are known at once.
	for i := range 10 {
		tok := servertest.NewToken(t, adminClient, v1.TokenSpec{Type: v1.TokenUser, User: fmt.Sprintf("new%d", i), Roles: []v1.RoleBinding{{Role: v1.RoleViewer, Namespace: "default"}}})
		if resp := get(t, hc, s, base+"/namespaces/default/instances", tok); resp.StatusCode != http.StatusOK {
			t.Fatalf("a token on its first request, just after its creation: %d", resp.StatusCode)
		}
	}
}
