package server_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/left4me/left4me/apis/server/servertest"
)

// TestTLS11Refused: a client that speaks at most TLS 1.1 gets no
// connection to the API server, while the same client allowed TLS 1.2
// does (so the refusal is the version, not the client).
func TestTLS11Refused(t *testing.T) {
	s, _ := servertest.Start(t)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CAPEM) {
		t.Fatal("the server's CA does not parse")
	}
	addr := strings.TrimPrefix(s.URL(), "https://")
	dial := func(maxVersion uint16) (*tls.Conn, error) {
		return tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr,
			&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: maxVersion})
	}
	if conn, err := dial(tls.VersionTLS11); err == nil {
		conn.Close()
		t.Fatalf("a TLS 1.1 client connected (version %x)", conn.ConnectionState().Version)
	} else if !strings.Contains(err.Error(), "protocol version") {
		t.Fatalf("a TLS 1.1 client: %v, want a protocol version refusal", err)
	}
	conn, err := dial(tls.VersionTLS12)
	if err != nil {
		t.Fatalf("a TLS 1.2 client: %v", err)
	}
	conn.Close()
}
