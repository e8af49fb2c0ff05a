package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/node/gameuser"
	"github.com/left4me/left4me/node/installer"
	"github.com/left4me/left4me/node/safefs"
)

// Steamcmd fetches builds for the installer (node/steamcmd runs the real
// one in a hardened unit of its own, as an unprivileged account).
type Steamcmd interface {
	// Check asks Steam for the branch's current build and its size.
	Check(ctx context.Context, appID int32, branch string) (build string, size int64, err error)
	// Install downloads the branch's current build into dir (owned by
	// Account), checks it, and returns its build id.
	Install(ctx context.Context, appID int32, branch, dir string, size int64) (build string, err error)
	// Account is who steamcmd runs as.
	Account() (gameuser.Account, error)
}

// Failure is an error that names its cause in one CamelCase word, which
// goes into the Node's status.installations[].reason.
type Failure interface {
	error
	FailureReason() string
}

var installationRes = resources.Installations

// installState is one Installation as this node's installer holds it.
type installState struct {
	local installer.Local
	// lastFailedDownload: the failure being backed off from was a download
	// (a successful check does not end that backoff).
	lastFailedDownload bool
	status             v1.NodeInstallation
	wake               chan struct{}
	cancel             context.CancelFunc
	done               chan struct{}
}

// installations is the agent's view of the Installation objects and its
// workers, one per Installation that selects this node.
type installations struct {
	mu      sync.Mutex
	objs    map[string]*v1.Installation
	workers map[string]*installState
	// stopping holds the done channels of workers told to stop (their
	// Installation gone or no longer selecting this node): no new worker
	// starts for the name, and its files stay, until the old one ended.
	stopping map[string]chan struct{}
	// listed is closed after the first complete list: until then no
	// Instance is rendered (it would fall back to installation/ and
	// restart onto it).
	listed     chan struct{}
	listedOnce sync.Once
	labels     map[string]string // the Node's labels, as the last status write or watchOwnNode returned them
}

func newInstallations() *installations {
	return &installations{objs: map[string]*v1.Installation{}, workers: map[string]*installState{}, stopping: map[string]chan struct{}{}, listed: make(chan struct{})}
}

// installation returns the Installation object of that name (nil: none).
func (a *Agent) installation(name string) *v1.Installation {
	a.inst.mu.Lock()
	defer a.inst.mu.Unlock()
	return a.inst.objs[name]
}

// followInstallations lists and watches Installations, and runs one
// installer worker for each that selects this node, until ctx ends; it
// returns only once its workers have stopped.
func (a *Agent) followInstallations(ctx context.Context) {
	var workers sync.WaitGroup
	defer func() {
		a.inst.mu.Lock()
		for _, st := range a.inst.workers {
			st.cancel()
		}
		a.inst.mu.Unlock()
		workers.Wait()
	}()
	events := make(chan struct{}, 1)
	workers.Add(1)
	go func() { // ends with ctx, as the watch it reads from
		defer workers.Done()
		a.watchInstallations(ctx, events)
	}()
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for tick := 0; ; tick++ {
		select {
		case <-ctx.Done():
			return
		case <-events:
			a.syncInstallers(ctx, &workers)
			a.wakeInstallers()
			a.enqueueAll()
			a.removeOrphanInstallations()
		case <-t.C:
			// Labels change on the Node without an Installation event.
			a.syncInstallers(ctx, &workers)
			if tick%30 == 0 {
				a.removeOrphanInstallations()
			}
		}
	}
}

