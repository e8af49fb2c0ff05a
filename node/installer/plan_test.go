package installer

import (
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

func TestDecide(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	spec := v1.InstallationSpec{AppID: 222860, Branch: "public", Build: "latest", CheckInterval: "15m"}
	checked := now.Add(-time.Minute) // a check a minute ago: the next is due in 14m
	tests := []struct {
		name string
		in   Input
		// want
		check    bool
		download string
		remove   []string
		phase    string
		reason   string
		msg      string // a part of the message
		wake     time.Duration
	}{
		{
			name:  "a bare node asks Steam first",
			in:    Input{Spec: spec, MayDownload: true, Now: now},
			check: true, phase: v1.InstallPending, reason: ReasonWaitingForCheck,
		},
		{
			name:  "after the check it waits for the control plane to choose",
			in:    Input{Spec: spec, MayDownload: true, Now: now, Local: Local{LatestSeen: "100", CheckedAt: checked}},
			phase: v1.InstallPending, reason: ReasonWaitingForWanted, wake: 14 * time.Minute,
		},
		{
			name:     "the wanted build is the branch's: download it",
			in:       Input{Spec: spec, Wanted: "100", MayDownload: true, Now: now, Local: Local{LatestSeen: "100", CheckedAt: checked}},
			download: "100", phase: v1.InstallDownloading, reason: ReasonDownloadInProgress, wake: 14 * time.Minute,
		},
		{
			name:  "maxConcurrentDownloads holds it back",
			in:    Input{Spec: spec, Wanted: "100", MayDownload: false, Now: now, Local: Local{LatestSeen: "100", CheckedAt: checked}},
			phase: v1.InstallPending, reason: ReasonWaitingForSlot, wake: 14 * time.Minute,
		},
		{
			name: "ready: the previous build stays for a rollback, older ones go unless in use",
			in: Input{Spec: spec, Wanted: "300", MayDownload: true, Now: now, InUse: map[string]bool{"100": true},
				Local: Local{Builds: []string{"100", "300", "200", "150"}, LatestSeen: "300", CheckedAt: checked}},
			remove: []string{"150"}, phase: v1.InstallReady, reason: ReasonReady, wake: 14 * time.Minute,
		},
		{
			name:  "ready and the check is due: check, stay ready",
			in:    Input{Spec: spec, Wanted: "300", Now: now, Local: Local{Builds: []string{"300"}, LatestSeen: "300", CheckedAt: now.Add(-15 * time.Minute)}},
			check: true, phase: v1.InstallReady, reason: ReasonReady,
		},
		{
			name:  "an admin asks for a check now (l4mctl annotate ... checkRequestedAt)",
			in:    Input{Spec: spec, Wanted: "300", CheckRequest: "2026-12-02T12:00:00Z", Now: now, Local: Local{Builds: []string{"300"}, LatestSeen: "300", CheckedAt: checked}},
			check: true, phase: v1.InstallReady, reason: ReasonReady,
		},
		{
			name: "a pinned build the node still keeps is ready; the newer one stays for the unpin",
			in: Input{Spec: v1.InstallationSpec{Branch: "public", Build: "200", CheckInterval: "15m"}, Wanted: "200", Now: now,
				Local: Local{Builds: []string{"300", "200", "100"}, LatestSeen: "300", CheckedAt: checked}},
			remove: []string{"100"}, phase: v1.InstallReady, reason: ReasonReady, wake: 14 * time.Minute,
		},
		{
			name: "a pinned build neither kept nor on the branch cannot be had",
			in: Input{Spec: v1.InstallationSpec{Branch: "public", Build: "50", CheckInterval: "15m"}, Wanted: "50", MayDownload: true, Now: now,
				Local: Local{Builds: []string{"300"}, LatestSeen: "300", CheckedAt: checked}},
			phase: v1.InstallFailed, reason: ReasonBuildUnavailable, msg: "branch public has build 300", wake: 14 * time.Minute,
		},
		{
			name: "the fleet wants a build newer than this node saw: look again",
			in: Input{Spec: spec, Wanted: "400", MayDownload: true, Now: now,
				Local: Local{Builds: []string{"300"}, LatestSeen: "300", CheckedAt: now.Add(-time.Second)}},
			check: true, phase: v1.InstallPending, reason: ReasonWaitingForCheck,
		},
		{
			name: "still not on Steam from here: wait a little before asking again",
			in: Input{Spec: spec, Wanted: "400", MayDownload: true, Now: now,
				Local: Local{Builds: []string{"300"}, LatestSeen: "300", CheckedAt: now.Add(-time.Second), CheckedFor: "400"}},
			phase: v1.InstallPending, reason: ReasonWaitingForCheck, msg: "newer than the 300", wake: recheckStale - time.Second,
		},
		{
			name: "and then asks again",
			in: Input{Spec: spec, Wanted: "400", MayDownload: true, Now: now,
				Local: Local{Builds: []string{"300"}, LatestSeen: "300", CheckedAt: now.Add(-recheckStale), CheckedFor: "400"}},
			check: true, phase: v1.InstallPending, reason: ReasonWaitingForCheck,
		},
		{
			name: "a failed download backs off and says why",
			in: Input{Spec: spec, Wanted: "400", MayDownload: true, Now: now,
				Local: Local{Builds: []string{"300"}, LatestSeen: "400", CheckedAt: checked, Failures: 2, RetryAt: now.Add(40 * time.Second),
					Reason: "DownloadFailed", Message: "steamcmd: ERROR! Failed to install app '222860' (Invalid platform)"}},
			phase: v1.InstallFailed, reason: "DownloadFailed", msg: "Invalid platform", wake: 40 * time.Second,
		},
		{
			name: "after the backoff it tries again",
			in: Input{Spec: spec, Wanted: "400", MayDownload: true, Now: now,
				Local: Local{Builds: []string{"300"}, LatestSeen: "400", CheckedAt: checked, Failures: 2, RetryAt: now.Add(-time.Second), Reason: "DownloadFailed"}},
			download: "400", phase: v1.InstallDownloading, reason: ReasonDownloadInProgress, wake: 14 * time.Minute,
		},
		{
			name: "ready, but the checks fail: the status says so, the retry waits for the backoff",
			in: Input{Spec: spec, Wanted: "300", MayDownload: true, Now: now,
				Local: Local{Builds: []string{"300"}, LatestSeen: "300", CheckedAt: now.Add(-time.Hour), Failures: 1, RetryAt: now.Add(20 * time.Second),
					Reason: "SteamcmdMissing", Message: "steamcmd check: /var/lib/left4me/steamcmd/steamcmd.sh: no such file", FailedCheck: true}},
			phase: v1.InstallReady, reason: "SteamcmdMissing", msg: "ready, but the last attempt failed: steamcmd check", wake: 20 * time.Second,
		},
		{
			name: "ready with failing checks: after the backoff it checks again",
			in: Input{Spec: spec, Wanted: "300", MayDownload: true, Now: now,
				Local: Local{Builds: []string{"300"}, LatestSeen: "300", CheckedAt: checked, Failures: 1, RetryAt: now.Add(-time.Second),
					Reason: "LoginFailed", Message: "steamcmd: FAILED login", FailedCheck: true}},
			check: true, phase: v1.InstallReady, reason: "LoginFailed", msg: "retrying now",
		},
		{
			name: "an admin's check request ends a download's backoff",
			in: Input{Spec: spec, Wanted: "400", MayDownload: true, Now: now, CheckRequest: "2026-12-02T12:00:00Z",
				Local: Local{Builds: []string{"300"}, LatestSeen: "400", CheckedAt: checked, CheckRequest: "2026-12-02T11:00:00Z", Failures: 5, RetryAt: now.Add(10 * time.Minute),
					Reason: "InsufficientDisk", Message: "not enough free space"}},
			check: true, phase: v1.InstallPending, reason: ReasonWaitingForCheck,
		},
		{
			name: "a deleted Installation fetches nothing and keeps only what is in use",
			in: Input{Spec: spec, Wanted: "300", Deleting: true, MayDownload: true, Now: now, InUse: map[string]bool{"200": true},
				Local: Local{Builds: []string{"300", "200", "100"}, LatestSeen: "400", CheckedAt: now.Add(-time.Hour)}},
			remove: []string{"300", "100"}, phase: v1.InstallPending, reason: ReasonDeleting,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Decide(tt.in)
			if p.Check != tt.check || p.Download != tt.download || !slices.Equal(p.Remove, tt.remove) {
				t.Errorf("plan check=%v download=%q remove=%v, want check=%v download=%q remove=%v", p.Check, p.Download, p.Remove, tt.check, tt.download, tt.remove)
			}
			if p.Status.Phase != tt.phase || p.Status.Reason != tt.reason {
				t.Errorf("status %s/%s (%s), want %s/%s", p.Status.Phase, p.Status.Reason, p.Status.Message, tt.phase, tt.reason)
			}
			if !strings.Contains(p.Status.Message, tt.msg) {
				t.Errorf("message %q lacks %q", p.Status.Message, tt.msg)
			}
			if p.Wake != tt.wake {
				t.Errorf("wake in %s, want %s", p.Wake, tt.wake)
			}
			if tt.download != "" && p.Status.Downloading != tt.download {
				t.Errorf("status.downloading %q, want %q", p.Status.Downloading, tt.download)
			}
			if !slices.IsSortedFunc(p.Status.Builds, func(a, b string) int {
				if v1.NewerBuild(a, b) {
					return -1
				}
				return 1
			}) {
				t.Errorf("builds %v not newest first", p.Status.Builds)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	for n, want := range map[int]time.Duration{1: 30 * time.Second, 2: time.Minute, 3: 2 * time.Minute, 6: 15 * time.Minute, 40: 15 * time.Minute} {
		if got := RetryAfter(n); got != want {
			t.Errorf("RetryAfter(%d) = %s, want %s", n, got, want)
		}
	}
}
