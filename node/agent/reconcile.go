package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/node/systemd"
	"github.com/left4me/left4me/node/unit"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// reconcile makes one Instance on this node what it should be.
func (a *Agent) reconcile(ctx context.Context, k string) error {
	ns, name, _ := strings.Cut(k, "/")
	id := unit.ID(ns, name)
	a.mu.Lock()
	cached := a.instances[k]
	a.mu.Unlock()
	if cached == nil {
		// Not bound here (any more): nothing of it may stay on this host.
		a.useOverlays(k, nil)
		return a.teardown(ctx, id, false)
	}
	in := cached.DeepCopy()
	if in.DeletionTimestamp != nil {
		a.useOverlays(k, nil)
		if err := a.teardown(ctx, id, false); err != nil {
			// Say what is true while it waits: not Ready, and whether its
			// game and mount are still there.
			if werr := a.writeStatus(ctx, in, a.terminatingStatus(ctx, in, id, err)); werr != nil {
				a.o.Log.Error(werr, "cannot report a stuck deletion", "instance", k)
			}
			return err
		}
		return a.dropFinalizer(ctx, in)
	}
	if !contains(in.Finalizers, Finalizer) {
		// The finalizer goes on before anything touches the host, so a
		// delete can never leave the host dirty; carry on with the version
		// the patch returned rather than waiting for the watch to bring it.
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"finalizers": append(in.Finalizers, Finalizer), "resourceVersion": in.ResourceVersion}})
		obj, err := a.o.Client.Patch(ctx, instanceRes, ns, name, "application/merge-patch+json", patch, false)
		if err != nil {
			return fmt.Errorf("add finalizer to %s: %w", k, err)
		}
		in = obj.(*v1.Instance)
		a.wrote(in)
	}
	status := in.Status.DeepCopy()
	status.NodeName = a.o.NodeName
	status.UnitName = unit.ServiceName(id)
	status.ObservedGeneration = in.Generation
	err := a.realize(ctx, in, id, status)
	if err != nil {
		a.slots.give(id) // a start that failed on the way holds no slot while it backs off
	}
	if werr := a.writeStatus(ctx, in, status); werr != nil && err == nil {
		err = werr
	}
	return err
}

