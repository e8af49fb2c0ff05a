package steam

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
)

// StateFullyInstalled is the manifest's StateFlags value once an update job
// has finished: no update pending, running or required.
const StateFullyInstalled = "4"

// InstalledBuild reads an appmanifest_<id>.acf and returns its buildid and
// whether the install is complete: StateFlags is exactly 4 and every byte
// to download and to stage arrived. A download that was cut off (killed,
// disk full) leaves the new build id with complete false.
func InstalledBuild(manifestPath string) (build string, complete bool, err error) {
	data, err := os.ReadFile(manifestPath)
	if err != nil {
		return "", false, fmt.Errorf("reading app manifest: %w", err)
	}
	return ParseAppManifest(data, manifestPath)
}

// ParseAppManifest is InstalledBuild on a manifest already read (through
// node/safefs, say); manifestPath only names it in errors.
func ParseAppManifest(data []byte, manifestPath string) (build string, complete bool, err error) {
	root, err := ParseKeyValues(string(data))
	if err != nil {
		return "", false, fmt.Errorf("app manifest %s: %w", manifestPath, err)
	}
	if !strings.EqualFold(root.Key, "AppState") || !root.IsBlock() {
		return "", false, fmt.Errorf("app manifest %s: top-level key is %q, want an \"AppState\" block", manifestPath, root.Key)
	}
	field := func(k string) (string, error) {
		v, ok := root.String(k)
		if !ok {
			return "", fmt.Errorf("app manifest %s: field %q is missing", manifestPath, k)
		}
		return v, nil
	}
	if build, err = field("buildid"); err != nil {
		return "", false, err
	}
	if build == "" || strings.Trim(build, "0123456789") != "" {
		return "", false, fmt.Errorf("app manifest %s: field \"buildid\" is %q, want a number", manifestPath, build)
	}
	vals := map[string]string{}
	for _, k := range []string{"StateFlags", "BytesToDownload", "BytesDownloaded", "BytesToStage", "BytesStaged"} {
		if vals[k], err = field(k); err != nil {
			return "", false, err
		}
	}
	complete = vals["StateFlags"] == StateFullyInstalled &&
		vals["BytesDownloaded"] == vals["BytesToDownload"] &&
		vals["BytesStaged"] == vals["BytesToStage"]
	return build, complete, nil
}

// RemoteBuild finds the build id Steam offers on branch in what
// `steamcmd +login anonymous +app_info_update 1 +app_info_print ID +quit`
// printed: the app info block starts at the first line that begins with a
// quote, and the build is at depots/branches/<branch>/buildid. steamcmd
// answers from its cache (appcache/appinfo.vdf), so the answer can be stale
// unless that file is deleted first.
func RemoteBuild(appInfoOutput, branch string) (string, error) {
	root, err := appInfo(appInfoOutput)
	if err != nil {
		return "", err
	}
	build, ok := root.String("depots", "branches", branch, "buildid")
	if !ok {
		return "", fmt.Errorf("app info for %q: no depots/branches/%s/buildid", root.Key, branch)
	}
	if build == "" || strings.Trim(build, "0123456789") != "" {
		return "", fmt.Errorf("app info for %q: depots/branches/%s/buildid is %q, want a number", root.Key, branch, build)
	}
	return build, nil
}

// RemoteSize sums the sizes of the depot manifests branch has in what
// app_info_print printed: every depots/<depot id>/manifests/<branch> block
// holds gid, size (bytes on disk) and download (bytes transferred). This
// is what installing the branch's build writes, both platforms' depots
// included (the two-pass install fetches both). found is false when no
// depot gives a size for the branch (app info of the older layout, where
// manifests/<branch> is only the gid); a size that is not a number, or a
// sum that overflows, is an error.
func RemoteSize(appInfoOutput, branch string) (size int64, found bool, err error) {
	root, err := appInfo(appInfoOutput)
	if err != nil {
		return 0, false, err
	}
	depots, ok := root.Lookup("depots")
	if !ok {
		return 0, false, nil
	}
	for _, d := range depots.Children {
		if !d.IsBlock() || d.Key == "" || strings.Trim(d.Key, "0123456789") != "" {
			continue // "branches", "baselanguages", ...
		}
		v, ok := d.String("manifests", branch, "size")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return 0, false, fmt.Errorf("app info for %q: depots/%s/manifests/%s/size is %q, want bytes", root.Key, d.Key, branch, v)
		}
		if size > math.MaxInt64-n {
			return 0, false, fmt.Errorf("app info for %q: the depot sizes of branch %s overflow", root.Key, branch)
		}
		size += n
		found = true
	}
	return size, found, nil
}

// appInfo parses the app info block of app_info_print's output.
func appInfo(appInfoOutput string) (*Node, error) {
	start, off := -1, 0
	for _, line := range strings.SplitAfter(appInfoOutput, "\n") {
		if strings.HasPrefix(line, `"`) {
			start = off
			break
		}
		off += len(line)
	}
	if start < 0 {
		return nil, fmt.Errorf("app info: no app info block in steamcmd's output (%d bytes)", len(appInfoOutput))
	}
	lineNo := strings.Count(appInfoOutput[:start], "\n")
	root, err := parsePrefix(appInfoOutput[start:], lineNo+1)
	if err != nil {
		return nil, fmt.Errorf("app info in steamcmd's output: %w", err)
	}
	return root, nil
}
