package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/left4me/left4me/node/steam"
)

const appName = "Left 4 Dead 2 Dedicated Server"

// session is one steamcmd run: the commands share the login, the install
// directory and the forced platform.
type session struct {
	home, installDir, platform string
	loggedIn                   bool
	remote                     *Remote
	out, errOut                io.Writer
}

// do runs one command; done means steamcmd exits now with code.
func (s *session) do(c command) (code int, done bool) {
	switch c.name {
	case "":
		return 0, false
	case "quit":
		return exitOK, true
	case "force_install_dir":
		if len(c.args) != 1 {
			fmt.Fprintln(s.out, "Usage: force_install_dir <path>")
			return 0, false
		}
		if s.loggedIn {
			fmt.Fprintln(s.out, "Please use force_install_dir before logon!")
		}
		// Real steamcmd takes a relative path from its own directory.
		dir := c.args[0]
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(s.home, dir)
		}
		s.installDir = dir
	case "login":
		if len(c.args) == 0 || c.args[0] != "anonymous" {
			fmt.Fprintf(s.out, "Logging in user '%s' to Steam Public...FAILED (Invalid Password)\n", strings.Join(c.args, " "))
			return exitLogin, true
		}
		fmt.Fprintln(s.out, "Connecting anonymously to Steam Public...OK")
		fmt.Fprintln(s.out, "Waiting for client config...OK")
		fmt.Fprintln(s.out, "Waiting for user info...OK")
		s.loggedIn = true
	case "@sSteamCmdForcePlatformType":
		if len(c.args) == 1 {
			s.platform = c.args[0]
		}
	case "app_info_update":
	case "app_info_print":
		if len(c.args) == 1 {
			s.appInfoPrint(c.args[0])
		}
	case "app_update":
		if len(c.args) == 0 {
			fmt.Fprintln(s.out, "Usage: app_update <appid> [-beta <betaname>] [-betapassword <password>] [validate]")
			return 0, false
		}
		if code := s.appUpdate(c.args); code != exitOK {
			return code, true
		}
	default:
		fmt.Fprintf(s.out, "Command not found: %s\n", c.name)
	}
	return 0, false
}

// interactive reads commands from stdin at the Steam> prompt, as steamcmd
// does when the command line has no +quit; end of input quits.
func (s *session) interactive(stdin io.Reader) int {
	sc := bufio.NewScanner(stdin)
	for {
		fmt.Fprint(s.out, "Steam>")
		if !sc.Scan() {
			fmt.Fprintln(s.out)
			return exitOK
		}
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if code, done := s.do(command{name: f[0], args: f[1:]}); done {
			return code
		}
	}
}

// appInfoText renders the app info Steam holds now, as app_info_print shows it.
func (s *session) appInfoText() string {
	names := make([]string, 0, len(s.remote.Branches))
	for n := range s.remote.Branches {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		if (names[i] == "public") != (names[j] == "public") {
			return names[i] == "public"
		}
		return names[i] < names[j]
	})
	branches := &steam.Node{Key: "branches", Children: []*steam.Node{}}
	manifests := &steam.Node{Key: "manifests", Children: []*steam.Node{}}
	for _, n := range names {
		b := s.remote.Branches[n]
		manifests.Children = append(manifests.Children, &steam.Node{Key: n, Children: []*steam.Node{
			{Key: "gid", Value: b.BuildID + "000"},
			{Key: "size", Value: strconv.FormatInt(b.Size, 10)},
			{Key: "download", Value: strconv.FormatInt(b.Size*2/5, 10)},
		}})
		branches.Children = append(branches.Children, &steam.Node{Key: n, Children: []*steam.Node{
			{Key: "buildid", Value: b.BuildID},
			{Key: "timeupdated", Value: strconv.FormatInt(b.TimeUpdated, 10)},
		}})
	}
	root := &steam.Node{Key: s.remote.AppID, Children: []*steam.Node{
		{Key: "appid", Value: s.remote.AppID},
		{Key: "common", Children: []*steam.Node{
			{Key: "name", Value: appName},
			{Key: "type", Value: "Tool"},
			{Key: "oslist", Value: "windows,linux"},
		}},
		{Key: "depots", Children: []*steam.Node{
			{Key: "222861", Children: []*steam.Node{
				{Key: "config", Children: []*steam.Node{{Key: "oslist", Value: "windows,linux"}}},
				manifests,
			}},
			branches,
		}},
	}}
	return steam.Format(root)
}

