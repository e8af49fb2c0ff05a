package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Remote is what a test says Steam holds, read at every run (so a test can
// change it between runs) from the JSON file named by
// $STEAMCMD_DOUBLE_REMOTE or, when that is unset, remote.json beside the
// executable: a hardened unit that passes no test environment finds it.
type Remote struct {
	// AppID is the one app the double knows; others have no subscription.
	AppID string `json:"appid"`
	// Branches maps a branch name ("public", betas) to its build.
	Branches map[string]Branch `json:"branches"`
	// InvalidPlatform, unset or true, makes a linux app_update into a
	// directory with no manifest fail as Steam has since November 2024;
	// false turns that off.
	InvalidPlatform *bool `json:"invalidPlatform"`
	// Failure makes every app_update fail in one of Failures' ways.
	Failure string `json:"failure"`
}

// Branch is one build on a branch.
type Branch struct {
	BuildID     string `json:"buildid"`
	Size        int64  `json:"size"`
	TimeUpdated int64  `json:"timeupdated"`
	// PatchVersion goes into left4dead2/steam.inf; by default it is made
	// from the build id's last four digits, so a new build shows there.
	PatchVersion string `json:"patchVersion"`
}

// Failures are the ways an app_update can be told to fail.
var Failures = map[string]string{
	"":          "none",
	"half":      "the download stops half way and steamcmd reports state 0x402",
	"timeout":   "the download stalls and steamcmd hangs until it is killed",
	"disk-full": "the disk fills at three quarters and steamcmd reports state 0x202",
	"crash":     "steamcmd segfaults mid-download (steamcmd.sh exits 139)",
}

const (
	remoteEnv  = "STEAMCMD_DOUBLE_REMOTE"
	remoteFile = "remote.json"
	srcdsEnv   = "STEAMCMD_DOUBLE_SRCDS"
	srcdsFile  = "srcds-double"
)

// readRemote loads and checks the remote description; unknown fields are
// errors so a misspelt failure mode cannot pass silently.
func readRemote(home string) (*Remote, error) {
	path := os.Getenv(remoteEnv)
	if path == "" {
		path = filepath.Join(home, remoteFile)
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("$%s is not set and there is no %s (either says what Steam holds): %w", remoteEnv, remoteFile, err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the remote description: %w", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	r := &Remote{}
	if err := dec.Decode(r); err != nil {
		return nil, fmt.Errorf("remote description %s: %w", path, err)
	}
	if r.AppID == "" {
		r.AppID = "222860"
	}
	if _, ok := Failures[r.Failure]; !ok {
		return nil, fmt.Errorf("remote description %s: field \"failure\": unknown mode %q", path, r.Failure)
	}
	for name, b := range r.Branches {
		if b.BuildID == "" || strings.Trim(b.BuildID, "0123456789") != "" {
			return nil, fmt.Errorf("remote description %s: branches.%s.buildid is %q, want a number", path, name, b.BuildID)
		}
		if b.Size <= 0 {
			return nil, fmt.Errorf("remote description %s: branches.%s.size is %d, want bytes > 0", path, name, b.Size)
		}
	}
	return r, nil
}

func (r *Remote) invalidPlatform() bool { return r.InvalidPlatform == nil || *r.InvalidPlatform }

// patchVersion is the branch's PatchVersion, e.g. "5.4.6.7" for build
// 16385467 unless the test set one.
func (b Branch) patchVersion() string {
	if b.PatchVersion != "" {
		return b.PatchVersion
	}
	d := strings.Repeat("0", 4) + b.BuildID
	d = d[len(d)-4:]
	return strings.Join(strings.Split(d, ""), ".")
}
