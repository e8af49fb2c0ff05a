package validation

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

func blueprint(mut func(*v1.Blueprint)) *v1.Blueprint {
	b := &v1.Blueprint{ObjectMeta: metav1.ObjectMeta{Name: "coop", Namespace: "default"}}
	Default(b)
	if mut != nil {
		mut(b)
	}
	return b
}

func instance(mut func(*v1.Instance)) *v1.Instance {
	i := &v1.Instance{ObjectMeta: metav1.ObjectMeta{Name: "srv1", Namespace: "default"},
		Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}}}
	Default(i)
	if mut != nil {
		mut(i)
	}
	return i
}

func overlay(path string) *v1.Overlay {
	return &v1.Overlay{ObjectMeta: metav1.ObjectMeta{Name: "o", Namespace: "default"}, Spec: v1.OverlaySpec{Source: v1.OverlaySource{Path: path}}}
}

func node(mut func(*v1.Node)) *v1.Node {
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "host-a.example"}}
	Default(n)
	if mut != nil {
		mut(n)
	}
	return n
}

func lease(mut func(*v1.Lease)) *v1.Lease {
	l := &v1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "host-a.example"},
		Spec: v1.LeaseSpec{HolderIdentity: "host-a.example", LeaseDurationSeconds: v1.NodeLeaseDurationSeconds}}
	if mut != nil {
		mut(l)
	}
	return l
}

func q(s string) *resource.Quantity { v := resource.MustParse(s); return &v }

