// Package leader elects one l4m-server among those sharing an etcd cluster
// and runs the controllers (controllers/manager) on it while it leads.
// Every server serves the API; only the leader changes objects on its own.
package leader

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/left4me/left4me/apis/storage"
	"github.com/left4me/left4me/controllers/manager"
)

// DefaultLeaseTTL is how long a dead leader holds the lease: another
// l4m-server takes over within about this long (well inside the 15 s a
// fleet tolerates), while a leader that misses one keepalive (a third of
// it) does not lose it.
const DefaultLeaseTTL = 5 * time.Second

// retryDelay spaces attempts to open a session or campaign after etcd
// refused one, so that an unreachable etcd is not hammered.
const retryDelay = time.Second

// Options configure a Runner.
type Options struct {
	// Store is what the controllers read and write; its key prefix also
	// names the election (<prefix>/leader), so servers of one store compete.
	Store *storage.Store
	// Etcd is the client the election's session and lease live on (the
	// API server's).
	Etcd *clientv3.Client
	// LeaseTTL is the leader lease (default DefaultLeaseTTL, at least 1s:
	// etcd counts leases in whole seconds).
	LeaseTTL time.Duration
	// Identity names this server in the election and in events (default
	// the host name; l4m-server passes DefaultIdentity).
	Identity string
	// SchedulerPolicy and NodeGracePeriod are passed to the controllers.
	SchedulerPolicy string
	NodeGracePeriod time.Duration
	// Metrics is where the left4me_controllers_leader gauge is registered
	// (the API server's registry, so /metrics shows it); nil: nowhere.
	Metrics prometheus.Registerer
	Log     logr.Logger
}

// Runner campaigns for leadership and runs the controllers while it leads.
type Runner struct {
	o       Options
	gauge   prometheus.Gauge
	leading atomic.Bool
}

// New checks the options and registers the leader gauge (at 0 until Run
// leads, so a server that never campaigns still reports it).
func New(o Options) (*Runner, error) {
	if o.Store == nil || o.Etcd == nil {
		return nil, fmt.Errorf("leader election: a store and an etcd client are required")
	}
	if err := ValidateLeaseTTL(o.LeaseTTL); err != nil {
		return nil, err
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = DefaultLeaseTTL
	}
	if o.Identity == "" {
		o.Identity, _ = os.Hostname()
	}
	r := &Runner{o: o, gauge: prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "left4me_controllers_leader", Help: "1 while this server holds the leader lease and runs the controllers.",
	})}
	if o.Metrics != nil {
		if err := o.Metrics.Register(r.gauge); err != nil {
			return nil, fmt.Errorf("register the leader gauge: %w", err)
		}
	}
	return r, nil
}

// ValidateLeaseTTL refuses a lease etcd cannot grant as asked: etcd counts
// lease TTLs in whole seconds, and a TTL of 0 would become its default of
// a minute. 0 means DefaultLeaseTTL.
func ValidateLeaseTTL(ttl time.Duration) error {
	if ttl != 0 && (ttl < time.Second || ttl%time.Second != 0) {
		return fmt.Errorf("leader lease TTL %s: must be a whole number of seconds, at least 1s", ttl)
	}
	return nil
}

// DefaultIdentity is l4m-server's name in the election when --identity is
// not given: the host name and the API's listen address, unique among
// servers on one host.
func DefaultIdentity(listen net.Addr) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%s", host, listen)
}

// Leading reports whether the controllers run here now.
func (r *Runner) Leading() bool { return r.leading.Load() }

// Run campaigns (etcd's concurrency election, one lease per campaign) and
// runs the controllers while it leads, until ctx ends. When the lease is
// lost the controllers stop and it campaigns again; the lease TTL bounds
// how long a lost leader's controllers may overlap a new one's. It returns
// once the controllers stopped and leadership was given up, so the etcd
// client must stay open until then.
func (r *Runner) Run(ctx context.Context) {
	log := r.o.Log.WithName("leader")
	for ctx.Err() == nil {
		sess, err := concurrency.NewSession(r.o.Etcd, concurrency.WithTTL(int(r.o.LeaseTTL/time.Second)), concurrency.WithContext(ctx))
		if err != nil {
			if ctx.Err() == nil {
				log.Info("cannot open an etcd session; retrying", "error", err.Error())
				sleep(ctx, retryDelay)
			}
			continue
		}
		r.term(ctx, log, sess)
	}
}

// term is one campaign on sess: wait to lead, run the controllers until
// the session or ctx ends, then resign and close the session.
func (r *Runner) term(ctx context.Context, log logr.Logger, sess *concurrency.Session) {
	defer sess.Close()
	election := concurrency.NewElection(sess, r.o.Store.Prefix()+"/leader")
	if err := election.Campaign(ctx, r.o.Identity); err != nil {
		if ctx.Err() == nil {
			log.Info("campaign failed; retrying", "error", err.Error())
			sleep(ctx, retryDelay)
		}
		return
	}
	log.Info("leading: running the controllers", "identity", r.o.Identity)
	r.gauge.Set(1)
	r.leading.Store(true)
	lctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-sess.Done():
			log.Info("lost the leader lease", "identity", r.o.Identity)
		case <-lctx.Done():
		}
		cancel()
	}()
	manager.Run(lctx, manager.Options{Store: r.o.Store, SchedulerPolicy: r.o.SchedulerPolicy,
		NodeGracePeriod: r.o.NodeGracePeriod, Identity: r.o.Identity, Log: r.o.Log.WithName("controllers")})
	cancel()
	r.gauge.Set(0)
	r.leading.Store(false)
	// Resigning deletes the election key at once, so a follower need not
	// wait out the lease; ctx may be over already, hence a fresh one.
	rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
	if err := election.Resign(rctx); err != nil {
		log.V(1).Info("resign failed; the lease expires on its own", "error", err.Error())
	}
	rcancel()
	log.Info("stopped leading", "identity", r.o.Identity)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
