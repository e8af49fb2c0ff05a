package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/storage"
)

// Options configure one l4m-server process.
type Options struct {
	// DataDir holds the embedded etcd's data (unless EtcdEndpoints is set).
	DataDir string
	// Listen is the API address, e.g. 127.0.0.1:6443 (":0" picks a port).
	Listen string
	// EtcdEndpoints selects an external etcd cluster instead of the embedded one.
	EtcdEndpoints []string
	// EtcdCAFile, EtcdCertFile and EtcdKeyFile enable client TLS to external etcd.
	EtcdCAFile, EtcdCertFile, EtcdKeyFile string
	// EtcdPrefix is the key prefix of all objects (default /left4me).
	EtcdPrefix string
	// EmbeddedEtcdClientAddr and EmbeddedEtcdPeerAddr pin the embedded etcd's
	// loopback ports (empty: free ones).
	EmbeddedEtcdClientAddr, EmbeddedEtcdPeerAddr string
	Log                                          logr.Logger
}

// Server is a running l4m-server.
type Server struct {
	Store *storage.Store
	// Etcd is the client the store uses (in-process when etcd is embedded).
	Etcd *clientv3.Client
	// EtcdEndpoints are the etcd client URLs (the embedded one's loopback URL).
	EtcdEndpoints []string
	Handler       *Handler
	embedded      *storage.Embedded
	http          *http.Server
	listener      net.Listener
	cancel        context.CancelFunc
	served        chan error
}

// Start brings up etcd (embedded or external), the store, the default
// namespace and the HTTP API, and returns once the API accepts requests.
func Start(ctx context.Context, opts Options) (*Server, error) {
	s := &Server{served: make(chan error, 1)}
	ctx, s.cancel = context.WithCancel(ctx)
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	if len(opts.EtcdEndpoints) == 0 {
		e, err := storage.StartEmbedded(ctx, storage.EmbeddedOptions{
			Dir: filepath.Join(opts.DataDir, "etcd"), ClientAddr: opts.EmbeddedEtcdClientAddr, PeerAddr: opts.EmbeddedEtcdPeerAddr,
		}, opts.Log)
		if err != nil {
			return nil, err
		}
		s.embedded, s.Etcd, s.EtcdEndpoints = e, e.Client, []string{e.Endpoint}
	} else {
		c, err := externalClient(opts)
		if err != nil {
			return nil, err
		}
		s.Etcd, s.EtcdEndpoints = c, opts.EtcdEndpoints
	}
	s.Store = storage.New(s.Etcd, storage.Options{Prefix: opts.EtcdPrefix, Log: opts.Log.WithName("storage")})
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.Store.StartWatching(ctx); err != nil {
		return nil, fmt.Errorf("start watches: %w", err)
	}
	if err := s.Store.EnsureNamespace(startCtx, v1.DefaultNamespace); err != nil {
		return nil, err
	}
	s.Handler = NewHandler(s.Store, opts.Log.WithName("api"), NewMetrics())
	l, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", opts.Listen, err)
	}
	s.listener = l
	s.http = &http.Server{
		Handler:           s.Handler,
		ReadHeaderTimeout: 10 * time.Second,
		// Watches end with the server, not after a write timeout.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	go func() { s.served <- s.http.Serve(l) }()
	opts.Log.Info("API server listening", "address", l.Addr().String(), "etcd", etcdDescription(opts))
	ok = true
	return s, nil
}

func etcdDescription(opts Options) string {
	if len(opts.EtcdEndpoints) == 0 {
		return "embedded in " + filepath.Join(opts.DataDir, "etcd")
	}
	return strings.Join(opts.EtcdEndpoints, ",")
}

func externalClient(opts Options) (*clientv3.Client, error) {
	cfg := clientv3.Config{Endpoints: opts.EtcdEndpoints, DialTimeout: 10 * time.Second, Logger: zap.NewNop()}
	if opts.EtcdCAFile != "" || opts.EtcdCertFile != "" {
		tlsInfo := transport.TLSInfo{TrustedCAFile: opts.EtcdCAFile, CertFile: opts.EtcdCertFile, KeyFile: opts.EtcdKeyFile}
		tc, err := tlsInfo.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("etcd client TLS: %w", err)
		}
		cfg.TLS = tc
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to etcd %s: %w", strings.Join(opts.EtcdEndpoints, ","), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Get(ctx, "health-check"); err != nil {
		c.Close()
		return nil, fmt.Errorf("etcd %s does not answer: %w", strings.Join(opts.EtcdEndpoints, ","), err)
	}
	return c, nil
}

// URL is the API's base URL.
func (s *Server) URL() string { return "http://" + s.listener.Addr().String() }

// Wait blocks until the HTTP server stops.
func (s *Server) Wait() error {
	err := <-s.served
	s.served <- err
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops serving (ending watches), then closes etcd.
func (s *Server) Close() {
	s.cancel()
	if s.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.http.Shutdown(ctx)
		cancel()
	}
	if s.embedded != nil {
		s.embedded.Close()
	} else if s.Etcd != nil {
		s.Etcd.Close()
	}
}
