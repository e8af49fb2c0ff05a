package server_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/go-logr/logr"

	"github.com/left4me/left4me/apis/auth"
	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/server/servertest"
)

// TestUserPasswordsAreHashedAndNeverServed: a User's password goes in
// through spec.password and never comes out, neither as itself nor as its
// hash, from create, get, list, watch or patch; the hash in etcd is
// argon2id and verifies.
func TestUserPasswordsAreHashedAndNeverServed(t *testing.T) {
	s, admin := servertest.Start(t)
	ctx := context.Background()
	users := resources.Users
	w, err := admin.Watch(ctx, users, "", client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	out, err := admin.Create(ctx, users, &v1.User{ObjectMeta: metav1.ObjectMeta{Name: "alice"},
		Spec: v1.UserSpec{Roles: []v1.RoleBinding{{Role: v1.RoleEditor, Namespace: "default"}}, Password: "first long password"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	noSecret := func(where string, u *v1.User) {
		t.Helper()
		if u.Spec.Password != "" || u.Status.PasswordHash != "" {
			t.Errorf("%s returned the password or its hash: %+v", where, u)
		}
	}
	noSecret("create", out.(*v1.User))
	if out.(*v1.User).Status.PasswordChangedAt == nil {
		t.Error("create: status.passwordChangedAt is not set")
	}
	got, err := admin.Get(ctx, users, "", "alice")
	if err != nil {
		t.Fatal(err)
	}
	noSecret("get", got.(*v1.User))
	l, err := admin.List(ctx, users, "", client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	noSecret("list", &l.(*v1.UserList).Items[0])
	select {
	case ev := <-w.ResultChan():
		noSecret("watch", ev.Object.(*v1.User))
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event for the new User")
	}
	stored, err := s.Store.Get(ctx, users, "", "alice")
	if err != nil {
		t.Fatal(err)
	}
	hash := stored.(*v1.User).Status.PasswordHash
	if !strings.HasPrefix(hash, "$argon2id$") || stored.(*v1.User).Spec.Password != "" {
		t.Fatalf("etcd holds %+v: want no password and an argon2id hash", stored.(*v1.User))
	}

	// A roles-only patch keeps the password; a password patch replaces it.
	if _, err := admin.Patch(ctx, users, "", "alice", "application/merge-patch+json", []byte(`{"spec":{"roles":[{"role":"viewer","namespace":"default"}]}}`), false); err != nil {
		t.Fatal(err)
	}
	authn := auth.NewAuthenticator(s.Store, logr.Discard())
	if _, _, err := authn.AuthenticatePassword(ctx, "alice", "first long password"); err != nil {
		t.Fatalf("after a roles patch the password no longer works: %v", err)
	}
	p, err := admin.Patch(ctx, users, "", "alice", "application/merge-patch+json", []byte(`{"spec":{"password":"second long password"}}`), false)
	if err != nil {
		t.Fatal(err)
	}
	noSecret("patch", p.(*v1.User))
	if _, _, err := authn.AuthenticatePassword(ctx, "alice", "first long password"); err == nil {
		t.Error("the old password still works after passwd")
	}
	if _, _, err := authn.AuthenticatePassword(ctx, "alice", "second long password"); err != nil {
		t.Errorf("the new password does not work: %v", err)
	}
	// A client cannot plant a hash of its own.
	if _, err := admin.Patch(ctx, users, "", "alice", "application/merge-patch+json", []byte(`{"status":{"passwordHash":"$argon2id$planted"}}`), false); err != nil {
		t.Fatal(err)
	}
	stored, _ = s.Store.Get(ctx, users, "", "alice")
	if strings.Contains(stored.(*v1.User).Status.PasswordHash, "planted") {
		t.Error("a patch of status.passwordHash was stored")
	}
}

// TestUserPasswordRules: no password, a short one, and a non-admin get
// clear refusals.
func TestUserPasswordRules(t *testing.T) {
	s, admin := servertest.Start(t)
	ctx := context.Background()
	mk := func(cl *client.Client, name, pw string) error {
		_, err := cl.Create(ctx, resources.Users, &v1.User{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1.UserSpec{Roles: []v1.RoleBinding{{Role: v1.RoleAdmin}}, Password: pw}}, false)
		return err
	}
	if err := mk(admin, "nopass", ""); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.password: Required value") {
		t.Errorf("no password: %v, want spec.password: Required value", err)
	}
	if err := mk(admin, "short", "short"); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "at least 12 characters, not 5") {
		t.Errorf("short password: %v, want at least 12 characters", err)
	}
	editor := servertest.ClientWithToken(t, s, servertest.NewToken(t, admin, v1.TokenSpec{Type: v1.TokenUser, User: "ed", Roles: []v1.RoleBinding{{Role: v1.RoleEditor, Namespace: "default"}}}))
	if err := mk(editor, "sneaky", "a long enough password"); !apierrors.IsForbidden(err) {
		t.Errorf("an editor creating a user: %v, want 403", err)
	}
	if _, err := editor.List(ctx, resources.Users, "", client.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("an editor listing users: %v, want 403", err)
	}
	// The raw JSON of a get holds no hash either.
	req, _ := http.NewRequest(http.MethodGet, s.URL()+"/apis/left4me.io/v1alpha1/users", nil)
	req.Header.Set("Authorization", "Bearer "+servertest.AdminToken(t, s))
	if err := mk(admin, "bob", "bob's long password"); err != nil {
		t.Fatal(err)
	}
	resp, err := servertest.HTTPClient(s).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "argon2") || strings.Contains(string(body), "passwordHash") {
		t.Errorf("the users list carries a hash: %s", body)
	}
}
