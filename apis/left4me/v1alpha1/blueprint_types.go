package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// Blueprint says how to run a server: which overlays, which server.cfg lines,
// which srcds arguments, and how much of the host it may use. Many Instances
// share one Blueprint.
type Blueprint struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   BlueprintSpec   `json:"spec"`
	Status BlueprintStatus `json:"status,omitempty"`
}

// BlueprintSpec is the desired shape of every Instance made from it.
type BlueprintSpec struct {
	// Overlays are names of Overlays in the same namespace, topmost first: a
	// file in overlays[0] hides the same file in overlays[1] and in the
	// installation.
	//
	// +listType=atomic
	// +k8s:validation:maxItems=32
	Overlays []string `json:"overlays,omitempty"`
	// Installation names the Installation whose build is the bottom layer
	// (default "l4d2"). While no Installation of that name exists, nodes
	// use their hand-made installation/ directory instead.
	Installation string `json:"installation,omitempty"`
	// Game holds the srcds arguments every server needs.
	Game GameSpec `json:"game,omitempty"`
	// Cvars become server.cfg lines, in order: `name "value"`.
	//
	// +listType=map
	// +listMapKey=name
	Cvars []Cvar `json:"cvars,omitempty"`
	// Args are extra srcds arguments. srcds_run is a shell script that
	// re-splits them on spaces, so each word is checked: no shell
	// metacharacters, no command server.cfg may not run either (+exec,
	// +rcon_password, +logaddress_*, ...), and none of the flags the node
	// owns (-game, -ip/+ip, +hostport, +clientport, +tv_port, +map, ...).
	//
	// +listType=atomic
	Args []string `json:"args,omitempty"`
	// Resources limit what one server may use on its host.
	Resources Resources `json:"resources,omitempty"`
	// RescheduleAfterNodeLost is "Never", or how long after their node is
	// lost this Blueprint's Instances move to another node (default "5m").
	RescheduleAfterNodeLost string `json:"rescheduleAfterNodeLost,omitempty"`
	// Rollout says how changes reach running Instances.
	Rollout RolloutSpec `json:"rollout,omitempty"`
}

// AnnotationRestartedAt (an RFC 3339 time, set by l4mctl rollout restart)
// on a Blueprint changes every one of its Instances' templates, so they all
// restart, under the Blueprint's rollout rules; on an Instance it changes
// that Instance's template only, and it restarts under the same rules.
const AnnotationRestartedAt = "left4me.io/restartedAt"

// AnnotationForceRestartAt (set by l4mctl rollout restart --force) equal to
// the same object's AnnotationRestartedAt makes that restart ignore players:
// on an Instance the rollout controller approves it at once, whoever is on
// it and whatever else restarts; on a Blueprint its Instances restart with
// players on them too, still at most maxUnavailable at a time. It is spent
// once the game runs the restartedAt it names (status.restartedAt,
// status.blueprintRestartedAt): a later change rolls out as usual.
const AnnotationForceRestartAt = "left4me.io/forceRestartAt"

// AnnotationLastApplied is where l4mctl apply keeps the manifest it last
// applied, for its three-way merge: kubectl's own key, written as kubectl
// writes it, so that kubectl apply and l4mctl apply of the same file each
// take the other's last apply as the original and agree it is unchanged.
const AnnotationLastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// LegacyAnnotationLastApplied is where l4mctl apply kept the manifest
// before it used kubectl's key. l4mctl still reads it as the original when
// AnnotationLastApplied is missing, and its next apply removes it.
const LegacyAnnotationLastApplied = Group + "/last-applied-configuration"

// RolloutPolicy says when a changed Instance may restart.
//
// +enum
type RolloutPolicy string

// Rollout policies.
const (
	// RolloutWhenEmpty restarts an Instance onto a new spec only when no
	// player is on it (the default: nobody gets kicked).
	RolloutWhenEmpty RolloutPolicy = "WhenEmpty"
	// RolloutImmediate restarts at once, players or not.
	RolloutImmediate RolloutPolicy = "Immediate"
)

// RolloutSpec limits how changes to a Blueprint or its Overlays restart
// running Instances.
type RolloutSpec struct {
	// Policy is WhenEmpty (default) or Immediate.
	Policy RolloutPolicy `json:"policy,omitempty"`
	// MaxUnavailable is how many of the Blueprint's Instances may restart at
	// once (default 1).
	//
	// +k8s:validation:minimum=0
	MaxUnavailable int32 `json:"maxUnavailable,omitempty"`
}

// GameSpec holds the srcds arguments with a meaning the scheduler and the
// status care about.
type GameSpec struct {
	// Map is the starting map, e.g. c1m1_hotel.
	//
	// +k8s:validation:pattern="^[A-Za-z0-9_-]{1,64}$"
	Map string `json:"map,omitempty"`
	// Mode is the game mode (coop, versus, survival, scavenge, realism, ...).
	//
	// +k8s:validation:pattern="^[a-z0-9_]{1,32}$"
	Mode string `json:"mode,omitempty"`
	// MaxPlayers is the number of player slots.
	//
	// +k8s:validation:minimum=1
	// +k8s:validation:maximum=32
	MaxPlayers int32 `json:"maxPlayers,omitempty"`
	// Tickrate is the server's simulation rate.
	//
	// +k8s:validation:minimum=10
	// +k8s:validation:maximum=128
	Tickrate int32 `json:"tickrate,omitempty"`
}

// Cvar is one server.cfg line.
type Cvar struct {
	// +k8s:validation:pattern="^[A-Za-z_][A-Za-z0-9_.]{0,63}$"
	Name string `json:"name"`
	// +k8s:validation:maxLength=255
	Value string `json:"value"`
}

// Resources become the game unit's cgroup limits.
type Resources struct {
	// MemoryHigh throttles the server above this amount (systemd MemoryHigh=).
	MemoryHigh *resource.Quantity `json:"memoryHigh,omitempty"`
	// MemoryMax is the hard limit (systemd MemoryMax=); it is also what the
	// scheduler reserves on a node.
	MemoryMax *resource.Quantity `json:"memoryMax,omitempty"`
	// CPUWeight is systemd's CPUWeight= (1..10000).
	//
	// +k8s:validation:minimum=1
	// +k8s:validation:maximum=10000
	CPUWeight int32 `json:"cpuWeight,omitempty"`
	// TasksMax limits processes and threads (systemd TasksMax=).
	//
	// +k8s:validation:minimum=1
	// +k8s:validation:maximum=65535
	TasksMax int32 `json:"tasksMax,omitempty"`
}

// BlueprintStatus reports what the control plane knows about the Blueprint.
type BlueprintStatus struct {
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// BlueprintList is a list of Blueprints.
type BlueprintList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Blueprint `json:"items"`
}
