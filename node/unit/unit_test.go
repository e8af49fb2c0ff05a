package unit

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreos/go-systemd/v22/unit"
	"k8s.io/apimachinery/pkg/api/resource"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./node/unit -update)", err)
	}
	if got != string(want) {
		t.Fatalf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func q(s string) *resource.Quantity { v := resource.MustParse(s); return &v }

func sample() Spec {
	return Spec{
		ID: ID("default", "coop-1"), Namespace: "default", Name: "coop-1", Blueprint: "versus",
		Game:           v1.GameSpec{Map: "c5m1_waterfront", Mode: "versus", MaxPlayers: 8, Tickrate: 60},
		Cvars:          []v1.Cvar{{Name: "sv_alltalk", Value: "0"}, {Name: "sv_tags", Value: "left4me, 100% fun $HOME"}},
		Args:           []string{"-nohltv", "+sv_lan", "0", "+sv_region", "3"},
		Resources:      v1.Resources{MemoryHigh: q("1536Mi"), MemoryMax: q("2Gi"), TasksMax: 256},
		Ports:          Ports{Game: 27015, Client: 28015},
		OverlayConfigs: []string{"sourcemod", "competitive"},
		RCONPassword:   "Zq3xTj9wP2mKf7Lc",
	}
}

func TestGolden(t *testing.T) {
	p := Paths{Root: "/var/lib/left4me"}
	s := sample()
	cfg, err := ServerCfg(s)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "server.cfg.golden", string(cfg))
	svc, err := Service(p, s)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "game.service.golden", svc)
	golden(t, "instance.env.golden", string(EnvFile(s)))
	ov, err := OverlayService(p, s.ID, mustOverlay(t, p, s.ID, []string{"/var/lib/left4me/overlays/configs/competitive", "/var/lib/left4me/overlays/sourcemod"}, DriverOverlayfs))
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "overlay.service.golden", ov)
	fuse, err := MountOver(p, s.ID, []string{"/var/lib/left4me/overlays/sourcemod"}, p.Installation(), DriverFuseOverlayfs)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "overlay-fuse.mount.golden", fuse)
	if _, err := OverlayMount(p, s.ID, nil, p.Installation(), "zfs"); err == nil {
		t.Fatal("an unknown driver rendered")
	}
	if _, err := MountOver(p, s.ID, nil, p.Installation(), DriverOverlayfs); err == nil {
		t.Fatal("a .mount unit rendered for a kernel overlay, which its game unit mounts")
	}
	if _, err := OverlayService(p, s.ID, mustOverlay(t, p, ID("default", "other"), nil, DriverOverlayfs)); err == nil {
		t.Fatal("an overlay unit rendered that mounts another Instance's overlay")
	}
	if _, err := OverlayService(p, s.ID, mustOverlay(t, p, s.ID, nil, DriverFuseOverlayfs)); err == nil {
		t.Fatal("an overlay unit rendered for fuse-overlayfs, whose daemon needs a .mount unit")
	}
	if got := ServiceName(s.ID); got != "l4m-default.coop-1.service" {
		t.Fatalf("service name %s", got)
	}
	if got := MountName(p, s.ID); got != `var-lib-left4me-runtime-default.coop\x2d1-merged.mount` {
		t.Fatalf("mount name %s", got)
	}
}

func TestServerCfgOrder(t *testing.T) {
	s := sample()
	cfg, _ := ServerCfg(s)
	text := string(cfg)
	// Without an explicit hostname the default comes first, so an overlay's wins.
	if i, j := strings.Index(text, `hostname "default coop-1"`), strings.Index(text, "exec server_overlay_0_sourcemod.cfg"); i < 0 || i > j {
		t.Fatalf("default hostname must precede the overlays:\n%s", text)
	}
	// rcon_password is the last line: no overlay can override it.
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if !strings.HasPrefix(lines[len(lines)-1], "rcon_password ") {
		t.Fatalf("rcon_password is not last:\n%s", text)
	}
	s.Hostname = "Explicit"
	cfg, _ = ServerCfg(s)
	if i, j := strings.Index(string(cfg), `hostname "Explicit"`), strings.Index(string(cfg), "exec server_overlay_1"); i < j {
		t.Fatalf("an explicit hostname must follow the overlays:\n%s", cfg)
	}
}

