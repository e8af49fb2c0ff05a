// Package servertest starts a real l4m-server (embedded etcd, real HTTP) in
// the test process, for tests of everything that talks to the API.
package servertest

import (
	"context"
	"testing"

	"github.com/go-logr/logr"

	"github.com/left4me/left4me/apis/client"
	"github.com/left4me/left4me/apis/server"
)

// Start runs a server on a free loopback port with its data in a temp dir;
// it stops when the test ends.
func Start(t testing.TB) (*server.Server, *client.Client) {
	t.Helper()
	return StartWith(t, server.Options{})
}

// StartWith is Start with options (external etcd endpoints, say). DataDir,
// Listen and Log are filled in when empty.
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
	c, err := client.New(client.Config{Server: s.URL()})
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}
