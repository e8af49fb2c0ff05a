package server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/apis/server/servertest"
)

// listeningPorts returns the TCP ports this process listens on, from the
// sockets among its open files and the kernel's tables of listening
// sockets: what a local attacker finds with ss -ltn.
func listeningPorts(t *testing.T) []int {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	var ports []int
	for _, table := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // the header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" || !inodes[fields[9]] {
				continue
			}
			port, err := strconv.ParseUint(fields[1][strings.LastIndex(fields[1], ":")+1:], 16, 16)
			if err != nil {
				t.Fatal(err)
			}
			ports = append(ports, int(port))
		}
		f.Close()
	}
	return ports
}

func apiPort(t *testing.T, s *server.Server) int {
	u, err := url.Parse(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(u.Port())
	return p
}

// attackEtcd does what a local user without credentials tries against a
// port: etcd's JSON gateway over plain HTTP (read every key, plant an admin
// token) and gRPC clients without a certificate, plain and over TLS. It
// fails the test if any of them gets a key.
func attackEtcd(t *testing.T, port int) {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	all := base64.StdEncoding.EncodeToString([]byte{0})
	hc := &http.Client{Timeout: 5 * time.Second}
	for _, scheme := range []string{"http", "https"} {
		hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
		resp, err := hc.Post(scheme+"://"+addr+"/v3/kv/range", "application/json", strings.NewReader(`{"key":"`+all+`","range_end":"`+all+`"}`))
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), `"kvs"`) || strings.Contains(string(body), base64.StdEncoding.EncodeToString([]byte("/left4me/"))) {
				t.Errorf("%s://%s/v3/kv/range read keys without credentials: %.300s", scheme, addr, body)
			}
		}
		planted := base64.StdEncoding.EncodeToString([]byte("/left4me/tokens/planted"))
		resp, err = hc.Post(scheme+"://"+addr+"/v3/kv/put", "application/json", strings.NewReader(`{"key":"`+planted+`","value":"e30="}`))
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), `"header"`) {
				t.Errorf("%s://%s/v3/kv/put wrote a key without credentials: %.300s", scheme, addr, body)
			}
		}
	}
	for _, tc := range []*tls.Config{nil, {InsecureSkipVerify: true}} {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, TLS: tc, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		resp, err := c.Get(ctx, "", clientv3.WithFromKey(), clientv3.WithKeysOnly())
		cancel()
		c.Close()
		if err == nil {
			t.Errorf("a gRPC client without a certificate (TLS %v) read %d keys from %s", tc != nil, resp.Count, addr)
		}
	}
}

// TestEmbeddedEtcdUnreachable: a server on embedded etcd listens on no TCP
// port but the API's, and nothing sent to any port of the process reads or
// writes a key (a local user once read every token hash and planted an
// admin token over etcd's plain-HTTP loopback port).
func TestEmbeddedEtcdUnreachable(t *testing.T) {
	s, _ := servertest.Start(t)
	api := apiPort(t, s)
	ports := listeningPorts(t)
	found := false
	for _, p := range ports {
		if p == api {
			found = true
			continue
		}
		t.Errorf("the process listens on TCP port %d besides the API (%d)", p, api)
		attackEtcd(t, p)
	}
	if !found {
		t.Fatalf("the API port %d is not among the listening ports %v: the scan is broken", api, ports)
	}
	attackAsNobody(t, ports)
	if len(s.EtcdEndpoints) != 0 || s.EtcdClientTLS != nil {
		t.Errorf("embedded etcd reports endpoints %v", s.EtcdEndpoints)
	}
	resp, err := s.Etcd.Get(context.Background(), "/left4me/tokens/planted")
	if err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("planted token: %v %v", resp, err)
	}
}

// TestEmbeddedEtcdClientPortNeedsCertificate: --embedded-etcd-client-addr
// opens a port that takes only the client certificate under
// <data-dir>/pki/etcd (root-only files): nothing else gets a key there.
func TestEmbeddedEtcdClientPortNeedsCertificate(t *testing.T) {
	s, _ := servertest.StartWith(t, server.Options{EmbeddedEtcdClientAddr: "127.0.0.1:0"})
	if len(s.EtcdEndpoints) != 1 || !strings.HasPrefix(s.EtcdEndpoints[0], "https://127.0.0.1:") {
		t.Fatalf("endpoints %v", s.EtcdEndpoints)
	}
	u, _ := url.Parse(s.EtcdEndpoints[0])
	port, _ := strconv.Atoi(u.Port())
	attackEtcd(t, port)
	c, err := clientv3.New(clientv3.Config{Endpoints: s.EtcdEndpoints, TLS: s.EtcdClientTLS, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, "/left4me/namespaces/default")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("the server's own client certificate: %v %v", resp, err)
	}
	dir := filepath.Join(filepath.Dir(s.AdminConfigPath), "pki", server.EtcdPKIDir)
	for _, f := range []string{"ca.key", "server.key", "apiserver-client.key"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v", f, err)
		}
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("%s: %v", dir, err)
	}
}

// attackEnv names the ports TestLocalUserAttack attacks.
const attackEnv = "L4M_TEST_ATTACK_PORTS"

// attackAsNobody runs TestLocalUserAttack in a copy of this test binary as
// user nobody, the attacker: an unprivileged local user. Not root,
// it cannot change user and skips.
func attackAsNobody(t *testing.T, ports []int) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Log("not root: the attack as nobody is left out")
		return
	}
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	// t.TempDir's parent is root's alone; nobody needs a way in.
	dir, err := os.MkdirTemp("", "l4m-attacker-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "attacker.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	list := make([]string, len(ports))
	for i, p := range ports {
		list[i] = strconv.Itoa(p)
	}
	cmd := exec.Command(bin, "-test.run=^TestLocalUserAttack$", "-test.v")
	cmd.Dir = dir
	cmd.Env = []string{attackEnv + "=" + strings.Join(list, ","), "HOME=" + dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestLocalUserAttack") {
		t.Fatalf("the attack as nobody: %v\n%s", err, out)
	}
}

// TestLocalUserAttack is the attacker's half of TestEmbeddedEtcdUnreachable,
// run as nobody against every port the server's process listens on.
func TestLocalUserAttack(t *testing.T) {
	list := os.Getenv(attackEnv)
	if list == "" {
		t.Skip("run by TestEmbeddedEtcdUnreachable as user nobody")
	}
	if os.Getuid() == 0 {
		t.Fatal("the attacker runs as root")
	}
	for _, p := range strings.Split(list, ",") {
		port, err := strconv.Atoi(p)
		if err != nil {
			t.Fatal(err)
		}
		attackEtcd(t, port)
	}
}
