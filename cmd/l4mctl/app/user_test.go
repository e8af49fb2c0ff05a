package app_test

import (
	"strings"
	"testing"
)

// TestUsers: create, list, passwd and delete password users; passwords
// come from standard input, bad ones get clear errors before any request.
func TestUsers(t *testing.T) {
	e := newEnv(t)
	if _, _, err := e.run("a long enough password\n", "user", "create", "alice", "--role", "editor:default"); err == nil || !strings.Contains(err.Error(), "--password-stdin") {
		t.Errorf("create without --password-stdin: %v", err)
	}
	if _, _, err := e.run("short\n", "user", "create", "alice", "--role", "editor:default", "--password-stdin"); err == nil || !strings.Contains(err.Error(), "at least 12 characters, not 5") {
		t.Errorf("a short password: %v", err)
	}
	if _, _, err := e.run("", "user", "create", "alice", "--role", "editor:default", "--password-stdin"); err == nil || !strings.Contains(err.Error(), "a password is required") {
		t.Errorf("an empty password: %v", err)
	}
	if _, _, err := e.run("a long enough password\n", "user", "create", "alice", "--password-stdin"); err == nil || !strings.Contains(err.Error(), "--role") {
		t.Errorf("no role: %v", err)
	}
	if _, _, err := e.run("a long enough password\n", "user", "create", "alice", "--role", "boss:default", "--password-stdin"); err == nil || !strings.Contains(err.Error(), "spec.roles[0].role") {
		t.Errorf("an unknown role: %v", err)
	}
	out, errOut, err := e.run("a long enough password\n", "user", "create", "alice", "--role", "editor:default", "--role", "viewer:team-b", "--password-stdin")
	if err != nil || !strings.Contains(out, "user.left4me.io/alice created") {
		t.Fatalf("user create: %v %s %s", err, out, errOut)
	}
	list := e.mustRun("user", "list")
	if !strings.Contains(list, "alice") || !strings.Contains(list, "editor:default,viewer:team-b") {
		t.Errorf("user list:\n%s", list)
	}
	if y := e.mustRun("get", "users", "alice", "-o", "yaml"); strings.Contains(y, "argon2") || strings.Contains(y, "password:") {
		t.Errorf("get -o yaml shows the password or its hash:\n%s", y)
	}
	if out, errOut, err := e.run("another long password\n", "user", "passwd", "alice", "--password-stdin"); err != nil || !strings.Contains(out, "password changed") {
		t.Errorf("user passwd: %v %s %s", err, out, errOut)
	}
	if _, _, err := e.run("x\n", "user", "passwd", "alice", "--password-stdin"); err == nil || !strings.Contains(err.Error(), "at least 12") {
		t.Errorf("passwd with a short password: %v", err)
	}
	e.mustRun("user", "delete", "alice")
	if list := e.mustRun("user", "list"); strings.Contains(list, "alice") {
		t.Errorf("alice is still listed after delete:\n%s", list)
	}
}
