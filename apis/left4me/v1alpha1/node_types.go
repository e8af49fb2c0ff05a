package v1alpha1

import (
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NodeRestrictionLabelDomain prefixes Node labels only admins set (as
// Kubernetes' node-restriction.kubernetes.io/): a node cannot label itself
// node-restriction.left4me.io/<anything>, so a nodeSelector on such a label
// is one a compromised node cannot satisfy by lying.
const NodeRestrictionLabelDomain = "node-restriction.left4me.io"

// IsNodeRestrictionLabel reports a label only admins set on a Node: its
// key's prefix is NodeRestrictionLabelDomain or a subdomain of it.
func IsNodeRestrictionLabel(key string) bool {
	domain, _, ok := strings.Cut(key, "/")
	return ok && (domain == NodeRestrictionLabelDomain || strings.HasSuffix(domain, "."+NodeRestrictionLabelDomain))
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// Node is one game host running l4m-node. Its labels are what
// Instance.spec.nodeSelector matches.
type Node struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   NodeSpec   `json:"spec,omitempty"`
	Status NodeStatus `json:"status,omitempty"`
}

// NodeSpec is what an operator decides about a host.
type NodeSpec struct {
	// PortRange is where game ports are allocated from.
	PortRange PortRange `json:"portRange,omitempty"`
	// Capacity caps what the scheduler places here.
	Capacity NodeCapacity `json:"capacity,omitempty"`
	// Unschedulable keeps new Instances away (l4mctl cordon).
	Unschedulable bool `json:"unschedulable,omitempty"`
}

// PortRange is an inclusive range of game ports.
type PortRange struct {
	// +k8s:validation:minimum=1024
	// +k8s:validation:maximum=64535
	Min int32 `json:"min"`
	// +k8s:validation:minimum=1024
	// +k8s:validation:maximum=64535
	Max int32 `json:"max"`
}

// NodeCapacity is the most a node takes.
type NodeCapacity struct {
	// +k8s:validation:minimum=0
	Instances int32              `json:"instances,omitempty"`
	Memory    *resource.Quantity `json:"memory,omitempty"`
}

// NodeStatus is what the agent reports.
type NodeStatus struct {
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// +listType=atomic
	Addresses     []string     `json:"addresses,omitempty"`
	HeartbeatTime *metav1.Time `json:"heartbeatTime,omitempty"`
	AgentVersion  string       `json:"agentVersion,omitempty"`
	// Installation is the hand-made installation/ directory, used by
	// Blueprints whose Installation object does not exist.
	Installation LegacyInstallation `json:"installation,omitempty"`
	// Installations are the Installation objects this node keeps builds of.
	//
	// +listType=map
	// +listMapKey=name
	Installations []NodeInstallation `json:"installations,omitempty"`
	// Overlays are the fetched Overlays (every source but path) this node
	// keeps in its store, for the Instances bound to it.
	//
	// +listType=map
	// +listMapKey=namespace
	// +listMapKey=name
	Overlays []NodeOverlay `json:"overlays,omitempty"`
	// LogsEndpoint is where the API server reads game logs from the agent.
	LogsEndpoint *LogsEndpoint `json:"logsEndpoint,omitempty"`
}

// LogsEndpoint is the agent's log server: the API server connects to the
// node's address on Port, presenting its client certificate, and accepts
// only the serving certificate whose SHA-256 is CertSHA256.
type LogsEndpoint struct {
	Port       int32  `json:"port"`
	CertSHA256 string `json:"certSHA256"`
}

// LegacyInstallation describes installation/ as the predecessor had it: one
// game tree an admin put there by hand.
type LegacyInstallation struct {
	Present bool `json:"present"`
	// Build is PatchVersion from left4dead2/steam.inf.
	Build string `json:"build,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// NodeList is a list of Nodes.
type NodeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Node `json:"items"`
}

// NodeInstancesSynced is a Node condition: True once the node's agent, since
// it last started, has reconciled every Instance bound to it (and every game
// unit it found) at least once: from then on what its Instances report comes
// from this agent run. Its lastTransitionTime is when that happened.
const NodeInstancesSynced = "InstancesSynced"