// watchInstallations keeps a.inst.objs current, signalling events after
// each change.
func (a *Agent) watchInstallations(ctx context.Context, events chan<- struct{}) {
	notify := func() {
		select {
		case events <- struct{}{}:
		default:
		}
	}
	a.follow(ctx, installationRes, "", func(fresh map[string]v1.Object) {
		objs := map[string]*v1.Installation{}
		for name, o := range fresh {
			if in, ok := o.(*v1.Installation); ok {
				objs[name] = in
			}
		}
		a.inst.mu.Lock()
		a.inst.objs = objs
		a.inst.mu.Unlock()
		a.inst.listedOnce.Do(func() { close(a.inst.listed) })
		notify()
	}, func(t watch.EventType, o v1.Object) {
		in, ok := o.(*v1.Installation)
		if !ok {
			return
		}
		a.inst.mu.Lock()
		if t == watch.Deleted {
			delete(a.inst.objs, in.Name)
		} else {
			a.inst.objs[in.Name] = in
		}
		a.inst.mu.Unlock()
		notify()
	})
}

// selects reports whether an Installation's nodeSelector picks this node.
func (a *Agent) selects(in *v1.Installation) bool {
	return labels.SelectorFromSet(in.Spec.NodeSelector).Matches(labels.Set(a.inst.labels))
}

