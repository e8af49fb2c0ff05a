package ui

import (
	"testing"
	"time"
)

// TestSessionsExpire: a session is gone at its expiry, and expired ones
// are swept when another is made.
func TestSessionsExpire(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	ss := newSessions(time.Hour)
	ss.now = func() time.Time { return now }
	id, ok := ss.create(&session{user: "alice"})
	if !ok || len(id) != 43 {
		t.Fatalf("create: id %q (want 256 bits, base64url), ok %v", id, ok)
	}
	if s := ss.get(id); s == nil || s.user != "alice" || len(s.csrf) != 43 {
		t.Fatalf("fresh session: %+v", s)
	}
	now = now.Add(time.Hour - time.Second)
	if ss.get(id) == nil {
		t.Fatal("the session ended before its expiry")
	}
	now = now.Add(time.Second)
	if ss.get(id) != nil {
		t.Fatal("the session outlived its expiry")
	}
	old, _ := ss.create(&session{user: "bob"})
	now = now.Add(2 * time.Hour)
	ss.create(&session{user: "carol"})
	if _, ok := ss.m[key(old)]; ok {
		t.Error("an expired session was not swept")
	}
}

func TestSafeNextStaysOnTheDashboard(t *testing.T) {
	for in, want := range map[string]string{
		"/ui/namespaces/a/instances/b": "/ui/namespaces/a/instances/b",
		"https://evil.example/":        "/ui/",
		"//evil.example/ui/":           "/ui/",
		"/ui/\r\nSet-Cookie: x":        "/ui/",
		"/apis/":                       "/ui/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}