// realize runs or stops the game and fills status; refusals are
// conditions, not errors (retrying would not change them).
func (a *Agent) realize(ctx context.Context, in *v1.Instance, id string, st *v1.InstanceStatus) error {
	t0 := time.Now()
	step := func(what string) { a.o.Log.V(2).Info("step", "instance", id, "what", what, "at", time.Since(t0)) }
	defer step("end")
	if in.Spec.State == v1.StateStopped {
		// A stopped game needs no Overlay fetched (its spec.json keeps the
		// entries it ran on until it starts again).
		a.useOverlays(key(in.Namespace, in.Name), nil)
		if err := a.stopGame(ctx, id); err != nil {
			return err
		}
		st.Phase = v1.PhaseStopped
		setCond(st, v1.InstanceUnitActive, false, "Stopped", "the Instance is Stopped")
		setCond(st, v1.InstanceMounted, false, "Stopped", "unmounted; the upper dir is kept")
		setCond(st, v1.ConditionReady, false, "Stopped", "the Instance is Stopped")
		// Nothing runs: no players, no map, no slots to show.
		st.MainPID, st.Players, st.MaxPlayers, st.Map = 0, 0, 0, ""
		return nil
	}
	bpObj, err := a.reference(ctx, blueprintRes, in.Namespace, in.Spec.BlueprintRef.Name)
	if apierrors.IsNotFound(err) {
		a.useOverlays(key(in.Namespace, in.Name), nil)
		return a.refuse(ctx, id, st, "BlueprintNotFound", fmt.Sprintf("Blueprint %q does not exist", in.Spec.BlueprintRef.Name))
	}
	if err != nil {
		return err
	}
	bp := bpObj.(*v1.Blueprint)
	stk, err := a.stackOverlays(ctx, in, bp)
	defer stk.release(a)
	if err != nil {
		return err
	}
	if stk.refused != nil {
		return a.refuseOverlay(ctx, id, st, *stk.refused)
	}
	layers, usedOverlays := stk.layers, stk.used
	var cfgOverlays []string

	port := in.GamePort()
	outOfRange := in.Spec.Port != 0 && (port < a.o.PortMin || port > a.o.PortMax)
	hasGame, err := a.o.Systemd.HasUnitFile(unit.ServiceName(id))
	if err != nil {
		return err
	}
	if stk.missing != nil {
		if !hasGame {
			return a.refuseOverlay(ctx, id, st, *stk.missing)
		}
		// A fetched Overlay's new content is not here (it failed, or its
		// source is not fetched yet): the game keeps running on what it
		// was started from, its mount untouched, until the content is.
		setCond(st, v1.InstanceOverlaysReady, false, stk.missing.reason, stk.missing.msg+"; the game keeps running on what it was started with")
		a.installedRecord(id).reportRunning(st)
		return a.observe(ctx, id, port, st)
	}
	setCond(st, v1.InstanceOverlaysReady, true, "Resolved", stk.summary(a))
	if port == 0 || outOfRange && !hasGame {
		// The scheduler allocates ports (atomically, in etcd); without one,
		// or with one a user named outside this node's range, nothing
		// new starts. Its Scheduled condition says why it waits. A game
		// already running on a port the range no longer holds (the range
		// was changed) keeps running: only a user's decision stops it.
		st.Phase = v1.PhasePending
		return nil
	}
	step("resolved")
	installed := a.installedRecord(id)
	base, build, instName := a.paths.Installation(), "", bp.InstallationName()
	if b, found, why := a.chooseBuild(instName, installed); found && b == "" {
		// Nothing starts before its build is here; a game already running
		// keeps its build (chooseBuild picks it while it is on disk).
		setCond(st, v1.InstanceInstallationReady, false, v1.ReasonInstallationNotReady, why)
		if !hasGame {
			st.Phase = v1.PhasePending
			setCond(st, v1.ConditionReady, false, v1.ReasonInstallationNotReady, why)
			return nil
		}
		// What runs keeps running, on what it was started from.
		installed.reportRunning(st)
		return a.observe(ctx, id, port, st)
	} else if found {
		base, build = a.paths.Build(instName, b), b
		setCond(st, v1.InstanceInstallationReady, true, "BuildReady", fmt.Sprintf("build %s of Installation %s", b, instName))
	} else {
		instName = ""
		setCond(st, v1.InstanceInstallationReady, true, "HandMade", "no Installation "+bp.InstallationName()+" exists: the node's own "+a.paths.Installation())
	}
	// Render everything first; nothing reaches the host until we know
	// whether this is a new game, the same one, or an update to roll out
	// (and nothing at all for a refused one).
	var files []stagedFile
	for i := len(layers) - 1; i >= 0; i-- { // overlays' own configs, bottom first
		name := bp.Spec.Overlays[i]
		data, found, err := overlayConfig(layers[i])
		if err != nil {
			return a.refuse(ctx, id, st, "InvalidOverlay", fmt.Sprintf("Overlay %s: %v", name, err))
		}
		if found {
			files = append(files, stagedFile{unit.OverlayConfigName(len(cfgOverlays), name), data})
			cfgOverlays = append(cfgOverlays, name)
		}
	}
	acct, err := a.o.Accounts.Ensure(id)
	if err != nil {
		return fmt.Errorf("account for %s: %w", id, err)
	}
	step("account")
	pw, err := a.prepareDirs(id, acct)
	if err != nil {
		return err
	}
	step("dirs")
	spec := unit.Spec{
		ID: id, Namespace: in.Namespace, Name: in.Name, Blueprint: bp.Name, Hostname: in.Spec.Hostname,
		Game: bp.Spec.Game, Cvars: bp.Spec.Cvars, Args: bp.Spec.Args, Resources: bp.Spec.Resources,
		Ports:          unit.Ports{Game: in.Ports().Game, Client: in.Ports().Client},
		OverlayConfigs: cfgOverlays, RCONPassword: pw, User: acct.Name,
		Installation: instName, Build: build, OverlayEntries: stk.entries,
		KeepHostMount: a.o.MountDriver == unit.DriverFuseOverlayfs,
	}
	cfg, err := unit.ServerCfg(spec)
	if err != nil {
		return a.refuse(ctx, id, st, "InvalidSpec", err.Error())
	}
	files = append(files, stagedFile{"server.cfg", cfg})
	generated := filepath.Join(a.paths.Generated(id), filesHash(files))
	lowers := []string{generated}
	for _, l := range layers {
		lowers = append(lowers, l.Path)
	}
	mountArgs, err := unit.OverlayMount(a.paths, id, lowers, base, a.o.MountDriver)
	if err != nil {
		return a.refuse(ctx, id, st, "InvalidOverlay", err.Error())
	}
	// A kernel overlay is mounted by a oneshot unit the game's start pulls
	// in (see unit.Service); fuse-overlayfs by a .mount unit, whose daemon
	// lives in it.
	var mountText string
	if spec.KeepHostMount {
		mountText, err = unit.MountOver(a.paths, id, lowers, base, a.o.MountDriver)
	} else {
		mountText, err = unit.OverlayService(a.paths, id, mountArgs)
	}
	if err != nil {
		return a.refuse(ctx, id, st, "InvalidOverlay", err.Error())
	}
	svcText, err := unit.Service(a.paths, spec)
	if err != nil {
		return a.refuse(ctx, id, st, "InvalidSpec", err.Error())
	}
	want := restartStamps{Blueprint: bp.Annotations[v1.AnnotationRestartedAt], Instance: in.Annotations[v1.AnnotationRestartedAt]}
	hash := templateHash(want, files, mountText, svcText)
	st.ObservedBlueprint = v1.BlueprintVersion(bp, usedOverlays)
	mountName, svcName := a.stackUnit(id), unit.ServiceName(id)
	var svc systemd.State
	// Asking systemd about a unit whose file does not exist yet loads it as
	// not-found, and then only a daemon-reload (slow) makes it startable.
	if has, err := a.o.Systemd.HasUnitFile(svcName); err != nil {
		return err
	} else if has {
		if svc, err = a.o.Systemd.State(ctx, svcName); err != nil {
			return err
		}
	}
	host := hostUnits{Game: svc.ActiveState, Installed: installed.TemplateHash}
	if host.Mount, err = a.o.Systemd.ReadUnit(mountName); err != nil {
		return err
	}
	if host.Service, err = a.o.Systemd.ReadUnit(svcName); err != nil {
		return err
	}
	step("rendered")
	plan := planUnits(wantUnits{Hash: hash, Approved: in.Annotations[v1.AnnotationApprovedTemplate] == hash, Mount: mountText, Service: svcText,
		KeepHostMount: spec.KeepHostMount}, host)
	if plan.Hold {
		installed.reportRunning(st)
		st.PendingTemplateHash = hash
		if installed.Spec.Build != build && build != "" {
			setCond(st, v1.InstanceUpdatePending, true, v1.ReasonNewBuild,
				fmt.Sprintf("build %s of Installation %s is ready (the game runs %s); it restarts onto it when the rollout allows (policy %s)",
					build, instName, orHandMade(installed.Spec.Build), bp.Spec.Rollout.Policy))
		} else if templateHash(installed.stamps(), files, mountText, svcText) == installed.TemplateHash {
			setCond(st, v1.InstanceUpdatePending, true, v1.ReasonRestartRequested, restartRequestedMessage(in, bp, want, installed.stamps()))
		} else {
			setCond(st, v1.InstanceUpdatePending, true, v1.ReasonWaitingForRollout,
				fmt.Sprintf("Blueprint %s or its Overlays changed; restarts when the rollout allows (policy %s)", bp.Name, bp.Spec.Rollout.Policy))
		}
		return a.observe(ctx, id, port, st)
	}
	if plan.Mount && !spec.KeepHostMount && !a.slots.take(id, key(in.Namespace, in.Name)) {
		// Woken when a game starting before it runs (startSlots).
		st.Phase = v1.PhasePending
		setCond(st, v1.InstanceMounted, false, "WaitingToStart",
			fmt.Sprintf("%d games are starting on this node; this one mounts and starts when one of them runs", a.slots.limit))
		return nil
	}
	if err := a.stage(id, filepath.Base(generated), files, acct); err != nil {
		return err
	}
	if err := a.adoptFiles(id, acct); err != nil {
		return err
	}
	if err := writeAtomic(a.paths.EnvFile(id), unit.EnvFile(spec), 0o644); err != nil {
		return fmt.Errorf("write env file of %s: %w", id, err)
	}
	step("staged")
	if err := a.executeUnits(ctx, id, plan, mountText, svcText); err != nil {
		return err
	}
	step("written+reloaded")
	if plan.Mount {
		if err := a.prepareMount(ctx, id, mountName, spec.KeepHostMount, files); err != nil {
			setCond(st, v1.InstanceMounted, false, "MountFailed", err.Error())
			return err
		}
	}
	if plan.ReleaseMount {
		a.releaseHostMount(id)
		step("host mount released")
	}
	if err := a.pruneGenerated(id, filepath.Base(generated)); err != nil {
		return err
	}
	for _, l := range layers {
		if err := l.Verify(); err != nil {
			// refuse stops the game and the mount, and says so if it cannot.
			return a.refuse(ctx, id, st, "OverlayChanged", err.Error())
		}
	}
	step("mounted")
	if spec.KeepHostMount {
		setCond(st, v1.InstanceMounted, true, "Mounted", "overlay mounted at "+a.paths.Merged(id))
	}
	switch plan.Game {
	case gameRestart:
		a.forgetProbe(id) // what the old process answered says nothing now
		err = a.o.Systemd.Restart(ctx, svcName)
	case gameEnqueue:
		// A unit file systemd never saw: nothing to ask it first.
		err = a.o.Systemd.Enqueue(ctx, svcName)
	default:
		// The game's start is queued, not awaited: systemd runs many
		// starts at once, and its signal brings the result here.
		err = a.ensureStarted(ctx, svcName, false)
	}
	step("start queued")
	if err != nil {
		setCond(st, v1.InstanceUnitActive, false, "StartFailed", err.Error())
		st.Phase = v1.PhaseFailed
		return err
	}
	// Only now does the game run (or start from) the new template: what
	// spec.json and status say. A step that failed before leaves both at
	// the old one, so the retry restarts it, and the rollout keeps
	// counting it as restarting.
	rec := record{TemplateHash: hash, RestartedAt: want.Blueprint, InstanceRestartedAt: want.Instance, Spec: spec}
	if err := a.writeRecord(id, rec); err != nil {
		return err
	}
	rec.reportRunning(st)
	st.PendingTemplateHash = ""
	setCond(st, v1.InstanceUpdatePending, false, "UpToDate", "runs the current Blueprint and Overlays")
	return a.observe(ctx, id, port, st)
}

