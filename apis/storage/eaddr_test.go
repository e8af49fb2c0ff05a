package storage

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"

	"github.com/go-logr/logr"
)

// TestBindErrorIsEADDRINUSE: StartEmbedded retries on a taken port only if
// etcd's bind error still says EADDRINUSE through its wrapping.
func TestBindErrorIsEADDRINUSE(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	peer, _ := FreeLoopbackAddr()
	_, err := startEmbedded(context.Background(), EmbeddedOptions{Dir: t.TempDir(), ClientAddr: l.Addr().String(), PeerAddr: peer}, logr.Discard())
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("%v", err)
	}
}
