package server_test

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/apis/server/servertest"
	"github.com/left4me/left4me/apis/storage/etcdtest"
)

// auditLines reads the server's audit log.
func auditLines(t *testing.T, s *server.Server) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(filepath.Dir(s.AdminConfigPath), "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	return lines
}

func audited(lines []map[string]any, user, resource string, code float64) bool {
	for _, l := range lines {
		if l["user"] == user && l["verb"] == "get" && l["resource"] == resource && l["code"] == code {
			return true
		}
	}
	return false
}

// TestSnapshotAdminsOnly: GET /snapshot streams etcd's database to an
// admin; an editor, a viewer of everything and a node get 403; every
// attempt is in the audit log.
func TestSnapshotAdminsOnly(t *testing.T) {
	s, admin := servertest.Start(t)
	ctx := context.Background()
	others := map[string]v1.TokenSpec{
		"alice":       {Type: v1.TokenUser, User: "alice", Roles: []v1.RoleBinding{{Role: v1.RoleEditor, Namespace: "default"}}},
		"vera":        {Type: v1.TokenUser, User: "vera", Roles: []v1.RoleBinding{{Role: v1.RoleViewer, Namespace: "default"}}},
		"node:node-1": {Type: v1.TokenNode, NodeName: "node-1"},
	}
	for name, spec := range others {
		c := servertest.ClientWithToken(t, s, servertest.NewToken(t, admin, spec))
		body, err := c.Snapshot(ctx)
		if err == nil {
			body.Close()
		}
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "only admins") {
			t.Fatalf("%s took a snapshot: %v", name, err)
		}
	}
	body, err := admin.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(body)
	body.Close()
	if err != nil || !strings.Contains(string(data), "/left4me/tokens/") {
		t.Fatalf("admin's snapshot (%d bytes) lacks the tokens: %v", len(data), err)
	}
	lines := auditLines(t, s)
	for name := range others {
		if !audited(lines, name, "snapshot", 403) {
			t.Errorf("%s's refused snapshot not audited: %v", name, lines)
		}
	}
	if !audited(lines, "admin", "snapshot", 200) {
		t.Errorf("admin's snapshot not audited: %v", lines)
	}
}

// TestSnapshotExternalEtcd: a server on an external etcd serves no
// snapshot (the cluster may hold more than left4me's keys) and says what to
// use instead.
func TestSnapshotExternalEtcd(t *testing.T) {
	_, endpoint := etcdtest.External(t)
	_, admin := servertest.StartWith(t, server.Options{EtcdEndpoints: []string{endpoint}})
	_, err := admin.SaveSnapshot(context.Background(), filepath.Join(t.TempDir(), "backup.db"))
	if !apierrors.IsNotFound(err) || !strings.Contains(err.Error(), "etcdutl") {
		t.Fatalf("snapshot of an external etcd: %v", err)
	}
}
