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

// OverlaySpec says where the layer's files come from.
type OverlaySpec struct {
	Source OverlaySource `json:"source"`
	// Description is free text shown by l4mctl describe.
	Description string `json:"description,omitempty"`
}

// Overlay source kinds: the names of OverlaySource's fields, which
// OverlaySource.Kind returns and l4mctl shows.
const (
	SourcePath     = "path"
	SourceArchive  = "archive"
	SourceGit      = "git"
	SourceWorkshop = "workshop"
	SourceFiles    = "files"
)

// OverlaySource is a one-of: exactly one field is set. Every source but
// Path is fetched by each node that runs an Instance using the Overlay,
// once however many Instances share it, into a content-addressed store
// (the digest in status); Path names a tree an admin put on every host.
//
// The paths inside a source (SubPath, Into, the keys of Files) follow the
// rules of Path: relative, no "..", "." or empty components, no control
// characters or '\'. Into is where the source's tree lands below the game
// root, the directory holding srcds_run and left4dead2/ ("" is the root).
type OverlaySource struct {
	// Path is relative to ${LEFT4ME_ROOT}/overlays on every node. It must not be
	// absolute, contain "..", or have empty components; the node checks again
	// against its real filesystem (symlinks included) when it mounts.
	Path string `json:"path,omitempty"`
	// Archive is a tar, tar.gz, tar.xz or zip file to download and extract.
	Archive *ArchiveSource `json:"archive,omitempty"`
	// Git is a repository's tree at one commit.
	Git *GitSource `json:"git,omitempty"`
	// Workshop is Steam Workshop items and collections, each item fetched
	// as <into>/<id>.vpk.
	Workshop *WorkshopSource `json:"workshop,omitempty"`
	// Files are inline text files: a path below the game root → its
	// content (UTF-8 text). They are regular files, mode 0644, in
	// directories 0755. Meant for the few cfg files that belong in git
	// beside the manifests; at most 256 KiB of content per Overlay.
	Files map[string]string `json:"files,omitempty"`
}

// Kinds lists the sources that are set, in field order; a valid source has
// exactly one. An empty Files map counts as set (and is refused as empty).
func (s *OverlaySource) Kinds() []string {
	var kinds []string
	if s.Path != "" {
		kinds = append(kinds, SourcePath)
	}
	if s.Archive != nil {
		kinds = append(kinds, SourceArchive)
	}
	if s.Git != nil {
		kinds = append(kinds, SourceGit)
	}
	if s.Workshop != nil {
		kinds = append(kinds, SourceWorkshop)
	}
	if s.Files != nil {
		kinds = append(kinds, SourceFiles)
	}
	return kinds
}

// Kind is the source that is set ("path", "archive", "git", "workshop" or
// "files"), or "" when none or several are.
func (s *OverlaySource) Kind() string {
	if k := s.Kinds(); len(k) == 1 {
		return k[0]
	}
	return ""
}

// ArchiveSource is an archive the nodes download, verify and extract. The
// tree it becomes: its entries with StripComponents leading path components
// removed (as tar --strip-components), then only what is below SubPath,
// placed at Into below the game root. The node recognises the format (tar,
// tar.gz, tar.xz, zip) from the file's content, not from the URL.
type ArchiveSource struct {
	// URL is https://, http:// or file:///an/absolute/path (read on each
	// node). It may not hold credentials (user:password@) or a fragment.
	URL string `json:"url"`
	// SHA256 is the archive file's SHA-256, 64 lowercase hex digits.
	// Required for http and https URLs: what a URL serves can change, and
	// every node must extract the same bytes; a new value is a new version
	// and rolls out. Optional for file URLs.
	//
	// +k8s:validation:pattern="^[0-9a-f]{64}$"
	SHA256 string `json:"sha256,omitempty"`
	// StripComponents is how many leading path components to drop from
	// every entry (0-32); entries with fewer are skipped.
	//
	// +k8s:validation:minimum=0
	// +k8s:validation:maximum=32
	StripComponents int32 `json:"stripComponents,omitempty"`
	// SubPath keeps only this directory of the (stripped) archive.
	SubPath string `json:"subPath,omitempty"`
	// Into is where the tree lands below the game root ("" is the root;
	// "left4dead2" for a SourceMod or MetaMod release).
	Into string `json:"into,omitempty"`
}

// GitSource is a repository's tree at one commit, without its .git
// directory.
type GitSource struct {
	// URL is https://, http:// or file:///an/absolute/path. No ssh: nodes
	// hold no keys for it, and a tenant's manifest must not make them use
	// the host's. No credentials or fragment in it either.
	URL string `json:"url"`
	// Ref is a full commit id (40 hex digits, 64 in a SHA-256 repository),
	// or a tag or branch name (v1.2.0, main, refs/heads/main) that is
	// resolved to a commit and recorded in status.commit. An http URL takes
	// only a commit id: plain http has no integrity, and the commit id
	// verifies the content.
	Ref string `json:"ref"`
	// SubPath keeps only this directory of the repository.
	SubPath string `json:"subPath,omitempty"`
	// Into is where the tree lands below the game root ("" is the root).
	Into string `json:"into,omitempty"`
	// CheckInterval is how often each node resolves a tag or branch
	// again (a Go duration, default "10m", between "1m" and "24h"); a
	// new commit is a new digest and rolls out. A commit id is never
	// checked, and takes no interval.
	CheckInterval string `json:"checkInterval,omitempty"`
}

// DefaultGitCheckInterval is how often a git tag or branch is resolved
// again.
const DefaultGitCheckInterval = "10m"

