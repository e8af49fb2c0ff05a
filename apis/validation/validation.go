// Package validation checks left4me objects before they are stored. Every
// error names the field it is about, in the form kubectl users know:
//
//	spec.overlays[2]: Invalid value: "../x": must be the name of an Overlay
//
// The rules here are string-level. Whatever touches a host (overlay paths,
// server.cfg lines, argv) is checked again by the node against the real
// filesystem before use.
package validation

import (
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

// Limits on free-form strings, so objects stay small in etcd.
const (
	MaxOverlayPathLength = 1024
	MaxHostnameLength    = 64
	MaxCvarValueLength   = 255
	MaxArgLength         = 256
	MaxArgs              = 64
	MaxCvars             = 256
	MaxOverlays          = 32
	MaxMessageLength     = 1024
	MinPort              = 1024
	MaxPort              = 65535
	// MaxGamePort is the highest game port (spec.port, a node's range):
	// its client port, game port + v1.ClientPortOffset, must exist too.
	MaxGamePort = MaxPort - v1.ClientPortOffset
	// MaxPortRangeSpan keeps a node's game ports clear of its client ports
	// (game port + v1.ClientPortOffset).
	MaxPortRangeSpan = v1.ClientPortOffset
)

var (
	cvarNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]{0,63}$`)
	mapRE      = regexp.MustCompile(`^[A-Za-z0-9_\-]{1,64}$`)
	modeRE     = regexp.MustCompile(`^[a-z0-9_]{1,32}$`)
	reasonRE   = regexp.MustCompile(`^[A-Z][A-Za-z0-9]{0,63}$`)
)

// forbiddenCommands are console commands and cvars that neither a
// server.cfg line (spec.cvars) nor a srcds "+command" argument (spec.args)
// may name: the node sets them itself, spec.game or spec.hostname does, or
// they run other files, define commands, choose files to write, send logs
// elsewhere or stop the server. One list serves both fields, so what
// server.cfg refuses cannot be passed on the command line instead.
var forbiddenCommands = map[string]string{
	"hostname":         "set spec.hostname on the Instance",
	"rcon_password":    "the node generates one per Instance",
	"exec":             "it runs other files",
	"alias":            "it defines commands",
	"plugin_load":      "it loads native code by path (overlays ship addons/*.vdf instead)",
	"quit":             "it stops the server",
	"exit":             "it stops the server",
	"killserver":       "it stops the server",
	"_restart":         "it restarts the server",
	"con_logfile":      "it chooses a file to write",
	"sv_logsdir":       "it chooses where logs are written",
	"host_writeconfig": "it chooses a file to write",
	"writeid":          "it chooses a file to write",
	"writeip":          "it chooses a file to write",
	"log":              "the node configures logging",
	"ip":               "the node sets the address",
	"hostport":         "set spec.port on the Instance",
	"port":             "set spec.port on the Instance",
	"clientport":       "the node allocates the client port",
	"tv_port":          "the node allocates the SourceTV port",
	"map":              "set spec.game.map",
	"mp_gamemode":      "set spec.game.mode",
	"maxplayers":       "set spec.game.maxPlayers",
}

// forbiddenCommandPrefixes are whole families of forbidden commands.
var forbiddenCommandPrefixes = map[string]string{
	"logaddress_": "the node configures logging (no log may be sent elsewhere)",
}

// forbiddenCommand says why a console command or cvar may not be set by a
// user, or "" when it may. Source matches names case-insensitively.
func forbiddenCommand(name string) string {
	name = strings.ToLower(name)
	if why := forbiddenCommands[name]; why != "" {
		return why
	}
	for prefix, why := range forbiddenCommandPrefixes {
		if strings.HasPrefix(name, prefix) {
			return why
		}
	}
	return ""
}

// forbiddenFlags are "-flag" arguments the node or spec.game sets, and
// srcds_run's own options that start other programs, choose files to write,
// update the installation or change how the node stops the game. Allowed
// on purpose: -nohltv (the node adds it when there is no SourceTV port),
// -console, -condebug (console.log inside the game's own tree), -debug,
// -norestart, -insecure, -nomaster, -strictportbind.
var forbiddenFlags = map[string]string{
	"-game":            "the node always runs left4dead2",
	"-ip":              "the node sets the address",
	"-port":            "set spec.port on the Instance",
	"-hostport":        "set spec.port on the Instance",
	"-clientport":      "the node allocates the client port",
	"-tv_port":         "the node allocates the SourceTV port",
	"-netconport":      "the node allocates every port the game listens on",
	"-maxplayers":      "set spec.game.maxPlayers",
	"-tickrate":        "set spec.game.tickrate",
	"-binary":          "srcds_run would start another program",
	"-gdb":             "srcds_run would start another program",
	"-debuglog":        "it chooses a file to write",
	"-consolelog":      "it chooses a file to write",
	"-pidfile":         "it chooses a file to write",
	"-autoupdate":      "the node manages the installation",
	"-steam_dir":       "the node manages the installation",
	"-steamcmd_script": "the node manages the installation",
	"-fork":            "the node runs one game per unit and port",
	"-ignoresigint":    "the node stops the game with SIGINT",
	"-notrap":          "the node stops the game with SIGINT",
}

// shellMeta are the characters a POSIX shell gives a meaning to. srcds_run
// is a shell script that re-splits its arguments ($*) and expands globs, and
// hands some of them to eval, so none of them may reach it.
const shellMeta = "`$&|;<>()[]{}*?!~#'\\\""

// Validate checks a whole object for create. It returns nil when the object
// may be stored.
func Validate(obj v1.Object) field.ErrorList {
	switch o := obj.(type) {
	case *v1.Namespace:
		return validateMeta(o, false, utilvalidation.IsDNS1123Label)
	case *v1.Overlay:
		return append(validateMeta(o, true, utilvalidation.IsDNS1123Label), ValidateOverlaySpec(&o.Spec, field.NewPath("spec"))...)
	case *v1.Blueprint:
		allErrs := append(validateMeta(o, true, utilvalidation.IsDNS1123Label), validateRestartAnnotations(o.Annotations)...)
		return append(allErrs, ValidateBlueprintSpec(&o.Spec, field.NewPath("spec"))...)
	case *v1.Instance:
		allErrs := append(validateMeta(o, true, utilvalidation.IsDNS1123Label), validateRestartAnnotations(o.Annotations)...)
		return append(allErrs, ValidateInstanceSpec(&o.Spec, field.NewPath("spec"))...)
	case *v1.Node:
		return append(validateMeta(o, false, utilvalidation.IsDNS1123Subdomain), ValidateNodeSpec(&o.Spec, field.NewPath("spec"))...)
	case *v1.Event:
		return append(validateMeta(o, true, utilvalidation.IsDNS1123Subdomain), validateEvent(o)...)
	case *v1.Lease:
		return append(validateMeta(o, false, utilvalidation.IsDNS1123Subdomain), ValidateLeaseSpec(&o.Spec, field.NewPath("spec"))...)
	case *v1.Token:
		return append(validateMeta(o, false, utilvalidation.IsDNS1123Label), ValidateTokenSpec(&o.Spec, field.NewPath("spec"))...)
	case *v1.User:
		return append(validateMeta(o, false, utilvalidation.IsDNS1123Label), ValidateUserSpec(&o.Spec, field.NewPath("spec"))...)
	case *v1.Installation:
		return append(validateMeta(o, false, utilvalidation.IsDNS1123Label), ValidateInstallationSpec(&o.Spec, field.NewPath("spec"))...)
	default:
		return field.ErrorList{field.InternalError(nil, fmt.Errorf("no validation for %T", obj))}
	}
}

// ValidateStatus checks what a status write may store.
func ValidateStatus(obj v1.Object) field.ErrorList {
	p := field.NewPath("status", "conditions")
	switch o := obj.(type) {
	case *v1.Overlay:
		return ValidateOverlayStatus(&o.Status, field.NewPath("status"))
	case *v1.Blueprint:
		return metav1validation.ValidateConditions(o.Status.Conditions, p)
	case *v1.Instance:
		allErrs := metav1validation.ValidateConditions(o.Status.Conditions, p)
		if o.Status.Port != 0 {
			allErrs = append(allErrs, validatePort(o.Status.Port, field.NewPath("status", "port"))...)
		}
		return allErrs
	case *v1.Node:
		allErrs := metav1validation.ValidateConditions(o.Status.Conditions, p)
		allErrs = append(allErrs, validateNodeInstallations(o.Status.Installations, field.NewPath("status", "installations"))...)
		return append(allErrs, validateNodeOverlays(o.Status.Overlays, field.NewPath("status", "overlays"))...)
	case *v1.Installation:
		return metav1validation.ValidateConditions(o.Status.Conditions, p)
	}
	return nil
}

type nameFunc func(string) []string

func validateMeta(obj v1.Object, namespaced bool, isName nameFunc) field.ErrorList {
	var allErrs field.ErrorList
	p := field.NewPath("metadata")
	if obj.GetName() == "" {
		allErrs = append(allErrs, field.Required(p.Child("name"), "name is required"))
	} else {
		for _, msg := range isName(obj.GetName()) {
			allErrs = append(allErrs, field.Invalid(p.Child("name"), obj.GetName(), msg))
		}
	}
	if namespaced {
		if obj.GetNamespace() == "" {
			allErrs = append(allErrs, field.Required(p.Child("namespace"), "this kind lives in a namespace"))
		} else {
			for _, msg := range utilvalidation.IsDNS1123Label(obj.GetNamespace()) {
				allErrs = append(allErrs, field.Invalid(p.Child("namespace"), obj.GetNamespace(), msg))
			}
		}
	} else if obj.GetNamespace() != "" {
		allErrs = append(allErrs, field.Forbidden(p.Child("namespace"), "this kind is cluster-scoped and takes no namespace"))
	}
	allErrs = append(allErrs, metav1validation.ValidateLabels(obj.GetLabels(), p.Child("labels"))...)
	allErrs = append(allErrs, validateAnnotations(obj.GetAnnotations(), p.Child("annotations"))...)
	for i, f := range obj.GetFinalizers() {
		for _, msg := range utilvalidation.IsQualifiedName(f) {
			allErrs = append(allErrs, field.Invalid(p.Child("finalizers").Index(i), f, msg))
		}
	}
	return allErrs
}

// OverlayStoreDir is the node's content-addressed store of fetched
// overlays, below the overlays root (overlays/.store): a path source must
// never name it or anything in it, or a tenant could stack, by digest,
// another tenant's fetched content.
const OverlayStoreDir = ".store"

// ValidateOverlayPath applies the predecessor's rules to a reference below
// the overlays root: relative, no "..", no "." and no empty components, no
// control characters, and not OverlayStoreDir or below it (other names
// starting with a dot are an admin's to use). Symlinks are the node's job:
// it resolves the path on its own filesystem without leaving the root, or
// reaching into the store.
func ValidateOverlayPath(ref string, p *field.Path) field.ErrorList {
	if errs := checkRelPath(ref, p, "the overlays root"); len(errs) > 0 {
		return errs
	}
	if first, _, _ := strings.Cut(ref, "/"); first == OverlayStoreDir {
		return field.ErrorList{field.Invalid(p, ref, "must not be below "+OverlayStoreDir+"/: that is the node's store of fetched overlays")}
	}
	return nil
}

// checkRelPath holds a path below root (named in the message) to the rules
// of ValidateOverlayPath.
func checkRelPath(ref string, p *field.Path, root string) field.ErrorList {
	bad := func(msg string) field.ErrorList { return field.ErrorList{field.Invalid(p, ref, msg)} }
	switch {
	case ref == "":
		return field.ErrorList{field.Required(p, "")}
	case len(ref) > MaxOverlayPathLength:
		return field.ErrorList{field.TooLong(p, "", MaxOverlayPathLength)}
	case strings.HasPrefix(ref, "/"):
		return bad("must be relative to " + root + ", not absolute")
	case hasControl(ref):
		return bad("must not contain control characters")
	case strings.Contains(ref, "\\"):
		return bad("must not contain '\\'")
	}
	for _, c := range strings.Split(ref, "/") {
		switch c {
		case "..":
			return bad("must not contain '..'")
		case "":
			return bad("must not contain empty components ('a//b' or a trailing '/')")
		case ".":
			return bad("must not contain '.' components")
		}
	}
	if path.Clean(ref) != ref {
		return bad("must be a clean path")
	}
	return nil
}

// ValidateBlueprintSpec checks overlays, game settings, cvars, args and limits.
func ValidateBlueprintSpec(s *v1.BlueprintSpec, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if len(s.Overlays) > MaxOverlays {
		allErrs = append(allErrs, field.TooMany(p.Child("overlays"), len(s.Overlays), MaxOverlays))
	}
	seen := map[string]bool{}
	for i, o := range s.Overlays {
		ip := p.Child("overlays").Index(i)
		if msgs := utilvalidation.IsDNS1123Label(o); len(msgs) > 0 {
			msg := "must be the name of an Overlay in this namespace"
			if strings.Contains(o, "..") {
				msg = "must not contain '..' (" + msg + ")"
			} else if strings.Contains(o, "/") {
				msg = "must not contain '/' (" + msg + "; put paths in the Overlay's spec.source.path)"
			} else {
				msg += ": " + strings.Join(msgs, "; ")
			}
			allErrs = append(allErrs, field.Invalid(ip, o, msg))
		} else if seen[o] {
			allErrs = append(allErrs, field.Duplicate(ip, o))
		}
		seen[o] = true
	}
	if s.Installation != "" {
		for _, msg := range utilvalidation.IsDNS1123Label(s.Installation) {
			allErrs = append(allErrs, field.Invalid(p.Child("installation"), s.Installation, "must be the name of an Installation: "+msg))
		}
	}
	allErrs = append(allErrs, validateGame(&s.Game, p.Child("game"))...)
	allErrs = append(allErrs, validateCvars(s.Cvars, p.Child("cvars"))...)
	allErrs = append(allErrs, ValidateArgs(s.Args, p.Child("args"))...)
	allErrs = append(allErrs, validateResources(&s.Resources, p.Child("resources"))...)
	allErrs = append(allErrs, validateReschedule(s.RescheduleAfterNodeLost, p.Child("rescheduleAfterNodeLost"))...)
	switch s.Rollout.Policy {
	case v1.RolloutWhenEmpty, v1.RolloutImmediate, "":
	default:
		allErrs = append(allErrs, field.NotSupported(p.Child("rollout", "policy"), s.Rollout.Policy, []string{string(v1.RolloutWhenEmpty), string(v1.RolloutImmediate)}))
	}
	if s.Rollout.MaxUnavailable < 0 {
		allErrs = append(allErrs, field.Invalid(p.Child("rollout", "maxUnavailable"), s.Rollout.MaxUnavailable, "must not be negative"))
	}
	return allErrs
}

// validateReschedule accepts "Never" or a non-negative duration ("90s", "5m").
func validateReschedule(v string, p *field.Path) field.ErrorList {
	if v == "" || v == v1.RescheduleNever {
		return nil
	}
	if d, err := time.ParseDuration(v); err != nil || d < 0 {
		return field.ErrorList{field.Invalid(p, v, `must be "Never" or a duration such as "90s" or "5m"`)}
	}
	return nil
}

func validateGame(g *v1.GameSpec, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if g.Map != "" && !mapRE.MatchString(g.Map) {
		allErrs = append(allErrs, field.Invalid(p.Child("map"), g.Map, "must be a map name: letters, digits, '_' and '-', at most 64"))
	}
	if g.Mode != "" && !modeRE.MatchString(g.Mode) {
		allErrs = append(allErrs, field.Invalid(p.Child("mode"), g.Mode, "must be a game mode such as coop, versus, survival, scavenge, realism"))
	}
	if g.MaxPlayers < 0 || g.MaxPlayers > 32 {
		allErrs = append(allErrs, field.Invalid(p.Child("maxPlayers"), g.MaxPlayers, "must be between 1 and 32"))
	}
	if g.Tickrate != 0 && (g.Tickrate < 10 || g.Tickrate > 128) {
		allErrs = append(allErrs, field.Invalid(p.Child("tickrate"), g.Tickrate, "must be between 10 and 128"))
	}
	return allErrs
}

func validateCvars(cvars []v1.Cvar, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if len(cvars) > MaxCvars {
		allErrs = append(allErrs, field.TooMany(p, len(cvars), MaxCvars))
	}
	seen := map[string]bool{}
	for i, c := range cvars {
		ip := p.Index(i)
		switch {
		case c.Name == "":
			allErrs = append(allErrs, field.Required(ip.Child("name"), ""))
		case !cvarNameRE.MatchString(c.Name):
			allErrs = append(allErrs, field.Invalid(ip.Child("name"), c.Name, "must be a cvar name: a letter or '_', then letters, digits, '_' or '.', at most 64"))
		case forbiddenCommand(c.Name) != "":
			allErrs = append(allErrs, field.Forbidden(ip.Child("name"), fmt.Sprintf("%q is reserved: %s", c.Name, forbiddenCommand(c.Name))))
		case seen[strings.ToLower(c.Name)]:
			allErrs = append(allErrs, field.Duplicate(ip.Child("name"), c.Name))
		}
		seen[strings.ToLower(c.Name)] = true
		allErrs = append(allErrs, ValidateConfigValue(c.Value, MaxCvarValueLength, ip.Child("value"))...)
	}
	return allErrs
}

// ValidateConfigValue checks a string that is written inside double quotes on
// one server.cfg line, so that it cannot end the quote, the line or the
// command.
func ValidateConfigValue(v string, max int, p *field.Path) field.ErrorList {
	switch {
	case len(v) > max:
		return field.ErrorList{field.TooLong(p, "", max)}
	case strings.ContainsAny(v, "\n\r"):
		return field.ErrorList{field.Invalid(p, v, "must be one line (no newline)")}
	case hasControl(v):
		return field.ErrorList{field.Invalid(p, v, "must not contain control characters")}
	case strings.Contains(v, `"`):
		return field.ErrorList{field.Invalid(p, v, `must not contain '"' (it would end the quoted value)`)}
	case strings.Contains(v, ";"):
		return field.ErrorList{field.Invalid(p, v, "must not contain ';' (it would start another command)")}
	}
	return nil
}

// ValidateArgs checks extra srcds arguments. The node passes them as argv,
// but Valve's srcds_run is a shell script that joins and re-splits them on
// spaces (and expands globs), so each space-separated word is checked on its
// own: "+exec evil.cfg" in one element is "+exec" and "evil.cfg" to srcds.
// The error names the element, the word and the reason.
func ValidateArgs(args []string, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if len(args) > MaxArgs {
		allErrs = append(allErrs, field.TooMany(p, len(args), MaxArgs))
	}
	for i, a := range args {
		if len(a) > MaxArgLength {
			allErrs = append(allErrs, field.TooLong(p.Index(i), "", MaxArgLength))
		} else if msg := checkArg(a); msg != "" {
			allErrs = append(allErrs, field.Invalid(p.Index(i), a, msg))
		}
	}
	return allErrs
}

// checkArg says what is wrong with one srcds argument, or "" if nothing.
func checkArg(a string) string {
	if hasControl(a) {
		return "must not contain control characters"
	}
	for _, r := range a {
		if r > 0x7e {
			return "must be printable ASCII"
		}
		if strings.ContainsRune(shellMeta, r) {
			return fmt.Sprintf("must not contain %q, a shell metacharacter: srcds_run is a shell script that re-splits and expands its arguments", r)
		}
	}
	words := strings.Fields(a)
	if len(words) == 0 {
		return "must not be empty"
	}
	for _, w := range words {
		if msg := checkArgWord(w); msg != "" {
			return msg
		}
	}
	return ""
}

// checkArgWord checks one word as srcds sees it: "+name" runs a console
// command, "-name" is a flag, anything else is a value.
func checkArgWord(w string) string {
	switch {
	case strings.HasPrefix(w, "+"):
		name := w[1:]
		if !cvarNameRE.MatchString(name) {
			return fmt.Sprintf("%q must name a console command: '+', then a letter or '_', then letters, digits, '_' or '.'", w)
		}
		if why := forbiddenCommand(name); why != "" {
			return fmt.Sprintf("%q is reserved: %s", w, why)
		}
	case strings.HasPrefix(w, "-"):
		if why := forbiddenFlags[strings.ToLower(w)]; why != "" {
			return fmt.Sprintf("%q is reserved: %s", w, why)
		}
	}
	switch {
	case strings.HasPrefix(w, "/"):
		return fmt.Sprintf("%q must not name an absolute path", w)
	case hasDotDot(w):
		return fmt.Sprintf("%q must not contain '..'", w)
	}
	return ""
}

func validateResources(r *v1.Resources, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if r.MemoryMax != nil && r.MemoryMax.Sign() <= 0 {
		allErrs = append(allErrs, field.Invalid(p.Child("memoryMax"), r.MemoryMax.String(), "must be positive"))
	}
	if r.MemoryHigh != nil && r.MemoryHigh.Sign() <= 0 {
		allErrs = append(allErrs, field.Invalid(p.Child("memoryHigh"), r.MemoryHigh.String(), "must be positive"))
	}
	if r.MemoryHigh != nil && r.MemoryMax != nil && r.MemoryHigh.Cmp(*r.MemoryMax) > 0 {
		allErrs = append(allErrs, field.Invalid(p.Child("memoryHigh"), r.MemoryHigh.String(), "must not exceed memoryMax ("+r.MemoryMax.String()+")"))
	}
	if r.CPUWeight != 0 && (r.CPUWeight < 1 || r.CPUWeight > 10000) {
		allErrs = append(allErrs, field.Invalid(p.Child("cpuWeight"), r.CPUWeight, "must be between 1 and 10000"))
	}
	if r.TasksMax < 0 || r.TasksMax > 65535 {
		allErrs = append(allErrs, field.Invalid(p.Child("tasksMax"), r.TasksMax, "must be between 1 and 65535"))
	}
	return allErrs
}

// ValidateInstanceSpec checks an Instance.
func ValidateInstanceSpec(s *v1.InstanceSpec, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	bp := p.Child("blueprintRef", "name")
	if s.BlueprintRef.Name == "" {
		allErrs = append(allErrs, field.Required(bp, "an Instance needs a Blueprint"))
	} else {
		for _, msg := range utilvalidation.IsDNS1123Label(s.BlueprintRef.Name) {
			allErrs = append(allErrs, field.Invalid(bp, s.BlueprintRef.Name, msg))
		}
	}
	allErrs = append(allErrs, ValidateConfigValue(s.Hostname, MaxHostnameLength, p.Child("hostname"))...)
	if s.Port != 0 {
		allErrs = append(allErrs, validatePort(s.Port, p.Child("port"))...)
	}
	if s.NodeName != "" {
		for _, msg := range utilvalidation.IsDNS1123Subdomain(s.NodeName) {
			allErrs = append(allErrs, field.Invalid(p.Child("nodeName"), s.NodeName, msg))
		}
	}
	allErrs = append(allErrs, metav1validation.ValidateLabels(s.NodeSelector, p.Child("nodeSelector"))...)
	switch s.State {
	case v1.StateRunning, v1.StateStopped:
	case "":
		allErrs = append(allErrs, field.Required(p.Child("state"), ""))
	default:
		allErrs = append(allErrs, field.NotSupported(p.Child("state"), s.State, []string{string(v1.StateRunning), string(v1.StateStopped)}))
	}
	allErrs = append(allErrs, validateReschedule(s.RescheduleAfterNodeLost, p.Child("rescheduleAfterNodeLost"))...)
	return allErrs
}

// validatePort checks a game port: every port it implies (v1.PortsFor) must
// be a valid unprivileged port.
func validatePort(port int32, p *field.Path) field.ErrorList {
	if port < MinPort || port > MaxGamePort {
		return field.ErrorList{field.Invalid(p, port, fmt.Sprintf("must be between %d and %d (the client port, %d higher, must exist too)",
			MinPort, MaxGamePort, v1.ClientPortOffset))}
	}
	return nil
}

// ValidateNodeSpec checks a Node.
func ValidateNodeSpec(s *v1.NodeSpec, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	pr := p.Child("portRange")
	allErrs = append(allErrs, validatePort(s.PortRange.Min, pr.Child("min"))...)
	allErrs = append(allErrs, validatePort(s.PortRange.Max, pr.Child("max"))...)
	if s.PortRange.Min > s.PortRange.Max {
		allErrs = append(allErrs, field.Invalid(pr.Child("max"), s.PortRange.Max, fmt.Sprintf("must not be below min (%d)", s.PortRange.Min)))
	} else if s.PortRange.Max-s.PortRange.Min >= MaxPortRangeSpan {
		allErrs = append(allErrs, field.Invalid(pr.Child("max"), s.PortRange.Max,
			fmt.Sprintf("the range must span fewer than %d ports: each game's client port is its game port + %d", MaxPortRangeSpan, v1.ClientPortOffset)))
	}
	if s.Capacity.Instances < 0 {
		allErrs = append(allErrs, field.Invalid(p.Child("capacity", "instances"), s.Capacity.Instances, "must not be negative"))
	}
	if s.Capacity.Memory != nil && s.Capacity.Memory.Sign() < 0 {
		allErrs = append(allErrs, field.Invalid(p.Child("capacity", "memory"), s.Capacity.Memory.String(), "must not be negative"))
	}
	return allErrs
}

// MaxCheckInterval and MinCheckInterval bound spec.checkInterval: Steam is
// asked at most every 30 s per node, and at least once a day.
const (
	MinCheckInterval = 30 * time.Second
	MaxCheckInterval = 24 * time.Hour
)

// ValidateInstallationSpec checks an Installation: a Steam app id, a branch
// name steamcmd takes as one word, a build that is "latest" or a build id,
// an interval, a selector and a download cap.
func ValidateInstallationSpec(s *v1.InstallationSpec, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if s.AppID <= 0 {
		allErrs = append(allErrs, field.Invalid(p.Child("appID"), s.AppID, "must be a Steam app id (222860 is the L4D2 dedicated server)"))
	}
	if !isBranchName(s.Branch) {
		allErrs = append(allErrs, field.Invalid(p.Child("branch"), s.Branch, "must be a Steam branch name: 1-64 letters, digits, '-', '_' or '.'"))
	}
	if s.Build != v1.BuildLatest && !v1.IsBuildID(s.Build) {
		allErrs = append(allErrs, field.Invalid(p.Child("build"), s.Build, `must be "latest" or a build id (decimal digits, as steamapps/appmanifest_<app>.acf's buildid)`))
	}
	if d, err := time.ParseDuration(s.CheckInterval); err != nil {
		allErrs = append(allErrs, field.Invalid(p.Child("checkInterval"), s.CheckInterval, `must be a duration such as "15m"`))
	} else if d < MinCheckInterval || d > MaxCheckInterval {
		allErrs = append(allErrs, field.Invalid(p.Child("checkInterval"), s.CheckInterval, fmt.Sprintf("must be between %s and %s", MinCheckInterval, MaxCheckInterval)))
	}
	allErrs = append(allErrs, metav1validation.ValidateLabels(s.NodeSelector, p.Child("nodeSelector"))...)
	if s.MaxConcurrentDownloads < 0 {
		allErrs = append(allErrs, field.Invalid(p.Child("maxConcurrentDownloads"), s.MaxConcurrentDownloads, "must not be negative (0: every node at once)"))
	}
	return allErrs
}

func validateNodeInstallations(list []v1.NodeInstallation, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for i, n := range list {
		ip := p.Index(i)
		for _, msg := range utilvalidation.IsDNS1123Label(n.Name) {
			allErrs = append(allErrs, field.Invalid(ip.Child("name"), n.Name, msg))
		}
		for j, b := range n.Builds {
			if !v1.IsBuildID(b) {
				allErrs = append(allErrs, field.Invalid(ip.Child("builds").Index(j), b, "must be a build id"))
			}
		}
		for _, b := range []struct{ name, v string }{{"latestSeen", n.LatestSeen}, {"downloading", n.Downloading}} {
			if b.v != "" && !v1.IsBuildID(b.v) {
				allErrs = append(allErrs, field.Invalid(ip.Child(b.name), b.v, "must be a build id"))
			}
		}
		if len(n.Message) > MaxMessageLength {
			allErrs = append(allErrs, field.TooLong(ip.Child("message"), "", MaxMessageLength))
		}
	}
	return allErrs
}

// isBranchName is what steamcmd's -beta takes as one word.
func isBranchName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// MaxLeaseDurationSeconds caps leaseDurationSeconds at a day: a lease
// longer than that is no heartbeat.
const MaxLeaseDurationSeconds = 24 * 60 * 60

// ValidateLeaseSpec checks a Lease: its holder, when named, is a node name
// (a DNS subdomain); its duration, when set, is positive and at most a day.
func ValidateLeaseSpec(s *v1.LeaseSpec, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if s.HolderIdentity != "" {
		for _, msg := range utilvalidation.IsDNS1123Subdomain(s.HolderIdentity) {
			allErrs = append(allErrs, field.Invalid(p.Child("holderIdentity"), s.HolderIdentity, msg))
		}
	}
	if d := s.LeaseDurationSeconds; d < 0 || d > MaxLeaseDurationSeconds {
		allErrs = append(allErrs, field.Invalid(p.Child("leaseDurationSeconds"), d, fmt.Sprintf("must be between 0 (unset) and %d", MaxLeaseDurationSeconds)))
	}
	return allErrs
}

// ValidateTokenSpec checks a token's type and what goes with it.
func ValidateTokenSpec(s *v1.TokenSpec, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	switch s.Type {
	case v1.TokenUser:
		if s.User == "" {
			allErrs = append(allErrs, field.Required(p.Child("user"), "a User token names its holder"))
		} else if len(s.User) > 128 || hasControl(s.User) {
			allErrs = append(allErrs, field.Invalid(p.Child("user"), s.User, "at most 128 printable characters"))
		}
		if len(s.Roles) == 0 {
			allErrs = append(allErrs, field.Required(p.Child("roles"), "a User token needs at least one role"))
		}
		allErrs = append(allErrs, ValidateRoleBindings(s.Roles, p.Child("roles"))...)
		if s.NodeName != "" {
			allErrs = append(allErrs, field.Forbidden(p.Child("nodeName"), "only Node tokens name a node"))
		}
	case v1.TokenJoin, v1.TokenNode:
		if len(s.Roles) > 0 {
			allErrs = append(allErrs, field.Forbidden(p.Child("roles"), string(s.Type)+" tokens have a fixed role"))
		}
		if s.Type == v1.TokenNode {
			if s.NodeName == "" {
				allErrs = append(allErrs, field.Required(p.Child("nodeName"), "a Node token is bound to one node"))
			}
			for _, msg := range utilvalidation.IsDNS1123Subdomain(s.NodeName) {
				allErrs = append(allErrs, field.Invalid(p.Child("nodeName"), s.NodeName, msg))
			}
		} else if s.NodeName != "" {
			allErrs = append(allErrs, field.Forbidden(p.Child("nodeName"), "only Node tokens name a node"))
		}
	default:
		allErrs = append(allErrs, field.NotSupported(p.Child("type"), s.Type, []string{string(v1.TokenUser), string(v1.TokenJoin), string(v1.TokenNode)}))
	}
	switch {
	case s.Uses < 0:
		allErrs = append(allErrs, field.Invalid(p.Child("uses"), s.Uses, "must be at least 1"))
	case s.Uses > 0 && s.Type != v1.TokenJoin:
		allErrs = append(allErrs, field.Forbidden(p.Child("uses"), "only Join tokens have a use count"))
	}
	if len(s.Description) > MaxMessageLength {
		allErrs = append(allErrs, field.TooLong(p.Child("description"), "", MaxMessageLength))
	}
	return allErrs
}

func validateEvent(e *v1.Event) field.ErrorList {
	var allErrs field.ErrorList
	io := field.NewPath("involvedObject")
	if e.InvolvedObject.Kind == "" {
		allErrs = append(allErrs, field.Required(io.Child("kind"), ""))
	}
	if e.InvolvedObject.Name == "" {
		allErrs = append(allErrs, field.Required(io.Child("name"), ""))
	}
	if e.InvolvedObject.Namespace != "" && e.InvolvedObject.Namespace != e.Namespace {
		allErrs = append(allErrs, field.Invalid(io.Child("namespace"), e.InvolvedObject.Namespace, "must be the Event's own namespace"))
	}
	switch e.Type {
	case v1.EventTypeNormal, v1.EventTypeWarning:
	default:
		allErrs = append(allErrs, field.NotSupported(field.NewPath("type"), e.Type, []string{v1.EventTypeNormal, v1.EventTypeWarning}))
	}
	if !reasonRE.MatchString(e.Reason) {
		allErrs = append(allErrs, field.Invalid(field.NewPath("reason"), e.Reason, "must be a CamelCase word"))
	}
	if len(e.Message) > MaxMessageLength {
		allErrs = append(allErrs, field.TooLong(field.NewPath("message"), "", MaxMessageLength))
	}
	if e.Count < 0 {
		allErrs = append(allErrs, field.Invalid(field.NewPath("count"), e.Count, "must not be negative"))
	}
	return allErrs
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}

func hasDotDot(s string) bool {
	for _, c := range strings.FieldsFunc(s, func(r rune) bool { return r == '/' || r == '\\' }) {
		if c == ".." {
			return true
		}
	}
	return false
}

// MaxLastAppliedBytes bounds each last-applied annotation (kubectl's key,
// which l4mctl apply writes too, and l4mctl's legacy one), which holds a
// copy of the manifest and so does not fit in the 256 KiB all other
// annotations share when an Overlay's files are near their own 256 KiB (a
// request is at most 1 MiB in all anyway).
const MaxLastAppliedBytes = 768 << 10

// validateRestartAnnotations checks that a Blueprint's or Instance's
// restartedAt and forceRestartAt are RFC 3339 times: what l4mctl rollout
// restart writes, and what a user reads back to see when a restart was
// asked for. Another client (a dashboard) writes the same patch.
func validateRestartAnnotations(ann map[string]string) field.ErrorList {
	var allErrs field.ErrorList
	p := field.NewPath("metadata", "annotations")
	for _, k := range []string{v1.AnnotationRestartedAt, v1.AnnotationForceRestartAt} {
		v, ok := ann[k]
		if !ok {
			continue
		}
		if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
			allErrs = append(allErrs, field.Invalid(p.Key(k), v, "must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z"))
		}
	}
	return allErrs
}

