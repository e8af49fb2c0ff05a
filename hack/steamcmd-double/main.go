// Command steamcmd-double stands in for Valve's steamcmd in tests, since
// Steam cannot be reached from them. It takes the part of steamcmd's
// command line left4me uses (+force_install_dir, +login anonymous,
// +@sSteamCmdForcePlatformType, +app_update ID [validate] [-beta NAME],
// +app_info_update 1, +app_info_print ID, +quit), prints steamcmd's lines,
// exits with its codes, and writes what an install leaves:
// steamapps/appmanifest_<id>.acf, left4dead2/steam.inf and, for the linux
// platform, the srcds double ($STEAMCMD_DOUBLE_SRCDS, or srcds-double
// beside the executable) as srcds_run.
//
// What "Steam" holds and which failure happens comes from the JSON file
// named by $STEAMCMD_DOUBLE_REMOTE, or remote.json beside the executable
// (see Remote). app_info_print shows each branch's build and its depot
// manifest (depots/222861/manifests/<branch>/{gid,size,download}, the size
// being the branch's). Like steamcmd, it keeps its
// own files beside its executable: linux32/steamclient.so and the app info
// cache appcache/appinfo.vdf, which +app_info_print answers from when
// present, so a stale answer is shown until that file is deleted.
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Exit codes. Valve documents none; these are the ones LinuxGSM's steamcmd
// error notes (docs.linuxgsm.com/steamcmd/errors) list and tools that drive
// steamcmd check: 8 when an app_update fails, 5 for a refused login; 127
// and 139 are what steamcmd.sh's shell returns when linux32/steamcmd is not
// found or segfaults.
const (
	exitOK          = 0
	exitUsage       = 1
	exitLogin       = 5
	exitUpdate      = 8
	exitNotFound    = 127
	exitSegfault    = 139
	steamcmdVersion = "1731544541"
)

func main() {
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	home, err := ownDir(args[0])
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitNotFound
	}
	if err := bootstrap(home); err != nil {
		fmt.Fprintln(stderr, "steamcmd-double:", err)
		return exitUsage
	}
	remote, err := readRemote(home)
	if err != nil {
		fmt.Fprintln(stderr, "steamcmd-double:", err)
		return exitUsage
	}
	s := &session{home: home, remote: remote, out: stdout, errOut: stderr, platform: "linux"}
	fmt.Fprintf(stdout, "Redirecting stderr to '%s'\n", filepath.Join(home, "logs", "stderr.txt"))
	fmt.Fprintln(stdout, "[  0%] Checking for available updates...")
	fmt.Fprintln(stdout, "[----] Verifying installation...")
	fmt.Fprintf(stdout, "Steam Console Client (c) Valve Corporation - version %s\n", steamcmdVersion)
	fmt.Fprintln(stdout, "-- type 'quit' to exit --")
	fmt.Fprintln(stdout, "Loading Steam API...OK")
	for _, c := range splitCommands(args[1:]) {
		if code, done := s.do(c); done {
			return code
		}
	}
	return s.interactive(stdin)
}

// ownDir returns the directory steamcmd keeps its files in: the one its
// executable is in. Real steamcmd (steamcmd.sh) finds linux32/steamcmd next
// to the path it was called by, so called through a symlink placed
// elsewhere it fails before printing anything, with the shell's "No such
// file or directory" and 127; the double does the same whenever argv[0]
// itself is a symlink.
func ownDir(arg0 string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("steamcmd-double: finding own executable: %w", err)
	}
	exe, err = filepath.EvalSymlinks(exe)
	if err != nil {
		return "", fmt.Errorf("steamcmd-double: resolving own executable: %w", err)
	}
	called := arg0
	if filepath.Base(arg0) == arg0 {
		called = exe // found on $PATH: nothing to compare
	}
	if fi, err := os.Lstat(called); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return "", fmt.Errorf("%s: line 38: %s: No such file or directory",
			arg0, filepath.Join(filepath.Dir(called), "linux32", "steamcmd"))
	}
	return filepath.Dir(exe), nil
}

// bootstrap lays out steamcmd's own directory as its first run does; the
// game's home links linux32/steamclient.so from here.
func bootstrap(home string) error {
	for _, d := range []string{"linux32", "logs", "appcache"} {
		if err := os.MkdirAll(filepath.Join(home, d), 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
	}
	so := filepath.Join(home, "linux32", "steamclient.so")
	if _, err := os.Stat(so); err == nil {
		return nil
	}
	if err := os.WriteFile(so, []byte("steamcmd-double steamclient.so\n"), 0o755); err != nil {
		return fmt.Errorf("writing steamclient.so: %w", err)
	}
	return nil
}

// command is one +name with the arguments that follow it.
type command struct {
	name string
	args []string
}

// splitCommands groups steamcmd's argv: each +word starts a command and
// the words after it are its arguments.
func splitCommands(args []string) []command {
	var cmds []command
	for _, a := range args {
		if len(a) > 0 && a[0] == '+' {
			cmds = append(cmds, command{name: a[1:]})
			continue
		}
		if len(cmds) == 0 {
			cmds = append(cmds, command{}) // words before any +command
		}
		cmds[len(cmds)-1].args = append(cmds[len(cmds)-1].args, a)
	}
	return cmds
}