// executeUnits carries out a plan's first part: write the unit files that
// changed, reload if systemd knew one, and stop game and mount when the
// layers changed.
func (a *Agent) executeUnits(ctx context.Context, id string, p unitPlan, mountText, svcText string) error {
	mountName, svcName := a.stackUnit(id), unit.ServiceName(id)
	for _, u := range []struct {
		name, text string
		change     systemd.Change
	}{{mountName, mountText, p.MountChange}, {svcName, svcText, p.ServiceChange}} {
		if u.change == systemd.Unchanged {
			continue
		}
		if _, err := a.o.Systemd.WriteUnit(u.name, u.text); err != nil {
			return err
		}
	}
	if p.Reload {
		if err := a.o.Systemd.Reload(ctx); err != nil {
			return err
		}
	}
	if p.StopGame {
		a.forgetProbe(id)
		if err := a.o.Systemd.Stop(ctx, svcName); err != nil {
			return err
		}
	}
	if p.StopMount {
		if err := a.o.Systemd.Stop(ctx, mountName); err != nil {
			return err
		}
	}
	return nil
}

// ensureStarted starts a unit unless it is already active or on its way
// (a start job on an active unit is no-op work that systemd still signals).
func (a *Agent) ensureStarted(ctx context.Context, name string, wait bool) error {
	st, err := a.o.Systemd.State(ctx, name)
	if err != nil {
		return err
	}
	// Deactivating too: a game stopping (or crashing) still holds its
	// overlay, and a start queued now would mount another over the same
	// upper dir before it is gone; its unit signals again once it is.
	if st.ActiveState == "active" || st.ActiveState == "activating" || st.ActiveState == "reloading" || st.ActiveState == "deactivating" {
		return nil
	}
	if st.LoadState == "not-found" {
		// Loaded (as missing) before its file was written: reload first.
		if err := a.o.Systemd.Reload(ctx); err != nil {
			return err
		}
	}
	if !wait {
		return a.o.Systemd.Enqueue(ctx, name)
	}
	return a.o.Systemd.Start(ctx, name)
}