// validateAnnotations is apimachinery's check (keys, 256 KiB in all) for
// every annotation but the last-applied ones, which have their own bound.
func validateAnnotations(ann map[string]string, p *field.Path) field.ErrorList {
	_, has := ann[v1.AnnotationLastApplied]
	_, hasLegacy := ann[v1.LegacyAnnotationLastApplied]
	if !has && !hasLegacy {
		return apimachineryvalidation.ValidateAnnotations(ann, p)
	}
	rest := make(map[string]string, len(ann))
	for k, v := range ann {
		if k != v1.AnnotationLastApplied && k != v1.LegacyAnnotationLastApplied {
			rest[k] = v
		}
	}
	allErrs := apimachineryvalidation.ValidateAnnotations(rest, p)
	for _, k := range []string{v1.AnnotationLastApplied, v1.LegacyAnnotationLastApplied} {
		if la, ok := ann[k]; ok && len(la) > MaxLastAppliedBytes {
			allErrs = append(allErrs, field.TooLong(p.Key(k), "", MaxLastAppliedBytes))
		}
	}
	return allErrs
}

// ValidateRoleBindings checks a User token's or a User's roles: admin
// everywhere, editor and viewer in one namespace each.
func ValidateRoleBindings(roles []v1.RoleBinding, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for i, rb := range roles {
		rp := p.Index(i)
		switch rb.Role {
		case v1.RoleAdmin:
			if rb.Namespace != "" {
				allErrs = append(allErrs, field.Invalid(rp.Child("namespace"), rb.Namespace, "admin is bound everywhere; leave namespace empty"))
			}
		case v1.RoleEditor, v1.RoleViewer:
			if rb.Namespace == "" {
				allErrs = append(allErrs, field.Required(rp.Child("namespace"), rb.Role+" is bound to one namespace"))
			}
			for _, msg := range utilvalidation.IsDNS1123Label(rb.Namespace) {
				allErrs = append(allErrs, field.Invalid(rp.Child("namespace"), rb.Namespace, msg))
			}
		default:
			allErrs = append(allErrs, field.NotSupported(rp.Child("role"), rb.Role, []string{v1.RoleAdmin, v1.RoleEditor, v1.RoleViewer}))
		}
	}
	return allErrs
}

