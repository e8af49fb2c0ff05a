package ui_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/apis/ui"
)

type sseEvent struct{ name, data string }

// readEvents sends each event of an SSE body to the channel and closes
// it when the stream ends.
func readEvents(resp *http.Response) <-chan sseEvent {
	ch := make(chan sseEvent, 64)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			case line == "" && ev.name != "":
				ch <- ev
				ev = sseEvent{}
			}
		}
	}()
	return ch
}

// TestFleetStreamShowsOnlyItsNamespacesAndEndsWithTheUser: the fleet's
// event stream sends a team-a viewer a snapshot and changes of team-a's
// Instances only, and ends once the user is deleted.
func TestFleetStreamShowsOnlyItsNamespacesAndEndsWithTheUser(t *testing.T) {
	ui.SetRecheckInterval(200 * time.Millisecond)
	t.Cleanup(func() { ui.SetRecheckInterval(10 * time.Second) })
	f := newFixture(t, server.Options{})
	f.user(t, "vic", "viewer:team-a")
	b := f.browser(t)
	b.login("vic", password)
	resp, err := b.http.Get(f.s.URL() + "/ui/fleet/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, ct)
	}
	events := readEvents(resp)
	next := func(name string) sseEvent {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatalf("the stream ended waiting for %s", name)
				}
				if ev.name == name {
					return ev
				}
			case <-timeout:
				t.Fatalf("no %s event", name)
			}
		}
	}
	snap := next("snapshot")
	if !strings.Contains(snap.data, "team-a-1") || strings.Contains(snap.data, "team-b") {
		t.Errorf("a team-a viewer's snapshot: %s", snap.data)
	}
	f.markReady(t, "team-b", "team-b-1", 27016)
	f.markReady(t, "team-a", "team-a-1", 27015)
	var row struct{ Key, Ready string }
	if err := json.Unmarshal([]byte(next("instance").data), &row); err != nil {
		t.Fatal(err)
	}
	if row.Key != "team-a/team-a-1" || row.Ready != "True" {
		t.Errorf("the first instance event: %+v, want team-a-1 Ready (team-b's change is not the viewer's to see)", row)
	}
	if _, _, err := f.admin.Delete(context.Background(), resources.Users, "", "vic", false); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return // ended
			}
		case <-timeout:
			t.Fatal("the stream outlived its deleted user")
		}
	}
}
