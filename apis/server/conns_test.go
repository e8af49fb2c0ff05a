package server_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/apis/server/servertest"
)

// raiseFileLimit lifts the soft limit on open files to at least n (both
// ends of every loopback connection live in this process).
func raiseFileLimit(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= n {
		return
	}
	if lim.Max < n {
		t.Fatalf("this test needs %d open files; the hard limit is %d", n, lim.Max)
	}
	old := lim.Cur
	lim.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lim.Cur = old; syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) })
}

// dialFrom opens a TLS connection to s from the loopback address ip.
func dialFrom(s *server.Server, ip string) (*tls.Conn, error) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CAPEM)
	u, _ := url.Parse(s.URL())
	d := &tls.Dialer{
		NetDialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second},
		Config:    &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"},
	}
	c, err := d.Dial("tcp", u.Host)
	if err != nil {
		return nil, err
	}
	return c.(*tls.Conn), nil
}

// closedBy reports whether the server closes c before deadline: a read
// that ends in EOF or a reset, not in our own timeout. It returns the
// status line the server answered with, if any.
func closedBy(c net.Conn, deadline time.Time) (statusLine string, closed bool) {
	c.SetReadDeadline(deadline)
	br := bufio.NewReader(c)
	statusLine, _ = br.ReadString('\n')
	_, err := io.Copy(io.Discard, br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return statusLine, false
	}
	return strings.TrimSpace(statusLine), true
}

// TestSlowBodiesWithoutATokenAreShed: 1,000 connections that send the
// headers of a create without a token and then trickle its body are all
// answered 401 and closed at once, while a normal client keeps getting
// answers. The per-address cap is raised here so that every one of them
// reaches the handler: the cap has its own test.
func TestSlowBodiesWithoutATokenAreShed(t *testing.T) {
	const conns = 1000
	raiseFileLimit(t, 4*conns+1024)
	s, admin := servertest.StartWith(t, server.Options{MaxConnsPerAddress: 2 * conns})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The normal client asks all along, from 127.0.0.1.
	var answered atomic.Int64
	normalErr := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := admin.Get(rctx, namespaces, "", "default")
			rcancel()
			if err != nil && ctx.Err() == nil {
				normalErr <- err
				return
			}
			answered.Add(1)
		}
		normalErr <- nil
	}()

	head := "POST " + base + "/namespaces/default/instances HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
		"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
	type result struct {
		status string
		closed bool
		took   time.Duration
		err    error
	}
	results := make(chan result, conns)
	var wg sync.WaitGroup
	dialers := make(chan struct{}, 50)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dialers <- struct{}{}
			c, err := dialFrom(s, "127.0.0.2")
			<-dialers
			if err != nil {
				results <- result{err: err}
				return
			}
			defer c.Close()
			start := time.Now()
			if _, err := io.WriteString(c, head); err != nil {
				results <- result{err: err}
				return
			}
			// Trickle the body, a byte a second, until the server hangs up.
			stop := make(chan struct{})
			var trickle sync.WaitGroup
			trickle.Add(1)
			go func() {
				defer trickle.Done()
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						c.SetWriteDeadline(time.Now().Add(time.Second))
						if _, err := c.Write([]byte(" ")); err != nil {
							return
						}
					}
				}
			}()
			status, closed := closedBy(c, start.Add(15*time.Second))
			close(stop)
			trickle.Wait()
			results <- result{status: status, closed: closed, took: time.Since(start)}
		}()
	}
	wg.Wait()
	close(results)
	cancel()
	if err := <-normalErr; err != nil {
		t.Fatalf("the normal client during the flood: %v", err)
	}
	var open, unanswered int
	var slowest time.Duration
	for r := range results {
		switch {
		case r.err != nil:
			t.Fatalf("open a slow connection: %v", r.err)
		case !r.closed:
			open++
		case !strings.Contains(r.status, " 401 "):
			unanswered++
		}
		slowest = max(slowest, r.took)
	}
	if open > 0 || unanswered > 0 {
		t.Fatalf("of %d slow bodies without a token, %d were still open after 15 s and %d closed without a 401", conns, open, unanswered)
	}
	if answered.Load() == 0 {
		t.Fatal("the normal client got no answer during the flood")
	}
	t.Logf("%d slow bodies shed, the slowest after %v; the normal client got %d answers meanwhile", conns, slowest.Round(time.Millisecond), answered.Load())
}

