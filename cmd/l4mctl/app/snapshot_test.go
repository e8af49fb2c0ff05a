package app_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/left4me/left4me/apis/client"
	"github.com/left4me/left4me/apis/server"
)

// TestSnapshotSave: an admin saves a snapshot with l4mctl, whole and
// checksummed, that restores into a new data dir; an editor is refused.
func TestSnapshotSave(t *testing.T) {
	e := newEnv(t)
	file := filepath.Join(e.dir, "backup.db")
	if out := e.mustRun("snapshot", "save", file); !strings.Contains(out, "saved "+file) {
		t.Fatalf("snapshot save: %s", out)
	}
	if err := client.VerifySnapshot(file); err != nil {
		t.Fatal(err)
	}
	if err := server.RestoreSnapshot(file, filepath.Join(e.dir, "restored")); err != nil {
		t.Fatal(err)
	}
	bearer := strings.TrimSpace(e.mustRun("token", "create", "user", "alice", "--role", "editor:default"))
	if _, _, err := e.run("", "--token", bearer, "snapshot", "save", filepath.Join(e.dir, "alice.db")); err == nil || !strings.Contains(err.Error(), "only admins") {
		t.Fatalf("editor snapshot: %v", err)
	}
}