// appInfoPrint prints the app info, from appcache/appinfo.vdf when that
// exists (steamcmd's cache, which app_info_update does not always refresh)
// and otherwise from the remote, caching it.
func (s *session) appInfoPrint(id string) {
	if id != s.remote.AppID {
		fmt.Fprintf(s.out, "No app info for AppID %s found, requesting...\n", id)
		fmt.Fprintf(s.out, "No app info for AppID %s found after requesting.\n", id)
		return
	}
	cache := filepath.Join(s.home, "appcache", "appinfo.vdf")
	text, err := os.ReadFile(cache)
	if err != nil {
		text = []byte(s.appInfoText())
		if err := os.WriteFile(cache, text, 0o644); err != nil {
			fmt.Fprintf(s.errOut, "steamcmd-double: writing %s: %v\n", cache, err)
		}
	}
	fmt.Fprintf(s.out, "AppID : %s, change number : %d/0, last change : %s\n", id,
		len(text), time.Unix(0, 0).UTC().Format("Mon Jan  2 15:04:05 2006"))
	s.out.Write(text)
}

// appUpdate installs or updates the app into the install directory.
func (s *session) appUpdate(args []string) int {
	id, branchName, validate := args[0], "public", false
	for i := 1; i < len(args); i++ {
		switch args[i] {
		case "validate":
			validate = true
		case "-beta":
			if i+1 < len(args) {
				branchName = args[i+1]
				i++
			}
		}
	}
	fail := func(reason string) int {
		fmt.Fprintf(s.out, "ERROR! Failed to install app '%s' (%s)\n", id, reason)
		return exitUpdate
	}
	if !s.loggedIn {
		return fail("No subscription")
	}
	if id != s.remote.AppID {
		return fail("No subscription")
	}
	branch, ok := s.remote.Branches[branchName]
	if !ok {
		return fail("Invalid beta branch")
	}
	dir := s.installDir
	if dir == "" {
		dir = filepath.Join(s.home, "steamapps", "common", appName)
	}
	manifest := filepath.Join(dir, "steamapps", "appmanifest_"+id+".acf")
	oldBuild, complete, err := steam.InstalledBuild(manifest)
	haveManifest := err == nil
	if !haveManifest && !errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(s.errOut, "steamcmd-double: %v\n", err)
	}
	if s.platform == "linux" && !haveManifest && s.remote.invalidPlatform() {
		return fail("Invalid platform")
	}
	if s.platform != "linux" && s.platform != "windows" {
		return fail("Invalid platform")
	}
	marker := map[string]string{"linux": "srcds_run", "windows": "srcds.exe"}[s.platform]
	_, markerErr := os.Stat(filepath.Join(dir, marker))
	if complete && oldBuild == branch.BuildID && markerErr == nil && !validate {
		fmt.Fprintf(s.out, "Success! App '%s' already up to date.\n", id)
		return exitOK
	}
	if haveManifest && validate {
		fmt.Fprintf(s.out, " Update state (0x5) verifying install, progress: 0.00 (0 / %d)\n", branch.Size)
	}
	if oldBuild == "" {
		oldBuild = "0"
	}
	st := &install{s: s, id: id, dir: dir, manifest: manifest, oldBuild: oldBuild, branch: branch}
	return st.run()
}

// install is one app_update's download into dir.
type install struct {
	s                 *session
	id, dir, manifest string
	oldBuild          string
	branch            Branch
}

func (in *install) progress(done int64) {
	fmt.Fprintf(in.s.out, " Update state (0x61) downloading, progress: %.2f (%d / %d)\n",
		float64(done)*100/float64(in.branch.Size), done, in.branch.Size)
}

// run downloads in quarters, stopping where the remote's failure mode says.
func (in *install) run() int {
	size := in.branch.Size
	if err := os.MkdirAll(filepath.Join(in.dir, "steamapps", "downloading", in.id), 0o755); err != nil {
		return in.diskError(err)
	}
	stopAt := map[string]int64{"half": size / 2, "timeout": size / 2, "crash": size / 4, "disk-full": size * 3 / 4}
	failure := in.s.remote.Failure
	for q := int64(0); q <= 4; q++ {
		done := size * q / 4
		if failure != "" && done >= stopAt[failure] {
			return in.stop(failure, stopAt[failure])
		}
		in.progress(done)
	}
	fmt.Fprintf(in.s.out, " Update state (0x81) verifying update, progress: 100.00 (%d / %d)\n", size, size)
	if err := in.writeFiles(); err != nil {
		return in.diskError(err)
	}
	if err := in.writeManifest(in.branch.BuildID, steam.StateFullyInstalled, size, size); err != nil {
		return in.diskError(err)
	}
	os.RemoveAll(filepath.Join(in.dir, "steamapps", "downloading"))
	fmt.Fprintf(in.s.out, "Success! App '%s' fully installed.\n", in.id)
	return exitOK
}

