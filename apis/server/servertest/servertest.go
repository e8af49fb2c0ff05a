// Package servertest starts a real l4m-server (embedded etcd, HTTPS, token
// authentication) in the test process, for tests of everything that talks
// to the API.
package servertest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/server"
)

// Start runs a server on a free loopback port with its data in a temp dir;
// it stops when the test ends. The client is the admin's. It serves the API
// alone: no controller changes what a test writes (controllertest's
// StartWithControllers adds them).
func Start(t testing.TB) (*server.Server, *client.Client) {
	t.Helper()
	return StartWith(t, server.Options{})
}

// StartWith is Start with options (external etcd endpoints, say). DataDir,
// Listen, AuditLog and Log are filled in when empty.
func StartWith(t testing.TB, opts server.Options) (*server.Server, *client.Client) {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	if opts.Log.GetSink() == nil {
		opts.Log = logr.Discard()
	}
	s, err := server.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, ClientWithToken(t, s, AdminToken(t, s))
}

// AdminToken is the token of the admin config the server wrote.
func AdminToken(t testing.TB, s *server.Server) string {
	t.Helper()
	f, err := client.LoadFile(s.AdminConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	return f.Token
}

// ClientWithToken returns a client that trusts the server's CA and sends token.
func ClientWithToken(t testing.TB, s *server.Server, token string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Server: s.URL(), Token: token, CAData: s.CAPEM})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// HTTPClient is a plain http.Client that trusts the server's CA, for tests
// that craft requests by hand.
func HTTPClient(s *server.Server) *http.Client { return HTTPClientFor(s.CAPEM) }

// HTTPClientFor is HTTPClient for a server in another process, by its CA.
// Its connections are not kept alive: tests make one of these per request,
// and kept connections would pile up against the server's cap on
// connections per address.
func HTTPClientFor(caPEM []byte) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}, Timeout: 30 * time.Second}
}

// NewToken creates a token with the admin client and returns its bearer.
func NewToken(t testing.TB, admin *client.Client, spec v1.TokenSpec) string {
	t.Helper()
	tokens := resources.Tokens
	out, err := admin.Create(context.Background(), tokens, &v1.Token{ObjectMeta: metav1.ObjectMeta{Name: "x"}, Spec: spec}, false)
	if err != nil {
		t.Fatal(err)
	}
	return out.(*v1.Token).Status.Token
}

// Config file path helper for CLI tests.
func AdminConfig(s *server.Server) string { return filepath.Clean(s.AdminConfigPath) }
