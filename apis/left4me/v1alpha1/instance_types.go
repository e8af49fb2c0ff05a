package v1alpha1

import (
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// InstanceState is what the user wants the server to do.
//
// +enum
type InstanceState string

const (
	StateRunning InstanceState = "Running"
	StateStopped InstanceState = "Stopped"
)

// InstancePhase summarises an Instance's status for `l4mctl get`.
type InstancePhase string

const (
	PhasePending     InstancePhase = "Pending"
	PhaseScheduled   InstancePhase = "Scheduled"
	PhaseStarting    InstancePhase = "Starting"
	PhaseRunning     InstancePhase = "Running"
	PhaseStopped     InstancePhase = "Stopped"
	PhaseFailed      InstancePhase = "Failed"
	PhaseTerminating InstancePhase = "Terminating"
	// PhaseUnknown: the Instance's node is not heard from (Ready=Unknown):
	// its game may or may not run; what it last reported is kept in the
	// other fields, but no longer claimed as true.
	PhaseUnknown InstancePhase = "Unknown"
)

// Instance condition types, in the order they become true.
const (
	InstanceScheduled     = "Scheduled"
	InstanceOverlaysReady = "OverlaysReady"
	// InstanceInstallationReady: the build the game runs on is on its node.
	InstanceInstallationReady = "InstallationReady"
	InstanceMounted           = "Mounted"
	InstanceUnitActive        = "UnitActive"
	InstanceReady             = ConditionReady
	// InstanceNodeLost is True while the Instance's node has stopped
	// reporting; the Instance may still be running there.
	InstanceNodeLost = "NodeLost"
	// InstanceUpdatePending is True while the Instance runs an older
	// Blueprint or Overlay than the current one (waiting for players to leave
	// or for its turn in the rollout).
	InstanceUpdatePending = "UpdatePending"
)

// Reasons of UpdatePending=True: what the pending template changes.
const (
	// ReasonWaitingForRollout: the Blueprint or its Overlays changed.
	ReasonWaitingForRollout = "WaitingForRollout"
	// ReasonRestartRequested: nothing changed but the Blueprint's or the
	// Instance's restartedAt (l4mctl rollout restart).
	ReasonRestartRequested = "RestartRequested"
	// ReasonNewBuild: the Installation's wanted build is ready on the node
	// and the game still runs an older one.
	ReasonNewBuild = "NewBuild"
	// ReasonInstallationNotReady: no build of the Blueprint's Installation
	// is ready (on the node, or, for the scheduler, on any node).
	ReasonInstallationNotReady = "InstallationNotReady"
)

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// Instance is one game server.
type Instance struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   InstanceSpec   `json:"spec"`
	Status InstanceStatus `json:"status,omitempty"`
}

// InstanceSpec is what the user wants of one server.
type InstanceSpec struct {
	// BlueprintRef names a Blueprint in the same namespace.
	BlueprintRef LocalObjectReference `json:"blueprintRef"`
	// Hostname is the name players see in the server browser. Empty means
	// "<namespace> <name>".
	//
	// +k8s:validation:maxLength=64
	Hostname string `json:"hostname,omitempty"`
	// Port is the game port (UDP, and TCP for RCON). Empty lets the scheduler
	// pick one from the node's range.
	//
	// +k8s:validation:minimum=1024
	// +k8s:validation:maximum=64535
	Port int32 `json:"port,omitempty"`
	// NodeName binds the Instance to one node. Empty lets the scheduler choose.
	NodeName string `json:"nodeName,omitempty"`
	// NodeSelector limits scheduling to nodes with all these labels.
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// State is Running (default) or Stopped. Stopped keeps the server's files.
	State InstanceState `json:"state,omitempty"`
	// RescheduleAfterNodeLost overrides the Blueprint's: "Never", or how
	// long after its node is lost the Instance moves to another node ("90s").
	RescheduleAfterNodeLost string `json:"rescheduleAfterNodeLost,omitempty"`
}

// Annotations the control plane sets on Instances.
const (
	// AnnotationBoundBy is "scheduler" on Instances the scheduler placed:
	// those it may move (node lost, drain). An Instance whose spec.nodeName
	// a user wrote stays where the user put it.
	AnnotationBoundBy = "left4me.io/bound-by"
	// AnnotationApprovedTemplate is the template hash the rollout controller
	// allows the node to restart the Instance onto.
	AnnotationApprovedTemplate = "left4me.io/approved-template"
)

// FinalizerNodeCleanup keeps an Instance until its node has removed the
// game, its mount and its files.
const FinalizerNodeCleanup = "left4me.io/node-cleanup"