// observe fills status from the unit and the last A2S probe.
func (a *Agent) observe(ctx context.Context, id string, port int32, st *v1.InstanceStatus) error {
	svc, err := a.o.Systemd.State(ctx, unit.ServiceName(id))
	if err != nil {
		return err
	}
	st.Port, st.Address = port, a.o.Address
	st.MainPID, st.Restarts = int32(svc.MainPID), int32(svc.NRestarts)
	if svc.StartedAt > 0 {
		t := metav1.NewTime(time.UnixMicro(int64(svc.StartedAt)).Truncate(time.Second))
		st.StartTime = &t
	}
	active := svc.ActiveState == "active"
	setCond(st, v1.InstanceUnitActive, active, "Unit"+capitalize(svc.ActiveState), fmt.Sprintf("%s is %s (%s)", svc.Name, svc.ActiveState, svc.SubState))
	if active || svc.ActiveState == "failed" {
		a.slots.give(id) // its start is over
	}
	if a.o.MountDriver != unit.DriverFuseOverlayfs {
		// The overlay unit mounts as the game starts: the overlay is there
		// while it runs.
		if active {
			setCond(st, v1.InstanceMounted, true, "Mounted", "overlay mounted in the game's own mount namespace at "+a.paths.Merged(id))
		} else {
			setCond(st, v1.InstanceMounted, false, "MountsAtStart", "the game unit mounts its overlay as it starts")
		}
	}
	pr := a.probeFor(id, port)
	ready, info, why := pr.result()
	switch {
	case !active:
		st.Phase = v1.PhaseStarting
		if svc.ActiveState == "failed" {
			st.Phase = v1.PhaseFailed
		}
		setCond(st, v1.ConditionReady, false, "UnitNotActive", "the game unit is not running")
	case ready:
		st.Phase = v1.PhaseRunning
		st.Players, st.MaxPlayers, st.Map = int32(info.Players), int32(info.MaxPlayers), info.Map
		setCond(st, v1.ConditionReady, true, "A2SAnswered", fmt.Sprintf("%q answers on %s:%d", info.Name, st.Address, port))
	default:
		st.Phase = v1.PhaseStarting
		setCond(st, v1.ConditionReady, false, "NoA2SAnswer", why)
	}
	return nil
}

