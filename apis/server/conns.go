package server

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
)

// Connection limits. Watches and log streams are meant to stay open for
// hours, so the server sets no read or write timeout of its own; each
// request gets deadlines instead, and the two streaming kinds lift them.
const (
	// DefaultRequestTimeout bounds a non-streaming request: its body must
	// arrive and its answer be written within it (kube-apiserver's
	// --request-timeout is also a minute).
	DefaultRequestTimeout = time.Minute
	// DefaultIdleTimeout closes a keep-alive connection that sends nothing.
	DefaultIdleTimeout = 90 * time.Second
	// DefaultMaxConnsPerAddress caps the open connections of one remote
	// address. A node agent holds about one watch per namespace it serves
	// and kind it follows, plus a few requests; l4mctl one or two.
	DefaultMaxConnsPerAddress = 100
)

// setDeadlines gives a non-streaming request until the request timeout to
// send its body and take its answer; a streaming one (streaming true) has
// none. Deadlines outlive a request on a keep-alive connection, so every
// request sets both, a stream included. A writer that cannot take deadlines
// (a test's recorder) is left alone.
func (h *Handler) setDeadlines(w http.ResponseWriter, streaming bool) {
	var d time.Time
	if !streaming {
		d = time.Now().Add(h.requestTimeout)
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(d)
	_ = rc.SetWriteDeadline(d)
}

// streams reports a request that answers for as long as the client
// listens: a watch, an Instance's log or its console.
func streams(req *request) bool {
	return req.verb == "watch" || req.subresource == "log" || req.subresource == "console"
}

// refusedBodyGrace is how long a refused request's body may take to
// arrive: what is already on its way is read, so that closing the
// connection does not reset it before the client has read the answer.
const refusedBodyGrace = time.Second

// refuseBody makes a request refused before its body was read close its
// connection after the answer, reading no more of the body than arrives
// within refusedBodyGrace: net/http would otherwise read up to 256 KiB of it
// before answering, for as long as a slow sender takes.
func refuseBody(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength == 0 {
		return
	}
	w.Header().Set("Connection", "close")
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(refusedBodyGrace))
}

// capListener refuses a connection from an address that already holds max
// of them, so that no one client can hold all the server's connections
// (0: no cap). It counts by IP: every port of a host shares one count,
// loopback included.
type capListener struct {
	net.Listener
	limit   int
	log     logr.Logger
	refused func()

	mu    sync.Mutex
	count map[string]int
}

func newCapListener(l net.Listener, limit int, log logr.Logger, refused func()) net.Listener {
	if limit <= 0 {
		return l
	}
	return &capListener{Listener: l, limit: limit, log: log, refused: refused, count: map[string]int{}}
}

// Accept returns the next connection within its address's cap, closing
// the ones beyond it as they come.
func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host := hostOf(c.RemoteAddr())
		if l.take(host) {
			return &cappedConn{Conn: c, release: func() { l.release(host) }}, nil
		}
		c.Close()
		l.refused()
		l.log.V(1).Info("refused a connection: its address holds the most connections allowed", "address", host, "max", l.limit)
	}
}

func (l *capListener) take(host string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.count[host] >= l.limit {
		return false
	}
	l.count[host]++
	return true
}

func (l *capListener) release(host string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.count[host]--; l.count[host] <= 0 {
		delete(l.count, host)
	}
}

// cappedConn gives its address's place back when it closes (once, however
// often net/http and crypto/tls close it).
type cappedConn struct {
	net.Conn
	release func()
	closed  atomic.Bool
}

func (c *cappedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.release()
	}
	return c.Conn.Close()
}

func hostOf(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}
