package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/pki"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/apis/server/servertest"
	"github.com/left4me/left4me/cmd/l4mctl/app"
)

// fakeStarter records what join asked of systemd.
type fakeStarter struct {
	mu    sync.Mutex
	units []string
	err   error
}

func (f *fakeStarter) EnableAndStart(_ context.Context, unit string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.units = append(f.units, unit)
	return f.err
}

func (f *fakeStarter) started() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.units...)
}

// joinCluster is a real API server and what a host is given to join it.
type joinCluster struct {
	s     *server.Server
	admin *client.Client
	pin   string
}

func startCluster(t *testing.T) *joinCluster {
	t.Helper()
	s, admin := servertest.Start(t)
	hashes, err := pki.CAHashesPEM(s.CAPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &joinCluster{s: s, admin: admin, pin: hashes[0]}
}

// joinToken is a one-use join token, as l4mctl token create join makes.
func (c *joinCluster) joinToken(t *testing.T) string {
	t.Helper()
	return servertest.NewToken(t, c.admin, v1.TokenSpec{Type: v1.TokenJoin})
}

// used is how many nodes joined with the join token.
func (c *joinCluster) used(t *testing.T, bearer string) int32 {
	t.Helper()
	obj, err := c.admin.Get(context.Background(), resources.Tokens, "", strings.Split(bearer, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	return obj.(*v1.Token).Status.Used
}

// runJoinCommand runs `l4m-node join ARGS...` as main wires it, with the
// fake systemd.
func runJoinCommand(t *testing.T, starter unitStarter, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	t.Setenv("L4M_JOIN_TOKEN", "")
	cmd := newJoinCommand(starter)
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// nodeClient is the agent's client, made from the node.yaml join wrote.
func nodeClient(t *testing.T, path string) (*nodeFile, *client.Client) {
	t.Helper()
	nf, err := loadNodeFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := nf.Config()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return nf, cl
}

// assertNothingWritten: a refused join leaves no config and no temp file.
func assertNothingWritten(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("a refused join left %s in %s", e.Name(), dir)
	}
}

// TestJoinPinned is a host joining as the README says: the CA checked
// against the hash, node.yaml written 0600 in a new 0700 directory with a
// node token that works, the host's settings, and the unit started.
func TestJoinPinned(t *testing.T) {
	c := startCluster(t)
	join := c.joinToken(t)
	dir := filepath.Join(t.TempDir(), "etc", "left4me")
	config := filepath.Join(dir, "node.yaml")
	sd := &fakeStarter{}
	// The hash as someone might copy it, in capitals.
	stdout, stderr, err := runJoinCommand(t, sd, c.s.URL(), "--token", join, "--ca-hash", "sha256:"+strings.ToUpper(c.pin[7:]), "--config", config,
		"--node-name", "host-1", "--address", "203.0.113.10", "--labels", "region=eu,tier=competitive", "--port-range", "28000-28100", "--capacity-instances", "20", "--capacity-memory", "48Gi")
	if err != nil {
		t.Fatalf("join: %v\n%s", err, stderr)
	}
	if stderr != "" {
		t.Errorf("a pinned join warned: %s", stderr)
	}
	if !strings.Contains(stdout, "joined "+c.s.URL()+" as node host-1") || !strings.Contains(stdout, "enabled and started l4m-node.service") {
		t.Errorf("join said %q", stdout)
	}
	if got := sd.started(); len(got) != 1 || got[0] != "l4m-node.service" {
		t.Errorf("systemd was asked to start %v; want l4m-node.service once", got)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, config: 0o600} {
		st, err := os.Stat(path)
		if err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: mode %v, %v; want %o", path, st.Mode().Perm(), err, want)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%s holds %d files; want node.yaml alone (no temp file left)", dir, len(entries))
	}

	nf, node := nodeClient(t, config)
	if nf.Server != c.s.URL() || nf.CertificateAuthorityData != string(c.s.CAPEM) || nf.JoinToken != "" || nf.CAHash != "" || !strings.HasPrefix(nf.Token, "l4m.") {
		t.Errorf("node.yaml: server %q, CA %d bytes (server's: %d), joinToken %q, caHash %q, token %q", nf.Server, len(nf.CertificateAuthorityData), len(c.s.CAPEM), nf.JoinToken, nf.CAHash, nf.Token)
	}
	s := nf.Node
	if s == nil || s.Name != "host-1" || s.Address != "203.0.113.10" || s.PortRange != "28000-28100" || s.Labels["region"] != "eu" || s.Labels["tier"] != "competitive" || s.Capacity.Instances != 20 || s.Capacity.Memory != "48Gi" {
		t.Fatalf("node settings written: %+v", s)
	}
	if s.Root != "" || s.MountDriver != "" {
		t.Errorf("settings not given were written: root %q, mountDriver %q", s.Root, s.MountDriver)
	}

	// The token is host-1's: it registers its Node as the agent does, and
	// no other.
	ctx := context.Background()
	if _, err := node.Create(ctx, resources.Nodes, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "host-1", Labels: s.Labels}, Spec: v1.NodeSpec{PortRange: v1.PortRange{Min: 28000, Max: 28100}}}, false); err != nil {
		t.Fatalf("the node token cannot register host-1: %v", err)
	}
	if _, err := node.Get(ctx, resources.Nodes, "", "host-1"); err != nil {
		t.Fatalf("the node token cannot read its Node: %v", err)
	}
	if _, err := node.Create(ctx, resources.Nodes, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "host-2"}, Spec: v1.NodeSpec{PortRange: v1.PortRange{Min: 28000, Max: 28100}}}, false); !apierrors.IsForbidden(err) {
		t.Fatalf("host-1's token registering host-2: %v; want 403", err)
	}
	if used := c.used(t, join); used != 1 {
		t.Errorf("the join token counts %d uses; want 1", used)
	}

	// Joined: the same command again is refused, the file untouched.
	before, _ := os.ReadFile(config)
	_, _, err = runJoinCommand(t, sd, c.s.URL(), "--token", c.joinToken(t), "--ca-hash", c.pin, "--config", config, "--node-name", "host-1")
	if err == nil || !strings.Contains(err.Error(), "holds a node token already") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("joining a joined host: %v; want a refusal naming --force", err)
	}
	if after, _ := os.ReadFile(config); !bytes.Equal(before, after) {
		t.Fatal("a refused join changed node.yaml")
	}
}

