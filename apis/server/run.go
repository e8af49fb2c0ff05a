package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/left4me/left4me/apis/auth"
	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/pki"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/storage"
)

// Options configure one l4m-server process.
type Options struct {
	// DataDir holds the embedded etcd's data, the PKI and the admin client
	// config.
	DataDir string
	// Listen is the API address, e.g. 127.0.0.1:6443 (":0" picks a port).
	Listen string
	// TLSSANs are extra names and addresses for the serving certificate.
	TLSSANs []string
	// TLSCertFile and TLSKeyFile replace the generated serving certificate.
	TLSCertFile, TLSKeyFile string
	// EtcdEndpoints selects an external etcd cluster instead of the embedded one.
	EtcdEndpoints []string
	// EtcdCAFile, EtcdCertFile and EtcdKeyFile enable client TLS to external etcd.
	EtcdCAFile, EtcdCertFile, EtcdKeyFile string
	// EtcdPrefix is the key prefix of all objects (default /left4me).
	EtcdPrefix string
	// EmbeddedEtcdClientAddr opens a loopback client port on the embedded
	// etcd (":0" picks one) that requires a client certificate from
	// <DataDir>/pki/etcd; empty (the default): the embedded etcd listens on
	// nothing.
	EmbeddedEtcdClientAddr string
	// AuditLog is where mutating requests are recorded: a file path, "-"
	// for standard error, or empty for <DataDir>/audit.log.
	AuditLog string
	// RateQPS and RateBurst limit each credential (0 QPS: unlimited).
	RateQPS   float64
	RateBurst int
	// MaxObjectsPerNamespace caps each kind in each namespace (0: no cap).
	MaxObjectsPerNamespace int
	// FailedLoginQPS and FailedLoginBurst limit failed logins per remote
	// address (0 QPS: unlimited).
	FailedLoginQPS   float64
	FailedLoginBurst int
	// MaxConnsPerAddress caps the connections one remote IP may hold open
	// (0: DefaultMaxConnsPerAddress; negative: no cap).
	MaxConnsPerAddress int
	// RequestTimeout bounds each request but watches and log streams (0:
	// DefaultRequestTimeout); IdleTimeout closes silent keep-alive
	// connections (0: DefaultIdleTimeout).
	RequestTimeout, IdleTimeout time.Duration
	// DashboardSessionTTL is how long a dashboard login lasts (0:
	// ui.DefaultSessionTTL).
	DashboardSessionTTL time.Duration
	// Log receives the server's logs (discarded when unset).
	Log logr.Logger
}

// AdminConfigFile is the admin client config written into DataDir on first
// start; l4mctl reads it directly (L4MCONFIG=<data-dir>/admin.yaml).
const AdminConfigFile = "admin.yaml"

// Server is a running l4m-server.
type Server struct {
	Store *storage.Store
	// Etcd is the client the store uses (in-process when etcd is embedded).
	Etcd *clientv3.Client
	// EtcdEndpoints are the etcd client URLs: the external cluster's, or
	// the embedded etcd's client port when EmbeddedEtcdClientAddr opened
	// one (otherwise none).
	EtcdEndpoints []string
	// EtcdClientTLS is what a client of the embedded etcd's port must
	// present (nil without that port).
	EtcdClientTLS *tls.Config
	Handler       *Handler
	// CAPEM is the CA clients must trust; AdminConfigPath the admin's config.
	CAPEM           []byte
	AdminConfigPath string
	logsCert        *tls.Certificate
	embedded        *storage.Embedded
	http            *http.Server
	listener        net.Listener
	auditFile       io.Closer
	cancel          context.CancelFunc
	served          chan error
	closeOnce       sync.Once
}

// Start brings up etcd (embedded or external), the store, the default
// namespace, the PKI and the HTTPS API, and returns once the API accepts
// requests.
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
		if err := s.startEmbedded(ctx, opts); err != nil {
			return nil, err
		}
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

	l, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", opts.Listen, err)
	}
	s.listener = l
	tlsCfg, err := s.serverTLS(opts)
	if err != nil {
		return nil, err
	}
	audit, err := s.openAudit(opts)
	if err != nil {
		return nil, err
	}
	authn := auth.NewAuthenticator(s.Store, opts.Log.WithName("authn"))
	go authn.Run(ctx)
	if err := authn.WaitForSync(startCtx); err != nil {
		return nil, err
	}
	s.Handler = NewHandler(HandlerOptions{
		Store: s.Store, Log: opts.Log.WithName("api"), Metrics: NewMetrics(),
		Authn: authn, Authz: auth.NewAuthorizer(s.Store), Audit: audit,
		RateQPS: opts.RateQPS, RateBurst: opts.RateBurst, MaxObjectsPerNamespace: opts.MaxObjectsPerNamespace,
		FailedLoginQPS: opts.FailedLoginQPS, FailedLoginBurst: opts.FailedLoginBurst, LogsClientCert: s.logsCert,
		Snapshot:       s.snapshotSource(),
		RequestTimeout: opts.RequestTimeout, DashboardSessionTTL: opts.DashboardSessionTTL,
	})
	if err := s.bootstrapAdmin(startCtx, opts, authn); err != nil {
		return nil, err
	}
	idle := opts.IdleTimeout
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	s.http = &http.Server{
		Handler:   s.Handler,
		TLSConfig: tlsCfg,
		// Headers must come at once (this also bounds the TLS handshake);
		// the body and the answer have the handler's per-request deadlines,
		// which watches and log streams lift: no server-wide ReadTimeout or
		// WriteTimeout, which would end them.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       idle,
		// Watches end with the server.
		BaseContext: func(net.Listener) context.Context { return ctx },
		// TLS handshake failures and the like: worth a debug line, no more.
		ErrorLog: log.New(logWriter{opts.Log.WithName("http")}, "", 0),
	}
	maxConns := opts.MaxConnsPerAddress
	if maxConns == 0 {
		maxConns = DefaultMaxConnsPerAddress
	}
	capped := newCapListener(l, maxConns, opts.Log.WithName("http"), s.Handler.metrics.refused.Inc)
	go func() { s.served <- s.http.Serve(tls.NewListener(capped, tlsCfg)) }()
	opts.Log.Info("API server listening", "url", s.URL(), "etcd", etcdDescription(opts), "adminConfig", s.AdminConfigPath)
	ok = true
	return s, nil
}