// syncInstallers starts a worker for each Installation that selects this
// node and stops the others (their builds stay until nothing uses them).
func (a *Agent) syncInstallers(ctx context.Context, workers *sync.WaitGroup) {
	if a.o.Steamcmd == nil {
		return
	}
	a.inst.mu.Lock()
	defer a.inst.mu.Unlock()
	for name, in := range a.inst.objs {
		if a.inst.workers[name] != nil || !a.selects(in) || a.stoppingLocked(name) {
			continue
		}
		wctx, cancel := context.WithCancel(ctx)
		st := &installState{wake: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
		a.inst.workers[name] = st
		workers.Add(1)
		go func() {
			defer workers.Done()
			defer close(st.done)
			a.installWorker(wctx, name, st)
		}()
	}
	for name, st := range a.inst.workers {
		if in := a.inst.objs[name]; in == nil || !a.selects(in) {
			st.cancel()
			delete(a.inst.workers, name)
			a.inst.stopping[name] = st.done
		}
	}
}

// stoppingLocked reports whether a worker for name is still ending (a.inst.mu
// held); one that has ended is forgotten.
func (a *Agent) stoppingLocked(name string) bool {
	done, ok := a.inst.stopping[name]
	if !ok {
		return false
	}
	select {
	case <-done:
		delete(a.inst.stopping, name)
		return false
	default:
		return true
	}
}

// installerBusy reports whether a worker for name runs or is still ending:
// then its files are not the orphan sweep's.
func (a *Agent) installerBusy(name string) bool {
	a.inst.mu.Lock()
	defer a.inst.mu.Unlock()
	return a.inst.workers[name] != nil || a.stoppingLocked(name)
}

func (a *Agent) wakeInstallers() {
	a.inst.mu.Lock()
	defer a.inst.mu.Unlock()
	for _, st := range a.inst.workers {
		select {
		case st.wake <- struct{}{}:
		default:
		}
	}
}

// installWorker plans and executes for one Installation until ctx ends.
func (a *Agent) installWorker(ctx context.Context, name string, st *installState) {
	log := a.o.Log.WithValues("installation", name)
	for ctx.Err() == nil {
		in := a.installation(name)
		if in == nil {
			return
		}
		builds, err := a.readyBuilds(name)
		if err != nil {
			log.Error(err, "cannot list ready builds")
		}
		a.inst.mu.Lock()
		local := st.local
		a.inst.mu.Unlock()
		local.Builds = builds
		plan := installer.Decide(installer.Input{
			Spec: in.Spec, Wanted: in.Status.WantedBuild, Deleting: in.DeletionTimestamp != nil,
			CheckRequest: in.Annotations[v1.AnnotationCheckRequestedAt],
			MayDownload:  in.Spec.MaxConcurrentDownloads <= 0 || contains(in.Status.DownloadsAllowed, a.o.NodeName),
			Local:        local, InUse: a.buildsInUse(name), Now: time.Now(),
		})
		plan.Status.Name = name
		a.publishInstallStatus(st, plan.Status)
		acted := false
		for _, b := range plan.Remove {
			if err := a.removeBuild(name, b); err != nil {
				log.Error(err, "cannot remove an old build", "build", b)
				continue
			}
			log.Info("removed a build no Instance uses", "build", b)
			acted = true
		}
		switch {
		case plan.Check:
			a.checkBuild(ctx, in, st, log)
			acted = true
		case plan.Download != "":
			a.downloadBuild(ctx, in, st, plan.Download, log)
			acted = true
		}
		if acted {
			continue
		}
		wait := plan.Wake
		if wait <= 0 {
			wait = time.Minute
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-st.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// publishInstallStatus records what the node reports for one Installation
// and, when that changed, has the heartbeat write it now.
func (a *Agent) publishInstallStatus(st *installState, s v1.NodeInstallation) {
	a.inst.mu.Lock()
	changed := !sameNodeInstallation(st.status, s)
	st.status = s
	a.inst.mu.Unlock()
	if changed {
		a.nudgeStatus()
	}
}

func sameNodeInstallation(a, b v1.NodeInstallation) bool {
	ta, tb := a.CheckedAt, b.CheckedAt
	a.CheckedAt, b.CheckedAt = nil, nil
	sameTime := (ta == nil) == (tb == nil) && (ta == nil || ta.Equal(tb))
	return sameTime && fmt.Sprint(a) == fmt.Sprint(b)
}

// nodeInstallations is status.installations: every worker's report.
func (a *Agent) nodeInstallations() []v1.NodeInstallation {
	a.inst.mu.Lock()
	defer a.inst.mu.Unlock()
	out := make([]v1.NodeInstallation, 0, len(a.inst.workers))
	for _, st := range a.inst.workers {
		if st.status.Name != "" {
			out = append(out, *st.status.DeepCopy())
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// checkBuild asks Steam for the branch's build.
func (a *Agent) checkBuild(ctx context.Context, in *v1.Installation, st *installState, log logr.Logger) {
	build, size, err := a.o.Steamcmd.Check(ctx, in.Spec.AppID, in.Spec.Branch)
	if ctx.Err() != nil {
		return
	}
	if err == nil {
		// steamcmd may have updated itself: the games' copy of its
		// library follows.
		if err := a.copySteamClient(true); err != nil {
			log.Info("cannot copy steamcmd's client library for the games", "error", err.Error())
		}
	}
	a.inst.mu.Lock()
	defer a.inst.mu.Unlock()
	l := &st.local
	request := in.Annotations[v1.AnnotationCheckRequestedAt]
	newRequest := request != l.CheckRequest
	l.CheckRequest = request
	if err != nil {
		// CheckedAt stays the last successful check's (what status and
		// rollout status show); the retry waits for the backoff.
		log.Info("cannot ask Steam for the branch's build", "branch", in.Spec.Branch, "error", err.Error())
		a.failedLocked(st, err, "CheckFailed", false)
		return
	}
	if newRequest && st.lastFailedDownload {
		// An admin asked again after a failed download: try it now.
		l.RetryAt = time.Time{}
	}
	if l.LatestSeen != build {
		log.Info("the branch's build", "branch", in.Spec.Branch, "build", build, "was", l.LatestSeen, "bytes", size)
	}
	l.LatestSeen, l.Size, l.CheckedAt, l.CheckedFor = build, size, time.Now(), in.Status.WantedBuild
	l.FailedCheck = false
	if !st.lastFailedDownload {
		l.Failures, l.Reason, l.Message = 0, "", ""
	}
}

// failedLocked records a failure and its backoff (a.inst.mu held).
func (a *Agent) failedLocked(st *installState, err error, fallback string, download bool) {
	l := &st.local
	l.Failures++
	l.RetryAt = time.Now().Add(installer.RetryAfter(l.Failures))
	l.Reason, l.Message = fallback, err.Error()
	var f Failure
	if errors.As(err, &f) && f.FailureReason() != "" {
		l.Reason = f.FailureReason()
	}
	st.lastFailedDownload = download
	l.FailedCheck = !download
}

// downloadBuild has steamcmd fetch build into the staging directory, as
// its own account, and moves the result into builds/ once it is checked
// and sealed (root-owned: neither steamcmd nor a game can change it).
func (a *Agent) downloadBuild(ctx context.Context, in *v1.Installation, st *installState, build string, log logr.Logger) {
	log.Info("downloading a build", "build", build)
	a.nudgeStatus()
	got, err := a.fetchBuild(ctx, in)
	if ctx.Err() != nil {
		return
	}
	a.inst.mu.Lock()
	if err != nil {
		a.failedLocked(st, err, "DownloadFailed", true)
		n, retry := st.local.Failures, st.local.RetryAt
		a.inst.mu.Unlock()
		log.Error(err, "download failed; the builds already here keep serving", "build", build, "attempt", n, "retryAt", retry.Format(time.RFC3339))
		return
	}
	st.local.Failures, st.local.Reason, st.local.Message, st.lastFailedDownload = 0, "", "", false
	if v1.NewerBuild(got, st.local.LatestSeen) {
		st.local.LatestSeen = got // the branch moved on during the download
	}
	a.inst.mu.Unlock()
	log.Info("build ready", "build", got)
	// Instances rendered from an older build now have a pending update.
	a.enqueueAll()
}

// fetchBuild runs the download and seals its result into builds/<build>.
func (a *Agent) fetchBuild(ctx context.Context, in *v1.Installation) (string, error) {
	acct, err := a.o.Steamcmd.Account()
	if err != nil {
		return "", fmt.Errorf("steamcmd's account: %w", err)
	}
	root, err := safefs.Open(a.o.Root)
	if err != nil {
		return "", err
	}
	defer root.Close()
	// installation/<name> and staging/ may be traversed (steamcmd reaches
	// its download directory through them), builds/ not even that: only
	// the overlay mounts, made by root, look into it.
	rootOwned := func(mode os.FileMode) safefs.Owner { return safefs.Owner{UID: 0, GID: 0, Mode: mode} }
	rel := func(p string) string { r, _ := filepath.Rel(a.o.Root, p); return r }
	if err := a.claimInstallationDir(root, in.Name); err != nil {
		return "", err
	}
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{a.paths.Staging(in.Name), 0o711}, {a.paths.Builds(in.Name), 0o700}} {
		if err := root.EnsureDir(rel(d.path), rootOwned(d.mode)); err != nil {
			return "", err
		}
		// Made by root before, or now: but checked, since the rename into
		// builds/ below trusts that nobody else can write either.
		if err := rootOnly(root, rel(d.path)); err != nil {
			return "", err
		}
	}
	staging, err := root.OpenDir(rel(a.paths.Staging(in.Name)))
	if err != nil {
		return "", err
	}
	defer staging.Close()
	dl, err := staging.MkdirAll(downloadDir, safefs.Owner{UID: acct.UID, GID: acct.GID, Mode: 0o700})
	if err != nil {
		return "", err
	}
	// A download cut off while it was being sealed is root's: give it back,
	// so steamcmd resumes it rather than failing on its own files.
	err = dl.ChownTree(0, acct.UID, acct.GID)
	dl.Close()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(a.paths.Staging(in.Name), downloadDir)
	a.inst.mu.Lock()
	size := int64(0)
	if st := a.inst.workers[in.Name]; st != nil {
		size = st.local.Size
	}
	a.inst.mu.Unlock()
	build, err := a.o.Steamcmd.Install(ctx, in.Spec.AppID, in.Spec.Branch, dir, size)
	if err != nil {
		return "", err
	}
	if !v1.IsBuildID(build) {
		return "", fmt.Errorf("steamcmd reported build %q, which is no build id", build)
	}
	// steamcmd's unit has ended (and its processes with it): from here on
	// the tree is root's, and nothing unprivileged can change it.
	dl, err = staging.OpenDir(downloadDir)
	if err != nil {
		return "", err
	}
	err = dl.ChownTree(acct.UID, 0, 0)
	if err == nil {
		err = dl.Chown(rootOwned(0o755))
	}
	dl.Close()
	if err != nil {
		return "", fmt.Errorf("seal build %s: %w", build, err)
	}
	target := a.paths.Build(in.Name, build)
	if _, err := os.Lstat(target); err == nil {
		// Already here (fetched before): the copy is not needed.
		return build, staging.RemoveAll(downloadDir)
	}
	// Both parents are root's and nobody else can write them, so the
	// rename cannot be redirected.
	if err := os.Rename(dir, target); err != nil {
		return "", fmt.Errorf("move build %s into place: %w", build, err)
	}
	return build, nil
}

// installationMarker marks installation/<name>/ as the installer's: only
// such a directory is written to and, once its Installation is gone,
// removed. Without it the name could be a folder of a hand-made
// installation/ (an Installation named left4dead2 or bin), the live lower
// layer of games on the predecessor's layout.
const installationMarker = ".left4me-installation"

// dirInUseError: installation/<name> exists and is not the installer's.
type dirInUseError struct{ dir string }

func (e dirInUseError) Error() string {
	return fmt.Sprintf("%s exists and was not made by the node's installer (it is part of a hand-made installation/, or an admin's): rename the Installation, or move that directory away", e.dir)
}

func (e dirInUseError) FailureReason() string { return "InstallationDirInUse" }

// claimInstallationDir makes installation/<name>/ (root's, 0711) with its
// marker, or checks that an existing one is the installer's and root's.
func (a *Agent) claimInstallationDir(root *safefs.Dir, name string) error {
	rootOwned := func(mode os.FileMode) safefs.Owner { return safefs.Owner{UID: 0, GID: 0, Mode: mode} }
	if err := root.EnsureDir("installation", rootOwned(0o755)); err != nil {
		return err
	}
	inst, err := root.OpenDir("installation")
	if err != nil {
		return err
	}
	defer inst.Close()
	if _, err := inst.Lstat(name); err == nil {
		if _, err := inst.Lstat(filepath.Join(name, installationMarker)); err != nil {
			return dirInUseError{dir: a.paths.InstallationDir(name)}
		}
	} else if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.ENOENT) {
		return err
	}
	d, err := inst.MkdirAll(name, rootOwned(0o711))
	if err != nil {
		return err
	}
	defer d.Close()
	if err := rootOnly(inst, name); err != nil {
		return err
	}
	return d.WriteFile(installationMarker, []byte("made by l4m-node for Installation "+name+"\n"), 0o644, 0, 0)
}

// rootOnly checks that a directory is root's and that nobody else may
// write it.
func rootOnly(d *safefs.Dir, rel string) error {
	st, err := d.Lstat(rel)
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Uid != 0 || st.Mode&0o022 != 0 {
		return fmt.Errorf("%s: want a directory of root's that only root writes, found uid %d mode %o", filepath.Join(d.Path, rel), st.Uid, st.Mode&0o7777)
	}
	return nil
}

// downloadDir is steamcmd's working copy in staging/.
const downloadDir = "download"

// readyBuilds lists builds/ (root's: only sealed, checked builds are there).
func (a *Agent) readyBuilds(name string) ([]string, error) {
	entries, err := os.ReadDir(a.paths.Builds(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && v1.IsBuildID(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return installer.SortBuilds(out), nil
}

// buildsInUse are the builds of an Installation that this host's games
// run or were started from: what their records say and what the mount
// units on the host stack (a unit written just before a crash, whose record
// was not, counts too).
func (a *Agent) buildsInUse(name string) map[string]bool {
	use := map[string]bool{}
	entries, err := os.ReadDir(filepath.Join(a.o.Root, "instances"))
	if err == nil {
		for _, e := range entries {
			if r := a.installedRecord(e.Name()); r.Spec.Installation == name && r.Spec.Build != "" {
				use[r.Spec.Build] = true
			}
		}
	}
	prefix := a.paths.Builds(name) + "/"
	files, err := a.o.Systemd.UnitFiles()
	if err != nil {
		a.o.Log.Error(err, "cannot list mount units; keeping every build", "installation", name)
		builds, _ := a.readyBuilds(name)
		for _, b := range builds {
			use[b] = true
		}
		return use
	}
	for _, f := range files {
		if !strings.HasSuffix(f, ".mount") {
			continue
		}
		text, err := a.o.Systemd.ReadUnit(f)
		if err != nil {
			continue
		}
		for _, part := range strings.FieldsFunc(text, func(r rune) bool { return r == ':' || r == ',' || r == '=' || r == '\n' }) {
			if b, ok := strings.CutPrefix(part, prefix); ok && v1.IsBuildID(b) {
				use[b] = true
			}
		}
	}
	return use
}

// removeBuild deletes a build nothing uses (root's tree: no game or
// steamcmd can have planted anything in it).
func (a *Agent) removeBuild(name, build string) error {
	d, err := safefs.Open(a.paths.Builds(name))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.RemoveAll(build)
}

// chooseBuild picks the bottom layer for an Instance of a Blueprint naming
// installation name, whose game was last started from rec: the wanted
// build once it is ready here; until then the build the game already runs.
// found is false when no Installation of that name exists (the hand-made
// installation/ is used); build is "" with found when nothing is ready.
func (a *Agent) chooseBuild(name string, rec record) (build string, found bool, why string) {
	in := a.installation(name)
	if in == nil {
		return "", false, ""
	}
	ready, err := a.readyBuilds(name)
	if err != nil {
		return "", true, err.Error()
	}
	wanted := in.Status.WantedBuild
	if wanted != "" && in.DeletionTimestamp == nil && contains(ready, wanted) {
		return wanted, true, ""
	}
	if rec.Spec.Installation == name && contains(ready, rec.Spec.Build) {
		return rec.Spec.Build, true, ""
	}
	switch {
	case in.DeletionTimestamp != nil:
		return "", true, fmt.Sprintf("Installation %s is being deleted", name)
	case wanted == "":
		return "", true, fmt.Sprintf("Installation %s has no build yet (no node has seen branch %s on Steam)", name, in.Spec.Branch)
	}
	why = fmt.Sprintf("build %s of Installation %s is not ready on this node", wanted, name)
	a.inst.mu.Lock()
	if st := a.inst.workers[name]; st != nil && st.status.Message != "" {
		why += ": " + st.status.Message
	} else if st == nil {
		why += " (its nodeSelector does not select this node)"
	}
	a.inst.mu.Unlock()
	return "", true, why
}

// removeOrphanInstallations deletes installation/<name>/ trees of
// Installations that no longer exist, once no game here uses them. Only
// directories with a builds/ or staging/ inside are ours: the hand-made
// tree beside them is never touched.
func (a *Agent) removeOrphanInstallations() {
	entries, err := os.ReadDir(a.paths.Installation())
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || a.installation(name) != nil || a.installerBusy(name) {
			continue
		}
		// Only a directory the installer made: a folder of the hand-made
		// installation/ (left4dead2/, bin/) is the games' and stays.
		if _, err := os.Lstat(filepath.Join(a.paths.InstallationDir(name), installationMarker)); err != nil {
			continue
		}
		if len(a.buildsInUse(name)) > 0 {
			continue
		}
		d, err := safefs.Open(a.paths.Installation())
		if err != nil {
			return
		}
		if err := d.RemoveAll(name); err != nil {
			a.o.Log.Error(err, "cannot remove a deleted Installation's builds", "installation", name)
		} else {
			a.o.Log.Info("removed a deleted Installation's builds", "installation", name)
		}
		d.Close()
	}
}