// TestHostRechecks: whatever reached the node, rendering refuses what the
// API would have refused.
func TestHostRechecks(t *testing.T) {
	p := Paths{Root: "/var/lib/left4me"}
	for name, mut := range map[string]func(*Spec){
		"cvar newline":               func(s *Spec) { s.Cvars = []v1.Cvar{{Name: "a", Value: "1\nrcon_password x"}} },
		"hostname quote":             func(s *Spec) { s.Hostname = `x" ; quit` },
		"exec absolute path":         func(s *Spec) { s.Args = []string{"+exec", "/etc/passwd"} },
		"owned argument":             func(s *Spec) { s.Args = []string{"+hostport", "1"} },
		"exec in one element":        func(s *Spec) { s.Args = []string{"+sv_lan 0 +exec evil.cfg"} },
		"owned flag in one element":  func(s *Spec) { s.Args = []string{" -ip 1.2.3.4"} },
		"shell command substitution": func(s *Spec) { s.Args = []string{"+sv_tags", "$(id)"} },
		"log sent elsewhere":         func(s *Spec) { s.Args = []string{"+logaddress_add 203.0.113.9:27500"} },
		"weak rcon password":         func(s *Spec) { s.RCONPassword = "short" },
		"overlay cfg name":           func(s *Spec) { s.OverlayConfigs = []string{"../x"} },
		"port out of range":          func(s *Spec) { s.Ports.Game = 80 },
	} {
		s := sample()
		mut(&s)
		if _, err := ServerCfg(s); err == nil {
			t.Errorf("%s: server.cfg rendered", name)
		}
		if _, err := Service(p, s); err == nil {
			t.Errorf("%s: unit rendered", name)
		}
	}
	for _, lower := range []string{"/a:b", "/a,b", `/a"b`, "/a\nb", "relative"} {
		if _, err := OverlayMount(p, "x", []string{lower}, p.Installation(), DriverOverlayfs); err == nil {
			t.Errorf("a lower dir %q rendered", lower)
		}
	}
}

func TestQuoteArgv(t *testing.T) {
	got := quoteArgv([]string{"/bin/x", `a "b"`, `100%`, `$HOME`, `back\slash`})
	want := `"/bin/x" "a \"b\"" "100%" "$$HOME" "back\\slash"` // '%' is the unitWriter's
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// resolveSpecifiers reads a unit file value as systemd does: "%%" is one
// '%', and any other '%' starts a specifier, which the node must never
// leave in what it writes.
func resolveSpecifiers(v string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '%' {
			b.WriteByte(v[i])
			continue
		}
		if i+1 < len(v) && v[i+1] == '%' {
			b.WriteByte('%')
			i++
			continue
		}
		return "", fmt.Errorf("unescaped specifier %q at %d", v[i:min(i+2, len(v))], i)
	}
	return b.String(), nil
}

