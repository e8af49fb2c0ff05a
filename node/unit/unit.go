// Package unit renders what a node writes for one Instance: the generated
// server.cfg, the overlay .mount unit and the hardened game .service unit.
// It is pure (no I/O) so every byte is covered by golden files, and it
// re-validates what it renders: the host checks again what the API checked.
package unit

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/coreos/go-systemd/v22/unit"
	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/validation"
)

// Paths is the host layout below LEFT4ME_ROOT, as the predecessor had it.
type Paths struct {
	Root string // e.g. /var/lib/left4me
	// SteamcmdDir is steamcmd's directory (default <Root>/steamcmd), whose
	// linux32/steamclient.so the agent copies to SteamLibDir for the games.
	SteamcmdDir string
}

// Installation is the shared game install.
func (p Paths) Installation() string { return filepath.Join(p.Root, "installation") }

// InstallationDir is installation/<name>: one Installation's builds and
// its staging directory (beside the hand-made tree a node without
// Installation objects uses).
func (p Paths) InstallationDir(name string) string { return filepath.Join(p.Installation(), name) }

// Builds holds an Installation's ready builds, one immutable root-owned
// directory each, named by build id.
func (p Paths) Builds(name string) string { return filepath.Join(p.InstallationDir(name), "builds") }

// Build is one ready build: the bottom layer of the Instances rendered
// with it.
func (p Paths) Build(name, build string) string { return filepath.Join(p.Builds(name), build) }

// Staging is where steamcmd downloads the next build, as its own account;
// a build moves to Builds only once it is complete and checked.
func (p Paths) Staging(name string) string { return filepath.Join(p.InstallationDir(name), "staging") }

// Overlays is where overlay references are resolved.
func (p Paths) Overlays() string { return filepath.Join(p.Root, "overlays") }

// Instance is instances/<id>: rendered spec, env, the game's home.
func (p Paths) Instance(id string) string { return filepath.Join(p.Root, "instances", id) }

// Runtime is runtime/<id> with upper, work and merged.
func (p Paths) Runtime(id string) string { return filepath.Join(p.Root, "runtime", id) }

// Upper, Work and Merged are the overlay mount's directories.
func (p Paths) Upper(id string) string  { return filepath.Join(p.Runtime(id), "upper") }
func (p Paths) Work(id string) string   { return filepath.Join(p.Runtime(id), "work") }
func (p Paths) Merged(id string) string { return filepath.Join(p.Runtime(id), "merged") }

// EnvFile is instances/<id>/instance.env: who the game is, for scripts and
// plugins that run inside it (and for an operator reading the host).
func (p Paths) EnvFile(id string) string { return filepath.Join(p.Instance(id), "instance.env") }

// SpecFile is instances/<id>/spec.json: what the node rendered the game
// from, without secrets.
func (p Paths) SpecFile(id string) string { return filepath.Join(p.Instance(id), "spec.json") }

// Generated is instances/<id>/generated: root-owned, read-only layers the
// node renders (server.cfg with the RCON password, the overlays' configs),
// one directory per content hash, stacked on top of the Blueprint's
// overlays. The game cannot change them, and the agent never writes into
// a directory the game can.
func (p Paths) Generated(id string) string { return filepath.Join(p.Instance(id), "generated") }

// SteamcmdLibDir is steamcmd's own linux32/, where it keeps the 32-bit
// Steam client library. The steamcmd account owns it, so games never see
// it: the agent copies the library out (see SteamLibDir).
func (p Paths) SteamcmdLibDir() string {
	if p.SteamcmdDir != "" {
		return filepath.Join(p.SteamcmdDir, "linux32")
	}
	return filepath.Join(p.Root, "steamcmd", "linux32")
}

// SteamLibDir is the root-owned copy of steamcmd's client library that
// every game's home links to (and its unit binds read-only): a directory
// the steamcmd account cannot change or replace with a link.
func (p Paths) SteamLibDir() string { return filepath.Join(p.Root, "steamclient") }

