package agent

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/node/rcon"
	"github.com/left4me/left4me/node/unit"
)

// fakeRCON is a loopback RCON server built on the packet codec: it checks
// the password and answers "echo X" with X, "big" with more than the cap,
// "status" with fakeStatus.
func fakeRCON(t *testing.T, password string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serveFakeRCON(c, password)
			}()
		}
	}()
	return l.Addr().String()
}

func serveFakeRCON(c net.Conn, password string) {
	r := bufio.NewReader(c)
	for {
		p, err := rcon.Read(r)
		if err != nil {
			return
		}
		switch p.Type {
		case rcon.TypeAuth:
			id := p.ID
			if p.Body != password {
				id = -1
			}
			rcon.Write(c, rcon.Packet{ID: p.ID, Type: rcon.TypeResponse})
			rcon.Write(c, rcon.Packet{ID: id, Type: rcon.TypeAuthResponse})
		case rcon.TypeExecCommand:
			out := strings.TrimPrefix(p.Body, "echo ") + "\n"
			switch p.Body {
			case "big":
				out = strings.Repeat("x", rconMaxOutput+100)
			case "status":
				out = fakeStatus
			}
			for len(out) > 0 {
				n := min(len(out), rcon.MaxBody)
				rcon.Write(c, rcon.Packet{ID: p.ID, Type: rcon.TypeResponse, Body: out[:n]})
				out = out[n:]
			}
		case rcon.TypeResponse:
			rcon.Write(c, rcon.Packet{ID: p.ID, Type: rcon.TypeResponse})
		}
	}
}

// rconAgent is an agent bound to Instances "ns/up" (running, its game at
// gameAddr), "ns/stopped" and "ns/nopw" (a probe but no password file).
func rconAgent(t *testing.T, gameAddr string) *Agent {
	t.Helper()
	a := &Agent{o: Options{NodeName: "n1"}, paths: unit.Paths{Root: t.TempDir()},
		instances: map[string]*v1.Instance{}, probes: map[string]*probe{}}
	for _, name := range []string{"up", "stopped", "nopw"} {
		in := &v1.Instance{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}}
		if name == "stopped" {
			in.Spec.State = v1.StateStopped
		}
		a.instances[key("ns", name)] = in
		id := unit.ID("ns", name)
		a.probes[id] = &probe{addr: gameAddr}
		if name == "nopw" {
			continue
		}
		dir := a.paths.Instance(id)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "rcon_password"), []byte("s3cret-password-1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// rconRoute serves a's RCON route on loopback (plain HTTP: the TLS in
// front of it is the log server's, tested with it).
func rconRoute(t *testing.T, a *Agent) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /rcon/{ns}/{name}", (&logServer{a: a}).serveRCON)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func postRCON(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRCONRoute(t *testing.T) {
	srv := rconRoute(t, rconAgent(t, fakeRCON(t, "s3cret-password-1")))

	code, body := postRCON(t, srv.URL+"/rcon/ns/up", `{"command":"echo hello world"}`)
	var res rconResult
	if code != http.StatusOK || json.Unmarshal([]byte(body), &res) != nil || res.Output != "hello world\n" || res.Truncated {
		t.Fatalf("echo: %d %s", code, body)
	}
	code, body = postRCON(t, srv.URL+"/rcon/ns/up", `{"command":"big"}`)
	res = rconResult{}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &res) != nil || len(res.Output) != rconMaxOutput || !res.Truncated {
		t.Fatalf("big: %d, %d bytes, truncated %v", code, len(res.Output), res.Truncated)
	}
	for _, c := range []struct {
		path, body string
		want       int
	}{
		{"/rcon/ns/absent", `{"command":"status"}`, http.StatusNotFound},
		{"/rcon/ns/stopped", `{"command":"status"}`, http.StatusConflict},
		{"/rcon/ns/nopw", `{"command":"status"}`, http.StatusConflict},
		{"/rcon/ns/up", `{"command":""}`, http.StatusBadRequest},
		{"/rcon/ns/up", `not json`, http.StatusBadRequest},
		{"/rcon/NS_/up", `{"command":"status"}`, http.StatusBadRequest},
	} {
		if code, body := postRCON(t, srv.URL+c.path, c.body); code != c.want {
			t.Errorf("%s %s: %d %s, want %d", c.path, c.body, code, body, c.want)
		}
	}
}

func TestRCONGameNotAnswering(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens: the game is down
	srv := rconRoute(t, rconAgent(t, addr))
	if code, body := postRCON(t, srv.URL+"/rcon/ns/up", `{"command":"status"}`); code != http.StatusBadGateway || !strings.Contains(body, "ns/up") {
		t.Fatalf("down game: %d %s", code, body)
	}
	// A wrong password is the game refusing: also 502.
	srv2 := rconRoute(t, rconAgent(t, fakeRCON(t, "other")))
	if code, body := postRCON(t, srv2.URL+"/rcon/ns/up", `{"command":"status"}`); code != http.StatusBadGateway {
		t.Fatalf("wrong password: %d %s", code, body)
	}
}
