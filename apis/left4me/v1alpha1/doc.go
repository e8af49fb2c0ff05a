// Package v1alpha1 holds the left4me.io/v1alpha1 resource types: Overlay,
// Blueprint and Instance (namespaced), Node, Lease (a node's heartbeat) and
// Namespace (cluster-scoped), and Event. It imports apimachinery only, so
// every binary can share it without pulling in etcd or systemd.
//
// +k8s:deepcopy-gen=package
// +groupName=left4me.io
package v1alpha1
