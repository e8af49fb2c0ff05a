package unit

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	mnt, err := Mount(p, s.ID, []string{"/var/lib/left4me/overlays/configs/competitive", "/var/lib/left4me/overlays/sourcemod"})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "overlay.mount.golden", mnt)
	fuse, err := MountWith(p, s.ID, []string{"/var/lib/left4me/overlays/sourcemod"}, DriverFuseOverlayfs)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "overlay-fuse.mount.golden", fuse)
	if _, err := MountWith(p, s.ID, nil, "zfs"); err == nil {
		t.Fatal("an unknown driver rendered")
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
	if _, err := Mount(p, "x", []string{"/a:b"}); err == nil {
		t.Error("a lower dir with ':' rendered")
	}
}

func TestQuoteArgv(t *testing.T) {
	got := quoteArgv([]string{"/bin/x", `a "b"`, `100%`, `$HOME`, `back\slash`})
	want := `"/bin/x" "a \"b\"" "100%%" "$$HOME" "back\\slash"`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}
