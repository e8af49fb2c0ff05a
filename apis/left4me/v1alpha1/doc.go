// Package v1alpha1 holds the left4me.io/v1alpha1 resource types: Overlay,
// Blueprint and Instance (namespaced), Node, Lease (a node's heartbeat) and
// Namespace (cluster-scoped), and Event. It imports apimachinery only, so
// every binary can share it without pulling in etcd or systemd.
//
// The OpenAPI definitions (apis/openapi) are generated from these types and
// their +k8s:validation / +enum markers: kubectl validates and explains
// with them, server-side apply merges by them, editors check manifests with
// the JSON Schemas made from them (config/schemas).
//
// +k8s:deepcopy-gen=package
// +k8s:openapi-gen=true
// +k8s:openapi-model-package=io.left4me.v1alpha1
// +groupName=left4me.io
package v1alpha1