// RescheduleNever keeps an Instance on its node however long the node is lost.
const RescheduleNever = "Never"

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	Name string `json:"name"`
}

// InstanceStatus is what the node reports back.
type InstanceStatus struct {
	ObservedGeneration int64         `json:"observedGeneration,omitempty"`
	Phase              InstancePhase `json:"phase,omitempty"`
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// NodeName is the node running the server.
	NodeName string `json:"nodeName,omitempty"`
	// Address is where players connect (host address).
	Address string `json:"address,omitempty"`
	Port    int32  `json:"port,omitempty"`
	// UnitName is the systemd unit on the node.
	UnitName   string       `json:"unitName,omitempty"`
	MainPID    int32        `json:"mainPID,omitempty"`
	StartTime  *metav1.Time `json:"startTime,omitempty"`
	Restarts   int32        `json:"restarts,omitempty"`
	Players    int32        `json:"players,omitempty"`
	MaxPlayers int32        `json:"maxPlayers,omitempty"`
	Map        string       `json:"map,omitempty"`
	// TemplateHash identifies the Blueprint, Overlays and Instance spec the
	// running game was started from; PendingTemplateHash the ones it would
	// be restarted onto (empty when they are the same).
	TemplateHash        string `json:"templateHash,omitempty"`
	PendingTemplateHash string `json:"pendingTemplateHash,omitempty"`
	// ObservedBlueprint is the Blueprint version the node last rendered
	// from (BlueprintVersion), so a rollout knows which Instances have
	// seen a change at all.
	ObservedBlueprint string `json:"observedBlueprint,omitempty"`
	// RestartedAt and BlueprintRestartedAt are the Instance's and its
	// Blueprint's left4me.io/restartedAt annotations the running game was
	// started with: a restart asked for is done when they match (and
	// the rollout controller knows a forceRestartAt is spent).
	RestartedAt          string `json:"restartedAt,omitempty"`
	BlueprintRestartedAt string `json:"blueprintRestartedAt,omitempty"`
	// Installation and Build are the Installation and its build the game
	// runs on (Build is empty on a hand-made installation/ directory).
	Installation string `json:"installation,omitempty"`
	Build        string `json:"build,omitempty"`
}

// BlueprintVersion names what a Blueprint's Instances are rendered from, as
// they observe it: the Blueprint's generation and restartedAt annotation
// (which changes no generation), and the generation of each of its
// Overlays (overlays[name]; a missing one counts as "?").
func BlueprintVersion(bp *Blueprint, overlays map[string]*Overlay) string {
	v := strconv.FormatInt(bp.Generation, 10) + "/" + bp.Annotations[AnnotationRestartedAt]
	for _, name := range bp.Spec.Overlays {
		gen := "?"
		if o := overlays[name]; o != nil {
			gen = strconv.FormatInt(o.Generation, 10)
		}
		v += "/" + name + "=" + gen
	}
	return v
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// InstanceList is a list of Instances.
type InstanceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Instance `json:"items"`
}

// GamePort is the game port the Instance uses: the one it names, else the
// one the scheduler allocated (0: none yet).
func (in *Instance) GamePort() int32 {
	if in.Spec.Port != 0 {
		return in.Spec.Port
	}
	return in.Status.Port
}

// ClientPortOffset places each game's client port: the game port + 1000. A
// node's range spans fewer than 1000 ports, so the ports the scheduler
// allocates never meet each other's client ports; ports a user names or a
// changed range can, which is why every port in GamePorts is claimed.
const ClientPortOffset = 1000

// GamePorts are all the ports one game binds on its node. SourceTV is off
// (srcds runs with -nohltv), so there is no TV port; when it is turned on,
// its port belongs here so that claims, the scheduler and the node see it.
//
// +k8s:deepcopy-gen=false
// +k8s:openapi-gen=false
type GamePorts struct {
	Game   int32 // UDP game traffic and TCP RCON
	Client int32 // UDP client port
}

// PortsFor is what a game on this game port binds (all zero for port 0).
func PortsFor(game int32) GamePorts {
	if game == 0 {
		return GamePorts{}
	}
	return GamePorts{Game: game, Client: game + ClientPortOffset}
}

// List is every port the game binds, game port first (nil: none).
func (p GamePorts) List() []int32 {
	if p.Game == 0 {
		return nil
	}
	return []int32{p.Game, p.Client}
}

// Ports are the ports the Instance binds on its node (zero: no game port yet).
func (in *Instance) Ports() GamePorts { return PortsFor(in.GamePort()) }
