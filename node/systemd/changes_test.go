package systemd

import (
	"testing"

	godbus "github.com/godbus/dbus/v5"
)

// TestUnitStatesPassOnRealChanges feeds the signals systemd sent for a
// game's start and crash (as busctl monitor showed them: each state twice)
// and checks which reach the agent.
func TestUnitStatesPassOnRealChanges(t *testing.T) {
	state := func(active, sub string) map[string]godbus.Variant {
		return map[string]godbus.Variant{"ActiveState": godbus.MakeVariant(active), "SubState": godbus.MakeVariant(sub)}
	}
	const game = "l4m-default.coop-1.service"
	s := unitStates{}
	for i, c := range []struct {
		name  string
		unit  string
		props map[string]godbus.Variant
		want  bool
	}{
		{"a unit never seen: its first state", game, state("inactive", "dead"), true},
		{"the same state on the other interface", game, state("inactive", "dead"), false},
		{"the start the agent queued begins", game, state("activating", "start"), false},
		{"the game runs", game, state("active", "running"), true},
		{"the same again", game, state("active", "running"), false},
		{"timestamps alone", game, map[string]godbus.Variant{"InactiveExitTimestamp": godbus.MakeVariant(uint64(1))}, false},
		{"it crashes: stopping", game, state("deactivating", "stop-sigterm"), true},
		{"systemd restarts it by itself", game, state("activating", "auto-restart"), true},
		{"the restart's start", game, state("activating", "start"), false},
		{"running again", game, state("active", "running"), true},
		{"only the sub-state moves", game, map[string]godbus.Variant{"SubState": godbus.MakeVariant("exited")}, true},
		{"another unit is its own", "l4m-default.versus-1.service", state("active", "running"), true},
		{"it fails", game, state("failed", "failed"), true},
		{"a unit of the host's own", "cron.service", state("active", "running"), true},
		{"is not remembered", "cron.service", state("active", "running"), true},
	} {
		if got := s.changed(c.unit, c.props); got != c.want {
			t.Errorf("%d %s: %v, want %v", i, c.name, got, c.want)
		}
	}
}

func TestUnitStatesRememberOnlyLeft4mesUnits(t *testing.T) {
	s := unitStates{}
	s.changed("run-u42.scope", map[string]godbus.Variant{"ActiveState": godbus.MakeVariant("active")})
	s.changed("l4m-default.coop-1.service", map[string]godbus.Variant{"ActiveState": godbus.MakeVariant("active")})
	if len(s) != 1 {
		t.Fatalf("remembers %v", s)
	}
}
