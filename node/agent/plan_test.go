package agent

import (
	"testing"

	"github.com/left4me/left4me/node/systemd"
)

func TestPlanUnits(t *testing.T) {
	const mnt, svc, mnt2, svc2 = "mount v1", "service v1", "mount v2", "service v2"
	up := func(h hostUnits) hostUnits { h.Game, h.Mount, h.Service = "active", mnt, svc; return h }
	for _, c := range []struct {
		name string
		want wantUnits
		host hostUnits
		plan unitPlan
	}{
		{"a new Instance: write both, no reload, enqueue the start",
			wantUnits{Hash: "h1", Mount: mnt, Service: svc}, hostUnits{},
			unitPlan{MountChange: systemd.Created, ServiceChange: systemd.Created, Mount: true, Game: gameEnqueue}},
		{"running, nothing changed: touch nothing, make sure it runs, let go of the host's mount",
			wantUnits{Hash: "h1", Mount: mnt, Service: svc}, up(hostUnits{Installed: "h1"}),
			unitPlan{ReleaseMount: true, Game: gameEnsure}},
		{"running on fuse-overlayfs: the host's mount stays (its daemon lives there)",
			wantUnits{Hash: "h1", Mount: mnt, Service: svc, KeepHostMount: true}, up(hostUnits{Installed: "h1"}),
			unitPlan{Game: gameEnsure}},
		{"starting or restarting after a crash (activating: its namespace may not exist yet; its start job mounts): neither mount again nor let go",
			wantUnits{Hash: "h1", Mount: mnt, Service: svc}, hostUnits{Game: "activating", Installed: "h1", Mount: mnt, Service: svc},
			unitPlan{Game: gameEnsure}},
		{"running, its template changed, not approved: hold",
			wantUnits{Hash: "h2", Mount: mnt, Service: svc2}, up(hostUnits{Installed: "h1"}),
			unitPlan{Hold: true}},
		{"activating counts as running: hold too",
			wantUnits{Hash: "h2", Mount: mnt, Service: svc2}, hostUnits{Game: "activating", Installed: "h1", Mount: mnt, Service: svc},
			unitPlan{Hold: true}},
		{"approved service change: reload and restart the game, mount stays",
			wantUnits{Hash: "h2", Approved: true, Mount: mnt, Service: svc2}, up(hostUnits{Installed: "h1"}),
			unitPlan{ServiceChange: systemd.Updated, Reload: true, Game: gameRestart}},
		{"approved restart request (only the hash changed): restart, no file written, its start job mounts",
			wantUnits{Hash: "h2", Approved: true, Mount: mnt, Service: svc}, up(hostUnits{Installed: "h1"}),
			unitPlan{Game: gameRestart}},
		{"approved new layers: reload, stop game and mount, then start it (not restart)",
			wantUnits{Hash: "h2", Approved: true, Mount: mnt2, Service: svc}, up(hostUnits{Installed: "h1"}),
			unitPlan{MountChange: systemd.Updated, Reload: true, StopGame: true, StopMount: true, Mount: true, Game: gameEnsure}},
		{"stopped game with new layers: the stale mount goes, the game starts",
			wantUnits{Hash: "h2", Mount: mnt2, Service: svc}, hostUnits{Game: "inactive", Installed: "h1", Mount: mnt, Service: svc},
			unitPlan{MountChange: systemd.Updated, Reload: true, StopMount: true, Mount: true, Game: gameEnsure}},
		{"failed game, new spec: no hold (it runs nothing), write and start",
			wantUnits{Hash: "h2", Mount: mnt, Service: svc2}, hostUnits{Game: "failed", Installed: "h1", Mount: mnt, Service: svc},
			unitPlan{ServiceChange: systemd.Updated, Reload: true, Mount: true, Game: gameEnsure}},
		{"files lost (a reboot emptied /run) while nothing runs: recreate, enqueue",
			wantUnits{Hash: "h1", Mount: mnt, Service: svc}, hostUnits{Installed: "h1"},
			unitPlan{MountChange: systemd.Created, ServiceChange: systemd.Created, Mount: true, Game: gameEnqueue}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := planUnits(c.want, c.host); got != c.plan {
				t.Errorf("plan\n got %+v\nwant %+v", got, c.plan)
			}
		})
	}
}
