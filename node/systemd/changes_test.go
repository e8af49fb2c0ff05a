package systemd

import (
	"testing"

	godbus "github.com/godbus/dbus/v5"
)

func TestStateChange(t *testing.T) {
	v := godbus.MakeVariant
	for _, c := range []struct {
		name    string
		changed map[string]godbus.Variant
		want    bool
	}{
		{"a start the agent queued begins", map[string]godbus.Variant{"ActiveState": v("activating"), "SubState": v("start")}, false},
		{"a game becomes active", map[string]godbus.Variant{"ActiveState": v("active"), "SubState": v("running")}, true},
		{"a game fails", map[string]godbus.Variant{"ActiveState": v("failed"), "SubState": v("failed")}, true},
		{"a crashed game waits to be restarted by systemd", map[string]godbus.Variant{"ActiveState": v("activating"), "SubState": v("auto-restart")}, true},
		{"a game is stopping", map[string]godbus.Variant{"ActiveState": v("deactivating"), "SubState": v("stop-sigterm")}, true},
		{"only the sub-state moves", map[string]godbus.Variant{"SubState": v("exited")}, true},
		{"timestamps alone", map[string]godbus.Variant{"InactiveExitTimestamp": v(uint64(1))}, false},
	} {
		if got := stateChange(c.changed); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
