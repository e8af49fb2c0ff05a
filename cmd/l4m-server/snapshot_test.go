package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/manifest"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/apis/server/servertest"
)

// runSnapshot runs `l4m-server snapshot ARGS...` and returns its output.
func runSnapshot(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := snapshotCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// everything lists every object of every kind, as "plural ns/name".
func everything(t *testing.T, c *client.Client) []string {
	t.Helper()
	var ids []string
	for _, res := range resources.All {
		list, err := c.List(context.Background(), res, "", client.ListOptions{})
		if err != nil {
			t.Fatalf("list %s: %v", res.Plural, err)
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			t.Fatal(err)
		}
		for _, item := range items {
			o := item.(v1.Object)
			ids = append(ids, res.Plural+" "+o.GetNamespace()+"/"+o.GetName())
		}
	}
	slices.Sort(ids)
	return ids
}

// TestSnapshotSaveRestore: an admin saves a snapshot of a running server,
// restores it into a new data dir, and a server started there has every
// object and token of the moment of the snapshot: old tokens still
// authenticate, with their roles.
func TestSnapshotSaveRestore(t *testing.T) {
	old, admin := servertest.Start(t)
	ctx := context.Background()
	docs, err := manifest.Read([]string{"../../config/samples"}, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		ns := d.Object.GetNamespace()
		if ns == "" && d.Resource.Namespaced {
			ns = v1.DefaultNamespace
		}
		if _, err := admin.CreateRaw(ctx, d.Resource, ns, d.JSON, false); err != nil {
			t.Fatalf("%s: %v", d.Source, err)
		}
	}
	if _, err := admin.Create(ctx, resources.Namespaces, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "league"}}, false); err != nil {
		t.Fatal(err)
	}
	alice := servertest.NewToken(t, admin, v1.TokenSpec{Type: v1.TokenUser, User: "alice", Roles: []v1.RoleBinding{{Role: v1.RoleEditor, Namespace: "default"}}})
	node := servertest.NewToken(t, admin, v1.TokenSpec{Type: v1.TokenNode, NodeName: "node-1"})
	before := everything(t, admin)

	dir := t.TempDir()
	file := filepath.Join(dir, "backup.db")
	// Without admin credentials: refused, no file.
	if _, err := runSnapshot(t, "save", file, "--config", old.AdminConfigPath, "--token", alice); err == nil || !strings.Contains(err.Error(), "only admins") {
		t.Fatalf("save as alice: %v", err)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("a refused save left %s: %v", file, err)
	}
	out, err := runSnapshot(t, "save", file, "--config", old.AdminConfigPath)
	if err != nil || !strings.Contains(out, "saved "+file) {
		t.Fatalf("save: %v %s", err, out)
	}
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot file: %v %v", err, st)
	}
	// What happens after the snapshot is not in it.
	if _, err := admin.Create(ctx, resources.Namespaces, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "after-snapshot"}}, false); err != nil {
		t.Fatal(err)
	}

	restored := filepath.Join(dir, "restored")
	if _, err := runSnapshot(t, "restore", file); err == nil || !strings.Contains(err.Error(), "--data-dir") {
		t.Fatalf("restore without --data-dir: %v", err)
	}
	if out, err := runSnapshot(t, "restore", file, "--data-dir", restored); err != nil {
		t.Fatalf("restore: %v %s", err, out)
	}
	if _, err := runSnapshot(t, "restore", file, "--data-dir", restored); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("restore into a used dir: %v", err)
	}
	// The documented backup keeps the CA and admin.yaml: copy them beside
	// the restored etcd.
	oldDir := filepath.Dir(old.AdminConfigPath)
	if out, err := exec.Command("cp", "-a", filepath.Join(oldDir, "pki"), old.AdminConfigPath, restored).CombinedOutput(); err != nil {
		t.Fatalf("cp pki admin.yaml: %v %s", err, out)
	}
	s, _ := servertest.StartWith(t, server.Options{DataDir: restored})
	if !bytes.Equal(s.CAPEM, old.CAPEM) {
		t.Fatal("the restored server made a new CA though pki/ was copied")
	}
	oldAdmin := servertest.ClientWithToken(t, s, servertest.AdminToken(t, old))
	after := everything(t, oldAdmin)
	if !slices.Equal(before, after) {
		t.Fatalf("restored objects differ:\nbefore %v\nafter  %v", before, after)
	}
	if len(after) < 8 {
		t.Fatalf("too few objects to prove anything: %v", after)
	}
	// alice still authenticates, and is still an editor of default only.
	ac := servertest.ClientWithToken(t, s, alice)
	if _, err := ac.List(ctx, resources.Instances, "default", client.ListOptions{}); err != nil {
		t.Fatalf("alice after restore: %v", err)
	}
	if _, err := ac.List(ctx, resources.Tokens, "", client.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("alice lists tokens after restore: %v", err)
	}
	if _, err := servertest.ClientWithToken(t, s, node).Get(ctx, resources.Nodes, "", "node-1"); err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("the node token after restore: %v", err)
	}
}

// TestSnapshotRestoreRefusesDamage: a damaged or cut-short snapshot is
// refused before anything is written, and the target stays empty.
func TestSnapshotRestoreRefusesDamage(t *testing.T) {
	old, _ := servertest.Start(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "backup.db")
	if _, err := runSnapshot(t, "save", file, "--config", old.AdminConfigPath); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	damaged := slices.Clone(data)
	damaged[len(damaged)/2] ^= 0xff
	for name, content := range map[string][]byte{"damaged": damaged, "short": data[:len(data)-100]} {
		bad := filepath.Join(dir, name+".db")
		if err := os.WriteFile(bad, content, 0o600); err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(dir, "restore-"+name)
		if err := os.Mkdir(target, 0o700); err != nil {
			t.Fatal(err)
		}
		_, err := runSnapshot(t, "restore", bad, "--data-dir", target)
		if err == nil || !strings.Contains(err.Error(), "snapshot") {
			t.Fatalf("%s snapshot restored: %v", name, err)
		}
		if entries, _ := os.ReadDir(target); len(entries) != 0 {
			t.Fatalf("%s snapshot left %v in %s", name, entries, target)
		}
	}
}
