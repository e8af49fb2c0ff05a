package v1alpha1

import (
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// Installation is a game installed by steamcmd on every node it selects: one
// Steam app and branch, kept at one build (the branch's latest or a pinned
// one). Each node keeps its builds as immutable directories beside each other
// (installation/<name>/builds/<build>/), so a new build never touches a
// running game: Instances move onto it through their Blueprint's rollout.
// Cluster-scoped; only admins write it.
type Installation struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   InstallationSpec   `json:"spec,omitempty"`
	Status InstallationStatus `json:"status,omitempty"`
}

// Installation defaults.
const (
	// DefaultInstallation is the Installation a Blueprint that names none uses.
	DefaultInstallation = "l4d2"
	// DefaultAppID is the Left 4 Dead 2 dedicated server.
	DefaultAppID = 222860
	// DefaultBranch is Steam's release branch.
	DefaultBranch = "public"
	// BuildLatest follows the branch: each new build is installed and rolled out.
	BuildLatest = "latest"
	// DefaultCheckInterval is how often nodes ask Steam for the branch's build.
	DefaultCheckInterval = "15m"
)

// IsBuildID reports whether s is a Steam build id: 1-20 decimal digits, no
// leading zero. Validation checks specs with it; the node checks directory
// names and what steamcmd reports with it.
func IsBuildID(s string) bool {
	if s == "" || len(s) > 20 || s[0] == '0' {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// InstallationSpec says which build of which app the selected nodes keep.
type InstallationSpec struct {
	// AppID is the Steam app (default 222860, the L4D2 dedicated server).
	//
	// +k8s:validation:minimum=1
	AppID int32 `json:"appID,omitempty"`
	// Branch is the Steam branch ("public" by default, or a beta's name).
	//
	// +k8s:validation:pattern="^[A-Za-z0-9._-]{1,64}$"
	Branch string `json:"branch,omitempty"`
	// Build is "latest" (default: follow the branch) or a pinned build id.
	// steamcmd can only fetch a branch's current build, so a pinned build is
	// either that one or one a node still keeps (the previous one is kept
	// for rollback).
	//
	// +k8s:validation:pattern="^(latest|[1-9][0-9]{0,19})$"
	Build string `json:"build,omitempty"`
	// CheckInterval is how often each node asks Steam for the branch's
	// current build (a Go duration, default "15m").
	CheckInterval string `json:"checkInterval,omitempty"`
	// NodeSelector picks the nodes that install it by label (default all).
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// MaxConcurrentDownloads caps how many nodes download a build at once
	// (0, the default: all of them).
	//
	// +k8s:validation:minimum=0
	MaxConcurrentDownloads int32 `json:"maxConcurrentDownloads,omitempty"`
}

// InstallationStatus is the fleet's view, written by the control plane from
// what each selected node reports (Node status.installations).
type InstallationStatus struct {
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// LatestBuild is the newest build any node has seen on the branch.
	LatestBuild string `json:"latestBuild,omitempty"`
	// WantedBuild is what nodes install and Instances run: spec.build when
	// pinned, else LatestBuild.
	WantedBuild string `json:"wantedBuild,omitempty"`
	// Nodes is how many nodes the Installation selects; Ready, Downloading
	// and Failed count those with WantedBuild ready, downloading it, or
	// failing to.
	Nodes       int32 `json:"nodes"`
	Ready       int32 `json:"ready"`
	Downloading int32 `json:"downloading"`
	Failed      int32 `json:"failed"`
	// DownloadsAllowed names the nodes that may download now when
	// spec.maxConcurrentDownloads limits them (unset when it does not).
	//
	// +listType=atomic
	DownloadsAllowed []string `json:"downloadsAllowed,omitempty"`
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// InstallationList is a list of Installations.
type InstallationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Installation `json:"items"`
}

// AnnotationCheckRequestedAt on an Installation (any new value, e.g. the
// time) has every node it selects ask Steam for the branch's build now,
// instead of at its next checkInterval: after Valve announces an update.
// On an Overlay it has every node that stacks it check its source now (a
// git branch, Workshop items) and fetch again at once what failed (after
// the mirror was fixed), instead of when the backoff ends.
const AnnotationCheckRequestedAt = "left4me.io/checkRequestedAt"

// FinalizerInstallationInUse keeps a deleted Installation (and its builds on
// the nodes) until no Instance runs one of its builds: deleting it never
// pulls the files from under a game, as Kubernetes' pvc-protection.
const FinalizerInstallationInUse = "left4me.io/installation-in-use"

// Node installation phases (NodeInstallation.Phase).
const (
	// InstallPending: nothing ready yet and nothing downloading (waiting
	// for the first check, for a download slot, or for a retry).
	InstallPending = "Pending"
	// InstallDownloading: steamcmd is fetching a build.
	InstallDownloading = "Downloading"
	// InstallReady: the wanted build is ready on the node.
	InstallReady = "Ready"
	// InstallFailed: the last check or download failed (Reason and
	// Message say why); the node retries with backoff.
	InstallFailed = "Failed"
)

// NodeInstallation is one Installation as a node holds it.
type NodeInstallation struct {
	// Name is the Installation's.
	Name string `json:"name"`
	// Phase is Pending, Downloading, Ready or Failed (for the wanted build).
	Phase string `json:"phase"`
	// Reason is a CamelCase word for Phase (e.g. DownloadFailed,
	// InsufficientDisk, BuildUnavailable, SteamcmdMissing); Message says it
	// for people.
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// Builds are the build ids ready on the node, newest first.
	//
	// +listType=atomic
	Builds []string `json:"builds,omitempty"`
	// LatestSeen is the branch's build as this node last saw it on Steam,
	// at CheckedAt.
	LatestSeen string       `json:"latestSeen,omitempty"`
	CheckedAt  *metav1.Time `json:"checkedAt,omitempty"`
	// Downloading is the build steamcmd is fetching ("" when idle).
	Downloading string `json:"downloading,omitempty"`
}

// HasBuild reports whether build is ready on the node.
func (n *NodeInstallation) HasBuild(build string) bool {
	for _, b := range n.Builds {
		if b == build {
			return true
		}
	}
	return false
}

// NodeInstallationFor returns the node's entry for an Installation, or nil.
func (s *NodeStatus) NodeInstallationFor(name string) *NodeInstallation {
	for i := range s.Installations {
		if s.Installations[i].Name == name {
			return &s.Installations[i]
		}
	}
	return nil
}

// InstallationName is the Installation a Blueprint runs on (DefaultInstallation
// when it names none: objects stored before the field existed).
func (bp *Blueprint) InstallationName() string {
	if bp.Spec.Installation == "" {
		return DefaultInstallation
	}
	return bp.Spec.Installation
}

// NewerBuild reports whether build a is newer than b. Steam build ids are
// increasing decimal numbers; an empty or malformed id is older than any.
func NewerBuild(a, b string) bool {
	x, errA := strconv.ParseUint(a, 10, 64)
	y, errB := strconv.ParseUint(b, 10, 64)
	switch {
	case errA != nil:
		return false
	case errB != nil:
		return true
	}
	return x > y
}