// TestValidate lists every rule with an object that breaks it, and the
// error a user sees (field path and the gist of the message).
func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		obj  v1.Object
		want string // "" means valid
	}{
		// Valid objects, defaults applied.
		{"blueprint defaults", blueprint(nil), ""},
		{"instance defaults", instance(nil), ""},
		{"overlay nested path", overlay("maps/custom-1"), ""},
		{"overlay path with percent", overlay("mods%h/100%"), ""}, // the node escapes systemd specifiers
		{"node", node(nil), ""},
		{"namespace", &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}, ""},

		// Metadata.
		{"name required", instance(func(i *v1.Instance) { i.Name = "" }), "metadata.name: Required value"},
		{"name uppercase", instance(func(i *v1.Instance) { i.Name = "Srv" }), `metadata.name: Invalid value: "Srv"`},
		{"name with slash", instance(func(i *v1.Instance) { i.Name = "a/b" }), `metadata.name: Invalid value: "a/b"`},
		{"name with dots is not a label", instance(func(i *v1.Instance) { i.Name = "a.b" }), `metadata.name: Invalid value: "a.b"`},
		{"name too long", instance(func(i *v1.Instance) { i.Name = strings.Repeat("a", 64) }), "metadata.name: Invalid value"},
		{"namespace required", instance(func(i *v1.Instance) { i.Namespace = "" }), "metadata.namespace: Required value"},
		{"namespace invalid", instance(func(i *v1.Instance) { i.Namespace = "../etc" }), `metadata.namespace: Invalid value: "../etc"`},
		{"cluster-scoped takes no namespace", node(func(n *v1.Node) { n.Namespace = "default" }), "metadata.namespace: Forbidden"},
		{"bad label", instance(func(i *v1.Instance) { i.Labels = map[string]string{"a b": "c"} }), `metadata.labels: Invalid value: "a b"`},
		{"bad finalizer", instance(func(i *v1.Instance) { i.Finalizers = []string{"no spaces allowed"} }), "metadata.finalizers[0]: Invalid value"},

		// Overlay path references.
		{"overlay source required", overlay(""), "spec.source: Required value: set one of path, archive, git, workshop, files"},
		{"overlay absolute", overlay("/etc"), `spec.source.path: Invalid value: "/etc": must be relative to the overlays root, not absolute`},
		{"overlay dotdot", overlay("../x"), `spec.source.path: Invalid value: "../x": must not contain '..'`},
		{"overlay dotdot inside", overlay("a/../../x"), "must not contain '..'"},
		{"overlay empty component", overlay("a//b"), "must not contain empty components"},
		{"overlay trailing slash", overlay("a/"), "must not contain empty components"},
		{"overlay dot component", overlay("./a"), "must not contain '.' components"},
		{"overlay newline", overlay("a\nb"), "must not contain control characters"},
		{"overlay backslash", overlay(`a\..\b`), `must not contain '\'`},
		{"overlay too long", overlay(strings.Repeat("a/", 600) + "a"), "spec.source.path: Too long"},
		{"overlay store", overlay(".store"), `spec.source.path: Invalid value: ".store": must not be below .store/: that is the node's store of fetched overlays`},
		{"overlay store entry", overlay(".store/files-0123/tree"), `spec.source.path: Invalid value: ".store/files-0123/tree": must not be below .store/`},
		{"overlay dot name", overlay(".sourcemod"), ""},
		{"overlay store-like name", overlay(".store2/x"), ""},
		{"overlay store deeper", overlay("maps/.store"), ""},

		// Blueprint overlays.
		{"blueprint overlay path", blueprint(func(b *v1.Blueprint) { b.Spec.Overlays = []string{"a", "b", "../x"} }), `spec.overlays[2]: Invalid value: "../x": must not contain '..'`},
		{"blueprint overlay slash", blueprint(func(b *v1.Blueprint) { b.Spec.Overlays = []string{"maps/x"} }), `spec.overlays[0]: Invalid value: "maps/x": must not contain '/'`},
		{"blueprint overlay duplicate", blueprint(func(b *v1.Blueprint) { b.Spec.Overlays = []string{"a", "a"} }), `spec.overlays[1]: Duplicate value: "a"`},
		{"blueprint too many overlays", blueprint(func(b *v1.Blueprint) { b.Spec.Overlays = make([]string, MaxOverlays+1) }), "spec.overlays: Too many"},

		// Game settings.
		{"map with slash", blueprint(func(b *v1.Blueprint) { b.Spec.Game.Map = "../../etc/passwd" }), "spec.game.map: Invalid value"},
		{"mode with space", blueprint(func(b *v1.Blueprint) { b.Spec.Game.Mode = "co op" }), "spec.game.mode: Invalid value"},
		{"max players", blueprint(func(b *v1.Blueprint) { b.Spec.Game.MaxPlayers = 33 }), "spec.game.maxPlayers: Invalid value: 33"},
		{"tickrate", blueprint(func(b *v1.Blueprint) { b.Spec.Game.Tickrate = 1000 }), "spec.game.tickrate: Invalid value: 1000"},

		// Cvars: server.cfg lines that cannot break out.
		{"cvar ok", blueprint(func(b *v1.Blueprint) {
			b.Spec.Cvars = []v1.Cvar{{Name: "sv_alltalk", Value: "1"}, {Name: "sm_cvar.x", Value: "a b c"}}
		}), ""},
		{"cvar newline", blueprint(func(b *v1.Blueprint) { b.Spec.Cvars = []v1.Cvar{{Name: "sv_alltalk", Value: "1\nrcon_password x"}} }), `spec.cvars[0].value: Invalid value: "1\nrcon_password x": must be one line`},
		{"cvar carriage return", blueprint(func(b *v1.Blueprint) { b.Spec.Cvars = []v1.Cvar{{Name: "a", Value: "1\r"}} }), "must be one line"},
		{"cvar quote", blueprint(func(b *v1.Blueprint) { b.Spec.Cvars = []v1.Cvar{{Name: "a", Value: `1" ; quit "`}} }), "spec.cvars[0].value"},
		{"cvar semicolon", blueprint(func(b *v1.Blueprint) { b.Spec.Cvars = []v1.Cvar{{Name: "a", Value: "1;quit"}} }), "must not contain ';'"},
		{"cvar control char", blueprint(func(b *v1.Blueprint) { b.Spec.Cvars = []v1.Cvar{{Name: "a", Value: "1\x00"}} }), "must not contain control characters"},
		{"cvar value too long", blueprint(func(b *v1.Blueprint) { b.Spec.Cvars = []v1.Cvar{{Name: "a", Value: strings.Repeat("x", 256)}} }), "spec.cvars[0].value: Too long"},
		{"cvar name required", blueprint(func(b *v1.Blueprint) { b.Spec.Cvars = []v1.Cvar{{Value: "1"}} }), "spec.cvars[0].name: Required value"},
		{"cvar name with space", blueprint(func(b *v1.Blueprint) { b.Spec.Cvars = []v1.Cvar{{Name: "sv_alltalk 1;quit", Value: "1"}} }), "spec.cvars[0].name: Invalid value"},
		{"cvar reserved rcon", blueprint(func(b *v1.Blueprint) { b.Spec.Cvars = []v1.Cvar{{Name: "rcon_password", Value: "x"}} }), `spec.cvars[0].name: Forbidden: "rcon_password" is reserved`},
		{"cvar reserved exec", blueprint(func(b *v1.Blueprint) { b.Spec.Cvars = []v1.Cvar{{Name: "EXEC", Value: "x"}} }), `"EXEC" is reserved`},
		{"cvar reserved hostname", blueprint(func(b *v1.Blueprint) { b.Spec.Cvars = []v1.Cvar{{Name: "hostname", Value: "x"}} }), "set spec.hostname on the Instance"},
		{"cvar reserved logaddress family", blueprint(func(b *v1.Blueprint) { b.Spec.Cvars = []v1.Cvar{{Name: "logaddress_add_http", Value: "x"}} }), `"logaddress_add_http" is reserved: the node configures logging`},
		{"cvar reserved map", blueprint(func(b *v1.Blueprint) { b.Spec.Cvars = []v1.Cvar{{Name: "map", Value: "c2m1"}} }), "set spec.game.map"},
		{"cvar duplicate", blueprint(func(b *v1.Blueprint) { b.Spec.Cvars = []v1.Cvar{{Name: "a", Value: "1"}, {Name: "A", Value: "2"}} }), `spec.cvars[1].name: Duplicate value: "A"`},

		// Args: every space-separated word, as srcds_run re-splits them.
		{"args ok", blueprint(func(b *v1.Blueprint) {
			b.Spec.Args = []string{"-nohltv", "+sv_lan", "0", "+sv_region 3", "-condebug", "+sv_tags coop,eu", "-norestart"}
		}), ""},
		{"arg owned port", blueprint(func(b *v1.Blueprint) { b.Spec.Args = []string{"+hostport", "27015"} }), `spec.args[0]: Invalid value: "+hostport": "+hostport" is reserved: set spec.port`},
		{"arg owned ip", blueprint(func(b *v1.Blueprint) { b.Spec.Args = []string{"+ip", "1.2.3.4"} }), `"+ip" is reserved`},
		{"arg owned game", blueprint(func(b *v1.Blueprint) { b.Spec.Args = []string{"-game", "x"} }), `"-game" is reserved`},
		{"arg owned game any case", blueprint(func(b *v1.Blueprint) { b.Spec.Args = []string{"-GAME", "x"} }), `"-GAME" is reserved`},
		{"arg map goes to spec.game", blueprint(func(b *v1.Blueprint) { b.Spec.Args = []string{"+map", "c2m1"} }), "set spec.game.map"},
		{"arg exec", blueprint(func(b *v1.Blueprint) { b.Spec.Args = []string{"+exec", "extra.cfg"} }), `spec.args[0]: Invalid value: "+exec": "+exec" is reserved: it runs other files`},
		{"arg exec absolute", blueprint(func(b *v1.Blueprint) { b.Spec.Args = []string{"+sv_lan", "/etc/passwd"} }), `spec.args[1]: Invalid value: "/etc/passwd": "/etc/passwd" must not name an absolute path`},
		{"arg exec dotdot", blueprint(func(b *v1.Blueprint) { b.Spec.Args = []string{"+sv_lan", "../../x.cfg"} }), `spec.args[1]: Invalid value: "../../x.cfg": "../../x.cfg" must not contain '..'`},
		{"arg home", blueprint(func(b *v1.Blueprint) { b.Spec.Args = []string{"~/x"} }), `must not contain '~', a shell metacharacter`},
		{"arg newline", blueprint(func(b *v1.Blueprint) { b.Spec.Args = []string{"a\nb"} }), "must not contain control characters"},
		{"arg empty", blueprint(func(b *v1.Blueprint) { b.Spec.Args = []string{""} }), `spec.args[0]: Invalid value: "": must not be empty`},
		{"arg only spaces", blueprint(func(b *v1.Blueprint) { b.Spec.Args = []string{"   "} }), `spec.args[0]: Invalid value: "   ": must not be empty`},
		{"arg too long", blueprint(func(b *v1.Blueprint) { b.Spec.Args = []string{strings.Repeat("x", MaxArgLength+1)} }), "spec.args[0]: Too long"},
		{"too many args", blueprint(func(b *v1.Blueprint) { b.Spec.Args = make([]string, MaxArgs+1) }), "spec.args: Too many"},

		// Resources.
		{"memoryHigh over max", blueprint(func(b *v1.Blueprint) { b.Spec.Resources.MemoryHigh = q("3Gi") }), "spec.resources.memoryHigh: Invalid value: \"3Gi\": must not exceed memoryMax (2Gi)"},
		{"memoryMax zero", blueprint(func(b *v1.Blueprint) { b.Spec.Resources.MemoryMax = q("0"); b.Spec.Resources.MemoryHigh = nil }), "spec.resources.memoryMax: Invalid value"},
		{"cpu weight", blueprint(func(b *v1.Blueprint) { b.Spec.Resources.CPUWeight = 20000 }), "spec.resources.cpuWeight"},
		{"tasks max", blueprint(func(b *v1.Blueprint) { b.Spec.Resources.TasksMax = -1 }), "spec.resources.tasksMax"},

		// Instances.
		{"instance restartedAt", instance(func(i *v1.Instance) {
			i.Annotations = map[string]string{v1.AnnotationRestartedAt: "2026-03-01T19:55:00.123456789Z", v1.AnnotationForceRestartAt: "2026-03-01T20:55:00+01:00"}
		}), ""},
		{"instance restartedAt not a time", instance(func(i *v1.Instance) { i.Annotations = map[string]string{v1.AnnotationRestartedAt: "now"} }),
			`metadata.annotations[left4me.io/restartedAt]: Invalid value: "now": must be an RFC 3339 time`},
		{"instance forceRestartAt not a time", instance(func(i *v1.Instance) { i.Annotations = map[string]string{v1.AnnotationForceRestartAt: "2026-03-01"} }),
			`metadata.annotations[left4me.io/forceRestartAt]: Invalid value: "2026-03-01": must be an RFC 3339 time`},
		{"blueprint restartedAt not a time", blueprint(func(b *v1.Blueprint) { b.Annotations = map[string]string{v1.AnnotationRestartedAt: "yesterday"} }),
			`metadata.annotations[left4me.io/restartedAt]: Invalid value: "yesterday"`},
		{"blueprintRef required", instance(func(i *v1.Instance) { i.Spec.BlueprintRef.Name = "" }), "spec.blueprintRef.name: Required value"},
		{"blueprintRef invalid", instance(func(i *v1.Instance) { i.Spec.BlueprintRef.Name = "../x" }), "spec.blueprintRef.name: Invalid value"},
		{"hostname ok", instance(func(i *v1.Instance) { i.Spec.Hostname = "EU #1 | coop (tickrate 60)" }), ""},
		{"hostname newline", instance(func(i *v1.Instance) { i.Spec.Hostname = "x\nrcon_password y" }), "spec.hostname: Invalid value"},
		{"hostname quote", instance(func(i *v1.Instance) { i.Spec.Hostname = `x"` }), "spec.hostname: Invalid value"},
		{"hostname semicolon", instance(func(i *v1.Instance) { i.Spec.Hostname = "EU #1; rcon_password x" }), `spec.hostname: Invalid value: "EU #1; rcon_password x": must not contain ';'`},
		{"hostname carriage return", instance(func(i *v1.Instance) { i.Spec.Hostname = "EU #1\rquit" }), "spec.hostname: Invalid value"},
		{"hostname too long", instance(func(i *v1.Instance) { i.Spec.Hostname = strings.Repeat("x", 65) }), "spec.hostname: Too long"},
		{"port low", instance(func(i *v1.Instance) { i.Spec.Port = 80 }), "spec.port: Invalid value: 80: must be between 1024 and 64535 (the client port, 1000 higher, must exist too)"},
		{"port whose client port cannot exist", instance(func(i *v1.Instance) { i.Spec.Port = 65000 }), "spec.port: Invalid value: 65000: must be between 1024 and 64535"},
		{"highest port", instance(func(i *v1.Instance) { i.Spec.Port = 64535 }), ""},
		{"port high", instance(func(i *v1.Instance) { i.Spec.Port = 70000 }), "spec.port: Invalid value: 70000"},
		{"port ok", instance(func(i *v1.Instance) { i.Spec.Port = 27015 }), ""},
		{"reschedule never", instance(func(i *v1.Instance) { i.Spec.RescheduleAfterNodeLost = "Never" }), ""},
		{"reschedule duration", instance(func(i *v1.Instance) { i.Spec.RescheduleAfterNodeLost = "90s" }), ""},
		{"reschedule garbage", instance(func(i *v1.Instance) { i.Spec.RescheduleAfterNodeLost = "soon" }), `spec.rescheduleAfterNodeLost: Invalid value: "soon": must be "Never" or a duration`},
		{"reschedule negative", blueprint(func(b *v1.Blueprint) { b.Spec.RescheduleAfterNodeLost = "-1s" }), `spec.rescheduleAfterNodeLost: Invalid value: "-1s"`},
		{"rollout policy", blueprint(func(b *v1.Blueprint) { b.Spec.Rollout.Policy = "Sometimes" }), `spec.rollout.policy: Unsupported value: "Sometimes"`},
		{"rollout maxUnavailable", blueprint(func(b *v1.Blueprint) { b.Spec.Rollout.MaxUnavailable = -1 }), "spec.rollout.maxUnavailable: Invalid value: -1"},
		{"nodeName invalid", instance(func(i *v1.Instance) { i.Spec.NodeName = "Host_A" }), "spec.nodeName: Invalid value"},
		{"nodeSelector invalid", instance(func(i *v1.Instance) { i.Spec.NodeSelector = map[string]string{"region": "eu west"} }), "spec.nodeSelector: Invalid value"},
		{"state unknown", instance(func(i *v1.Instance) { i.Spec.State = "Paused" }), `spec.state: Unsupported value: "Paused"`},

		// Nodes.
		{"port range inverted", node(func(n *v1.Node) { n.Spec.PortRange = v1.PortRange{Min: 28000, Max: 27000} }), "spec.portRange.max: Invalid value: 27000: must not be below min"},
		{"port range above the client ports", node(func(n *v1.Node) { n.Spec.PortRange = v1.PortRange{Min: 64600, Max: 64700} }), "spec.portRange.min: Invalid value: 64600: must be between 1024 and 64535"},
		{"port range low", node(func(n *v1.Node) { n.Spec.PortRange = v1.PortRange{Min: 80, Max: 27000} }), "spec.portRange.min"},
		{"port range too wide", node(func(n *v1.Node) { n.Spec.PortRange = v1.PortRange{Min: 27000, Max: 28000} }), "spec.portRange.max: Invalid value: 28000: the range must span fewer than 1000 ports"},
		{"capacity negative", node(func(n *v1.Node) { n.Spec.Capacity.Instances = -1 }), "spec.capacity.instances"},

		// Leases.
		{"lease", lease(nil), ""},
		{"lease without holder or duration", lease(func(l *v1.Lease) { l.Spec = v1.LeaseSpec{} }), ""},
		{"lease in a namespace", lease(func(l *v1.Lease) { l.Namespace = "default" }), "metadata.namespace: Forbidden"},
		{"lease holder not a node name", lease(func(l *v1.Lease) { l.Spec.HolderIdentity = "Host A" }), `spec.holderIdentity: Invalid value: "Host A"`},
		{"lease duration negative", lease(func(l *v1.Lease) { l.Spec.LeaseDurationSeconds = -1 }), "spec.leaseDurationSeconds: Invalid value: -1"},
		{"lease duration over a day", lease(func(l *v1.Lease) { l.Spec.LeaseDurationSeconds = MaxLeaseDurationSeconds + 1 }), "spec.leaseDurationSeconds: Invalid value: 86401"},

		// Events.
		{"event ok", &v1.Event{ObjectMeta: metav1.ObjectMeta{Name: "srv1.abc", Namespace: "default"}, InvolvedObject: v1.ObjectReference{Kind: "Instance", Name: "srv1"}, Type: "Normal", Reason: "Scheduled"}, ""},
		{"event bad type", &v1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e", Namespace: "default"}, InvolvedObject: v1.ObjectReference{Kind: "Instance", Name: "srv1"}, Type: "Info", Reason: "Scheduled"}, `type: Unsupported value: "Info"`},
		{"event other namespace", &v1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e", Namespace: "default"}, InvolvedObject: v1.ObjectReference{Kind: "Instance", Name: "srv1", Namespace: "other"}, Type: "Normal", Reason: "X"}, "involvedObject.namespace"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			errs := Validate(tc.obj)
			if tc.want == "" {
				if len(errs) > 0 {
					t.Fatalf("want valid, got %v", errs)
				}
				return
			}
			if len(errs) == 0 {
				t.Fatalf("want error containing %q, got none", tc.want)
			}
			if got := errs.ToAggregate().Error(); !strings.Contains(got, tc.want) {
				t.Fatalf("want error containing %q, got %q", tc.want, got)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	b := blueprint(nil)
	g := b.Spec.Game
	if g.Map != DefaultMap || g.Mode != DefaultMode || g.MaxPlayers != DefaultMaxPlayers || g.Tickrate != DefaultTickrate {
		t.Fatalf("game defaults: %+v", g)
	}
	r := b.Spec.Resources
	if r.MemoryMax.String() != "2Gi" || r.MemoryHigh.String() != "1536Mi" || r.TasksMax != 256 {
		t.Fatalf("resource defaults: max %s high %s tasks %d", r.MemoryMax, r.MemoryHigh, r.TasksMax)
	}
	// A small memoryMax pulls the default memoryHigh down with it.
	small := &v1.Blueprint{Spec: v1.BlueprintSpec{Resources: v1.Resources{MemoryMax: q("1Gi")}}}
	Default(small)
	if small.Spec.Resources.MemoryHigh.Cmp(*small.Spec.Resources.MemoryMax) > 0 {
		t.Fatalf("default memoryHigh %s above memoryMax %s", small.Spec.Resources.MemoryHigh, small.Spec.Resources.MemoryMax)
	}
	if i := instance(nil); i.Spec.State != v1.StateRunning {
		t.Fatalf("instance state default %q", i.Spec.State)
	}
	if n := node(nil); n.Spec.PortRange.Min != DefaultPortMin || n.Spec.PortRange.Max != DefaultPortMax {
		t.Fatalf("node port range default %+v", n.Spec.PortRange)
	}
}

func TestValidateStatusConditions(t *testing.T) {
	i := instance(nil)
	i.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: "Maybe", Reason: "X", LastTransitionTime: metav1.Now()}}
	if errs := ValidateStatus(i); len(errs) == 0 || !strings.Contains(errs.ToAggregate().Error(), "status.conditions[0].status") {
		t.Fatalf("bad condition status accepted: %v", errs)
	}
}

