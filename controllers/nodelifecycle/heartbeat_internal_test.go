package nodelifecycle

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

func TestLastHeartbeat(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 1, 0, 0, 0, time.UTC)
	node := func(hb time.Time) *v1.Node {
		n := &v1.Node{}
		if !hb.IsZero() {
			m := metav1.NewTime(hb)
			n.Status.HeartbeatTime = &m
		}
		return n
	}
	lease := func(renew time.Time) *v1.Lease {
		l := &v1.Lease{}
		if !renew.IsZero() {
			m := metav1.NewMicroTime(renew)
			l.Spec.RenewTime = &m
		}
		return l
	}
	tests := []struct {
		name  string
		node  *v1.Node
		lease *v1.Lease
		want  time.Time
	}{
		{"neither", node(time.Time{}), nil, time.Time{}},
		{"an older agent: no Lease", node(t0), nil, t0},
		{"a Lease renewed since the status was written", node(t0), lease(t0.Add(5 * time.Minute)), t0.Add(5 * time.Minute)},
		{"a status written since the Lease was renewed", node(t0.Add(time.Minute)), lease(t0), t0.Add(time.Minute)},
		{"a Lease never renewed", node(t0), lease(time.Time{}), t0},
		{"a Lease, no status heartbeat", node(time.Time{}), lease(t0), t0},
		{"no Node", nil, lease(t0), t0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := lastHeartbeat(tc.node, tc.lease); !got.Equal(tc.want) {
				t.Fatalf("lastHeartbeat = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNextSighting(t *testing.T) {
	now := time.Date(2026, 12, 4, 1, 0, 0, 0, time.UTC)
	hourAgo, minuteAgo := now.Add(-time.Hour), now.Add(-time.Minute)
	earlier := sighting{heartbeat: hourAgo, heard: now.Add(-30 * time.Second)}
	tests := []struct {
		name    string
		prev    sighting
		watched bool
		hb      time.Time
		want    sighting
	}{
		{"found at start: heard when the node says", sighting{}, false, hourAgo, sighting{hourAgo, hourAgo}},
		{"found at start, no heartbeat ever: now", sighting{}, false, time.Time{}, sighting{time.Time{}, now}},
		{"found at start, node clock ahead: now", sighting{}, false, now.Add(time.Hour), sighting{now.Add(time.Hour), now}},
		{"the Lease found after its Node in the first list", sighting{hourAgo, hourAgo}, false, minuteAgo, sighting{minuteAgo, minuteAgo}},
		{"watched: moved, heard now whatever the node's clock", earlier, true, minuteAgo, sighting{minuteAgo, now}},
		{"watched: moved back (node clock reset), still a sign of life", earlier, true, hourAgo.Add(-time.Hour), sighting{hourAgo.Add(-time.Hour), now}},
		{"watched: unmoved (the Node written for another reason)", earlier, true, hourAgo, earlier},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := nextSighting(tc.prev, tc.watched, tc.hb, now)
			if !got.heartbeat.Equal(tc.want.heartbeat) || !got.heard.Equal(tc.want.heard) {
				t.Fatalf("nextSighting = %+v, want %+v", got, tc.want)
			}
		})
	}
}