// Home is the home directory the game runs with (it holds
// .steam/sdk32/steamclient.so, without which srcds drops to LAN mode).
func (p Paths) Home(id string) string { return filepath.Join(p.Instance(id), "home") }

// ID names an Instance on a host: "<namespace>.<name>". Namespaces and
// names are DNS labels, which hold no '.', so IDs never collide.
func ID(namespace, name string) string { return namespace + "." + name }

// ServiceName is the game unit, readable in `systemctl status`:
// l4m-default.coop-1.service.
func ServiceName(id string) string { return "l4m-" + id + ".service" }

// ParseServiceName is ServiceName backwards: the namespace and name of a
// game unit, ok false for any other unit.
func ParseServiceName(unitName string) (namespace, name string, ok bool) {
	id, ok := strings.CutPrefix(unitName, "l4m-")
	if !ok {
		return "", "", false
	}
	id, ok = strings.CutSuffix(id, ".service")
	if !ok {
		return "", "", false
	}
	namespace, name, ok = strings.Cut(id, ".")
	// A name with a '.' is no Instance's (a game's overlay unit).
	return namespace, name, ok && namespace != "" && name != "" && !strings.Contains(name, ".")
}

// MountName is the .mount unit of the merged tree (systemd derives it
// from the path).
func MountName(p Paths, id string) string { return unit.UnitNamePathEscape(p.Merged(id)) + ".mount" }

// Slice holds every game unit, so an operator can see and limit them together.
const Slice = "left4me.slice"

// User is the unprivileged account the game runs as.
const User = "left4me"

// Ports are the ones a game binds; all are allocated, none left to srcds.
type Ports struct {
	Game   int32 // UDP game traffic and TCP RCON
	Client int32 // UDP client port
	TV     int32 // UDP SourceTV; 0 runs with -nohltv
}

// Spec is everything rendering needs about one Instance.
type Spec struct {
	ID        string
	Namespace string
	Name      string
	Blueprint string
	Hostname  string
	Game      v1.GameSpec
	Cvars     []v1.Cvar
	Args      []string
	Resources v1.Resources
	Ports     Ports
	// OverlayConfigs are the overlays that ship cfg/server.cfg, bottom of
	// the stack first; each is staged as server_overlay_<i>_<name>.cfg.
	OverlayConfigs []string
	RCONPassword   string
	// User runs the game: the Instance's own account (its group has the
	// same name). Default User.
	User string
	// KeepHostMount: the overlay stays mounted on the host for as long as
	// the game runs (fuse-overlayfs, whose daemon lives in the mount unit).
	// Otherwise the game's overlay unit mounts it as the game starts, and
	// the node detaches the host's copy once the game's own namespace
	// holds it (see Service).
	KeepHostMount bool
	// Installation and Build name the bottom layer: an Installation's build
	// (empty: the hand-made installation/).
	Installation string `json:",omitempty"`
	Build        string `json:",omitempty"`
	// OverlayEntries are the node's store entries the stack holds, by
	// Overlay name (entry names as node/store writes them, "files-<hex>"):
	// spec.json records them so that an entry a game was started from is
	// kept while it runs, also across agent restarts. Path overlays have
	// none. Nothing is rendered from it.
	OverlayEntries map[string]string `json:",omitempty"`
}

// EnvFile renders instance.env. Values are checked names and numbers, so
// no quoting is needed.
func EnvFile(s Spec) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "L4M_NAMESPACE=%s\nL4M_INSTANCE=%s\nL4M_BLUEPRINT=%s\n", s.Namespace, s.Name, s.Blueprint)
	fmt.Fprintf(&b, "L4M_GAME_PORT=%d\nL4M_CLIENT_PORT=%d\n", s.Ports.Game, s.Ports.Client)
	return []byte(b.String())
}

// OverlayConfigName is the staged name of an overlay's own server.cfg.
func OverlayConfigName(i int, overlay string) string {
	return fmt.Sprintf("server_overlay_%d_%s.cfg", i, overlay)
}