// terminatingStatus is an Instance's status while its deletion is stuck on
// this host: Terminating, not Ready, and the unit and mount as they are.
func (a *Agent) terminatingStatus(ctx context.Context, in *v1.Instance, id string, why error) *v1.InstanceStatus {
	st := in.Status.DeepCopy()
	st.Phase, st.Players = v1.PhaseTerminating, 0
	active := false
	if has, err := a.o.Systemd.HasUnitFile(unit.ServiceName(id)); err == nil && has {
		if svc, err := a.o.Systemd.State(ctx, unit.ServiceName(id)); err == nil {
			active = svc.ActiveState == "active" || svc.ActiveState == "deactivating"
			st.MainPID = int32(svc.MainPID)
		}
	}
	if !active {
		st.MainPID = 0
	}
	setCond(st, v1.InstanceUnitActive, active, "Terminating", "being deleted")
	m, err := mounted(a.paths.Merged(id))
	setCond(st, v1.InstanceMounted, m || err != nil, "Terminating", "being deleted")
	setCond(st, v1.ConditionReady, false, "Terminating", "being deleted; cleanup on the node failed: "+why.Error())
	return st
}

// refuse records why an Instance cannot run and makes sure nothing of it
// runs: no game unit, no mount.
func (a *Agent) refuse(ctx context.Context, id string, st *v1.InstanceStatus, reason, msg string) error {
	a.o.Log.Info("instance refused", "instance", id, "reason", reason, "message", msg)
	if err := a.teardown(ctx, id, true); err != nil {
		return err
	}
	setCond(st, v1.InstanceOverlaysReady, !strings.Contains(reason, "Overlay"), reason, msg)
	setCond(st, v1.InstanceMounted, false, reason, "not mounted: "+msg)
	setCond(st, v1.InstanceUnitActive, false, reason, "not started: "+msg)
	setCond(st, v1.ConditionReady, false, reason, msg)
	st.Phase, st.MainPID = v1.PhaseFailed, 0
	return nil
}

