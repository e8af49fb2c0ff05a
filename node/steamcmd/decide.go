package steamcmd

import (
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/left4me/left4me/node/systemd"
)

// The decisions of this package, kept free of effects: the command lines,
// how a run ended, whether there is room for a download.

// publicBranch is Steam's default branch: app_update takes no -beta for it.
const publicBranch = "public"

// Platform passes of the "Invalid platform" workaround: since November 2024
// Steam refuses an anonymous linux install of app 222860 into an empty
// directory, but accepts a windows pass followed by a linux one.
const (
	platformWindows = "windows"
	platformLinux   = "linux"
)

// checkArgv asks Steam for the app's current info (LinuxGSM's recipe; the
// cached appinfo.vdf is removed before it runs).
func checkArgv(exe string, appID int32) []string {
	id := strconv.Itoa(int(appID))
	return []string{exe, "+login", "anonymous", "+app_info_update", "1", "+app_info_print", id, "+quit"}
}

// installArgv is one app_update pass into dir. platform "" forces none
// (steamcmd's own: linux here). +force_install_dir must come before
// +login, or steamcmd ignores it ("Please use force_install_dir before
// logon!") and installs into its own directory.
func installArgv(exe string, appID int32, branch, dir, platform string) []string {
	argv := []string{exe}
	if platform != "" {
		argv = append(argv, "+@sSteamCmdForcePlatformType", platform)
	}
	argv = append(argv, "+force_install_dir", dir, "+login", "anonymous", "+app_update", strconv.Itoa(int(appID)))
	if branch != "" && branch != publicBranch {
		argv = append(argv, "-beta", branch)
	}
	return append(argv, "validate", "+quit")
}

// installCommands is the whole install as one unit: with twoPass the
// windows pass runs as ExecStartPre (same account, same sandbox, and the
// unit's timeout covers both passes) and the linux pass as the main
// command; without it, one pass on steamcmd's own platform.
func installCommands(exe string, appID int32, branch, dir string, twoPass bool) (pre [][]string, main []string) {
	if !twoPass {
		return nil, installArgv(exe, appID, branch, dir, "")
	}
	return [][]string{installArgv(exe, appID, branch, dir, platformWindows)},
		installArgv(exe, appID, branch, dir, platformLinux)
}

// validBranch says whether a branch name can be put on steamcmd's command
// line: steamcmd re-reads its arguments as a command line of its own, so
// a space or a leading + or - would become another command or option.
func validBranch(branch string) error {
	if branch == "" {
		return nil
	}
	if len(branch) > 64 || branch[0] == '-' || branch[0] == '+' {
		return fmt.Errorf("branch %q is not a Steam branch name", branch)
	}
	for _, c := range branch {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return fmt.Errorf("branch %q is not a Steam branch name (letters, digits, '.', '_' and '-' only)", branch)
		}
	}
	return nil
}

// validDir says whether a directory can be steamcmd's +force_install_dir
// (see validBranch: a space would split it).
func validDir(dir string) error {
	if !strings.HasPrefix(dir, "/") || dir != filepath.Clean(dir) {
		return fmt.Errorf("install directory %q is not a clean absolute path", dir)
	}
	if strings.ContainsFunc(dir, func(r rune) bool { return unicode.IsSpace(r) || r == '"' || unicode.IsControl(r) }) {
		return fmt.Errorf("install directory %q holds a space, quote or control character, which steamcmd's command line cannot carry", dir)
	}
	return nil
}

// isBuildID is a Steam build id as the agent names build directories: a
// decimal number without leading zeros (so "0", a manifest's placeholder
// before the first download, is none).
func isBuildID(s string) bool {
	if s == "" || len(s) > 20 || s[0] == '0' {
		return false
	}
	return strings.Trim(s, "0123456789") == ""
}

