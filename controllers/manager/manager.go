// Package manager runs every control-plane controller (scheduler, node
// lifecycle, rollouts, Installations, Overlays) against one store: the informers
// they share, the event recorders, and the controllers themselves. controllers/leader runs it only while this l4m-server holds
// the leader lease.
package manager

import (
	"context"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/storage"
	"github.com/left4me/left4me/controllers"
	"github.com/left4me/left4me/controllers/installation"
	"github.com/left4me/left4me/controllers/nodelifecycle"
	"github.com/left4me/left4me/controllers/overlay"
	"github.com/left4me/left4me/controllers/rollout"
	"github.com/left4me/left4me/controllers/scheduler"
)

// Options configure the controllers.
type Options struct {
	Store *storage.Store
	// SchedulerPolicy is scheduler.Spread (default) or scheduler.Pack.
	SchedulerPolicy string
	// NodeGracePeriod: heartbeats older than this make a node Ready=Unknown
	// (default nodelifecycle.DefaultGracePeriod).
	NodeGracePeriod time.Duration
	// Identity names this server in events (e.g. its hostname).
	Identity string
	Log      logr.Logger
}

// Run runs the controllers until ctx ends, and returns once all stopped.
func Run(ctx context.Context, o Options) {
	log := o.Log
	instances := controllers.NewInformer(o.Store, resources.Instances, log)
	nodes := controllers.NewInformer(o.Store, resources.Nodes, log)
	leases := controllers.NewInformer(o.Store, resources.Leases, log)
	blueprints := controllers.NewInformer(o.Store, resources.Blueprints, log)
	installations := controllers.NewInformer(o.Store, resources.Installations, log)
	schedEvents := controllers.NewRecorder(o.Store, "l4m-scheduler", log.WithName("events"))
	sched := scheduler.New(scheduler.Options{
		Store: o.Store, Instances: instances, Nodes: nodes, Blueprints: blueprints, Installations: installations, Recorder: schedEvents,
		Policy: o.SchedulerPolicy, Log: log.WithName("scheduler"),
	})
	lifecycleEvents := controllers.NewRecorder(o.Store, "l4m-node-lifecycle", log.WithName("events"))
	lifecycle := nodelifecycle.New(nodelifecycle.Options{
		Store: o.Store, Nodes: nodes, Leases: leases, Instances: instances, Blueprints: blueprints, Recorder: lifecycleEvents,
		GracePeriod: o.NodeGracePeriod, Log: log.WithName("nodelifecycle"),
	})
	rolloutEvents := controllers.NewRecorder(o.Store, "l4m-rollout", log.WithName("events"))
	rollouts := rollout.New(rollout.Options{
		Store: o.Store, Instances: instances, Blueprints: blueprints, Recorder: rolloutEvents, Log: log.WithName("rollout"),
	})
	installationEvents := controllers.NewRecorder(o.Store, "l4m-installation", log.WithName("events"))
	installs := installation.New(installation.Options{
		Store: o.Store, Installations: installations, Nodes: nodes, Instances: instances, Recorder: installationEvents,
		Log: log.WithName("installation"),
	})
	overlays := controllers.NewInformer(o.Store, resources.Overlays, log)
	overlayEvents := controllers.NewRecorder(o.Store, "l4m-overlay", log.WithName("events"))
	ovs := overlay.New(overlay.Options{
		Store: o.Store, Overlays: overlays, Blueprints: blueprints, Instances: instances, Nodes: nodes, Recorder: overlayEvents,
		Log: log.WithName("overlay"),
	})
	var wg sync.WaitGroup
	for _, f := range []func(context.Context){instances.Run, nodes.Run, leases.Run, blueprints.Run, installations.Run, overlays.Run,
		schedEvents.Run, sched.Run, lifecycleEvents.Run, lifecycle.Run, rolloutEvents.Run, rollouts.Run,
		installationEvents.Run, installs.Run, overlayEvents.Run, ovs.Run} {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	wg.Wait()
}
