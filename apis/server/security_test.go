package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/apis/server/servertest"
)

func TestTLSOnly(t *testing.T) {
	s, _ := servertest.Start(t)
	// Plain HTTP to the API port is refused.
	plain := strings.Replace(s.URL(), "https://", "http://", 1)
	resp, err := http.Get(plain + "/apis")
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "HTTPS") {
			t.Fatalf("plain HTTP answered %d: %s", resp.StatusCode, body)
		}
	}
	// A client that does not trust our CA refuses the server.
	c, err := client.New(client.Config{Server: s.URL(), Token: servertest.AdminToken(t, s)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Get(context.Background(), namespaces, "", "default")
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a client without the CA connected: %v", err)
	}
	// The data dir's secrets are private.
	for _, f := range []string{"admin.yaml", "pki/ca.key", "pki/server.key", "audit.log"} {
		st, err := os.Stat(filepath.Join(filepath.Dir(s.AdminConfigPath), f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v mode %v", f, err, st.Mode().Perm())
		}
	}
	// The admin config works as it is.
	f, err := client.LoadFile(s.AdminConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := f.Config()
	if err != nil {
		t.Fatal(err)
	}
	ac, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ac.Get(context.Background(), namespaces, "", "default"); err != nil {
		t.Fatalf("admin config from first start: %v", err)
	}
}

func TestHealthIsAnonymousButNothingElse(t *testing.T) {
	s, _ := servertest.Start(t)
	hc := servertest.HTTPClient(s)
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/apis": 401, "/version": 401, "/metrics": 401, base + "/namespaces": 401} {
		resp, err := hc.Get(s.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s without a token: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

func TestRateLimits(t *testing.T) {
	s, _ := servertest.StartWith(t, server.Options{RateQPS: 1, RateBurst: 5, FailedLoginQPS: 0.1, FailedLoginBurst: 3})
	ctx := context.Background()
	// Clients that report 429 at once (by default they wait and retry).
	noRetry := func(token string) *client.Client {
		c, err := client.New(client.Config{Server: s.URL(), Token: token, CAData: s.CAPEM, NoRetry: true})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	admin := noRetry(servertest.AdminToken(t, s))
	other := servertest.ClientWithToken(t, s, servertest.NewToken(t, admin, v1.TokenSpec{Type: v1.TokenUser, User: "calm", Roles: []v1.RoleBinding{{Role: v1.RoleViewer, Namespace: "default"}}}))
	var limited error
	for i := 0; i < 20 && limited == nil; i++ {
		_, err := admin.Get(ctx, namespaces, "", "default")
		if apierrors.IsTooManyRequests(err) {
			limited = err
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if limited == nil {
		t.Fatal("20 requests at once with a burst of 5: none was refused")
	}
	if d, ok := apierrors.SuggestsClientDelay(limited); !ok || d < 1 {
		t.Fatalf("429 without Retry-After: %v", limited)
	}
	// A default client waits the Retry-After and gets through.
	patient := servertest.ClientWithToken(t, s, servertest.AdminToken(t, s))
	if _, err := patient.Get(ctx, namespaces, "", "default"); err != nil {
		t.Fatalf("a retrying client after 429: %v", err)
	}
	// Another credential is not slowed down by the flooding one.
	if _, err := other.List(ctx, instances, "default", client.ListOptions{}); err != nil {
		t.Fatalf("a calm client was limited too: %v", err)
	}
	// Guessing tokens: after a few failures the address gets 429.
	bad := noRetry("l4m.guess.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	var codes []int
	for i := 0; i < 6; i++ {
		_, err := bad.Get(ctx, namespaces, "", "default")
		var se *apierrors.StatusError
		if errors.As(err, &se) {
			codes = append(codes, int(se.ErrStatus.Code))
		}
	}
	if codes[0] != 401 || codes[len(codes)-1] != 429 {
		t.Fatalf("failed logins answered %v, want 401s then 429", codes)
	}
}

func TestNamespaceQuota(t *testing.T) {
	_, admin := servertest.StartWith(t, server.Options{MaxObjectsPerNamespace: 3})
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := admin.Create(ctx, instances, instance("srv"+string(rune('a'+i))), false); err != nil {
			t.Fatal(err)
		}
	}
	_, err := admin.Create(ctx, instances, instance("srvd"), false)
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "exceeded quota") {
		t.Fatalf("fourth instance: %v", err)
	}
	if _, err := admin.Get(ctx, instances, "default", "srvd"); !apierrors.IsNotFound(err) {
		t.Fatal("the refused object was stored")
	}
	// Other kinds and namespaces have their own count.
	if _, err := admin.Create(ctx, blueprints, &v1.Blueprint{ObjectMeta: metav1.ObjectMeta{Name: "coop", Namespace: "default"}}, false); err != nil {
		t.Fatal(err)
	}
}

func TestAuditLog(t *testing.T) {
	s, admin := servertest.Start(t)
	ctx := context.Background()
	if _, err := admin.Create(ctx, instances, instance("srv1"), false); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Get(ctx, instances, "default", "srv1"); err != nil {
		t.Fatal(err)
	}
	viewer := servertest.ClientWithToken(t, s, servertest.NewToken(t, admin, v1.TokenSpec{Type: v1.TokenUser, User: "vera", Roles: []v1.RoleBinding{{Role: v1.RoleViewer, Namespace: "default"}}}))
	if _, _, err := viewer.Delete(ctx, instances, "default", "srv1", false); !apierrors.IsForbidden(err) {
		t.Fatalf("viewer delete: %v", err)
	}
	f, err := os.Open(filepath.Join(filepath.Dir(s.AdminConfigPath), "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("audit line is not JSON: %s", sc.Text())
		}
		if strings.Contains(sc.Text(), "l4m.") {
			t.Fatalf("audit log holds a token: %s", sc.Text())
		}
		lines = append(lines, m)
	}
	find := func(user, verb, resource string, code float64) bool {
		for _, l := range lines {
			if l["user"] == user && l["verb"] == verb && l["resource"] == resource && l["code"] == code {
				return true
			}
		}
		return false
	}
	if !find("admin", "create", "instances", 201) {
		t.Fatalf("admin's create not audited: %v", lines)
	}
	if !find("vera", "delete", "instances", 403) {
		t.Fatalf("viewer's refused delete not audited: %v", lines)
	}
	for _, l := range lines {
		if l["verb"] == "get" {
			t.Fatalf("reads are not audited: %v", l)
		}
	}
}

func TestRevokedTokenStopsWorking(t *testing.T) {
	s, admin := servertest.Start(t)
	ctx := context.Background()
	tok := servertest.NewToken(t, admin, v1.TokenSpec{Type: v1.TokenUser, User: "temp", Roles: []v1.RoleBinding{{Role: v1.RoleViewer, Namespace: "default"}}})
	c := servertest.ClientWithToken(t, s, tok)
	if _, err := c.List(ctx, instances, "default", client.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	tokens := resources.Tokens
	if _, _, err := admin.Delete(ctx, tokens, "", strings.Split(tok, ".")[1], false); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := client.WaitFor(wctx, 20*time.Millisecond, func(ctx context.Context) (bool, error) {
		_, err := c.List(ctx, instances, "default", client.ListOptions{})
		return apierrors.IsUnauthorized(err), nil
	})
	if err != nil {
		t.Fatal("revoked token still accepted")
	}
}