// classify says why a steamcmd run failed, from how its unit ended and
// what steamcmd printed; reason "" means it did not. op ("check" or
// "install") picks the reason for a failure with no better one. steamcmd
// has exited 0 after a failed update before, so its error lines count
// whatever the exit code.
func classify(op string, res systemd.JobResult, output string, twoPass bool, timeout time.Duration) (reason, why string) {
	generic := DownloadFailed
	if op == "check" {
		generic = CheckFailed
	}
	code := res.ExitCode
	switch {
	case res.Result == "timeout":
		return SteamcmdTimedOut, fmt.Sprintf("steamcmd ran longer than its timeout (%v) and was killed; the download resumes on the next try", timeout)
	case code == 127 && res.Result == "exit-code":
		return SteamcmdMissing, "steamcmd could not be run (exit 127: steamcmd.sh did not find linux32/steamcmd, or the host lacks the 32-bit C library steamcmd needs: install lib32gcc-s1)"
	case code == 126:
		return SteamcmdMissing, "steamcmd could not be run (exit 126: not executable)"
	case code == 203:
		return SteamcmdMissing, "steamcmd could not be run (systemd's exit 203: the executable is missing or not executable)"
	case code == 200:
		return SteamcmdMissing, "steamcmd's directory could not be entered (systemd's exit 200)"
	case res.Result == "oom-kill":
		return SteamcmdCrashed, "steamcmd was killed for using too much memory"
	case res.Result == "signal" || res.Result == "core-dump" || (code > 128 && code < 128+65):
		return SteamcmdCrashed, fmt.Sprintf("steamcmd crashed: %s", signalName(code))
	}
	if reason, why := fromOutput(output, twoPass, generic); reason != "" {
		return reason, why
	}
	switch {
	case code == 5:
		return LoginFailed, "Steam refused the anonymous login (exit 5)"
	case code >= 200 && code < 256:
		return generic, fmt.Sprintf("systemd could not start steamcmd (exit %d; systemd.exec(5) lists its exit codes)", code)
	case code != 0 || !res.Succeeded():
		return generic, fmt.Sprintf("steamcmd failed (exit %d, result %s)", code, res.Result)
	}
	return "", ""
}

// fromOutput finds steamcmd's own error lines.
func fromOutput(output string, twoPass bool, generic string) (reason, why string) {
	switch {
	case strings.Contains(output, "state is 0x202") || strings.Contains(strings.ToLower(output), "not enough disk space"):
		return InsufficientDisk, "the disk filled up during the download (steamcmd's state 0x202)"
	case strings.Contains(output, "state is 0x402"):
		return IncompleteDownload, "the download stopped part way (steamcmd's state 0x402, often the network); it resumes on the next try"
	case strings.Contains(output, "(Invalid platform)"):
		if !twoPass {
			return DownloadFailed, "Steam refuses a one-pass linux install (\"Invalid platform\"): enable the two-pass workaround (a windows pass, then a linux one; the node's default)"
		}
		return DownloadFailed, "Steam refused the install (\"Invalid platform\") even with the two-pass workaround"
	case strings.Contains(output, "(Invalid beta branch)"):
		return DownloadFailed, "Steam has no such branch (\"Invalid beta branch\")"
	case strings.Contains(output, "to Steam Public...FAILED") || strings.Contains(output, "Login Failure"):
		return LoginFailed, "Steam refused the anonymous login"
	case strings.Contains(output, "ERROR! Failed to install app") || (strings.Contains(output, "Error! App '") && strings.Contains(output, "after update job")):
		return generic, "steamcmd reported a failed update"
	}
	return "", ""
}

// signalName describes a 128+signal exit code.
func signalName(code int) string {
	if code <= 128 {
		return fmt.Sprintf("exit %d", code)
	}
	sig := syscall.Signal(code - 128)
	return fmt.Sprintf("signal %d (%v, exit %d)", code-128, sig, code)
}

// spaceNeeded is how many bytes must be free before a download of size
// bytes starts when existing bytes of it are on disk already (a resumed
// download), with headroom beyond it. size 0 (unknown) needs only the
// headroom.
func spaceNeeded(size, existing, headroom int64) int64 {
	need := size - existing
	if need < 0 {
		need = 0
	}
	if need > math.MaxInt64-headroom {
		return math.MaxInt64
	}
	return need + headroom
}

var ansiEscape = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// lastLines are the last n telling lines of steamcmd's output, cleaned of
// terminal escapes and control characters and cut to a readable length:
// what a Node's status message quotes. Of the progress lines only the
// last counts (how far the download got), and lines of nothing but
// braces say nothing.
func lastLines(output string, n int) []string {
	output = ansiEscape.ReplaceAllString(output, "")
	var out []string
	progress := false
	lines := strings.FieldsFunc(output, func(r rune) bool { return r == '\n' || r == '\r' })
	for i := len(lines) - 1; i >= 0 && len(out) < n; i-- {
		l := strings.TrimSpace(strings.Map(func(r rune) rune {
			if unicode.IsControl(r) && r != '\t' {
				return -1
			}
			return r
		}, lines[i]))
		if strings.Trim(l, "{} \t") == "" {
			continue
		}
		if strings.HasPrefix(l, "Update state (") {
			if progress {
				continue
			}
			progress = true
		}
		if r := []rune(l); len(r) > 200 {
			l = string(r[:200]) + "…"
		}
		out = append(out, l)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// describeOutput is what a failure's message says of steamcmd's output.
func describeOutput(output, logFile string) string {
	lines := lastLines(output, 4)
	if len(lines) == 0 {
		return fmt.Sprintf("steamcmd printed nothing (%s)", logFile)
	}
	return fmt.Sprintf("last lines: %s (all of them in %s)", strings.Join(lines, " | "), logFile)
}

// bytesText prints a size for people: "9.0 GiB".
func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