// stackUnit is the unit that mounts an Instance's stack: its oneshot
// overlay unit, or for fuse-overlayfs its .mount unit.
func (a *Agent) stackUnit(id string) string {
	if a.o.MountDriver == unit.DriverFuseOverlayfs {
		return unit.MountName(a.paths, id)
	}
	return unit.OverlayServiceName(id)
}

// units are every unit the node may have written for an Instance, game
// first: its game and stack units, and a .mount unit of a kernel overlay
// that nodes before the overlay units wrote (stopping and removing it
// frees its game of nothing: that game holds its own overlay).
func (a *Agent) units(id string) []string {
	names := []string{unit.ServiceName(id), a.stackUnit(id)}
	if a.o.MountDriver != unit.DriverFuseOverlayfs {
		names = append(names, unit.MountName(a.paths, id))
	}
	return names
}

// stopGame stops the game (SIGINT, then the stop timeout) and unmounts,
// keeping the files.
func (a *Agent) stopGame(ctx context.Context, id string) error {
	a.forgetProbe(id)
	a.slots.give(id)
	for _, name := range a.units(id) {
		// Asking systemd about a unit loads it and signals a change, which
		// would wake this loop again: ask only about units we wrote.
		if has, err := a.o.Systemd.HasUnitFile(name); err != nil {
			return err
		} else if !has {
			continue
		}
		st, err := a.o.Systemd.State(ctx, name)
		if err != nil {
			return err
		}
		if st.ActiveState == "inactive" || st.LoadState == "not-found" {
			continue
		}
		if err := a.o.Systemd.Stop(ctx, name); err != nil {
			return err
		}
	}
	// The game is gone: so goes a host copy of its overlay left by a start
	// that never ran (see unit.Service).
	if a.o.MountDriver != unit.DriverFuseOverlayfs {
		a.releaseHostMount(id)
	}
	return nil
}

// teardown removes every trace of an Instance from the host: units,
// mount, and (unless keepFiles) instances/<id> and runtime/<id>, including
// the root-owned work/work that overlayfs leaves with mode 000.
func (a *Agent) teardown(ctx context.Context, id string, keepFiles bool) error {
	if err := a.stopGame(ctx, id); err != nil {
		return err
	}
	removed := false
	for _, name := range a.units(id) {
		has, err := a.o.Systemd.HasUnitFile(name)
		if err != nil {
			return err
		}
		if has {
			if err := a.o.Systemd.RemoveUnit(name); err != nil {
				return err
			}
			removed = true
		}
	}
	if removed {
		if err := a.o.Systemd.Reload(ctx); err != nil {
			return err
		}
	}
	if keepFiles {
		return nil
	}
	// A host copy the game unit could not detach (see unit.Service).
	a.releaseHostMount(id)
	if m, err := mounted(a.paths.Merged(id)); err != nil || m {
		if err != nil {
			return fmt.Errorf("not removing %s's files: %w", id, err)
		}
		return fmt.Errorf("%s is still mounted; not removing its files", a.paths.Merged(id))
	}
	if err := a.removeFiles(id); err != nil {
		return err
	}
	a.wakeInstallers() // its build may be unused now
	a.wakeStoreGC()    // and its store entries
	// Its files are gone and nothing of it runs: the uid can go too (a
	// later Instance that gets it finds nothing of this one's).
	return a.o.Accounts.Remove(id)
}

