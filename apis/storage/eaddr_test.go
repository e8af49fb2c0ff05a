package storage

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/go-logr/logr"

	"github.com/left4me/left4me/apis/pki"
)

// TestClientAddrTaken: a client listener asked for on a port someone else
// holds fails to start and says so, and one without TLS files is refused.
func TestClientAddrTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	files := writeTestTLS(t)
	_, err = StartEmbedded(context.Background(), EmbeddedOptions{Dir: t.TempDir(), ClientAddr: l.Addr().String(), ClientTLS: files}, logr.Discard())
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("taken port: %v", err)
	}
	_, err = StartEmbedded(context.Background(), EmbeddedOptions{Dir: t.TempDir(), ClientAddr: "127.0.0.1:0"}, logr.Discard())
	if err == nil {
		t.Fatal("a client listener without TLS files started")
	}
}

// writeTestTLS makes a CA, a serving certificate for 127.0.0.1 and a client
// certificate in a temp dir, the files the client listener needs.
func writeTestTLS(t *testing.T) *EmbeddedTLS {
	t.Helper()
	dir := t.TempDir()
	if _, err := pki.Ensure(dir, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	return &EmbeddedTLS{CertFile: filepath.Join(dir, pki.ServerCertFile), KeyFile: filepath.Join(dir, pki.ServerKeyFile), TrustedCAFile: filepath.Join(dir, pki.CACertFile)}
}
