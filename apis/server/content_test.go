package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/server/servertest"
)

// TestContentTypes: a body of a type the endpoint does not take is refused
// with 415, naming the type and what is taken, and changes nothing; the
// types the client and l4mctl send still work.
func TestContentTypes(t *testing.T) {
	s, admin := servertest.Start(t)
	ctx := context.Background()
	coll := base + "/namespaces/default/instances"
	body := `{"apiVersion":"left4me.io/v1alpha1","kind":"Instance","metadata":{"name":"NAME"},"spec":{"blueprintRef":{"name":"coop"}}}`
	obj := func(name string) string { return strings.Replace(body, "NAME", name, 1) }
	if code, data := call(t, s, "POST", coll, "application/json", obj("srv1")); code != http.StatusCreated {
		t.Fatalf("create as JSON: %d %s", code, data)
	}
	current, err := admin.Get(ctx, instances, "default", "srv1")
	if err != nil {
		t.Fatal(err)
	}
	currentJSON, _ := json.Marshal(current)
	tokens := resources.Tokens
	tokensBefore, err := admin.List(ctx, tokens, "", client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	refused := []struct {
		name, method, path, contentType, body, names, takes string
	}{
		{"create as text", "POST", coll, "text/plain", obj("srv2"), `"text/plain"`, "application/json or application/yaml"},
		{"create as XML", "POST", coll, "application/xml", obj("srv2"), `"application/xml"`, "application/json or application/yaml"},
		{"create without a type", "POST", coll, "", obj("srv2"), "no Content-Type", "application/json or application/yaml"},
		{"create a token as text", "POST", base + "/tokens", "text/plain", `{"spec":{"type":"User","user":"eve","roles":[{"role":"admin"}]}}`, `"text/plain"`, "application/json"},
		{"update as text", "PUT", coll + "/srv1", "text/plain", string(currentJSON), `"text/plain"`, "application/json or application/yaml"},
		{"patch as plain JSON", "PATCH", coll + "/srv1", "application/json", `{"spec":{"hostname":"x"}}`, `"application/json"`, "application/merge-patch+json or application/json-patch+json"},
		{"strategic merge patch", "PATCH", coll + "/srv1", "application/strategic-merge-patch+json", `{"spec":{"hostname":"x"}}`, "strategic", "application/merge-patch+json or application/json-patch+json"},
		{"delete options as text", "DELETE", coll + "/srv1", "text/plain", `{"kind":"DeleteOptions","apiVersion":"v1"}`, `"text/plain"`, "application/json"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			code, data := call(t, s, tc.method, tc.path, tc.contentType, tc.body)
			st := status(t, data)
			if code != http.StatusUnsupportedMediaType || st.Code != http.StatusUnsupportedMediaType || st.Reason != metav1.StatusReasonUnsupportedMediaType {
				t.Fatalf("%d (%s): %s", code, st.Reason, st.Message)
			}
			if !strings.Contains(st.Message, tc.names) || !strings.Contains(st.Message, tc.takes) {
				t.Fatalf("message %q does not name %s and %s", st.Message, tc.names, tc.takes)
			}
		})
	}
	// Nothing of the above changed anything.
	list, err := admin.List(ctx, instances, "default", client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if items := list.(*v1.InstanceList).Items; len(items) != 1 || items[0].ResourceVersion != current.GetResourceVersion() {
		t.Fatalf("refused requests changed the instances: %+v", items)
	}
	tokensAfter, err := admin.List(ctx, tokens, "", client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := len(tokensAfter.(*v1.TokenList).Items), len(tokensBefore.(*v1.TokenList).Items); a != b {
		t.Fatalf("a refused token create left a token: %d tokens, were %d", a, b)
	}

	// What the client and l4mctl send, with parameters or without.
	for _, tc := range []struct{ name, method, path, contentType, body string }{
		{"JSON with a charset", "POST", coll, "application/json; charset=utf-8", obj("srv3")},
		{"YAML", "POST", coll, "application/yaml", "apiVersion: left4me.io/v1alpha1\nkind: Instance\nmetadata: {name: srv4}\nspec: {blueprintRef: {name: coop}}\n"},
		{"merge patch", "PATCH", coll + "/srv3", "application/merge-patch+json", `{"spec":{"hostname":"merged"}}`},
		{"JSON patch", "PATCH", coll + "/srv3", "application/json-patch+json", `[{"op":"replace","path":"/spec/hostname","value":"patched"}]`},
		{"delete without a body", "DELETE", coll + "/srv3", "", ""},
		{"delete with options", "DELETE", coll + "/srv4", "application/json", `{"kind":"DeleteOptions","apiVersion":"v1","dryRun":["All"]}`},
	} {
		if code, data := call(t, s, tc.method, tc.path, tc.contentType, tc.body); code >= 300 {
			t.Errorf("%s: %d %s", tc.name, code, data)
		}
	}
}

// TestGarbageResourceVersion: a list refuses a resourceVersion that is not
// a revision, as a watch does, with the same 400.
func TestGarbageResourceVersion(t *testing.T) {
	s, _ := servertest.Start(t)
	coll := base + "/namespaces/default/instances"
	for _, rv := range []string{"yesterday", "-1", "12abc"} {
		var messages []string
		for _, q := range []string{"?resourceVersion=", "?watch=true&resourceVersion="} {
			code, data := call(t, s, "GET", coll+q+rv, "", "")
			st := status(t, data)
			if code != http.StatusBadRequest || st.Reason != metav1.StatusReasonBadRequest || !strings.Contains(st.Message, rv) {
				t.Fatalf("GET %s%s: %d %s", q, rv, code, data)
			}
			messages = append(messages, st.Message)
		}
		if messages[0] != messages[1] {
			t.Fatalf("list and watch refuse %q differently: %q, %q", rv, messages[0], messages[1])
		}
	}
	if code, data := call(t, s, "GET", coll+"?resourceVersion=0", "", ""); code != http.StatusOK {
		t.Fatalf("list at resourceVersion 0: %d %s", code, data)
	}
}
