// Package installer decides what a node does about one Installation: when
// to ask Steam for the branch's build, which build to download, which old
// builds to remove, and what to report. It is pure (the agent executes the
// plan), so every decision is table-tested.
//
// A node keeps builds as immutable directories (installation/<name>/builds/
// <build>/). steamcmd can only fetch a branch's current build, so a build is
// downloaded only when it is the one the node last saw on the branch; a
// pinned older build is usable only if the node still keeps it (the previous
// build is always kept for a rollback).
package installer

import (
	"fmt"
	"slices"
	"sort"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

// Local is what a node holds of one Installation, and what it last learnt.
type Local struct {
	// Builds are the build ids ready on the node (any order).
	Builds []string
	// LatestSeen is the branch's build at the last successful check
	// (CheckedAt), with its size in bytes.
	LatestSeen string
	Size       int64
	CheckedAt  time.Time
	// Failures counts the checks and downloads that failed in a row; none
	// is tried again before RetryAt. Reason and Message are the last one's.
	// CheckedFor is the wanted build the last check was made for (see
	// Decide: a node told to fetch a build newer than it saw asks again
	// at once, then every recheckStale).
	CheckedFor string
	// CheckRequest is the Installation's checkRequestedAt annotation at the
	// last check: a new one asks for a check now.
	CheckRequest    string
	Failures        int
	RetryAt         time.Time
	Reason, Message string
	// FailedCheck: the last failure was a check (not a download), so the
	// retry after the backoff is a check.
	FailedCheck bool
}

// Input is everything a plan is made from.
type Input struct {
	Spec v1.InstallationSpec
	// Wanted is the Installation's status.wantedBuild ("" while no node has
	// seen the branch yet).
	Wanted string
	// MayDownload is false while spec.maxConcurrentDownloads holds this
	// node back (it is not in status.downloadsAllowed).
	MayDownload bool
	// CheckRequest is the Installation's checkRequestedAt annotation.
	CheckRequest string
	// Deleting: the Installation is being deleted; nothing new is fetched.
	Deleting bool
	Local    Local
	// InUse are the builds this node's Instances run or were rendered with.
	InUse map[string]bool
	Now   time.Time
}

// Plan is what to do now, and what to report.
type Plan struct {
	// Check asks Steam for the branch's build.
	Check bool
	// Download is the build to fetch ("" for none).
	Download string
	// Remove are builds nothing needs any more.
	Remove []string
	// Status is the node's report for this Installation, as of the plan.
	Status v1.NodeInstallation
	// Wake is when to plan again if nothing else happens first.
	Wake time.Duration
}

// Reasons a node reports (beside the steamcmd runner's own).
const (
	ReasonReady              = "BuildReady"
	ReasonWaitingForCheck    = "WaitingForCheck"
	ReasonWaitingForWanted   = "WaitingForWantedBuild"
	ReasonWaitingForSlot     = "WaitingForDownloadSlot"
	ReasonBuildUnavailable   = "BuildUnavailable"
	ReasonDeleting           = "InstallationDeleting"
	ReasonDownloadInProgress = "Downloading"
)

// Backoff bounds: the first retry after 30 s, doubling up to 15 min.
const (
	firstRetry = 30 * time.Second
	maxRetry   = 15 * time.Minute
	// recheckStale is how soon a node asks Steam again when the fleet wants
	// a build newer than the one it saw (another node saw it first).
	recheckStale = 30 * time.Second
)

// RetryAfter is the backoff after n failures in a row (n >= 1).
func RetryAfter(n int) time.Duration {
	d := firstRetry
	for i := 1; i < n && d < maxRetry; i++ {
		d *= 2
	}
	return min(d, maxRetry)
}

// CheckInterval is spec.checkInterval (validated by the API; the default
// for anything unparsable).
func CheckInterval(s v1.InstallationSpec) time.Duration {
	d, err := time.ParseDuration(s.CheckInterval)
	if err != nil || d <= 0 {
		d, _ = time.ParseDuration(v1.DefaultCheckInterval)
	}
	return d
}

// Decide makes the plan for one Installation on one node.
func Decide(in Input) Plan {
	l := in.Local
	builds := SortBuilds(l.Builds)
	p := Plan{Status: v1.NodeInstallation{Builds: builds, LatestSeen: l.LatestSeen}}
	if !l.CheckedAt.IsZero() {
		t := metav1.NewTime(l.CheckedAt)
		p.Status.CheckedAt = &t
	}
	interval := CheckInterval(in.Spec)
	nextCheck := l.CheckedAt.Add(interval)
	// A check request the node has not answered yet ends any backoff: the
	// admin fixed something (installed steamcmd, freed disk) and asks now.
	requested := in.CheckRequest != l.CheckRequest
	backingOff := l.Failures > 0 && in.Now.Before(l.RetryAt) && !requested
	target := in.Wanted
	has := slices.Contains(builds, target)

	if target != "" {
		p.Remove = removable(builds, target, in.InUse)
	}
	set := func(phase, reason, msg string) {
		p.Status.Phase, p.Status.Reason, p.Status.Message = phase, reason, msg
	}
	switch {
	case in.Deleting:
		set(v1.InstallPending, ReasonDeleting, "the Installation is being deleted: nothing new is downloaded; builds in use stay")
		p.Remove = removable(builds, "", in.InUse)
		return p
	case target != "" && has && l.Failures > 0 && l.FailedCheck:
		// Ready, and the games run; but the node cannot reach Steam (or
		// fetch), which the status says rather than hide.
		retry := "retrying now"
		if backingOff {
			retry = "retrying in " + l.RetryAt.Sub(in.Now).Round(time.Second).String()
		}
		set(v1.InstallReady, l.Reason, fmt.Sprintf("build %s is ready, but the last attempt failed: %s (attempt %d; %s)", target, l.Message, l.Failures, retry))
		if backingOff {
			p.Wake = l.RetryAt.Sub(in.Now)
			return p
		}
	case target != "" && has:
		set(v1.InstallReady, ReasonReady, fmt.Sprintf("build %s is ready", target))
	case backingOff:
		set(v1.InstallFailed, l.Reason, fmt.Sprintf("%s (attempt %d; retrying in %s)", l.Message, l.Failures, l.RetryAt.Sub(in.Now).Round(time.Second)))
		p.Wake = l.RetryAt.Sub(in.Now)
		return p
	}

	due := l.CheckedAt.IsZero() || !in.Now.Before(nextCheck) || requested || l.FailedCheck
	// The fleet wants a build newer than this node saw: look again soon.
	newer := target != "" && !has && v1.NewerBuild(target, l.LatestSeen)
	stale := newer && (l.CheckedFor != target || !in.Now.Before(l.CheckedAt.Add(recheckStale)))
	if due || stale {
		p.Check = true
		if p.Status.Phase == "" {
			set(v1.InstallPending, ReasonWaitingForCheck, fmt.Sprintf("asking Steam for branch %s's build", in.Spec.Branch))
		}
		return p
	}
	p.Wake = nextCheck.Sub(in.Now)
	if target != "" && v1.NewerBuild(target, l.LatestSeen) {
		p.Wake = min(p.Wake, l.CheckedAt.Add(recheckStale).Sub(in.Now))
	}
	switch {
	case p.Status.Phase != "":
		// Ready.
	case target == "":
		set(v1.InstallPending, ReasonWaitingForWanted, "waiting for the control plane to choose a build from what the nodes saw on Steam")
	case newer:
		set(v1.InstallPending, ReasonWaitingForCheck, fmt.Sprintf(
			"the fleet wants build %s, newer than the %s this node saw on branch %s; asking Steam again", target, orNone(l.LatestSeen), in.Spec.Branch))
	case target != l.LatestSeen:
		set(v1.InstallFailed, ReasonBuildUnavailable, fmt.Sprintf(
			"build %s is not on this node and branch %s has build %s; steamcmd can only fetch a branch's current build (this node keeps %s)",
			target, in.Spec.Branch, orNone(l.LatestSeen), orNone(joinBuilds(builds))))
	case !in.MayDownload:
		set(v1.InstallPending, ReasonWaitingForSlot, fmt.Sprintf("build %s waits for a download slot (maxConcurrentDownloads %d)", target, in.Spec.MaxConcurrentDownloads))
	default:
		p.Download = target
		set(v1.InstallDownloading, ReasonDownloadInProgress, fmt.Sprintf("downloading build %s", target))
		p.Status.Downloading = target
	}
	return p
}

// removable are the builds to delete: all but the wanted one, the newest
// other one (kept for a rollback, or for an unpin after one) and those in
// use. With no wanted build (a deleted Installation), only those in use stay.
func removable(builds []string, wanted string, inUse map[string]bool) []string {
	keepPrevious := wanted != ""
	var out []string
	for _, b := range builds { // newest first
		switch {
		case b == wanted:
		case keepPrevious:
			keepPrevious = false // the newest other build, in use or not
		case inUse[b]:
		default:
			out = append(out, b)
		}
	}
	return out
}

// SortBuilds returns build ids newest first.
func SortBuilds(builds []string) []string {
	out := slices.Clone(builds)
	sort.SliceStable(out, func(i, j int) bool { return v1.NewerBuild(out[i], out[j]) })
	return out
}

func joinBuilds(b []string) string {
	s := ""
	for i, x := range b {
		if i > 0 {
			s += ", "
		}
		s += x
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
