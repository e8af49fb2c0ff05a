package unit

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/left4me/left4me/hack/sandboxtest"
)

// layOut prepares one Instance on a sandbox host the way the node agent
// does: its own account (uid = gid = uid), the generated layer with
// server.cfg (0640 root:<its group>) on top of the given overlays, the
// game-owned upper dir and home; it sets s.User.
func layOut(t *testing.T, sb *sandboxtest.Sandbox, p Paths, s *Spec, uid int, driver string, overlays ...string) {
	t.Helper()
	host := sb.Left4meDir
	s.User = fmt.Sprintf("l4m-test%d", uid)
	ids := strconv.Itoa(uid)
	sb.MustExec(t, "groupadd", "--system", "--gid", ids, s.User)
	sb.MustExec(t, "useradd", "--system", "--uid", ids, "--gid", ids, "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", s.User)
	mk := func(rel string, mode os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(host, rel), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(host, rel), mode); err != nil {
			t.Fatal(err)
		}
	}
	write := func(rel, content string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(host, rel), []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	gen := "instances/" + s.ID + "/generated/h1"
	mk(gen+"/left4dead2/cfg", 0o755)
	cfg, err := ServerCfg(*s)
	if err != nil {
		t.Fatal(err)
	}
	write(gen+"/left4dead2/cfg/server.cfg", string(cfg), 0o640)
	for i, o := range s.OverlayConfigs {
		write(gen+"/left4dead2/cfg/"+OverlayConfigName(i, o), "hostname \"From The Overlay\"\n", 0o640)
	}
	sb.MustExec(t, "sh", "-c", "chgrp "+ids+" "+p.Generated(s.ID)+"/h1/left4dead2/cfg/*")
	os.Chmod(filepath.Join(host, "instances", s.ID), 0o711)
	rt := "runtime/" + s.ID
	mk(rt+"/upper/left4dead2/cfg", 0o755)
	mk(rt+"/work", 0o700)
	mk(rt+"/merged", 0o755)
	mk("instances/"+s.ID+"/home", 0o750)
	write("instances/"+s.ID+"/instance.env", string(EnvFile(*s)), 0o644)
	sb.MustExec(t, "chown", "-R", ids+":"+ids, p.Upper(s.ID), p.Home(s.ID))

	lowers := append([]string{p.Generated(s.ID) + "/h1"}, overlays...)
	if driver == DriverFuseOverlayfs {
		// Its daemon lives in a .mount unit, which stays mounted.
		mount, err := MountOver(p, s.ID, lowers, p.Installation(), driver)
		if err != nil {
			t.Fatal(err)
		}
		installUnit(t, sb, MountName(p, s.ID), mount)
		s.KeepHostMount = true
	} else {
		m, err := OverlayMount(p, s.ID, lowers, p.Installation(), driver)
		if err != nil {
			t.Fatal(err)
		}
		mount, err := OverlayService(p, s.ID, m)
		if err != nil {
			t.Fatal(err)
		}
		installUnit(t, sb, OverlayServiceName(s.ID), mount)
	}
	svc, err := Service(p, *s)
	if err != nil {
		t.Fatal(err)
	}
	installUnit(t, sb, ServiceName(s.ID), svc)
}