func (a *Agent) dropFinalizer(ctx context.Context, in *v1.Instance) error {
	var keep []string
	for _, f := range in.Finalizers {
		if f != Finalizer {
			keep = append(keep, f)
		}
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"finalizers": keep, "resourceVersion": in.ResourceVersion}})
	_, err := a.o.Client.Patch(ctx, instanceRes, in.Namespace, in.Name, "application/merge-patch+json", patch, false)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("drop finalizer of %s/%s: %w", in.Namespace, in.Name, err)
	}
	a.o.Log.Info("instance cleaned up", "instance", in.Namespace+"/"+in.Name)
	return nil
}

// writeStatus writes status only when it changed (etcd stays quiet).
func (a *Agent) writeStatus(ctx context.Context, in *v1.Instance, st *v1.InstanceStatus) error {
	if reflect.DeepEqual(&in.Status, st) {
		return nil
	}
	out := in.DeepCopy()
	out.Status = *st
	obj, err := a.o.Client.UpdateStatus(ctx, instanceRes, out)
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil // a newer version is on its way through the watch
	}
	if err != nil {
		return fmt.Errorf("write status of %s/%s: %w", in.Namespace, in.Name, err)
	}
	a.wrote(obj.(*v1.Instance))
	return nil
}

// wrote records a version of an Instance this agent wrote itself. When the
// watch brings it back it only refreshes the cache: the reconcile that
// wrote it already acted on everything it says, and reconciling each of a
// node's own writes again would double the work of starting many games.
func (a *Agent) wrote(in *v1.Instance) {
	k := key(in.Namespace, in.Name)
	a.mu.Lock()
	defer a.mu.Unlock()
	if cur := a.instances[k]; cur != nil && rv(cur) < rv(in) {
		a.instances[k] = in
	}
	a.own[k] = in.ResourceVersion
}

func rv(o v1.Object) int64 {
	n, _ := strconv.ParseInt(o.GetResourceVersion(), 10, 64)
	return n
}

func setCond(st *v1.InstanceStatus, typ string, ok bool, reason, msg string) {
	s := metav1.ConditionFalse
	if ok {
		s = metav1.ConditionTrue
	}
	reason = strings.Map(func(r rune) rune {
		if (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			return r
		}
		return -1
	}, reason)
	if reason == "" {
		reason = "Unknown"
	}
	if len(msg) > 1024 {
		msg = msg[:1024]
	}
	old := meta.FindStatusCondition(st.Conditions, typ)
	if old != nil && old.Status == s && old.Reason == reason && old.Message == msg {
		return
	}
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: typ, Status: s, Reason: reason, Message: msg})
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// mounted reads PID 1's mountinfo, the host's mount namespace, where the
// .mount units live (the agent may run in a private one), and not device
// numbers, which miss a same-filesystem bind mount.
func mounted(path string) (bool, error) {
	data, err := os.ReadFile("/proc/1/mountinfo")
	if err != nil {
		return false, fmt.Errorf("read the host's mount table: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && unescapeMountinfo(f[4]) == path {
			return true, nil
		}
	}
	return false, nil
}

// unescapeMountinfo undoes the kernel's octal escapes in mountinfo paths
// (space, tab, newline and backslash are written as \040, \011, \012, \134).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// stagedFile is a generated config file the game reads from its cfg/
// (the generated layer's left4dead2/cfg).
type stagedFile struct {
	name string
	data []byte
}

// restartStamps are the left4me.io/restartedAt annotations of a Blueprint
// and of one of its Instances (l4mctl rollout restart blueprint/NAME,
// instance/NAME): a new value of either is a new template.
type restartStamps struct{ Blueprint, Instance string }

