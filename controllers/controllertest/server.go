package controllertest

import (
	"context"
	"sync"
	"testing"

	"github.com/go-logr/logr"

	"github.com/left4me/left4me/apis/client"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/apis/server/servertest"
	"github.com/left4me/left4me/controllers/leader"
)

// Server is an API server with the controllers' leader election running on
// its store and etcd client, wired the way l4m-server wires them.
type Server struct {
	*server.Server
	// Leader campaigns for this server and runs the controllers while it
	// leads.
	Leader    *leader.Runner
	stop      context.CancelFunc
	stopped   chan struct{}
	closeOnce sync.Once
}

// StartWithControllers is servertest.Start with the controllers running
// (the scheduler binds Instances, node lifecycle watches heartbeats). It
// stops when the test ends, the controllers first.
func StartWithControllers(t testing.TB) (*server.Server, *client.Client) {
	t.Helper()
	s, c := StartServer(t, server.Options{}, leader.Options{})
	return s.Server, c
}

// StartServer is servertest.StartWith plus a leader.Runner on the server
// (lopts' Store, Etcd, Metrics and Identity are filled in; Log when unset).
// Close, or the end of the test, stops the controllers and then the server.
func StartServer(t testing.TB, opts server.Options, lopts leader.Options) (*Server, *client.Client) {
	t.Helper()
	srv, admin := servertest.StartWith(t, opts)
	lopts.Store, lopts.Etcd, lopts.Metrics = srv.Store, srv.Etcd, srv.MetricsRegistry()
	if lopts.Identity == "" {
		lopts.Identity = leader.DefaultIdentity(srv.Addr())
	}
	if lopts.Log.GetSink() == nil {
		lopts.Log = logr.Discard()
	}
	r, err := leader.New(lopts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{Server: srv, Leader: r, stop: cancel, stopped: make(chan struct{})}
	go func() { defer close(s.stopped); r.Run(ctx) }()
	t.Cleanup(s.Close)
	return s, admin
}

// Close stops the controllers, waits for them to stop and resign, then
// closes the server (and with it etcd). Calling it again does nothing.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.stop()
		<-s.stopped
		s.Server.Close()
	})
}