// serverTLS loads the operator's certificate, or creates the CA and a
// serving certificate for the listen address, localhost and the host name.
func (s *Server) serverTLS(opts Options) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if opts.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(opts.TLSCertFile, opts.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("load --tls-cert-file/--tls-key-file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
		return cfg, nil
	}
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil {
		hosts = append(hosts, h)
	}
	if host, _, err := net.SplitHostPort(s.listener.Addr().String()); err == nil {
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
			hosts = append(hosts, host)
		} else if ip != nil {
			// Listening on every address (the package's 0.0.0.0:6443):
			// nodes reach the server at any of this host's addresses, as
			// kubeadm's certificate names the host's own.
			addrs, err := hostAddresses()
			if err != nil {
				opts.Log.Error(err, "cannot list this host's addresses for the serving certificate; nodes must reach the server by a name it has (--tls-san)")
			}
			opts.Log.Info("the serving certificate names this host's addresses", "addresses", addrs)
			hosts = append(hosts, addrs...)
		}
	}
	hosts = append(hosts, opts.TLSSANs...)
	b, err := pki.Ensure(filepath.Join(opts.DataDir, "pki"), hosts)
	if err != nil {
		return nil, err
	}
	s.CAPEM = b.CAPEM
	s.logsCert = &b.Client
	cfg.Certificates = []tls.Certificate{b.Server}
	return cfg, nil
}

func (s *Server) openAudit(opts Options) (io.Writer, error) {
	switch opts.AuditLog {
	case "-":
		return os.Stderr, nil
	case "":
		opts.AuditLog = filepath.Join(opts.DataDir, "audit.log")
	}
	f, err := os.OpenFile(opts.AuditLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	s.auditFile = f
	return f, nil
}

// bootstrapAdmin creates an admin token and writes <data-dir>/admin.yaml
// (mode 0600) the first time this data dir is used.
func (s *Server) bootstrapAdmin(ctx context.Context, opts Options, authn *auth.Authenticator) error {
	path := filepath.Join(opts.DataDir, AdminConfigFile)
	s.AdminConfigPath = path
	if _, err := os.Stat(path); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("admin config: %w", err)
	}
	tokens := resources.Tokens
	id, bearer, hash := auth.NewToken()
	tok := &v1.Token{
		ObjectMeta: metav1.ObjectMeta{Name: id},
		Spec: v1.TokenSpec{Type: v1.TokenUser, User: "admin", Roles: []v1.RoleBinding{{Role: v1.RoleAdmin}},
			Description: "created at first start for " + path},
		Status: v1.TokenStatus{SecretHash: hash},
	}
	out, err := s.Store.Create(ctx, tokens, tok, storage.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create admin token: %w", err)
	}
	authn.Observe(out.(*v1.Token))
	cfg := client.File{Server: s.URL(), Token: bearer, CertificateAuthorityData: string(s.CAPEM), Namespace: v1.DefaultNamespace}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return err
	}
	return pki.WriteFile0600(path, data)
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

// logWriter turns net/http's error log into logr lines at V(1).
type logWriter struct{ log logr.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.V(1).Info(strings.TrimSpace(string(p)))
	return len(p), nil
}

// URL is the API's base URL. A wildcard listen address is reached on
// loopback.
func (s *Server) URL() string {
	host, port, _ := net.SplitHostPort(s.listener.Addr().String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "https://" + net.JoinHostPort(host, port)
}

// Addr is the address the API listens on (as given: a wildcard stays one).
func (s *Server) Addr() net.Addr { return s.listener.Addr() }

// MetricsRegistry is where other parts of the process (the controllers'
// leader election) register metrics for /metrics to serve.
func (s *Server) MetricsRegistry() prometheus.Registerer { return s.Handler.metrics.registry }

// Wait blocks until the HTTP server stops.
func (s *Server) Wait() error {
	err := <-s.served
	s.served <- err
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops serving (ending watches), then closes etcd. Calling it again
// does nothing.
func (s *Server) Close() { s.closeOnce.Do(s.close) }

func (s *Server) close() {
	s.cancel()
	if s.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.http.Shutdown(ctx); err != nil {
			// Connections still open (one that never sent a request is
			// not idle to Shutdown for its first 5s) are cut: nothing of
			// the server may outlive Close.
			s.http.Close()
		}
		cancel()
		s.Handler.waitConsoles()
		s.Handler.CloseIdleConnections()
	} else if s.listener != nil {
		s.listener.Close()
	}
	if s.embedded != nil {
		s.embedded.Close()
	} else if s.Etcd != nil {
		s.Etcd.Close()
	}
	if s.auditFile != nil {
		s.auditFile.Close()
	}
}

// hostAddresses are this host's unicast addresses, loopback and link-local
// ones left out (already named, or not routable).
func hostAddresses() ([]string, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list interface addresses: %w", err)
	}
	var out []string
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() || ipn.IP.IsMulticast() {
			continue
		}
		out = append(out, ipn.IP.String())
	}
	return out, nil
}
