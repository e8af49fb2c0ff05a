package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NodeLeaseDurationSeconds is the leaseDurationSeconds an agent writes: the
// node lifecycle controller's default grace period, in which a node renews
// its Lease four times.
const NodeLeaseDurationSeconds = 40

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// Lease is a node's heartbeat, as coordination.k8s.io/v1 Lease is a
// kubelet's (KEP-589): cluster-scoped, named after its Node, renewed by the
// node's agent every heartbeat period with a write this small, so that a
// node saying "still here" costs the watchers of Nodes nothing. The Node's
// status is written only when what it reports changes. A node may write
// only the Lease named after itself.
type Lease struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec LeaseSpec `json:"spec,omitempty"`
}

// LeaseSpec is coordination.k8s.io/v1 LeaseSpec's fields a node lease uses,
// by the same names.
type LeaseSpec struct {
	// HolderIdentity is who holds the lease: the node's name.
	HolderIdentity string `json:"holderIdentity,omitempty"`
	// LeaseDurationSeconds is how long the holder may go without renewing
	// before others may consider it gone.
	LeaseDurationSeconds int32 `json:"leaseDurationSeconds,omitempty"`
	// AcquireTime is when the current holder took the lease.
	AcquireTime *metav1.MicroTime `json:"acquireTime,omitempty"`
	// RenewTime is when the holder last renewed the lease, by its clock.
	RenewTime *metav1.MicroTime `json:"renewTime,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// LeaseList is a list of Leases.
type LeaseList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Lease `json:"items"`
}