// templateHash names what a game runs: every byte the node renders for it,
// plus the restart stamps. Two renderings with the same hash need no
// restart. An Instance without a stamp of its own hashes as before there
// were Instance stamps, so running games do not restart when the node is
// upgraded.
func templateHash(stamps restartStamps, files []stagedFile, texts ...string) string {
	h := sha256.New()
	fmt.Fprintf(h, "restartedAt=%s\n", stamps.Blueprint)
	if stamps.Instance != "" {
		fmt.Fprintf(h, "instanceRestartedAt=%s\n", stamps.Instance)
	}
	for _, f := range files {
		fmt.Fprintf(h, "%s %d\n", f.name, len(f.data))
		h.Write(f.data)
	}
	for _, t := range texts {
		fmt.Fprintf(h, "%d\n%s", len(t), t)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// record is instances/<id>/spec.json: what the running game was rendered
// from (no secrets), and its template hash.
type record struct {
	TemplateHash string `json:"templateHash"`
	// RestartedAt is the Blueprint's restartedAt the game was started with,
	// InstanceRestartedAt the Instance's.
	RestartedAt         string    `json:"restartedAt,omitempty"`
	InstanceRestartedAt string    `json:"instanceRestartedAt,omitempty"`
	Spec                unit.Spec `json:"spec"`
}

func (r record) stamps() restartStamps {
	return restartStamps{Blueprint: r.RestartedAt, Instance: r.InstanceRestartedAt}
}

// reportRunning says in st what the game on the host runs: the record's
// template, build and restart stamps.
func (r record) reportRunning(st *v1.InstanceStatus) {
	st.TemplateHash, st.Installation, st.Build = r.TemplateHash, r.Spec.Installation, r.Spec.Build
	st.RestartedAt, st.BlueprintRestartedAt = r.InstanceRestartedAt, r.RestartedAt
}

// restartRequestedMessage is UpdatePending's message when only a restart
// stamp changed: who asked, when, what the game waits for, and how to skip
// the wait.
func restartRequestedMessage(in *v1.Instance, bp *v1.Blueprint, want, running restartStamps) string {
	what := fmt.Sprintf("l4mctl rollout restart blueprint/%s asked for a restart at %s", bp.Name, want.Blueprint)
	if want.Instance != running.Instance {
		what = fmt.Sprintf("l4mctl rollout restart instance/%s asked for a restart at %s", in.Name, want.Instance)
	}
	wait := "when the rollout allows (policy Immediate: in its turn, at most maxUnavailable at a time)"
	if bp.Spec.Rollout.Policy != v1.RolloutImmediate {
		wait = fmt.Sprintf("once no players are on it and it is its turn (policy %s)", bp.Spec.Rollout.Policy)
	}
	return fmt.Sprintf("%s; it restarts %s; l4mctl rollout restart --force instance/%s restarts it now, players or not", what, wait, in.Name)
}

// installedRecord is what the game on the host was started with (empty:
// nothing yet).
func (a *Agent) installedRecord(id string) record {
	var r record
	data, err := os.ReadFile(a.paths.SpecFile(id))
	if err == nil {
		err = json.Unmarshal(data, &r)
	}
	if err != nil && !os.IsNotExist(err) {
		a.o.Log.Error(err, "cannot read what the game was started with; treating it as an older template", "instance", id)
	}
	return r
}

// writeRecord writes spec.json once the game runs what it says (atomically:
// an operator or a restarted agent never reads half a file).
func (a *Agent) writeRecord(id string, r record) error {
	r.Spec.RCONPassword = "" // it lives in rcon_password, 0600
	spec := r.Spec
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	old := a.installedRecord(id).Spec
	if err := writeAtomic(a.paths.SpecFile(id), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("record spec of %s: %w", id, err)
	}
	if old.Build != "" && (old.Build != spec.Build || old.Installation != spec.Installation) {
		// The game left a build: the installer may remove it now, not at
		// its next check.
		a.wakeInstallers()
	}
	if !maps.Equal(old.OverlayEntries, spec.OverlayEntries) {
		// It may have left a store entry too.
		a.wakeStoreGC()
	}
	return nil
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	if old, err := os.ReadFile(path); err == nil && string(old) == string(data) {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func orHandMade(build string) string {
	if build == "" {
		return "the hand-made installation/"
	}
	return "build " + build
}
