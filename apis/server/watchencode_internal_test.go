package server

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

// TestWatchEventsEncodedOnce: the line every watcher of an event is sent
// is encoded once; the same object as another type is a line of its own;
// remembered encodings are bounded; a User's password hash is never in one.
func TestWatchEventsEncodedOnce(t *testing.T) {
	e := newEventEncodings()
	coop := &v1.Instance{TypeMeta: metav1.TypeMeta{APIVersion: v1.APIVersion, Kind: "Instance"},
		ObjectMeta: metav1.ObjectMeta{Name: "coop-1", Namespace: "default", ResourceVersion: "42"}}
	var first []byte
	for watcher := 0; watcher < 500; watcher++ {
		line, err := e.encode(watch.Event{Type: watch.Modified, Object: coop})
		if err != nil {
			t.Fatal(err)
		}
		if watcher == 0 {
			first = line
		} else if !bytes.Equal(line, first) {
			t.Fatalf("watcher %d got %s, the first %s", watcher, line, first)
		}
	}
	if want := `{"type":"MODIFIED","object":{"kind":"Instance","apiVersion":"left4me.io/v1alpha1","metadata":{"name":"coop-1","namespace":"default","resourceVersion":"42"`; !strings.HasPrefix(string(first), want) || !strings.HasSuffix(string(first), "}\n") {
		t.Fatalf("line %s", first)
	}
	if e.encoded != 1 {
		t.Fatalf("500 watchers of one event: encoded %d times, want 1", e.encoded)
	}
	added, err := e.encode(watch.Event{Type: watch.Added, Object: coop})
	if err != nil || !strings.HasPrefix(string(added), `{"type":"ADDED"`) || e.encoded != 2 {
		t.Fatalf("the same object ADDED for another watcher: %s, %v, encoded %d", added, err, e.encoded)
	}

	alice := &v1.User{ObjectMeta: metav1.ObjectMeta{Name: "alice"}, Status: v1.UserStatus{PasswordHash: "$argon2id$v=19$secret"}}
	line, err := e.encode(watch.Event{Type: watch.Added, Object: alice})
	if err != nil || strings.Contains(string(line), "argon2id") {
		t.Fatalf("a User's watch line carries its hash: %s %v", line, err)
	}
	if alice.Status.PasswordHash == "" {
		t.Fatal("redaction changed the cache's shared object")
	}

	for i := 0; i < 2*recentEncodings; i++ {
		obj := &v1.Instance{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("i-%d", i)}}
		if _, err := e.encode(watch.Event{Type: watch.Added, Object: obj}); err != nil {
			t.Fatal(err)
		}
	}
	if len(e.m) != recentEncodings {
		t.Fatalf("remembers %d encodings, want the newest %d", len(e.m), recentEncodings)
	}
	before := e.encoded
	if _, err := e.encode(watch.Event{Type: watch.Modified, Object: coop}); err != nil || e.encoded != before+1 {
		t.Fatalf("an evicted event was not encoded again: %v, %d → %d", err, before, e.encoded)
	}
}
