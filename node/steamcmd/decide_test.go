package steamcmd

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/left4me/left4me/node/systemd"
)

func TestInstallCommands(t *testing.T) {
	const exe, dir = "/srv/steamcmd/steamcmd.sh", "/var/lib/left4me/installation/l4d2/staging/download"
	pass := func(platform string, beta ...string) []string {
		argv := []string{exe}
		if platform != "" {
			argv = append(argv, "+@sSteamCmdForcePlatformType", platform)
		}
		argv = append(argv, "+force_install_dir", dir, "+login", "anonymous", "+app_update", "222860")
		return append(append(argv, beta...), "validate", "+quit")
	}
	for _, tc := range []struct {
		name    string
		branch  string
		twoPass bool
		pre     [][]string
		main    []string
	}{
		{"two passes", "public", true, [][]string{pass("windows")}, pass("linux")},
		{"two passes, default branch", "", true, [][]string{pass("windows")}, pass("linux")},
		{"two passes, beta", "last_stable", true, [][]string{pass("windows", "-beta", "last_stable")}, pass("linux", "-beta", "last_stable")},
		{"one pass", "public", false, nil, pass("")},
		{"one pass, beta", "beta", false, nil, pass("", "-beta", "beta")},
	} {
		pre, main := installCommands(exe, 222860, tc.branch, dir, tc.twoPass)
		if !slices.EqualFunc(pre, tc.pre, slices.Equal) || !slices.Equal(main, tc.main) {
			t.Errorf("%s:\n pre  %q\n main %q\nwant\n pre  %q\n main %q", tc.name, pre, main, tc.pre, tc.main)
		}
		for _, argv := range append(pre, main) {
			if slices.Index(argv, "+force_install_dir") > slices.Index(argv, "+login") {
				t.Errorf("%s: +force_install_dir after +login in %q: steamcmd would ignore it", tc.name, argv)
			}
		}
	}
}

func TestCheckArgv(t *testing.T) {
	want := []string{"/s/steamcmd.sh", "+login", "anonymous", "+app_info_update", "1", "+app_info_print", "222860", "+quit"}
	if got := checkArgv("/s/steamcmd.sh", 222860); !slices.Equal(got, want) {
		t.Fatalf("checkArgv = %q, want %q", got, want)
	}
}

