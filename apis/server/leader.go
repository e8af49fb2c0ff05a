package server

import (
	"context"
	"fmt"
	"os"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/left4me/left4me/controllers/manager"
)

// DefaultLeaseTTL is how long a dead leader holds the lease: another
// l4m-server takes over within about this long (well inside the 15 s a
// fleet tolerates), while a leader that misses one keepalive (a third of
// it) does not lose it.
const DefaultLeaseTTL = 5 * time.Second

// runControllers campaigns for leadership (etcd's concurrency election, one
// lease per campaign) and runs the controllers while it leads. Every server
// serves the API; only the leader changes objects on its own. When the
// lease is lost the controllers stop before anyone else can start theirs:
// the lease TTL bounds both.
func (s *Server) runControllers(ctx context.Context, opts Options) {
	log := opts.Log.WithName("leader")
	ttl := opts.LeaseTTL
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	identity := opts.Identity
	if identity == "" {
		host, _ := os.Hostname()
		identity = fmt.Sprintf("%s/%s", host, s.listener.Addr())
	}
	prefix := opts.EtcdPrefix
	if prefix == "" {
		prefix = "/left4me"
	}
	for ctx.Err() == nil {
		sess, err := concurrency.NewSession(s.Etcd, concurrency.WithTTL(int(ttl/time.Second)), concurrency.WithContext(ctx))
		if err != nil {
			log.Info("cannot open an etcd session; retrying", "error", err.Error())
			sleep(ctx, time.Second)
			continue
		}
		election := concurrency.NewElection(sess, prefix+"/leader")
		if err := election.Campaign(ctx, identity); err != nil {
			sess.Close()
			if ctx.Err() == nil {
				log.Info("campaign failed; retrying", "error", err.Error())
				sleep(ctx, time.Second)
			}
			continue
		}
		log.Info("leading: running the controllers", "identity", identity)
		s.Handler.metrics.leader.Set(1)
		s.leading.Store(true)
		lctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-sess.Done():
				log.Info("lost the leader lease")
			case <-lctx.Done():
			}
			cancel()
		}()
		manager.Run(lctx, manager.Options{Store: s.Store, SchedulerPolicy: opts.SchedulerPolicy, NodeGracePeriod: opts.NodeGracePeriod, Identity: identity, Log: opts.Log.WithName("controllers")})
		cancel()
		s.Handler.metrics.leader.Set(0)
		s.leading.Store(false)
		rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
		election.Resign(rctx)
		rcancel()
		sess.Close()
		log.Info("stopped leading", "identity", identity)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// Leading reports whether this server runs the controllers now.
func (s *Server) Leading() bool { return s.leading.Load() }
