package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestExampleConfigLoads(t *testing.T) {
	f, err := loadNodeFile("../../config/node.yaml.example")
	if err != nil {
		t.Fatal(err)
	}
	if f.Server != "https://api.example.org:6443" || f.Node.Name != "host-1" || f.Node.Capacity.Memory != "48Gi" || f.Node.Labels["region"] != "eu" {
		t.Fatalf("parsed %+v", f)
	}
}

func TestFlagsWinOverFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "node.yaml")
	os.WriteFile(path, []byte("server: https://x:6443\nnode:\n  name: from-file\n  portRange: 28000-28010\n  capacity: {instances: 7}\n"), 0o600)
	f, err := loadNodeFile(path)
	if err != nil {
		t.Fatal(err)
	}
	o := &options{nodeName: "host", portRange: "27015-27115"}
	flags := pflag.NewFlagSet("t", pflag.ContinueOnError)
	flags.StringVar(&o.nodeName, "node-name", "host", "")
	flags.StringVar(&o.portRange, "port-range", "27015-27115", "")
	flags.Int32Var(&o.maxInst, "capacity-instances", 0, "")
	if err := flags.Parse([]string{"--node-name=from-flag"}); err != nil {
		t.Fatal(err)
	}
	if err := f.Node.applyTo(o, flags); err != nil {
		t.Fatal(err)
	}
	if o.nodeName != "from-flag" || o.portRange != "28000-28010" || o.maxInst != 7 {
		t.Fatalf("options after the file: %+v", o)
	}
}

func TestUnknownConfigKeyNamed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.yaml")
	os.WriteFile(path, []byte("server: https://x:6443\nnode:\n  ports: 1-2\n"), 0o600)
	_, err := loadNodeFile(path)
	if err == nil || !strings.Contains(err.Error(), "ports") || !strings.Contains(err.Error(), path) {
		t.Fatalf("error %v should name the file and the unknown key", err)
	}
}

// TestSteamcmdSettings: node.yaml's steamcmd: block sets the flags it
// mirrors, a flag on the command line wins, and a bad timeout is named.
func TestSteamcmdSettings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.yaml")
	os.WriteFile(path, []byte("server: https://x:6443\nnode:\n  steamcmd: {path: /opt/steamcmd/steamcmd.sh, timeout: 2h, twoPass: false}\n"), 0o600)
	f, err := loadNodeFile(path)
	if err != nil {
		t.Fatal(err)
	}
	o := &options{}
	flags := pflag.NewFlagSet("t", pflag.ContinueOnError)
	flags.StringVar(&o.steamcmdPath, "steamcmd", "", "")
	flags.DurationVar(&o.steamcmdTimeout, "steamcmd-timeout", time.Hour, "")
	flags.BoolVar(&o.steamcmdTwoPass, "steamcmd-two-pass", true, "")
	if err := flags.Parse([]string{"--steamcmd-timeout=30m"}); err != nil {
		t.Fatal(err)
	}
	if err := f.Node.applyTo(o, flags); err != nil {
		t.Fatal(err)
	}
	if o.steamcmdPath != "/opt/steamcmd/steamcmd.sh" || o.steamcmdTimeout != 30*time.Minute || o.steamcmdTwoPass {
		t.Fatalf("options after the file: path %q timeout %v two-pass %v", o.steamcmdPath, o.steamcmdTimeout, o.steamcmdTwoPass)
	}

	f.Node.Steamcmd.Timeout = "soon"
	if err := f.Node.applyTo(&options{}, pflag.NewFlagSet("t", pflag.ContinueOnError)); err == nil || !strings.Contains(err.Error(), "node.steamcmd.timeout") {
		t.Fatalf("a bad timeout: %v", err)
	}
}