func TestValidInputs(t *testing.T) {
	for _, b := range []string{"", "public", "last_stable", "beta-2.1"} {
		if err := validBranch(b); err != nil {
			t.Errorf("branch %q: %v", b, err)
		}
	}
	for _, b := range []string{"-betapassword", "+quit", "a b", "a\nb", "x;y", "ä", strings.Repeat("b", 65)} {
		if err := validBranch(b); err == nil {
			t.Errorf("branch %q accepted", b)
		}
	}
	if err := validDir("/var/lib/left4me/installation/l4d2/staging/download"); err != nil {
		t.Error(err)
	}
	for _, d := range []string{"relative/dir", "/a/../b", "/a b", "/a\"b", "/a\tb", "/a/"} {
		if err := validDir(d); err == nil {
			t.Errorf("dir %q accepted", d)
		}
	}
	for s, want := range map[string]bool{"16385467": true, "1": true, "0": false, "": false, "012": false, "12a": false, "123456789012345678901": false} {
		if got := isBuildID(s); got != want {
			t.Errorf("isBuildID(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestClassify(t *testing.T) {
	exit := func(code int) systemd.JobResult { return systemd.JobResult{ExitCode: code, Result: "exit-code"} }
	ok := systemd.JobResult{Result: "success"}
	for _, tc := range []struct {
		name    string
		op      string
		res     systemd.JobResult
		output  string
		twoPass bool
		reason  string
		says    string
	}{
		{"success", "install", ok, "Success! App '222860' fully installed.\n", true, "", ""},
		{"check success", "check", ok, "\"222860\"\n{\n}\n", true, "", ""},
		{"timeout", "install", systemd.JobResult{ExitCode: 143, Result: "timeout"}, " Update state (0x61) downloading, progress: 50.00\n", true, SteamcmdTimedOut, "timeout (1h0m0s)"},
		{"timeout beats output", "install", systemd.JobResult{ExitCode: 143, Result: "timeout"}, "state is 0x202", true, SteamcmdTimedOut, "killed"},
		{"steamcmd.sh finds no linux32/steamcmd", "install", exit(127), "steamcmd.sh: line 38: linux32/steamcmd: No such file or directory\n", true, SteamcmdMissing, "lib32gcc-s1"},
		{"systemd cannot exec", "check", exit(203), "", true, SteamcmdMissing, "203"},
		{"not executable", "install", exit(126), "", true, SteamcmdMissing, "126"},
		{"home gone", "install", exit(200), "", true, SteamcmdMissing, "200"},
		{"segfault through steamcmd.sh", "install", exit(139), "Segmentation fault      (core dumped)\n", true, SteamcmdCrashed, "segmentation fault"},
		{"core dump", "install", systemd.JobResult{ExitCode: 139, Result: "core-dump"}, "", true, SteamcmdCrashed, "signal 11"},
		{"killed", "check", systemd.JobResult{ExitCode: 137, Result: "signal"}, "", true, SteamcmdCrashed, "killed"},
		{"oom", "install", systemd.JobResult{ExitCode: 137, Result: "oom-kill"}, "", true, SteamcmdCrashed, "memory"},
		{"disk full", "install", exit(8), "Error! App '222860' state is 0x202 after update job.\n", true, InsufficientDisk, "0x202"},
		{"disk full, worded", "install", exit(8), "ERROR! Failed to install app '222860' (Not enough disk space)\n", true, InsufficientDisk, "disk"},
		{"disk full, exit 0", "install", ok, "Error! App '222860' state is 0x202 after update job.\n", true, InsufficientDisk, "0x202"},
		{"half", "install", exit(8), "Error! App '222860' state is 0x402 after update job.\n", true, IncompleteDownload, "0x402"},
		{"one-pass invalid platform", "install", exit(8), "ERROR! Failed to install app '222860' (Invalid platform)\n", false, DownloadFailed, "enable the two-pass workaround"},
		{"two-pass invalid platform", "install", exit(8), "ERROR! Failed to install app '222860' (Invalid platform)\n", true, DownloadFailed, "even with the two-pass"},
		{"no branch", "install", exit(8), "ERROR! Failed to install app '222860' (Invalid beta branch)\n", true, DownloadFailed, "no such branch"},
		{"login exit", "check", exit(5), "", true, LoginFailed, "exit 5"},
		{"login line", "install", exit(5), "Logging in user 'anonymous' to Steam Public...FAILED (No Connection)\n", true, LoginFailed, "login"},
		{"other update failure", "install", exit(8), "Error! App '222860' state is 0x602 after update job.\n", true, DownloadFailed, "failed update"},
		{"update failure exit 0", "install", ok, "ERROR! Failed to install app '222860' (No subscription)\n", true, DownloadFailed, "failed update"},
		{"bare exit 8", "install", exit(8), "", true, DownloadFailed, "exit 8"},
		{"check fails", "check", exit(1), "", true, CheckFailed, "exit 1"},
		{"systemd setup", "check", exit(217), "", true, CheckFailed, "systemd could not start"},
	} {
		reason, why := classify(tc.op, tc.res, tc.output, tc.twoPass, time.Hour)
		if reason != tc.reason || !strings.Contains(why, tc.says) {
			t.Errorf("%s: classify = %q, %q; want %q saying %q", tc.name, reason, why, tc.reason, tc.says)
		}
	}
}

func TestSpaceNeeded(t *testing.T) {
	const gib = 1 << 30
	for _, tc := range []struct {
		size, existing, headroom, want int64
	}{
		{10 * gib, 0, gib, 11 * gib},
		{10 * gib, 4 * gib, gib, 7 * gib},      // a resumed download
		{10 * gib, 12 * gib, gib, gib},         // more there than the build: still the headroom
		{0, 0, gib, gib},                       // size unknown
		{math.MaxInt64, 0, gib, math.MaxInt64}, // no overflow
	} {
		if got := spaceNeeded(tc.size, tc.existing, tc.headroom); got != tc.want {
			t.Errorf("spaceNeeded(%d, %d, %d) = %d, want %d", tc.size, tc.existing, tc.headroom, got, tc.want)
		}
	}
}

func TestLastLines(t *testing.T) {
	out := "Loading Steam API...OK\n\n\x1b[0m Update state (0x61) downloading\r Update state (0x61) downloading, progress: 50.00\n" +
		"Error! App '222860' state is 0x402 after update job.\n\n" + strings.Repeat("x", 300) + "\n\t}\n}\n"
	got := lastLines(out, 4)
	want := []string{"Loading Steam API...OK", "Update state (0x61) downloading, progress: 50.00", "Error! App '222860' state is 0x402 after update job.", strings.Repeat("x", 200) + "…"}
	if !slices.Equal(got, want) {
		t.Fatalf("lastLines = %q, want %q", got, want)
	}
	if got := describeOutput("", "/l/install.log"); !strings.Contains(got, "printed nothing") || !strings.Contains(got, "/l/install.log") {
		t.Fatalf("describeOutput of nothing = %q", got)
	}
	if got := describeOutput(out, "/l/install.log"); !strings.Contains(got, "0x402") || !strings.Contains(got, "/l/install.log") {
		t.Fatalf("describeOutput = %q", got)
	}
}

func TestBytesText(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 9663676416: "9.0 GiB"} {
		if got := bytesText(n); got != want {
			t.Errorf("bytesText(%d) = %q, want %q", n, got, want)
		}
	}
}