// check re-validates what ends up in files and argv.
func (s *Spec) check() error {
	var errs field.ErrorList
	p := field.NewPath("spec")
	errs = append(errs, validation.ValidateConfigValue(s.Hostname, validation.MaxHostnameLength, p.Child("hostname"))...)
	bs := v1.BlueprintSpec{Game: s.Game, Cvars: s.Cvars, Args: s.Args, Resources: s.Resources}
	errs = append(errs, validation.ValidateBlueprintSpec(&bs, field.NewPath("blueprint"))...)
	if err := validation.ValidateConfigValue(s.RCONPassword, 64, field.NewPath("rconPassword")); len(err) > 0 || len(s.RCONPassword) < 16 {
		errs = append(errs, field.Invalid(field.NewPath("rconPassword"), "(hidden)", "must be 16 to 64 printable characters"))
	}
	for _, port := range []int32{s.Ports.Game, s.Ports.Client} {
		if port < validation.MinPort || port > validation.MaxPort {
			errs = append(errs, field.Invalid(field.NewPath("ports"), port, "out of range"))
		}
	}
	for _, c := range s.OverlayConfigs {
		if strings.ContainsAny(c, "/ \"\n") {
			errs = append(errs, field.Invalid(field.NewPath("overlayConfigs"), c, "not an overlay name"))
		}
	}
	return errs.ToAggregate()
}

// ServerCfg renders left4dead2/cfg/server.cfg. Order matters: the default
// hostname first so an overlay may set its own; the overlays' configs bottom
// to top; the Blueprint's cvars; an explicit hostname; and rcon_password
// last, so nothing can override it.
func ServerCfg(s Spec) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("render server.cfg for %s: %w", s.ID, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "// Generated by left4me for %s/%s (Blueprint %s). Do not edit: the node rewrites it.\n", s.Namespace, s.Name, s.Blueprint)
	if s.Hostname == "" {
		fmt.Fprintf(&b, "hostname %q\n", s.Namespace+" "+s.Name)
	}
	for i, o := range s.OverlayConfigs {
		fmt.Fprintf(&b, "exec %s\n", OverlayConfigName(i, o))
	}
	for _, c := range s.Cvars {
		fmt.Fprintf(&b, "%s \"%s\"\n", c.Name, c.Value)
	}
	if s.Hostname != "" {
		fmt.Fprintf(&b, "hostname \"%s\"\n", s.Hostname)
	}
	fmt.Fprintf(&b, "rcon_password \"%s\"\n", s.RCONPassword)
	return []byte(b.String()), nil
}

// Argv is srcds_run's argument vector.
func Argv(p Paths, s Spec) []string {
	argv := []string{filepath.Join(p.Merged(s.ID), "srcds_run"), "-game", "left4dead2",
		"+ip", "0.0.0.0", "+hostport", itoa(s.Ports.Game), "+clientport", itoa(s.Ports.Client)}
	if s.Ports.TV != 0 {
		argv = append(argv, "+tv_port", itoa(s.Ports.TV))
	} else {
		argv = append(argv, "-nohltv")
	}
	argv = append(argv, "+map", s.Game.Map, "+mp_gamemode", s.Game.Mode,
		"+maxplayers", itoa(s.Game.MaxPlayers), "-tickrate", itoa(s.Game.Tickrate))
	for _, a := range s.Args {
		if a == "-nohltv" && s.Ports.TV == 0 {
			continue // already there
		}
		argv = append(argv, a)
	}
	return argv
}

func itoa(i int32) string { return strconv.Itoa(int(i)) }

// Mount drivers.
const (
	// DriverOverlayfs is the kernel's overlayfs (the default).
	DriverOverlayfs = "overlayfs"
	// DriverFuseOverlayfs is fuse-overlayfs, for hosts whose kernel overlayfs
	// cannot be used (older kernels, some containers).
	DriverFuseOverlayfs = "fuse-overlayfs"
)