// TestArgsSrcdsRunResplits: Valve's srcds_run is a shell script that joins
// its arguments and splits them again on spaces, so every word is checked,
// not the argv element. Each row was accepted before; the error names the
// element, the word and the reason.
func TestArgsSrcdsRunResplits(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"+exec evil.cfg"}, `spec.args[0]: Invalid value: "+exec evil.cfg": "+exec" is reserved: it runs other files`},
		{[]string{"+rcon_password evil"}, `spec.args[0]: Invalid value: "+rcon_password evil": "+rcon_password" is reserved: the node generates one per Instance`},
		{[]string{" +rcon_password"}, `spec.args[0]: Invalid value: " +rcon_password": "+rcon_password" is reserved`},
		{[]string{"+logaddress_add 203.0.113.9:27500"}, `spec.args[0]: Invalid value: "+logaddress_add 203.0.113.9:27500": "+logaddress_add" is reserved: the node configures logging`},
		{[]string{"+con_logfile /etc/cron.d/x"}, `spec.args[0]: Invalid value: "+con_logfile /etc/cron.d/x": "+con_logfile" is reserved: it chooses a file to write`},
		{[]string{"-ip 1.2.3.4"}, `spec.args[0]: Invalid value: "-ip 1.2.3.4": "-ip" is reserved: the node sets the address`},
		{[]string{"$(id)"}, `spec.args[0]: Invalid value: "$(id)": must not contain '$', a shell metacharacter`},
		// The same, as separate elements and in other positions.
		{[]string{"+sv_lan", "0", "+exec", "evil.cfg"}, `spec.args[2]: Invalid value: "+exec": "+exec" is reserved`},
		{[]string{"-nohltv", "+sv_lan 0 +EXEC evil.cfg"}, `spec.args[1]: Invalid value: "+sv_lan 0 +EXEC evil.cfg": "+EXEC" is reserved`},
		{[]string{"+sv_logsdir", "/tmp"}, `"+sv_logsdir" is reserved: it chooses where logs are written`},
		{[]string{"+sv_tags", "`id`"}, "must not contain '`'"},
		{[]string{"+sv_tags", "a;quit"}, "must not contain ';'"},
		{[]string{"+sv_tags", `"a"`}, `must not contain '"'`},
		{[]string{"+sv_tags", "*"}, "must not contain '*'"},
		{[]string{"+sv_tags", "a|b"}, "must not contain '|'"},
		{[]string{"+sv_tags", "caf\u00e9"}, "must be printable ASCII"},
		{[]string{"+"}, `"+" must name a console command`},
		// srcds_run's own options that start programs, write files or update.
		{[]string{"-binary", "srcds_linux"}, `"-binary" is reserved: srcds_run would start another program`},
		{[]string{"-debug -gdb evil"}, `"-gdb" is reserved`},
		{[]string{"-pidfile", "x.pid"}, `"-pidfile" is reserved: it chooses a file to write`},
		{[]string{"-autoupdate", "-steam_dir", "x", "-steamcmd_script", "y"}, `spec.args[0]: Invalid value: "-autoupdate": "-autoupdate" is reserved: the node manages the installation`},
		{[]string{"-ignoresigint"}, "the node stops the game with SIGINT"},
		{[]string{"-port 27016"}, `"-port" is reserved: set spec.port on the Instance`},
		{[]string{"+clientport 1"}, `"+clientport" is reserved`},
		{[]string{"+tv_port", "1"}, `"+tv_port" is reserved`},
		{[]string{"-tickrate 128"}, `"-tickrate" is reserved: set spec.game.tickrate`},
		{[]string{"+maxplayers 32"}, `"+maxplayers" is reserved: set spec.game.maxPlayers`},
		{[]string{"+mp_gamemode versus"}, `"+mp_gamemode" is reserved: set spec.game.mode`},
	} {
		errs := Validate(blueprint(func(b *v1.Blueprint) { b.Spec.Args = tc.args }))
		if got := errs.ToAggregate(); got == nil || !strings.Contains(got.Error(), tc.want) {
			t.Errorf("args %q: want an error containing %q, got %v", tc.args, tc.want, got)
		}
	}
}
