package validation

import (
	"k8s.io/apimachinery/pkg/api/resource"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

// Defaults a user can rely on; they match the predecessor's production unit.
const (
	DefaultMap        = "c1m1_hotel"
	DefaultMode       = "coop"
	DefaultMaxPlayers = 8
	DefaultTickrate   = 30
	DefaultTasksMax   = 256
	DefaultPortMin    = 27015
	DefaultPortMax    = 27115
	// DefaultRescheduleAfterNodeLost matches Kubernetes' default toleration
	// of an unreachable node: long enough for a reboot.
	DefaultRescheduleAfterNodeLost = "5m"
)

var (
	defaultMemoryHigh = resource.MustParse("1536Mi")
	defaultMemoryMax  = resource.MustParse("2Gi")
)

// Default fills the fields a user may leave out. It is applied by the API
// server before validation, so stored objects are always complete.
func Default(obj v1.Object) {
	switch o := obj.(type) {
	case *v1.Blueprint:
		defaultBlueprint(o)
	case *v1.Installation:
		defaultInstallation(o)
	case *v1.Overlay:
		defaultOverlay(o)
	case *v1.Instance:
		if o.Spec.State == "" {
			o.Spec.State = v1.StateRunning
		}
	case *v1.Node:
		if o.Spec.PortRange.Min == 0 && o.Spec.PortRange.Max == 0 {
			o.Spec.PortRange = v1.PortRange{Min: DefaultPortMin, Max: DefaultPortMax}
		}
	case *v1.Token:
		if o.Spec.Type == v1.TokenJoin && o.Spec.Uses == 0 {
			o.Spec.Uses = 1
		}
	case *v1.Event:
		if o.Type == "" {
			o.Type = v1.EventTypeNormal
		}
		if o.Count == 0 {
			o.Count = 1
		}
	}
}

func defaultBlueprint(b *v1.Blueprint) {
	g := &b.Spec.Game
	if g.Map == "" {
		g.Map = DefaultMap
	}
	if g.Mode == "" {
		g.Mode = DefaultMode
	}
	if g.MaxPlayers == 0 {
		g.MaxPlayers = DefaultMaxPlayers
	}
	if g.Tickrate == 0 {
		g.Tickrate = DefaultTickrate
	}
	r := &b.Spec.Resources
	if r.MemoryMax == nil {
		q := defaultMemoryMax.DeepCopy()
		r.MemoryMax = &q
	}
	if r.MemoryHigh == nil {
		q := defaultMemoryHigh.DeepCopy()
		if q.Cmp(*r.MemoryMax) > 0 {
			q = r.MemoryMax.DeepCopy()
		}
		r.MemoryHigh = &q
	}
	if r.TasksMax == 0 {
		r.TasksMax = DefaultTasksMax
	}
	if b.Spec.Installation == "" {
		b.Spec.Installation = v1.DefaultInstallation
	}
	if b.Spec.RescheduleAfterNodeLost == "" {
		b.Spec.RescheduleAfterNodeLost = DefaultRescheduleAfterNodeLost
	}
	if b.Spec.Rollout.Policy == "" {
		b.Spec.Rollout.Policy = v1.RolloutWhenEmpty
	}
	if b.Spec.Rollout.MaxUnavailable == 0 {
		b.Spec.Rollout.MaxUnavailable = 1
	}
}

func defaultInstallation(in *v1.Installation) {
	s := &in.Spec
	if s.AppID == 0 {
		s.AppID = v1.DefaultAppID
	}
	if s.Branch == "" {
		s.Branch = v1.DefaultBranch
	}
	if s.Build == "" {
		s.Build = v1.BuildLatest
	}
	if s.CheckInterval == "" {
		s.CheckInterval = v1.DefaultCheckInterval
	}
}

// defaultOverlay fills a workshop source's interval and directory, and a
// git branch's or tag's interval; the other sources have no defaults (into
// "" is the game root).
func defaultOverlay(o *v1.Overlay) {
	if g := o.Spec.Source.Git; g != nil && g.CheckInterval == "" && g.Ref != "" && !v1.IsCommitID(g.Ref) {
		g.CheckInterval = v1.DefaultGitCheckInterval
	}
	if w := o.Spec.Source.Workshop; w != nil {
		if w.CheckInterval == "" {
			w.CheckInterval = v1.DefaultWorkshopCheckInterval
		}
		if w.Into == "" {
			w.Into = v1.DefaultWorkshopInto
		}
	}
}