// MountOver renders the .mount unit of a fuse-overlayfs stack (whose
// daemon lives in it; a kernel overlay is mounted by OverlayService): lowers are the Blueprint's layers topmost first, over base
// (installation/ or an Installation's build, Paths.Build).
func MountOver(p Paths, id string, lowers []string, base, driver string) (string, error) {
	if driver != DriverFuseOverlayfs {
		return "", fmt.Errorf("render mount for %s: only fuse-overlayfs has a .mount unit; a %q stack is mounted by its overlay unit", id, driver)
	}
	m, err := OverlayMount(p, id, lowers, base, driver)
	if err != nil {
		return "", err
	}
	var b unitWriter
	w := b.line
	w("# Generated by l4m-node for %s. Do not edit.", id)
	w("[Unit]")
	w("Description=left4me overlay for %s", id)
	w("DefaultDependencies=no")
	w("Conflicts=umount.target")
	w("Before=umount.target")
	w("")
	w("[Mount]")
	w("What=%s", m.What)
	w("Where=%s", m.Where)
	w("Type=%s", m.Type)
	w("Options=%s", m.Options)
	return b.String(), nil
}

// MountArgs is one mount(2): source, target, filesystem type, options.
type MountArgs struct{ What, Where, Type, Options string }

// OverlayMount is the mount of an Instance's stack: lowers topmost first,
// over base. OverlayService makes it, or for fuse-overlayfs MountOver
// renders it as a .mount unit.
func OverlayMount(p Paths, id string, lowers []string, base, driver string) (MountArgs, error) {
	what, fstype, extra := "overlay", "overlay", ""
	switch driver {
	case DriverOverlayfs, "":
	case DriverFuseOverlayfs:
		// allow_other: the mount is root's, the game runs as another user.
		what, fstype, extra = "fuse-overlayfs", "fuse.fuse-overlayfs", ",allow_other"
	default:
		return MountArgs{}, fmt.Errorf("render mount for %s: unknown mount driver %q (overlayfs or fuse-overlayfs)", id, driver)
	}
	all := append(append([]string{}, lowers...), base)
	for _, l := range all {
		// '"' too: libmount reads it as quoting in the options string.
		if !filepath.IsAbs(l) || strings.ContainsAny(l, ":,\\\n\"") {
			return MountArgs{}, fmt.Errorf("render mount for %s: lower dir %q cannot be an overlayfs option", id, l)
		}
	}
	return MountArgs{What: what, Where: p.Merged(id), Type: fstype,
		Options: fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s%s", strings.Join(all, ":"), p.Upper(id), p.Work(id), extra)}, nil
}

// Service renders the hardened game unit.
func Service(p Paths, s Spec) (string, error) {
	if err := s.check(); err != nil {
		return "", fmt.Errorf("render unit for %s: %w", s.ID, err)
	}
	merged := p.Merged(s.ID)
	var b unitWriter
	w := b.line
	w("# Generated by l4m-node for %s/%s. Do not edit: the node rewrites it.", s.Namespace, s.Name)
	w("[Unit]")
	w("Description=left4me game server %s/%s (Blueprint %s)", s.Namespace, s.Name, s.Blueprint)
	// The game's mount namespace is a copy of the host's made as it
	// starts, and its BindPaths= holds the overlay from then on. So its
	// overlay unit (OverlayService) mounts the overlay on the host just
	// before, and the node detaches the host's copy once the game runs:
	// systemd sets up each unit's namespace in time proportional to the
	// mounts it can see, and a host mount per game made every start slower
	// than the one before (100 games mounted: 360 ms a start, 200: 758 ms;
	// none: 40 ms). Requires= pulls the overlay unit into every start,
	// crash restarts (Restart=on-failure) included. A oneshot service, not
	// a .mount unit: systemd learns of mounts from its mount table, which
	// it reads at most 5 times a second, and a game must not wait for that.
	// WorkingDirectory=- (a plain one implies Requires= on a .mount unit
	// of the path).
	workDir := "-" + merged
	if s.KeepHostMount {
		w("RequiresMountsFor=%s", merged)
		workDir = merged
	} else {
		w("Requires=%s", OverlayServiceName(s.ID))
		w("After=%s", OverlayServiceName(s.ID))
	}
	w("After=network.target")
	w("StartLimitBurst=5")
	w("StartLimitIntervalSec=60s")
	w("")
	w("[Service]")
	w("Type=exec")
	user := s.User
	if user == "" {
		user = User
	}
	w("User=%s", user)
	w("Group=%s", user)
	w("WorkingDirectory=%s", workDir)
	w("Environment=HOME=%s", p.Home(s.ID))
	w("EnvironmentFile=%s", p.EnvFile(s.ID))
	w("ExecStart=%s", quoteArgv(Argv(p, s)))
	w("KillSignal=SIGINT")
	w("TimeoutStopSec=15s")
	w("Restart=on-failure")
	w("RestartSec=5")
	w("Slice=%s", Slice)
	w("Nice=-5")
	w("OOMScoreAdjust=-200")
	if r := s.Resources; r.MemoryHigh != nil {
		w("MemoryHigh=%d", r.MemoryHigh.Value())
	}
	if r := s.Resources; r.MemoryMax != nil {
		w("MemoryMax=%d", r.MemoryMax.Value())
	}
	if s.Resources.TasksMax > 0 {
		w("TasksMax=%d", s.Resources.TasksMax)
	}
	if s.Resources.CPUWeight > 0 {
		w("CPUWeight=%d", s.Resources.CPUWeight)
	}
	w("LimitNOFILE=65536")
	// The predecessor used 0027; nothing needs group access to what the game writes.
	w("UMask=0077")
	w("")
	w("# Hardening: the predecessor's production set, tightened.")
	w("# The game sees nothing of LEFT4ME_ROOT but its own tree and home (no other")
	w("# Instance's files, no RCON password, no tenant's overlay it does not stack).")
	w("TemporaryFileSystem=%s:ro", p.Root)
	w("BindPaths=%s %s", merged, p.Home(s.ID))
	w("BindReadOnlyPaths=-%s", p.SteamLibDir())
	w("ReadWritePaths=%s %s", merged, p.Home(s.ID))
	for _, line := range hardening {
		w("%s", line)
	}
	w("SocketBindAllow=%s", strings.Join(bindAllow(s.Ports), " "))
	w("SocketBindDeny=any")
	return b.String(), nil
}

// OverlayServiceName is the unit that mounts a game's kernel overlay on
// the host as the game starts. ParseServiceName does not read it as a
// game's: Instance names hold no '.'.
func OverlayServiceName(id string) string { return "l4m-" + id + ".overlay.service" }

// OverlayService renders the oneshot unit that mounts m, the Instance's
// kernel overlay (OverlayMount), on the host for its game's start (see
// Service). A copy left on the host from before (the node could not
// detach it) is detached first: the game must start on the stack as it is
// now, and no running game uses the host's copy.
func OverlayService(p Paths, id string, m MountArgs) (string, error) {
	if m.Type != "overlay" || m.What != "overlay" || m.Where != p.Merged(id) || !strings.HasPrefix(m.Options, "lowerdir=") {
		return "", fmt.Errorf("render overlay unit for %s: it mounts only the Instance's kernel overlay on %s, not %+v", id, p.Merged(id), m)
	}
	var b unitWriter
	w := b.line
	w("# Generated by l4m-node for %s. Do not edit: the node rewrites it.", id)
	w("[Unit]")
	w("Description=left4me overlay for %s, mounted as its game starts", id)
	w("")
	w("[Service]")
	w("Type=oneshot")
	// A mount that hangs (a lower dir on a dead network file system) fails
	// the game's start in 30 s, not systemd's default 90.
	w("TimeoutStartSec=30s")
	w("ExecStart=-%s", quoteArgv([]string{"/bin/umount", "--lazy", "--quiet", "--no-canonicalize", m.Where}))
	w("ExecStart=%s", quoteArgv([]string{"/bin/mount", "--internal-only", "-t", m.Type, "-o", m.Options, m.What, m.Where}))
	return b.String(), nil
}

func bindAllow(p Ports) []string {
	allow := []string{"udp:" + itoa(p.Game), "tcp:" + itoa(p.Game), "udp:" + itoa(p.Client)}
	if p.TV != 0 {
		allow = append(allow, "udp:"+itoa(p.TV))
	}
	sort.Strings(allow)
	return allow
}

// Hardening is the fixed part of every game unit's sandbox, for
// benchmarks that start bare units the same way.
func Hardening() []string { return slices.Clone(hardening) }

// hardening is the fixed part of the sandbox. srcds is 32-bit
// (SystemCallArchitectures=native x86) and breaks under
// MemoryDenyWriteExecute and ProcSubset=pid (it needs /proc/cpuinfo).
var hardening = []string{
	"NoNewPrivileges=yes",
	"CapabilityBoundingSet=",
	"AmbientCapabilities=",
	"ProtectSystem=strict",
	"ProtectHome=yes",
	"PrivateTmp=yes",
	"PrivateDevices=yes",
	"PrivateIPC=yes",
	"PrivateUsers=yes",
	"ProtectProc=invisible",
	"ProtectKernelTunables=yes",
	"ProtectKernelModules=yes",
	"ProtectKernelLogs=yes",
	"ProtectClock=yes",
	"ProtectControlGroups=yes",
	"ProtectHostname=yes",
	"LockPersonality=yes",
	"RestrictNamespaces=yes",
	"RestrictRealtime=yes",
	"RestrictSUIDSGID=yes",
	"RemoveIPC=yes",
	"KeyringMode=private",
	"RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
	"SystemCallArchitectures=native x86",
	"SystemCallFilter=@system-service",
	// @resources too (exposure 1.3 -> 1.2): a denied setrlimit, setpriority
	// or sched_setaffinity fails with EPERM, the process lives on; the
	// unit's Nice=, MemoryMax= and LimitNOFILE= are applied by systemd before
	// the game starts. To be confirmed against a real srcds (see #3's note).
	"SystemCallFilter=~@debug @mount @raw-io @reboot @swap @cpu-emulation @obsolete @privileged @resources",
	"SystemCallErrorNumber=EPERM",
	"DevicePolicy=closed",
}

// unitWriter builds a unit file one line at a time, so that every setting
// goes through escapeSpecifiers: no value written by the node can mean more
// to systemd than it says.
type unitWriter struct{ strings.Builder }

// line writes one line of a unit file: a comment, a [Section], a blank
// line, or Key=value, whose '%' are escaped.
func (u *unitWriter) line(format string, args ...any) {
	l := fmt.Sprintf(format, args...)
	if !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "[") {
		l = escapeSpecifiers(l)
	}
	u.WriteString(l)
	u.WriteByte('\n')
}

// escapeSpecifiers doubles every '%'. systemd resolves %-specifiers (%h,
// %n, %i, ...) in the settings that carry paths and text: What=, Where=,
// Options=, Type=, Description=, RequiresMountsFor=, User=,
// WorkingDirectory=, Environment=, EnvironmentFile=, ExecStart=,
// ReadWritePaths= and the like, so an overlay directory "mods%h" written as
// is would mount /root's path instead of the one overlay.Resolve checked.
// Every other setting the node writes is a constant or a number, which
// holds no '%', so escaping whole lines is exact.
func escapeSpecifiers(v string) string { return strings.ReplaceAll(v, "%", "%%") }

// quoteArgv writes argv for ExecStart: every argument double-quoted, with
// systemd's variable expansion ($) disabled (the unitWriter escapes its
// specifiers), so no value means more to systemd than it says.
func quoteArgv(argv []string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		a = strings.ReplaceAll(a, `\`, `\\`)
		a = strings.ReplaceAll(a, `"`, `\"`)
		a = strings.ReplaceAll(a, `$`, `$$`)
		parts[i] = `"` + a + `"`
	}
	return strings.Join(parts, " ")
}
