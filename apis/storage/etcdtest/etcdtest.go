// Package etcdtest starts real etcd servers for tests: the embedded one, and
// Debian's etcd-server binary as an external one (to prove the external mode).
package etcdtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/left4me/left4me/apis/storage"
)

// Embedded starts an embedded etcd in a temp dir, closed when the test ends.
func Embedded(t testing.TB) *storage.Embedded {
	t.Helper()
	e, err := storage.StartEmbedded(context.Background(), storage.EmbeddedOptions{Dir: t.TempDir()}, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// ExternalBinary is where Debian's etcd-server installs etcd.
const ExternalBinary = "/usr/bin/etcd"

// External starts Debian's etcd binary on loopback ports with a temp data
// dir and returns a client for it; the process is killed (by PID) when the
// test ends. It fails the test when the binary is missing, unless
// SKIP_EXTERNAL_ETCD is set: CI installs it, so a missing binary is a broken
// set-up.
func External(t testing.TB) (*clientv3.Client, string) {
	t.Helper()
	return ExternalWith(t, nil)
}

// TLSFiles makes the external etcd serve client TLS and require client
// certificates signed by CA.
type TLSFiles struct{ CA, Cert, Key string }

// ExternalWith is External, over TLS when tlsFiles is set (the returned
// client is then nil: the caller connects with its own certificate).
func ExternalWith(t testing.TB, tlsFiles *TLSFiles) (*clientv3.Client, string) {
	t.Helper()
	if _, err := os.Stat(ExternalBinary); err != nil {
		if os.Getenv("SKIP_EXTERNAL_ETCD") != "" {
			t.Skipf("external etcd: %s missing and SKIP_EXTERNAL_ETCD set", ExternalBinary)
		}
		t.Fatalf("external etcd: %s missing (apt-get install etcd-server): %v", ExternalBinary, err)
	}
	for attempt := 1; ; attempt++ {
		c, endpoint, err := startExternal(t, tlsFiles)
		if err == nil {
			return c, endpoint
		}
		// A port found free may be taken before etcd binds it: choose again.
		if attempt < 5 && strings.Contains(err.Error(), "address already in use") {
			continue
		}
		t.Fatal(err)
	}
}

func startExternal(t testing.TB, tlsFiles *TLSFiles) (*clientv3.Client, string, error) {
	dir := t.TempDir()
	clientAddr, err := storage.FreeLoopbackAddr()
	if err != nil {
		return nil, "", err
	}
	peerAddr, err := storage.FreeLoopbackAddr()
	if err != nil {
		return nil, "", err
	}
	client, peer := "http://"+clientAddr, "http://"+peerAddr
	args := []string{"--name", "ext", "--data-dir", filepath.Join(dir, "data"),
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "ext=" + peer, "--log-level", "error"}
	if tlsFiles != nil {
		client = "https://" + clientAddr
		args = append(args, "--cert-file", tlsFiles.Cert, "--key-file", tlsFiles.Key,
			"--trusted-ca-file", tlsFiles.CA, "--client-cert-auth")
	}
	args = append(args, "--listen-client-urls", client, "--advertise-client-urls", client)
	cmd := exec.Command(ExternalBinary, args...)
	logPath := filepath.Join(dir, "etcd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, "", err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, "", fmt.Errorf("start external etcd: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		cmd.Process.Kill()
		<-exited
		logf.Close()
	}
	if tlsFiles != nil {
		// Wait for the port; the caller proves TLS with its own client.
		deadline := time.Now().Add(30 * time.Second)
		for {
			conn, err := net.DialTimeout("tcp", clientAddr, time.Second)
			if err == nil {
				conn.Close()
				t.Cleanup(stop)
				return nil, client, nil
			}
			select {
			case <-exited:
				stop()
				log, _ := os.ReadFile(logPath)
				return nil, "", fmt.Errorf("external etcd exited: %s", log)
			default:
			}
			if time.Now().After(deadline) {
				stop()
				return nil, "", fmt.Errorf("external etcd (TLS) not listening after 30s")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		stop()
		return nil, "", err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Get(ctx, "health")
		cancel()
		if err == nil {
			t.Cleanup(func() { c.Close(); stop() })
			return c, client, nil
		}
		select {
		case <-exited:
			c.Close()
			stop()
			log, _ := os.ReadFile(logPath)
			return nil, "", fmt.Errorf("external etcd exited: %s", log)
		default:
		}
		if time.Now().After(deadline) {
			c.Close()
			stop()
			return nil, "", fmt.Errorf("external etcd not ready after 30s: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
