package ui_test

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/server"
)

func annotations(t *testing.T, f *fixture, ns, name string) map[string]string {
	t.Helper()
	obj, err := f.admin.Get(context.Background(), resources.Instances, ns, name)
	if err != nil {
		t.Fatal(err)
	}
	return obj.GetAnnotations()
}

// patchStatus merges status into an Instance's, as its node writes it.
func (f *fixture) patchStatus(t *testing.T, ns, name string, status map[string]any) {
	t.Helper()
	data, err := json.Marshal(map[string]any{"status": status})
	if err == nil {
		_, err = f.admin.PatchStatus(context.Background(), resources.Instances, ns, name, data)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// pageSays fails the test unless the page at path holds each of want
// (compared with the page's text, HTML entities decoded).
func (b *browser) pageSays(path string, want ...string) {
	b.t.Helper()
	code, body, _ := b.get(path)
	body = html.UnescapeString(body)
	for _, w := range want {
		if code != http.StatusOK || !strings.Contains(body, w) {
			b.t.Errorf("%s: %d, want %q in\n%s", path, code, w, body)
			return
		}
	}
}

// TestRestartButton: the editor's Restart stamps left4me.io/restartedAt,
// as l4mctl rollout restart instance/NAME does, and the page says what the
// restart waits for (2 players on it, once its node reports it pending);
// force also stamps left4me.io/forceRestartAt. Refused, and nothing
// stamped: a POST without the CSRF token, a viewer's forged POST (403), a
// force that is no checkbox value (400), a Stopped Instance (409, as
// l4mctl refuses it).
func TestRestartButton(t *testing.T) {
	f := newFixture(t, server.Options{})
	f.user(t, "ed", "editor:team-a")
	f.user(t, "vic", "viewer:team-a")
	page := "/ui/namespaces/team-a/instances/team-a-1"
	action := page + "/restart"

	vic := f.browser(t)
	vic.login("vic", password)
	if _, body, _ := vic.get(page); strings.Contains(body, `id="restart"`) {
		t.Error("the viewer's page has a Restart button")
	}
	if code, body, _ := vic.post(action, vic.origin(), url.Values{"csrf": {vic.csrf(page)}}); code != http.StatusForbidden || !strings.Contains(body, "viewer role only reads") {
		t.Errorf("the viewer's forged Restart: %d, want the Authorizer's 403\n%s", code, body)
	}

	ed := f.browser(t)
	ed.login("ed", password)
	token := ed.csrf(page)
	if code, _, _ := ed.post(action, ed.origin(), url.Values{}); code != http.StatusForbidden {
		t.Errorf("a Restart without the CSRF token: %d, want 403", code)
	}
	if code, body, _ := ed.post(action, ed.origin(), url.Values{"csrf": {token}, "force": {"yes"}}); code != http.StatusBadRequest || !strings.Contains(body, `force &#34;yes&#34;: must be true or absent`) {
		t.Errorf("force=yes: %d, want 400 naming the field\n%s", code, body)
	}
	if ann := annotations(t, f, "team-a", "team-a-1"); ann[v1.AnnotationRestartedAt] != "" {
		t.Fatalf("a refused Restart stamped the Instance: %v", ann)
	}

	// The game runs, with 2 players on it.
	f.patchStatus(t, "team-a", "team-a-1", map[string]any{"phase": v1.PhaseRunning, "templateHash": "old", "players": 2, "maxPlayers": 8})
	if code, body, _ := ed.post(action, ed.origin(), url.Values{"csrf": {token}}); code != http.StatusSeeOther {
		t.Fatalf("the editor's Restart: %d\n%s", code, body)
	}
	ann := annotations(t, f, "team-a", "team-a-1")
	at := ann[v1.AnnotationRestartedAt]
	if _, err := time.Parse(time.RFC3339Nano, at); err != nil || ann[v1.AnnotationForceRestartAt] != "" {
		t.Fatalf("after Restart the annotations are %v", ann)
	}
	if other := annotations(t, f, "team-b", "team-b-1"); other[v1.AnnotationRestartedAt] != "" {
		t.Fatalf("team-b-1 was stamped too: %v", other)
	}
	ed.pageSays(page, "Restart requested</th><td id=\"restart-requested\">"+at+"<", "not yet seen by its node")

	// Its node reports the restart pending.
	f.patchStatus(t, "team-a", "team-a-1", map[string]any{"pendingTemplateHash": "new",
		"conditions": []metav1.Condition{{Type: v1.InstanceUpdatePending, Status: metav1.ConditionTrue, Reason: v1.ReasonRestartRequested, Message: "asked", LastTransitionTime: metav1.Now()}}})
	ed.pageSays(page, "restart pending, waiting for 2 players to leave (policy WhenEmpty; tick force and press Restart to restart it now)")

	if code, body, _ := ed.post(action, ed.origin(), url.Values{"csrf": {token}, "force": {"true"}}); code != http.StatusSeeOther {
		t.Fatalf("the editor's forced Restart: %d\n%s", code, body)
	}
	ann = annotations(t, f, "team-a", "team-a-1")
	if ann[v1.AnnotationForceRestartAt] == "" || ann[v1.AnnotationForceRestartAt] != ann[v1.AnnotationRestartedAt] || ann[v1.AnnotationRestartedAt] == at {
		t.Fatalf("after a forced Restart the annotations are %v", ann)
	}
	ed.pageSays(page, ann[v1.AnnotationRestartedAt]+" (forced)", "forced restart pending")

	if code, body, _ := ed.post(page+"/state", ed.origin(), url.Values{"state": {"Stopped"}, "csrf": {token}}); code != http.StatusSeeOther {
		t.Fatalf("Stop: %d\n%s", code, body)
	}
	before := annotations(t, f, "team-a", "team-a-1")[v1.AnnotationRestartedAt]
	if code, body, _ := ed.post(action, ed.origin(), url.Values{"csrf": {token}}); code != http.StatusConflict || !strings.Contains(body, "instance team-a/team-a-1 is Stopped: nothing to restart") {
		t.Errorf("Restart of a Stopped Instance: %d, want 409 saying so\n%s", code, body)
	}
	if got := annotations(t, f, "team-a", "team-a-1")[v1.AnnotationRestartedAt]; got != before {
		t.Errorf("the refused Restart stamped %q over %q", got, before)
	}
	ed.pageSays(page, "Stopped: nothing runs, it starts with the current spec")
}
