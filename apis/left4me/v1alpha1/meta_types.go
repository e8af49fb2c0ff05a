package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types shared by several kinds.
const (
	// ConditionReady means the object does what it is for: a Node accepts
	// work, an Instance answers players.
	ConditionReady = "Ready"
)

// NamespacePhase tells whether a Namespace accepts new objects.
type NamespacePhase string

const (
	NamespaceActive NamespacePhase = "Active"
)

// DefaultNamespace exists from the first start and is used when a manifest
// names none.
const DefaultNamespace = "default"

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// Namespace separates tenants. Objects can only be created inside an existing
// Namespace, and a Namespace can only be deleted once it is empty.
type Namespace struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   NamespaceSpec   `json:"spec,omitempty"`
	Status NamespaceStatus `json:"status,omitempty"`
}

// NamespaceSpec is empty for now; it exists so quotas can live here later.
type NamespaceSpec struct{}

// NamespaceStatus reports the Namespace's lifecycle.
type NamespaceStatus struct {
	Phase NamespacePhase `json:"phase,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// NamespaceList is a list of Namespaces.
type NamespaceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Namespace `json:"items"`
}

// Event types.
const (
	EventTypeNormal  = "Normal"
	EventTypeWarning = "Warning"
)

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// Event records something a user should see about another object (a
// scheduling decision, a failed mount). Events expire an hour after they were
// last written, so they never pile up in etcd.
type Event struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	InvolvedObject ObjectReference `json:"involvedObject"`
	// Type is Normal or Warning.
	Type string `json:"type,omitempty"`
	// Reason is a short CamelCase word a program can match on.
	Reason string `json:"reason"`
	// Message is for humans.
	Message string `json:"message,omitempty"`
	// Count is how often the same event was seen between first and last.
	Count          int32       `json:"count,omitempty"`
	FirstTimestamp metav1.Time `json:"firstTimestamp,omitempty"`
	LastTimestamp  metav1.Time `json:"lastTimestamp,omitempty"`
	Source         EventSource `json:"source,omitempty"`
}

// ObjectReference names the object an Event is about.
type ObjectReference struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
	UID        string `json:"uid,omitempty"`
}

// EventSource names the component that reported an Event.
type EventSource struct {
	Component string `json:"component,omitempty"`
	Host      string `json:"host,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// EventList is a list of Events.
type EventList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Event `json:"items"`
}