// TestJoinWrongHashSpendsNothing: a hash that is not the server's CA's
// refuses the join naming both, writes nothing, starts nothing, and leaves
// the join token unspent: the right hash then joins with it.
func TestJoinWrongHashSpendsNothing(t *testing.T) {
	c := startCluster(t)
	join := c.joinToken(t)
	dir := filepath.Join(t.TempDir(), "left4me")
	config := filepath.Join(dir, "node.yaml")
	sd := &fakeStarter{}
	wrong := "sha256:" + strings.Repeat("0f", 32)
	_, _, err := runJoinCommand(t, sd, c.s.URL(), "--token", join, "--ca-hash", wrong, "--config", config, "--node-name", "host-1")
	want := "the server's CA is " + c.pin + ", not the " + wrong + " given by --ca-hash: refusing to join"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v; want it to say %q", err, want)
	}
	assertNothingWritten(t, dir)
	if got := sd.started(); len(got) != 0 {
		t.Errorf("systemd was asked to start %v after a refused join", got)
	}
	if used := c.used(t, join); used != 0 {
		t.Fatalf("the refused join spent the join token (%d uses)", used)
	}
	if _, _, err := runJoinCommand(t, sd, c.s.URL(), "--token", join, "--ca-hash", c.pin, "--config", config, "--node-name", "host-1"); err != nil {
		t.Fatalf("the join token after the refusal: %v", err)
	}
}

// mitm is someone between the host and the API server: a TLS server with
// a certificate chain of its choosing that forwards every request to the
// real server, and remembers the bearer tokens that passed through it.
type mitm struct {
	URL    string
	mu     sync.Mutex
	tokens []string
}

