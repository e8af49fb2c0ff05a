// Command l4m-server serves the left4me API on etcd (embedded by default)
// and runs the controllers (scheduler, node lifecycle, rollouts, Installations) while it
// holds the leader lease.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/cmd/internal/logging"
	"github.com/left4me/left4me/controllers/leader"
)

func main() {
	if err := newCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "l4m-server:", err)
		os.Exit(1)
	}
}

// config is what the flags set: the API server's options and the
// controllers'.
type config struct {
	server             server.Options
	leader             leader.Options
	disableControllers bool
}

func newCommand() *cobra.Command {
	var c config
	opts := &c.server
	var verbosity, maxConns int
	var jsonLogs bool
	cmd := &cobra.Command{
		Use:   "l4m-server",
		Short: "The left4me API server",
		Long: `l4m-server serves the left4me API. By default it runs etcd inside itself
(data under --data-dir); with --etcd-endpoints it uses an external cluster,
which lets several l4m-servers serve the same objects.

It serves only HTTPS. On first start it creates a CA and a serving
certificate under --data-dir/pki and an admin client config,
--data-dir/admin.yaml (mode 0600), that l4mctl reads:
  L4MCONFIG=/var/lib/left4me/server/admin.yaml l4mctl get nodes`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Log = logging.New(verbosity, jsonLogs)
			c.leader.Log = opts.Log
			opts.MaxConnsPerAddress = maxConns
			if maxConns == 0 {
				opts.MaxConnsPerAddress = -1 // no cap
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return run(ctx, c)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.DataDir, "data-dir", "/var/lib/left4me/server", "where the embedded etcd keeps its data")
	f.StringVar(&opts.Listen, "listen", "127.0.0.1:6443", "address of the API")
	f.StringSliceVar(&opts.EtcdEndpoints, "etcd-endpoints", nil, "external etcd client URLs (default: embedded etcd)")
	f.StringVar(&opts.EtcdCAFile, "etcd-cafile", "", "CA bundle that signed the external etcd's certificates")
	f.StringVar(&opts.EtcdCertFile, "etcd-certfile", "", "client certificate for the external etcd")
	f.StringVar(&opts.EtcdKeyFile, "etcd-keyfile", "", "client key for the external etcd")
	f.StringVar(&opts.EtcdPrefix, "etcd-prefix", "/left4me", "key prefix of every object in etcd")
	f.StringSliceVar(&opts.TLSSANs, "tls-san", nil, "extra host names or IPs for the generated serving certificate")
	f.StringVar(&opts.TLSCertFile, "tls-cert-file", "", "serving certificate (default: generated under --data-dir/pki); for l4m-node join --ca-hash, the chain up to the CA")
	f.StringVar(&opts.TLSKeyFile, "tls-key-file", "", "key of --tls-cert-file")
	f.StringVar(&opts.AuditLog, "audit-log", "", "audit log of mutating requests: a path, or - for stderr (default --data-dir/audit.log)")
	f.Float64Var(&opts.RateQPS, "rate-limit", 100, "requests per second each credential may send (0: unlimited)")
	f.IntVar(&opts.RateBurst, "rate-burst", 200, "requests a credential may send at once above --rate-limit")
	f.Float64Var(&opts.FailedLoginQPS, "failed-login-limit", 2, "failed logins per second one address may make before 429 (0: unlimited)")
	f.IntVar(&opts.FailedLoginBurst, "failed-login-burst", 20, "failed logins one address may make at once")
	f.DurationVar(&opts.DashboardSessionTTL, "dashboard-session-ttl", 8*time.Hour, "how long a login to the dashboard (/ui/) lasts; sessions live in this process's memory")
	f.IntVar(&maxConns, "max-connections-per-address", server.DefaultMaxConnsPerAddress, "open connections one client IP may hold; more are closed at once (0: no cap; raise it behind a proxy or NAT)")
	f.DurationVar(&opts.RequestTimeout, "request-timeout", server.DefaultRequestTimeout, "how long a request other than a watch or a log stream may take to send its body and read its answer")
	f.IntVar(&opts.MaxObjectsPerNamespace, "max-objects-per-namespace", 10000, "most objects of one kind in one namespace (0: no cap)")
	f.StringVar(&opts.EmbeddedEtcdClientAddr, "embedded-etcd-client-addr", "", "open a loopback host:port on the embedded etcd that requires a client certificate from --data-dir/pki/etcd (default: etcd listens on nothing)")
	var unusedPeerAddr string
	f.StringVar(&unusedPeerAddr, "embedded-etcd-peer-addr", "", "")
	f.MarkDeprecated("embedded-etcd-peer-addr", "the embedded etcd has no peers and listens for none; the flag does nothing")
	f.StringVar(&c.leader.SchedulerPolicy, "scheduler-policy", "Spread", "where new Instances go: Spread (fewest games per node) or Pack (fill nodes in turn)")
	f.DurationVar(&c.leader.NodeGracePeriod, "node-grace-period", 40*time.Second, "a node silent this long is Ready=Unknown and its Instances NodeLost")
	f.DurationVar(&c.leader.LeaseTTL, "leader-lease-ttl", leader.DefaultLeaseTTL, "the controllers' leader lease: a dead leader is replaced within about this long")
	f.StringVar(&c.leader.Identity, "identity", "", "this server's name in the leader election (default host/listen address)")
	f.BoolVar(&c.disableControllers, "disable-controllers", false, "serve the API only; leave scheduling and node lifecycle to other servers")
	f.IntVarP(&verbosity, "v", "v", 0, "log verbosity (1: every request)")
	f.BoolVar(&jsonLogs, "json-logs", false, "log JSON lines (for the journal)")
	cmd.AddCommand(snapshotCommand())
	return cmd
}

// run serves the API and, unless disabled, campaigns for the leader lease
// and runs the controllers while it holds it, until ctx ends or the API
// stops. The controllers stop (and resign) before the server closes etcd.
func run(ctx context.Context, c config) error {
	if err := leader.ValidateLeaseTTL(c.leader.LeaseTTL); err != nil {
		return fmt.Errorf("--leader-lease-ttl: %w", err)
	}
	s, err := server.Start(ctx, c.server)
	if err != nil {
		return err
	}
	defer s.Close()
	stopControllers, err := startControllers(ctx, s, c)
	if err != nil {
		return err
	}
	defer stopControllers()
	select {
	case <-ctx.Done():
		c.server.Log.Info("shutting down")
		return nil
	case err := <-waitErr(s):
		return err
	}
}

// startControllers starts the leader election on the server's store and
// etcd client; the returned func stops it and waits until the controllers
// stopped. With --disable-controllers nothing campaigns, and the leader
// gauge stays at 0.
func startControllers(ctx context.Context, s *server.Server, c config) (stop func(), err error) {
	lo := c.leader
	lo.Store, lo.Etcd, lo.Metrics = s.Store, s.Etcd, s.MetricsRegistry()
	if lo.Identity == "" {
		lo.Identity = leader.DefaultIdentity(s.Addr())
	}
	r, err := leader.New(lo)
	if err != nil {
		return nil, err
	}
	if c.disableControllers {
		return func() {}, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	return func() { cancel(); <-done }, nil
}

func waitErr(s *server.Server) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- s.Wait() }()
	return ch
}