// TestConnectionsPerAddressAreCapped: an address holding the most
// connections allowed has its next one closed at once; other addresses are
// served, and a closed connection gives its place back.
func TestConnectionsPerAddressAreCapped(t *testing.T) {
	s, admin := servertest.StartWith(t, server.Options{MaxConnsPerAddress: 5})
	var held []*tls.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	// Five keep-alive connections, each having made a request.
	for i := range 5 {
		c, err := dialFrom(s, "127.0.0.2")
		if err != nil {
			t.Fatalf("connection %d of 5: %v", i+1, err)
		}
		held = append(held, c)
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("request on connection %d: %v", i+1, err)
		}
		resp.Body.Close()
	}
	if c, err := dialFrom(s, "127.0.0.2"); err == nil {
		c.Close()
		t.Fatal("a sixth connection from an address capped at 5 was served")
	}
	// Another address is served.
	if _, err := admin.Get(context.Background(), namespaces, "", "default"); err != nil {
		t.Fatalf("another address while 127.0.0.2 is at its cap: %v", err)
	}
	// One closes: its place is free again once the server has seen it go.
	held[0].Close()
	held = held[1:]
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := dialFrom(s, "127.0.0.2")
		if err == nil {
			held = append(held, c)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed connection did not give its place back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The refusal is counted where an operator looks.
	_, data := call(t, s, http.MethodGet, "/metrics", "", "")
	if !strings.Contains(string(data), "left4me_apiserver_connections_refused_total ") ||
		strings.Contains(string(data), "left4me_apiserver_connections_refused_total 0\n") {
		t.Fatalf("metrics do not count the refused connection:\n%s", data)
	}
}

// TestIdleAndSlowRequestsTimeOut: a keep-alive connection that sends
// nothing is closed, and so is an authenticated request whose body does
// not arrive within the request timeout.
func TestIdleAndSlowRequestsTimeOut(t *testing.T) {
	s, _ := servertest.StartWith(t, server.Options{IdleTimeout: time.Second, RequestTimeout: 2 * time.Second})
	idle, err := dialFrom(s, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if _, err := io.WriteString(idle, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if status, closed := closedBy(idle, time.Now().Add(15*time.Second)); !closed || !strings.Contains(status, " 200 ") {
		t.Fatalf("an idle keep-alive connection: answered %q, closed by the server: %v", status, closed)
	}

	slow, err := dialFrom(s, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	head := "POST " + base + "/namespaces/default/instances HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + servertest.AdminToken(t, s) +
		"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
	if _, err := io.WriteString(slow, head); err != nil {
		t.Fatal(err)
	}
	if _, closed := closedBy(slow, time.Now().Add(15*time.Second)); !closed {
		t.Fatal("an authenticated request whose body never came was still open after 15 s (request timeout 2 s)")
	}
}

// TestStreamsOutliveTheRequestTimeout: a watch and a followed log last
// longer than the request timeout, also on a connection that served an
// ordinary request before (whose deadlines it must not inherit).
func TestStreamsOutliveTheRequestTimeout(t *testing.T) {
	const timeout = time.Second
	s, admin := servertest.StartWith(t, server.Options{RequestTimeout: timeout, IdleTimeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A fake node agent whose log server writes a line, then another when told.
	more := make(chan struct{})
	agent := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first line\n")
		w.(http.Flusher).Flush()
		select {
		case <-more:
			io.WriteString(w, "second line\n")
		case <-r.Context().Done():
		}
	}))
	defer agent.Close()
	defer close(more)
	sum := sha256.Sum256(agent.Certificate().Raw)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(agent.URL, "https://"))
	p, _ := strconv.Atoi(port)
	node, err := admin.Create(ctx, nodes, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	node.(*v1.Node).Status.Addresses = []string{"127.0.0.1"}
	node.(*v1.Node).Status.LogsEndpoint = &v1.LogsEndpoint{Port: int32(p), CertSHA256: hex.EncodeToString(sum[:])}
	if _, err := admin.UpdateStatus(ctx, nodes, node); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Create(ctx, instances, instance("srv1"), false); err != nil {
		t.Fatal(err)
	}

	// One connection, reused: an ordinary request, then the watch.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CAPEM)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer hc.CloseIdleConnections()
	token := servertest.AdminToken(t, s)
	send := func(path string) (*http.Response, bool) {
		t.Helper()
		var reused bool
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, s.URL()+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		return resp, reused
	}
	resp, _ := send(base + "/namespaces/default/instances")
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	watchResp, reused := send(base + "/namespaces/default/instances?watch=true")
	defer watchResp.Body.Close()
	if !reused {
		t.Fatal("the watch did not reuse the connection of the request before it")
	}
	logs, err := admin.Logs(ctx, "default", "srv1", true, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	logLines := bufio.NewReader(logs)
	if line, err := logLines.ReadString('\n'); err != nil || line != "first line\n" {
		t.Fatalf("log stream: %q %v", line, err)
	}

	// Let three request timeouts pass: that is what is being tested.
	time.Sleep(3 * timeout)
	if _, err := admin.Create(ctx, instances, instance("late"), false); err != nil {
		t.Fatal(err)
	}
	events := bufio.NewScanner(watchResp.Body)
	if !events.Scan() || !strings.Contains(events.Text(), `"type":"ADDED"`) || !strings.Contains(events.Text(), `"name":"late"`) {
		t.Fatalf("the watch after %v (request timeout %v): %q %v", 3*timeout, timeout, events.Text(), events.Err())
	}
	more <- struct{}{}
	if line, err := logLines.ReadString('\n'); err != nil || line != "second line\n" {
		t.Fatalf("the log stream after %v (request timeout %v): %q %v", 3*timeout, timeout, line, err)
	}
}