func (m *mitm) seen() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.tokens...)
}

func startMITM(t *testing.T, c *joinCluster, chain tls.Certificate) *mitm {
	t.Helper()
	target, _ := url.Parse(c.s.URL())
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.s.CAPEM)
	upstream := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(upstream.CloseIdleConnections)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = upstream
	m := &mitm{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		m.tokens = append(m.tokens, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		m.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{chain}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshakes join refuses
	srv.StartTLS()
	t.Cleanup(srv.Close)
	m.URL = srv.URL
	return m
}

// TestJoinRefusesManInTheMiddle: an interceptor with its own CA is refused
// by the pin, and one that sends the real CA after a certificate that CA
// never signed is refused too; neither sees the join token. Without the
// pin (--unsafe-skip-ca-verification) the same interceptor gets the join
// token and the node trusts its CA from then on, which is why the flag
// warns.
func TestJoinRefusesManInTheMiddle(t *testing.T) {
	c := startCluster(t)
	join := c.joinToken(t)
	impostor, err := pki.Ensure(filepath.Join(t.TempDir(), "pki"), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	impostorPin, _ := pki.CAHashesPEM(impostor.CAPEM)
	sd := &fakeStarter{}

	t.Run("its own CA", func(t *testing.T) {
		m := startMITM(t, c, impostor.Server)
		dir := t.TempDir()
		_, _, err := runJoinCommand(t, sd, m.URL, "--token", join, "--ca-hash", c.pin, "--config", filepath.Join(dir, "node.yaml"), "--node-name", "host-1")
		want := "the server's CA is " + impostorPin[0] + ", not the " + c.pin + " given by --ca-hash: refusing to join"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("err = %v; want %q", err, want)
		}
		assertNothingWritten(t, dir)
		if seen := m.seen(); len(seen) != 0 {
			t.Fatalf("the interceptor saw %d requests", len(seen))
		}
	})
	t.Run("the real CA after a forged certificate", func(t *testing.T) {
		realCA := parseCert(t, c.s.CAPEM)
		forged := tls.Certificate{Certificate: [][]byte{impostor.Server.Certificate[0], realCA.Raw}, PrivateKey: impostor.Server.PrivateKey}
		m := startMITM(t, c, forged)
		dir := t.TempDir()
		_, _, err := runJoinCommand(t, sd, m.URL, "--token", join, "--ca-hash", c.pin, "--config", filepath.Join(dir, "node.yaml"), "--node-name", "host-1")
		if err == nil || !strings.Contains(err.Error(), "does not verify against the CA "+c.pin) || !strings.Contains(err.Error(), "refusing to join") {
			t.Fatalf("err = %v; want the forged certificate refused", err)
		}
		assertNothingWritten(t, dir)
		if seen := m.seen(); len(seen) != 0 {
			t.Fatalf("the interceptor saw %d requests", len(seen))
		}
	})
	if used := c.used(t, join); used != 0 {
		t.Fatalf("refused joins spent the join token (%d uses)", used)
	}
	if got := sd.started(); len(got) != 0 {
		t.Fatalf("systemd was asked to start %v after refused joins", got)
	}

	t.Run("unpinned", func(t *testing.T) {
		m := startMITM(t, c, impostor.Server)
		config := filepath.Join(t.TempDir(), "node.yaml")
		_, stderr, err := runJoinCommand(t, sd, m.URL, "--token", join, "--unsafe-skip-ca-verification", "--config", config, "--node-name", "host-1", "--no-start")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(stderr, "WARNING") || !strings.Contains(stderr, impostorPin[0]) {
			t.Errorf("an unpinned join should warn naming the CA it trusted; stderr %q", stderr)
		}
		if seen := m.seen(); len(seen) != 1 || seen[0] != join {
			t.Errorf("the interceptor saw %d requests; the unpinned join handed it the join token", len(seen))
		}
		nf, err := loadNodeFile(config)
		if err != nil || nf.CertificateAuthorityData != string(impostor.CAPEM) {
			t.Fatalf("the unpinned join trusts %q (%v); want the interceptor's CA", nf.CertificateAuthorityData, err)
		}
	})
}

func parseCert(t *testing.T, pemData []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(pemData)
	if block == nil {
		t.Fatal("no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestJoinWithoutCAHash: no hash is a refusal that says how to get one;
// --unsafe-skip-ca-verification joins the real server, warning.
func TestJoinWithoutCAHash(t *testing.T) {
	c := startCluster(t)
	join := c.joinToken(t)
	dir := t.TempDir()
	config := filepath.Join(dir, "node.yaml")
	sd := &fakeStarter{}
	_, _, err := runJoinCommand(t, sd, c.s.URL(), "--token", join, "--config", config, "--node-name", "host-1")
	for _, want := range []string{"no --ca-hash", "l4mctl config ca-hash", "openssl x509", "--unsafe-skip-ca-verification"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v; want it to say %q", err, want)
		}
	}
	assertNothingWritten(t, dir)
	if used := c.used(t, join); used != 0 {
		t.Fatalf("the refused join spent the join token (%d uses)", used)
	}
	if _, _, err := runJoinCommand(t, sd, c.s.URL(), "--token", join, "--ca-hash", c.pin, "--unsafe-skip-ca-verification", "--config", config); err == nil || !strings.Contains(err.Error(), "exclude each other") {
		t.Errorf("both --ca-hash and --unsafe-skip-ca-verification: %v", err)
	}
	if _, _, err := runJoinCommand(t, sd, c.s.URL(), "--ca-hash", c.pin, "--config", config); err == nil || !strings.Contains(err.Error(), "--token") {
		t.Errorf("no --token: %v", err)
	}

	_, stderr, err := runJoinCommand(t, sd, c.s.URL(), "--token", join, "--unsafe-skip-ca-verification", "--config", config, "--node-name", "host-1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, "WARNING: --unsafe-skip-ca-verification") || !strings.Contains(stderr, c.pin) {
		t.Errorf("stderr %q; want a warning naming %s", stderr, c.pin)
	}
	nf, node := nodeClient(t, config)
	if nf.CertificateAuthorityData != string(c.s.CAPEM) {
		t.Error("the unpinned join did not save the server's CA")
	}
	if _, err := node.Create(context.Background(), resources.Nodes, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "host-1"}, Spec: v1.NodeSpec{PortRange: v1.PortRange{Min: 27015, Max: 27115}}}, false); err != nil {
		t.Fatalf("the node token: %v", err)
	}
}

// TestJoinNoStart: --no-start writes node.yaml and leaves systemd alone;
// a start that fails says the file is written and how to start by hand.
func TestJoinNoStart(t *testing.T) {
	c := startCluster(t)
	sd := &fakeStarter{}
	config := filepath.Join(t.TempDir(), "node.yaml")
	stdout, _, err := runJoinCommand(t, sd, c.s.URL(), "--token", c.joinToken(t), "--ca-hash", c.pin, "--config", config, "--node-name", "host-1", "--no-start")
	if err != nil {
		t.Fatal(err)
	}
	if got := sd.started(); len(got) != 0 {
		t.Errorf("--no-start asked systemd to start %v", got)
	}
	if !strings.Contains(stdout, "systemctl enable --now l4m-node.service") {
		t.Errorf("stdout %q; want how to start it", stdout)
	}
	if _, err := os.Stat(config); err != nil {
		t.Fatal(err)
	}

	broken := &fakeStarter{err: errors.New("connect to systemd: no such file or directory")}
	config2 := filepath.Join(t.TempDir(), "node.yaml")
	_, _, err = runJoinCommand(t, broken, c.s.URL(), "--token", c.joinToken(t), "--ca-hash", c.pin, "--config", config2, "--node-name", "host-2")
	if err == nil || !strings.Contains(err.Error(), config2+" is written") || !strings.Contains(err.Error(), "connect to systemd") {
		t.Fatalf("err = %v; want the written file and systemd's error named", err)
	}
	if _, err := loadNodeFile(config2); err != nil {
		t.Fatal(err)
	}
}

// TestJoinForceKeepsSettings: --force joins a joined host again (a new
// token, the server given now) and keeps the node: settings the file had,
// those given as flags replaced.
func TestJoinForceKeepsSettings(t *testing.T) {
	c := startCluster(t)
	config := filepath.Join(t.TempDir(), "node.yaml")
	old := "server: https://old.example.org:6443\ntoken: l4m.old.secret\ncertificateAuthorityData: x\nnode:\n  name: host-1\n  address: 198.51.100.7\n  steamcmd: {path: /opt/steamcmd/steamcmd.sh}\n"
	if err := os.WriteFile(config, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	sd := &fakeStarter{}
	if _, _, err := runJoinCommand(t, sd, c.s.URL(), "--token", c.joinToken(t), "--ca-hash", c.pin, "--config", config); err == nil || !strings.Contains(err.Error(), "node host-1 of https://old.example.org:6443") {
		t.Fatalf("err = %v; want the refusal to name the node and its server", err)
	}
	if _, _, err := runJoinCommand(t, sd, c.s.URL(), "--token", c.joinToken(t), "--ca-hash", c.pin, "--config", config, "--force", "--address", "203.0.113.10"); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(config)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("node.yaml is %o after the join; want 0600", st.Mode().Perm())
	}
	nf, node := nodeClient(t, config)
	if nf.Server != c.s.URL() || nf.Token == "l4m.old.secret" || nf.Node.Name != "host-1" || nf.Node.Address != "203.0.113.10" || nf.Node.Steamcmd.Path != "/opt/steamcmd/steamcmd.sh" {
		t.Fatalf("after --force: server %q, node %+v", nf.Server, nf.Node)
	}
	if _, err := node.Get(context.Background(), resources.Nodes, "", "host-1"); !apierrors.IsNotFound(err) {
		t.Fatalf("the new token reading its (unregistered) Node: %v; want 404", err)
	}
}

// TestFirstStartJoinsByCAHash: node.yaml with server, joinToken and caHash
// (no CA) is what a first start joins from, pinned like l4m-node join; the
// file then holds the token and the CA instead.
func TestFirstStartJoinsByCAHash(t *testing.T) {
	c := startCluster(t)
	dir := t.TempDir()
	config := filepath.Join(dir, "node.yaml")
	join := c.joinToken(t)
	write := func(pin string) *nodeFile {
		t.Helper()
		if err := os.WriteFile(config, []byte("server: "+c.s.URL()+"\njoinToken: "+join+"\ncaHash: "+pin+"\nnode:\n  address: 203.0.113.10\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		nf, err := loadNodeFile(config)
		if err != nil {
			t.Fatal(err)
		}
		return nf
	}
	o := &options{config: config, nodeName: "host-1"}

	wrong := "sha256:" + strings.Repeat("9e", 32)
	err := joinFromFile(write(wrong), o)
	if want := "the server's CA is " + c.pin + ", not the " + wrong + " given by caHash in " + config + ": refusing to join"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v; want %q", err, want)
	}
	if nf, _ := loadNodeFile(config); nf.Token != "" || nf.JoinToken != join {
		t.Fatal("a refused first start changed node.yaml")
	}
	if used := c.used(t, join); used != 0 {
		t.Fatalf("the refused start spent the join token (%d uses)", used)
	}

	if err := joinFromFile(write(c.pin), o); err != nil {
		t.Fatal(err)
	}
	nf, node := nodeClient(t, config)
	if nf.JoinToken != "" || nf.CAHash != "" || nf.CertificateAuthorityData != string(c.s.CAPEM) || nf.Node.Address != "203.0.113.10" {
		t.Fatalf("node.yaml after the first start: %+v, node %+v", nf.File, nf.Node)
	}
	if _, err := node.Get(context.Background(), resources.Nodes, "", "host-1"); !apierrors.IsNotFound(err) {
		t.Fatalf("the saved token reading its (unregistered) Node: %v; want 404", err)
	}

	// The older way, kept: the CA in the file, the join token a flag.
	config2 := filepath.Join(dir, "node2.yaml")
	os.WriteFile(config2, []byte("server: "+c.s.URL()+"\ncertificateAuthorityData: |\n  "+strings.ReplaceAll(strings.TrimSpace(string(c.s.CAPEM)), "\n", "\n  ")+"\n"), 0o600)
	nf2, err := loadNodeFile(config2)
	if err != nil {
		t.Fatal(err)
	}
	if err := joinFromFile(nf2, &options{config: config2, nodeName: "host-2", joinToken: c.joinToken(t)}); err != nil {
		t.Fatal(err)
	}
	// Still an l4mctl config, as before: nothing but the token was added.
	if saved, err := client.LoadFile(config2); err != nil || !strings.HasPrefix(saved.Token, "l4m.") {
		t.Fatalf("node.yaml after --join-token: %+v, %v", saved, err)
	}
	_, node2 := nodeClient(t, config2)
	if _, err := node2.Get(context.Background(), resources.Nodes, "", "host-2"); !apierrors.IsNotFound(err) {
		t.Fatalf("the token --join-token obtained: %v; want 404", err)
	}
	if err := joinFromFile(&nodeFile{File: client.File{Server: c.s.URL()}}, &options{config: config2, nodeName: "host-3"}); err == nil || !strings.Contains(err.Error(), "l4m-node join") {
		t.Fatalf("no token, no join token: %v; want l4m-node join suggested", err)
	}

	// A CA in the file and a hash to fetch one by contradict each other.
	os.WriteFile(config, []byte("server: "+c.s.URL()+"\ncaHash: "+c.pin+"\ncertificateAuthorityData: x\n"), 0o600)
	if _, err := loadNodeFile(config); err == nil || !strings.Contains(err.Error(), "keep one of them") {
		t.Fatalf("caHash with certificateAuthorityData: %v", err)
	}
	os.WriteFile(config, []byte("server: "+c.s.URL()+"\ncaHash: abc\n"), 0o600)
	if _, err := loadNodeFile(config); err == nil || !strings.Contains(err.Error(), "caHash") {
		t.Fatalf("a malformed caHash: %v", err)
	}
}

// TestJoinAsL4mctlSays: the command l4mctl token create join
// --print-join-command prints, run as it is on the host (with the host's
// own flags after it), joins.
func TestJoinAsL4mctlSays(t *testing.T) {
	c := startCluster(t)
	t.Setenv("L4MCONFIG", "")
	var out, errOut bytes.Buffer
	ctl := app.NewCommand(app.Streams{In: strings.NewReader(""), Out: &out, Err: &errOut})
	ctl.SetArgs([]string{"--config", c.s.AdminConfigPath, "token", "create", "join", "--print-join-command"})
	if err := ctl.Execute(); err != nil {
		t.Fatalf("l4mctl: %v\n%s", err, errOut.String())
	}
	args := strings.Fields(out.String())
	if len(args) < 2 || args[0] != "l4m-node" || args[1] != "join" {
		t.Fatalf("l4mctl printed %q", out.String())
	}
	config := filepath.Join(t.TempDir(), "node.yaml")
	sd := &fakeStarter{}
	if _, stderr, err := runJoinCommand(t, sd, append(args[2:], "--config", config, "--node-name", "host-1")...); err != nil {
		t.Fatalf("%s: %v\n%s", out.String(), err, stderr)
	}
	if got := sd.started(); len(got) != 1 {
		t.Fatalf("systemd was asked to start %v", got)
	}
	_, node := nodeClient(t, config)
	if _, err := node.Get(context.Background(), resources.Nodes, "", "host-1"); !apierrors.IsNotFound(err) {
		t.Fatalf("the node token reading its (unregistered) Node: %v; want 404", err)
	}
}