// stop ends a failed download: the manifest records the cut-off download
// (the old build, the target build, fewer bytes than needed, StateFlags
// 1026 = update required and running) as steamcmd leaves it.
func (in *install) stop(failure string, at int64) int {
	in.progress(at)
	if err := in.writeManifest(in.oldBuild, "1026", at, 0); err != nil {
		return in.diskError(err)
	}
	switch failure {
	case "half":
		fmt.Fprintf(in.s.out, "Error! App '%s' state is 0x402 after update job.\n", in.id)
		return exitUpdate
	case "disk-full":
		fmt.Fprintf(in.s.out, "Error! App '%s' state is 0x202 after update job.\n", in.id)
		return exitUpdate
	case "crash":
		fmt.Fprintf(in.s.errOut, "%s: line 38: %d Segmentation fault      (core dumped) $DEBUGGER \"$STEAMEXE\" \"$@\"\n",
			filepath.Join(in.s.home, "steamcmd.sh"), os.Getpid())
		return exitSegfault
	}
	// timeout: the download stalls and steamcmd waits for ever; only the
	// caller's deadline (a signal) ends it.
	for {
		time.Sleep(time.Hour)
	}
}

func (in *install) diskError(err error) int {
	fmt.Fprintf(in.s.errOut, "steamcmd-double: %v\n", err)
	fmt.Fprintf(in.s.out, "Error! App '%s' state is 0x202 after update job.\n", in.id)
	return exitUpdate
}

// writeManifest writes steamapps/appmanifest_<id>.acf as Steam does.
func (in *install) writeManifest(build, state string, downloaded, staged int64) error {
	size := strconv.FormatInt(in.branch.Size, 10)
	onDisk := "0"
	if state == steam.StateFullyInstalled {
		onDisk = size
	}
	kv := func(k, v string) *steam.Node { return &steam.Node{Key: k, Value: v} }
	root := &steam.Node{Key: "AppState", Children: []*steam.Node{
		kv("appid", in.id),
		kv("Universe", "1"),
		kv("name", appName),
		kv("StateFlags", state),
		kv("installdir", appName),
		kv("LastUpdated", strconv.FormatInt(time.Now().Unix(), 10)),
		kv("SizeOnDisk", onDisk),
		kv("StagingSize", "0"),
		kv("buildid", build),
		kv("LastOwner", "0"),
		kv("UpdateResult", "0"),
		kv("BytesToDownload", size),
		kv("BytesDownloaded", strconv.FormatInt(downloaded, 10)),
		kv("BytesToStage", size),
		kv("BytesStaged", strconv.FormatInt(staged, 10)),
		kv("TargetBuildID", in.branch.BuildID),
		kv("AutoUpdateBehavior", "0"),
		kv("AllowOtherDownloadsWhileRunning", "0"),
		kv("ScheduledAutoUpdate", "0"),
		{Key: "InstalledDepots", Children: []*steam.Node{
			{Key: "222861", Children: []*steam.Node{kv("manifest", build+"000"), kv("size", onDisk)}},
		}},
	}}
	if err := os.MkdirAll(filepath.Dir(in.manifest), 0o755); err != nil {
		return fmt.Errorf("creating steamapps: %w", err)
	}
	return writeAtomic(in.manifest, []byte(steam.Format(root)), 0o644)
}

// writeFiles writes the platform's files: steam.inf always, srcds_run (the
// srcds double) for linux, a stand-in srcds.exe for windows.
func (in *install) writeFiles() error {
	pv := in.branch.patchVersion()
	inf := fmt.Sprintf("ClientVersion=%s\nServerVersion=%[1]s\nPatchVersion=%s\nProductName=left4dead2\nappID=550\nServerAppID=%s\n",
		strings.ReplaceAll(pv, ".", ""), pv, in.id)
	if err := os.MkdirAll(filepath.Join(in.dir, "left4dead2"), 0o755); err != nil {
		return fmt.Errorf("creating left4dead2: %w", err)
	}
	if err := writeAtomic(filepath.Join(in.dir, "left4dead2", "steam.inf"), []byte(inf), 0o644); err != nil {
		return err
	}
	if in.s.platform == "windows" {
		return writeAtomic(filepath.Join(in.dir, "srcds.exe"), []byte("MZ steamcmd-double srcds.exe\n"), 0o644)
	}
	src := os.Getenv(srcdsEnv)
	if src == "" {
		src = filepath.Join(in.s.home, srcdsFile)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("reading the srcds double: %w", err)
	}
	return writeAtomic(filepath.Join(in.dir, "srcds_run"), data, 0o755)
}

// writeAtomic writes through a temporary file and a rename, so a reader
// never sees half a file (and a running srcds_run is replaced, not
// overwritten: "text file busy").
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".steamcmd-double.tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