// installUnit writes a unit file into the sandbox's /run/systemd/system.
func installUnit(t *testing.T, sb *sandboxtest.Sandbox, name, text string) {
	t.Helper()
	staged := filepath.Join(sb.Left4meDir, "unit-"+name)
	if err := os.WriteFile(staged, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	sb.MustExec(t, "cp", "/var/lib/left4me/unit-"+name, "/run/systemd/system/"+name)
	os.Remove(staged)
}

func startUnits(t *testing.T, sb *sandboxtest.Sandbox, p Paths, s Spec) {
	t.Helper()
	sb.MustExec(t, "systemctl", "daemon-reload")
	if out, err := sb.Exec("systemctl", "start", ServiceName(s.ID)); err != nil {
		logs, _ := sb.Exec("journalctl", "-u", ServiceName(s.ID), "--no-pager")
		t.Fatalf("start: %v\n%s\n%s", err, out, logs)
	}
}

// TestGamesCannotReachEachOther runs two Instances' units as the node
// renders them: "victim" runs the game double, "intruder" has the same
// unit with a probe in place of the game, as a hostile plugin would run.
// The probe must fail to read, write or signal anything of the victim's,
// while it can read and write its own tree (so the failures are not those
// of a probe that can do nothing).
func TestGamesCannotReachEachOther(t *testing.T) {
	sb := sandboxtest.Boot(t, "unit-isolation")
	host := sb.Left4meDir
	p := Paths{Root: "/var/lib/left4me"}
	if err := os.MkdirAll(filepath.Join(host, "installation/left4dead2/cfg"), 0o755); err != nil {
		t.Fatal(err)
	}
	buildDouble(t, filepath.Join(host, "installation", "srcds_run"))

	victim, intruder := sample(), sample()
	victim.ID, victim.Name, victim.Args, victim.OverlayConfigs = ID("tenant-a", "coop-1"), "coop-1", nil, nil
	intruder.ID, intruder.Name, intruder.Args, intruder.OverlayConfigs = ID("tenant-b", "coop-1"), "coop-1", nil, nil
	victim.Namespace, intruder.Namespace = "tenant-a", "tenant-b"
	victim.Ports = testPorts()
	intruder.Ports = Ports{Game: victim.Ports.Game + 1, Client: victim.Ports.Client + 1}
	victim.RCONPassword, intruder.RCONPassword = "VictimsSecretRcon1", "IntrudersOwnRcon22"
	layOut(t, sb, p, &victim, 482001, DriverOverlayfs)
	if err := os.WriteFile(filepath.Join(host, "instances", victim.ID, "rcon_password"), []byte(victim.RCONPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	startUnits(t, sb, p, victim)
	vpid := ""
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if vpid = strings.TrimSpace(sb.MustExec(t, "systemctl", "show", "-P", "MainPID", ServiceName(victim.ID))); vpid != "0" {
			break
		}
	}
	if vpid == "0" {
		t.Fatal("the victim's game never started")
	}

	vm, vu, vi := p.Merged(victim.ID), p.Upper(victim.ID), p.Instance(victim.ID)
	probe := strings.Join([]string{
		"out=$HOME/probe.out; : > $out",
		"try() { name=$1; shift; if \"$@\" >/dev/null 2>&1; then echo \"$name: allowed\" >> $out; else echo \"$name: denied\" >> $out; fi; }",
		"try read-victims-server.cfg cat " + vm + "/left4dead2/cfg/server.cfg",
		"try read-victims-generated-cfg cat " + p.Generated(victim.ID) + "/h1/left4dead2/cfg/server.cfg",
		"try read-victims-rcon_password cat " + vi + "/rcon_password",
		"try list-victims-upper ls " + vu,
		"try write-victims-tree sh -c 'echo pwned > " + vm + "/pwned'",
		"try write-victims-upper sh -c 'echo pwned > " + vu + "/pwned'",
		"try signal-victims-game kill -0 " + vpid,
		"try read-victims-environ cat /proc/" + vpid + "/environ",
		"try see-victims-runtime-dir test -e " + p.Runtime(victim.ID),
		"try read-own-server.cfg grep -q IntrudersOwnRcon22 " + p.Merged(intruder.ID) + "/left4dead2/cfg/server.cfg",
		"try write-own-tree sh -c 'echo mine > " + p.Merged(intruder.ID) + "/mine'",
		"try write-own-home sh -c 'echo mine > $HOME/mine'",
		"echo done >> $out",
	}, "\n")
	if err := os.WriteFile(filepath.Join(host, "probe.sh"), []byte(probe), 0o755); err != nil {
		t.Fatal(err)
	}
	layOut(t, sb, p, &intruder, 482002, DriverOverlayfs)
	// The intruder's unit is the rendered one with the probe as its program;
	// the script is copied into its own tree, the only place it can read.
	os.WriteFile(filepath.Join(host, "instances", intruder.ID, "home", "probe.sh"), []byte(probe), 0o755)
	svc, _ := Service(p, intruder)
	svc = regexp.MustCompile(`(?m)^ExecStart=.*$`).ReplaceAllString(svc, "ExecStart=/bin/sh "+p.Home(intruder.ID)+"/probe.sh")
	svc = strings.Replace(svc, "Restart=on-failure", "Restart=no", 1)
	installUnit(t, sb, ServiceName(intruder.ID), svc)
	startUnits(t, sb, p, intruder)

	var got string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(filepath.Join(host, "instances", intruder.ID, "home", "probe.out"))
		if got = string(b); strings.HasSuffix(got, "done\n") {
			break
		}
	}
	if !strings.HasSuffix(got, "done\n") {
		logs, _ := sb.Exec("journalctl", "-u", ServiceName(intruder.ID), "--no-pager")
		t.Fatalf("the probe did not finish: %q\n%s", got, logs)
	}
	want := map[string]string{
		"read-victims-server.cfg": "denied", "read-victims-generated-cfg": "denied", "read-victims-rcon_password": "denied",
		"list-victims-upper": "denied", "write-victims-tree": "denied", "write-victims-upper": "denied",
		"signal-victims-game": "denied", "read-victims-environ": "denied", "see-victims-runtime-dir": "denied",
		"read-own-server.cfg": "allowed", "write-own-tree": "allowed", "write-own-home": "allowed",
	}
	for name, verdict := range want {
		if !strings.Contains(got, name+": "+verdict+"\n") {
			t.Errorf("%s: want %s; the probe reported:\n%s", name, verdict, got)
		}
	}
	if _, err := os.Stat(filepath.Join(host, "runtime", victim.ID, "upper", "pwned")); err == nil {
		t.Error("the intruder wrote into the victim's tree")
	}
	if st := strings.TrimSpace(sb.MustExec(t, "systemctl", "show", "-P", "ActiveState", ServiceName(victim.ID))); st != "active" {
		t.Errorf("the victim's game is %s after the probe", st)
	}
}