// Password rules: long enough that the failed-login slowdown and argon2id
// make guessing hopeless, short enough that hashing stays cheap to ask for.
const (
	MinPasswordLength = 12
	MaxPasswordBytes  = 1024
)

// ValidatePassword checks a new password (counted in characters).
func ValidatePassword(pw string, p *field.Path) field.ErrorList {
	switch n := utf8.RuneCountInString(pw); {
	case pw == "":
		return field.ErrorList{field.Required(p, "a password is required")}
	case n < MinPasswordLength:
		return field.ErrorList{field.Invalid(p, "(hidden)", fmt.Sprintf("must be at least %d characters, not %d", MinPasswordLength, n))}
	case len(pw) > MaxPasswordBytes:
		return field.ErrorList{field.Invalid(p, "(hidden)", fmt.Sprintf("must be at most %d bytes", MaxPasswordBytes))}
	case !utf8.ValidString(pw) || hasControl(pw):
		return field.ErrorList{field.Invalid(p, "(hidden)", "must be UTF-8 text without control characters")}
	}
	return nil
}

// ValidateUserSpec checks a User: at least one role, and a password (when
// given: an update may leave it empty to keep the current one).
func ValidateUserSpec(s *v1.UserSpec, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if len(s.Roles) == 0 {
		allErrs = append(allErrs, field.Required(p.Child("roles"), "a User needs at least one role"))
	}
	allErrs = append(allErrs, ValidateRoleBindings(s.Roles, p.Child("roles"))...)
	if len(s.Description) > 1024 {
		allErrs = append(allErrs, field.TooLong(p.Child("description"), "", 1024))
	}
	if s.Password != "" {
		allErrs = append(allErrs, ValidatePassword(s.Password, p.Child("password"))...)
	}
	return allErrs
}