// TestUnitsEscapeSpecifiers renders every unit the node writes for a root,
// an overlay directory and an argument holding '%', and reads them back as
// systemd would: no setting holds a specifier, and each resolves to the
// path or value the node meant (Where= also to the path the unit is named
// after).
func TestUnitsEscapeSpecifiers(t *testing.T) {
	p := Paths{Root: "/srv/l4m%i"}
	s := sample()
	s.Args = []string{"+sv_tags", "100%", "+sv_region %n"}
	lower := "/srv/l4m%i/overlays/mods%h"
	svc, err := Service(p, s)
	if err != nil {
		t.Fatal(err)
	}
	ov, err := OverlayService(p, s.ID, mustOverlay(t, p, s.ID, []string{lower}, DriverOverlayfs))
	if err != nil {
		t.Fatal(err)
	}
	fuse, err := MountOver(p, s.ID, []string{lower}, p.Installation(), DriverFuseOverlayfs)
	if err != nil {
		t.Fatal(err)
	}
	kept := s
	kept.KeepHostMount = true
	fuseSvc, err := Service(p, kept)
	if err != nil {
		t.Fatal(err)
	}
	merged := "/srv/l4m%i/runtime/default.coop-1/merged"
	home := "/srv/l4m%i/instances/default.coop-1/home"
	want := map[string]map[string]string{
		// Its overlay unit mounts the stack as it starts (the node
		// detaches the host's copy once the game runs): no .mount unit.
		"service": {
			"WorkingDirectory":  "-" + merged,
			"Requires":          "l4m-default.coop-1.overlay.service",
			"Wants":             "",
			"RequiresMountsFor": "",
			"Type":              "exec",
			"Environment":       "HOME=" + home,
			"EnvironmentFile":   "/srv/l4m%i/instances/default.coop-1/instance.env",
			"ReadWritePaths":    merged + " " + home,
		},
		// fuse-overlayfs: the daemon lives in the mount unit, which stays.
		"fuse service": {
			"WorkingDirectory":  merged,
			"RequiresMountsFor": merged,
			"Wants":             "",
		},
		"overlay unit": {
			"ExecStart": `-"/bin/umount" "--lazy" "--quiet" "--no-canonicalize" "` + merged + `"` + "\n" +
				`"/bin/mount" "--internal-only" "-t" "overlay" "-o" "lowerdir=` + lower +
				`:/srv/l4m%i/installation,upperdir=/srv/l4m%i/runtime/default.coop-1/upper,workdir=/srv/l4m%i/runtime/default.coop-1/work" "overlay" "` + merged + `"`,
		},
		"fuse mount": {
			"Where":   merged,
			"Options": "lowerdir=" + lower + ":/srv/l4m%i/installation,upperdir=/srv/l4m%i/runtime/default.coop-1/upper,workdir=/srv/l4m%i/runtime/default.coop-1/work,allow_other",
		},
	}
	for name, text := range map[string]string{"service": svc, "fuse service": fuseSvc, "overlay unit": ov, "fuse mount": fuse} {
		opts, err := unit.DeserializeOptions(strings.NewReader(text))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := map[string]string{}
		for _, o := range opts {
			v, err := resolveSpecifiers(o.Value)
			if err != nil {
				t.Errorf("%s: %s=%s: %v", name, o.Name, o.Value, err)
			}
			if got[o.Name] != "" {
				v = got[o.Name] + "\n" + v // ExecStart= twice: both, in order
			}
			got[o.Name] = v
		}
		for k, v := range want[name] {
			if got[k] != v {
				t.Errorf("%s: %s resolves to %q, want %q", name, k, got[k], v)
			}
		}
		if name == "overlay unit" {
			continue
		}
		if strings.HasSuffix(name, "service") {
			if !strings.Contains(got["ExecStart"], `"+sv_tags" "100%" "+sv_region %n"`) {
				t.Errorf("ExecStart resolves to %s", got["ExecStart"])
			}
			continue
		}
		if named := unit.UnitNamePathUnescape(strings.TrimSuffix(MountName(p, s.ID), ".mount")); got["Where"] != named {
			t.Errorf("%s: Where= resolves to %q, the unit is named after %q", name, got["Where"], named)
		}
	}
}

// TestGamesBindTheRootOwnedSteamClient: wherever steamcmd is, the games
// bind the agent's root-owned copy of its client library, never steamcmd's
// own directory (its account could swap it for a link to anywhere).
func TestGamesBindTheRootOwnedSteamClient(t *testing.T) {
	for _, p := range []Paths{{Root: "/var/lib/left4me"}, {Root: "/var/lib/left4me", SteamcmdDir: "/opt/steamcmd"}} {
		svc, err := Service(p, sample())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(svc, "BindReadOnlyPaths=-/var/lib/left4me/steamclient\n") || strings.Contains(svc, "linux32") {
			t.Errorf("steamcmd dir %q: the unit should bind only /var/lib/left4me/steamclient:\n%s", p.SteamcmdDir, svc)
		}
	}
	if got := (Paths{Root: "/r", SteamcmdDir: "/opt/steamcmd"}).SteamcmdLibDir(); got != "/opt/steamcmd/linux32" {
		t.Errorf("SteamcmdLibDir = %s", got)
	}
}

func mustOverlay(t *testing.T, p Paths, id string, lowers []string, driver string) MountArgs {
	t.Helper()
	m, err := OverlayMount(p, id, lowers, p.Installation(), driver)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestParseServiceName: a game's unit names its Instance; its overlay unit
// and other units do not, so the node never takes them for a game of an
// Instance that does not exist (and tears them down).
func TestParseServiceName(t *testing.T) {
	id := ID("default", "coop-1")
	if ns, name, ok := ParseServiceName(ServiceName(id)); !ok || ns != "default" || name != "coop-1" {
		t.Fatalf("%s: %q %q %v", ServiceName(id), ns, name, ok)
	}
	for _, other := range []string{OverlayServiceName(id), MountName(Paths{Root: "/var/lib/left4me"}, id), "l4m-node.service", "l4m-.x.service", "sshd.service"} {
		if ns, name, ok := ParseServiceName(other); ok {
			t.Errorf("%s read as the game of %s/%s", other, ns, name)
		}
	}
}