// Workshop defaults.
const (
	// DefaultWorkshopCheckInterval is how often Steam is asked whether an
	// item was updated (time_updated).
	DefaultWorkshopCheckInterval = "1h"
	// DefaultWorkshopInto is where the game loads addon .vpk files from.
	DefaultWorkshopInto = "left4dead2/addons"
)

// WorkshopSource is Steam Workshop content for Left 4 Dead 2 (app 550),
// fetched through the Steam Web API into Into/<id>.vpk. Ids are published
// file ids, decimal as Steam writes them (IsWorkshopID).
type WorkshopSource struct {
	// Items are single Workshop items (maps, addons).
	//
	// +listType=atomic
	// +k8s:validation:items:pattern="^[1-9][0-9]{0,19}$"
	Items []string `json:"items,omitempty"`
	// Collections are Workshop collections; each expands to its items.
	//
	// +listType=atomic
	// +k8s:validation:items:pattern="^[1-9][0-9]{0,19}$"
	Collections []string `json:"collections,omitempty"`
	// CheckInterval is how often Steam is asked for updated items (a Go
	// duration, default "1h", at least "5m"). An updated item is a new
	// digest and rolls out.
	CheckInterval string `json:"checkInterval,omitempty"`
	// Into is where the .vpk files land below the game root (default
	// "left4dead2/addons").
	Into string `json:"into,omitempty"`
}

// OverlayStatus reports what the control plane knows about the layer.
type OverlayStatus struct {
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Digest is the content the fleet should run, "sha256:<64 hex>": the
	// key of the nodes' store entry. For a files source it follows from
	// the spec (FilesDigest; WantedDigest computes it); for archive, git
	// and workshop sources nodes resolve it; a path source has none.
	Digest string `json:"digest,omitempty"`
	// Commit is the commit a git source's ref resolved to.
	Commit string `json:"commit,omitempty"`
	// Items are a workshop source's items, collections expanded, as Steam
	// last described them.
	//
	// +listType=atomic
	Items []WorkshopItem `json:"items,omitempty"`
	// Nodes is how many nodes need the Overlay (they run an Instance that
	// uses it); Ready and Failed count those that have Digest ready or
	// failed to fetch it.
	Nodes  int32 `json:"nodes,omitempty"`
	Ready  int32 `json:"ready,omitempty"`
	Failed int32 `json:"failed,omitempty"`
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// WorkshopItem is one Workshop item as Steam's GetPublishedFileDetails
// describes it.
type WorkshopItem struct {
	// ID is its published file id.
	ID string `json:"id"`
	// Title is its title on the Workshop (for people only).
	Title string `json:"title,omitempty"`
	// Size is its file_size in bytes.
	Size int64 `json:"size,omitempty"`
	// TimeUpdated is its time_updated: a change is a new version.
	TimeUpdated *metav1.Time `json:"timeUpdated,omitempty"`
}

// WantedDigest is the digest the fleet should run: for a files source the
// one its content determines, else status.digest ("" when not resolved
// yet, and always for a path source).
func (o *Overlay) WantedDigest() string {
	if o.Spec.Source.Kind() == SourceFiles {
		return FilesDigest(o.Spec.Source.Files)
	}
	return o.Status.Digest
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// OverlayList is a list of Overlays.
type OverlayList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Overlay `json:"items"`
}

// Node overlay phases (NodeOverlay.Phase), for the Overlay's wanted digest.
const (
	// OverlayPhasePending: nothing fetching yet (waiting for a slot, the
	// digest, or a retry).
	OverlayPhasePending = "Pending"
	// OverlayPhaseFetching: the node is downloading or extracting it.
	OverlayPhaseFetching = "Fetching"
	// OverlayPhaseReady: it is in the node's store.
	OverlayPhaseReady = "Ready"
	// OverlayPhaseFailed: the last fetch failed (Reason and Message say
	// why); the node retries, and Instances keep what they run.
	OverlayPhaseFailed = "Failed"
)

// NodeOverlay is one fetched Overlay as a node holds it.
type NodeOverlay struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// ObservedGeneration is the Overlay's metadata.generation whose spec
	// Digest and Phase are for: a report on an older spec says nothing
	// about the current one.
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Digest is the content the node fetches or holds for the Overlay's
	// current spec ("" until known: a branch or Workshop item not resolved
	// yet).
	Digest string `json:"digest,omitempty"`
	// Phase is Pending, Fetching, Ready or Failed (for Digest).
	Phase string `json:"phase"`
	// Reason is a CamelCase word for Phase (e.g. DownloadFailed,
	// ChecksumMismatch, UnsafeEntry, RefNotFound, ItemUnavailable);
	// Message says it for people, naming the entry or URL.
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// Digests are the digests of this Overlay in the node's store, newest
	// first (the previous one is kept for rollback).
	//
	// +listType=atomic
	Digests []string `json:"digests,omitempty"`
	// Commit is the commit a git source's ref resolved to on this node.
	Commit string `json:"commit,omitempty"`
	// Items are a workshop source's items as this node last found them
	// (the control plane copies them into the Overlay's status).
	//
	// +listType=atomic
	Items []WorkshopItem `json:"items,omitempty"`
}

// HasDigest reports whether digest is in the node's store.
func (n *NodeOverlay) HasDigest(digest string) bool {
	for _, d := range n.Digests {
		if d == digest {
			return true
		}
	}
	return false
}

// NodeOverlayFor returns the node's entry for an Overlay, or nil.
func (s *NodeStatus) NodeOverlayFor(namespace, name string) *NodeOverlay {
	for i := range s.Overlays {
		if s.Overlays[i].Namespace == namespace && s.Overlays[i].Name == name {
			return &s.Overlays[i]
		}
	}
	return nil
}
