package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// Overlay is one layer of game files that Blueprints stack over the shared
// installation.
type Overlay struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   OverlaySpec   `json:"spec"`
	Status OverlayStatus `json:"status,omitempty"`
}

// OverlaySpec says where the layer's files come from. Exactly one source is
// set; build scripts and Steam workshop items will join Path later.
type OverlaySpec struct {
	Source OverlaySource `json:"source"`
	// Description is free text shown by l4mctl describe.
	Description string `json:"description,omitempty"`
}

// OverlaySource is a one-of.
type OverlaySource struct {
	// Path is relative to ${LEFT4ME_ROOT}/overlays on every node. It must not be
	// absolute, contain "..", or have empty components; the node checks again
	// against its real filesystem (symlinks included) when it mounts.
	Path string `json:"path,omitempty"`
}

// OverlayStatus reports what the control plane knows about the layer.
type OverlayStatus struct {
	ObservedGeneration int64              `json:"observedGeneration,omitempty"`
	Conditions         []metav1.Condition `json:"conditions,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// OverlayList is a list of Overlays.
type OverlayList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Overlay `json:"items"`
}