func TestSteamcmdPathChecked(t *testing.T) {
	for path, want := range map[string]string{
		"":                                      "",
		"/var/lib/left4me/steamcmd/steamcmd.sh": "",
		"/opt/steamcmd/steamcmd.sh":             "",
		"steamcmd/steamcmd.sh":                  "want an absolute path",
		"/home/steam/steamcmd/steamcmd.sh":      "below /home, which ProtectHome=yes hides",
		"/root/steamcmd.sh":                     "below /root",
		"/run/user/1000/steamcmd.sh":            "below /run/user",
	} {
		err := checkSteamcmdPath(path)
		if (want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", path, err, want)
		}
	}
}

// TestOverlaySettings: node.yaml's overlayFileRoots and steamAPIURL set
// their flags; bad values are refused naming the flag and the key.
func TestOverlaySettings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.yaml")
	os.WriteFile(path, []byte("server: https://x:6443\nnode:\n  overlayFileRoots: [/srv/left4me/archives]\n  steamAPIURL: http://127.0.0.1:8099\n"), 0o600)
	f, err := loadNodeFile(path)
	if err != nil {
		t.Fatal(err)
	}
	o := &options{}
	flags := pflag.NewFlagSet("t", pflag.ContinueOnError)
	flags.StringSliceVar(&o.overlayFileRoots, "overlay-file-roots", nil, "")
	flags.StringVar(&o.steamAPIURL, "steam-api-url", "https://api.steampowered.com", "")
	if err := f.Node.applyTo(o, flags); err != nil {
		t.Fatal(err)
	}
	if len(o.overlayFileRoots) != 1 || o.overlayFileRoots[0] != "/srv/left4me/archives" || o.steamAPIURL != "http://127.0.0.1:8099" {
		t.Fatalf("options after the file: roots %v steam %q", o.overlayFileRoots, o.steamAPIURL)
	}
	for roots, want := range map[string]string{"/srv/archives": "", "srv/archives": "want an absolute, clean directory", "/srv/../etc": "want an absolute, clean", "/": "other than /"} {
		err := checkFileRoots([]string{roots})
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "node.overlayFileRoots")) {
			t.Errorf("checkFileRoots(%q) = %v, want %q", roots, err, want)
		}
	}
	for u, ok := range map[string]bool{"https://api.steampowered.com": true, "http://127.0.0.1:8099": true, "ftp://x": false, "https://": false, "https://x/?key=1": false} {
		if err := checkSteamAPIURL(u); (err == nil) != ok {
			t.Errorf("checkSteamAPIURL(%q) = %v", u, err)
		}
	}
}

// TestMetricsBindAddress: node.yaml's metricsBindAddress sets the flag
// ("" turns metrics off, as "0" does), and the flag wins over it.
func TestMetricsBindAddress(t *testing.T) {
	for _, c := range []struct {
		file, flag, want string
	}{
		{file: `"10.0.0.5:9740"`, want: "10.0.0.5:9740"},
		{file: `""`, want: ""},
		{file: `"0"`, want: ""},
		{file: `"10.0.0.5:9740"`, flag: "127.0.0.1:9999", want: "127.0.0.1:9999"},
	} {
		path := filepath.Join(t.TempDir(), "node.yaml")
		os.WriteFile(path, []byte("server: https://x:6443\nnode:\n  metricsBindAddress: "+c.file+"\n"), 0o600)
		f, err := loadNodeFile(path)
		if err != nil {
			t.Fatal(err)
		}
		o := &options{}
		flags := pflag.NewFlagSet("t", pflag.ContinueOnError)
		flags.StringVar(&o.metrics, "metrics-bind-address", "127.0.0.1:9740", "")
		var args []string
		if c.flag != "" {
			args = append(args, "--metrics-bind-address="+c.flag)
		}
		if err := flags.Parse(args); err != nil {
			t.Fatal(err)
		}
		if err := f.Node.applyTo(o, flags); err != nil {
			t.Fatal(err)
		}
		if got := metricsListen(o.metrics); got != c.want {
			t.Errorf("file %s flag %q: listens on %q, want %q", c.file, c.flag, got, c.want)
		}
	}
}
