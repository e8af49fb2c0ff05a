package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// InstanceState is what the user wants the server to do.
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
)

// Instance condition types, in the order they become true.
const (
	InstanceScheduled     = "Scheduled"
	InstanceOverlaysReady = "OverlaysReady"
	InstanceMounted       = "Mounted"
	InstanceUnitActive    = "UnitActive"
	InstanceReady         = ConditionReady
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
	Hostname string `json:"hostname,omitempty"`
	// Port is the game port (UDP, and TCP for RCON). Empty lets the scheduler
	// pick one from the node's range.
	Port int32 `json:"port,omitempty"`
	// NodeName binds the Instance to one node. Empty lets the scheduler choose.
	NodeName string `json:"nodeName,omitempty"`
	// NodeSelector limits scheduling to nodes with all these labels.
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// State is Running (default) or Stopped. Stopped keeps the server's files.
	State InstanceState `json:"state,omitempty"`
}

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	Name string `json:"name"`
}

// InstanceStatus is what the node reports back.
type InstanceStatus struct {
	ObservedGeneration int64              `json:"observedGeneration,omitempty"`
	Phase              InstancePhase      `json:"phase,omitempty"`
	Conditions         []metav1.Condition `json:"conditions,omitempty"`
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
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// InstanceList is a list of Instances.
type InstanceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Instance `json:"items"`
}
