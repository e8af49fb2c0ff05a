package server_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/apis/server/servertest"
)

const coopPath = "/apis/left4me.io/v1alpha1/namespaces/default/blueprints/coop"

// coopApplied is a Blueprint as a GitOps pipeline applies it.
func coopApplied(maxPlayers string, extra string) string {
	return `apiVersion: left4me.io/v1alpha1
kind: Blueprint
metadata:
  name: coop
spec:
  game:
    map: c1m1_hotel
    mode: coop
    maxPlayers: ` + maxPlayers + `
  cvars:
  - name: sv_region
    value: "3"
` + extra
}

// applyAs sends a server-side apply as manager (query: more parameters).
func applyAs(t *testing.T, s *server.Server, manager, query, body string) (int, []byte) {
	t.Helper()
	path := coopPath + "?fieldManager=" + manager
	if query != "" {
		path += "&" + query
	}
	return call(t, s, http.MethodPatch, path, server.ApplyPatchType, body)
}

func blueprintOf(t *testing.T, data []byte) *v1.Blueprint {
	t.Helper()
	var bp v1.Blueprint
	if err := json.Unmarshal(data, &bp); err != nil || bp.Name == "" {
		t.Fatalf("not a Blueprint: %v\n%s", err, data)
	}
	return &bp
}

// managers maps each manager of bp to its operation.
func managers(bp *v1.Blueprint) map[string]metav1.ManagedFieldsOperationType {
	out := map[string]metav1.ManagedFieldsOperationType{}
	for _, e := range bp.ManagedFields {
		out[e.Manager] = e.Operation
	}
	return out
}

// TestServerSideApplyConflictRules: an apply creates, re-applying changes
// nothing, a second manager changing a field the first owns gets 409
// naming the field and the manager (and nothing changes), force=true
// takes the field over, the same value is shared without conflict, and a
// field dropped from its only manager's configuration is removed.
func TestServerSideApplyConflictRules(t *testing.T) {
	s, _ := servertest.Start(t)
	code, data := applyAs(t, s, "gitops", "", coopApplied("4", ""))
	if code != http.StatusCreated {
		t.Fatalf("first apply: %d %s", code, data)
	}
	bp := blueprintOf(t, data)
	if managers(bp)["gitops"] != metav1.ManagedFieldsOperationApply || bp.Spec.Game.Tickrate != 30 {
		t.Fatalf("created: managers %v, tickrate %d (defaulted 30)", managers(bp), bp.Spec.Game.Tickrate)
	}
	code, data = applyAs(t, s, "gitops", "", coopApplied("4", ""))
	if code != http.StatusOK || blueprintOf(t, data).Generation != 1 {
		t.Fatalf("re-apply: %d generation %d, want 200 and generation 1", code, blueprintOf(t, data).Generation)
	}

	code, data = applyAs(t, s, "ops-console", "", coopApplied("8", ""))
	if code != http.StatusConflict {
		t.Fatalf("conflicting apply: %d %s", code, data)
	}
	st := status(t, data)
	if st.Reason != metav1.StatusReasonConflict || !strings.Contains(st.Message, `conflict with "gitops"`) || !strings.Contains(st.Message, ".spec.game.maxPlayers") {
		t.Errorf("conflict: %s", st.Message)
	}
	if st.Details == nil || len(st.Details.Causes) != 1 || st.Details.Causes[0].Field != ".spec.game.maxPlayers" || st.Details.Causes[0].Type != metav1.CauseTypeFieldManagerConflict {
		t.Errorf("conflict causes: %+v", st.Details)
	}
	_, data = call(t, s, http.MethodGet, coopPath, "", "")
	if got := blueprintOf(t, data).Spec.Game.MaxPlayers; got != 4 {
		t.Errorf("a refused apply changed maxPlayers to %d", got)
	}

	code, data = applyAs(t, s, "ops-console", "force=true", coopApplied("8", ""))
	if code != http.StatusOK || blueprintOf(t, data).Spec.Game.MaxPlayers != 8 {
		t.Fatalf("forced apply: %d %s", code, data)
	}
	// gitops no longer owns maxPlayers: its own apply with the old value
	// now conflicts the other way.
	if code, data := applyAs(t, s, "gitops", "", coopApplied("4", "")); code != http.StatusConflict || !strings.Contains(string(data), `conflict with \"ops-console\"`) {
		t.Errorf("apply of a field taken over: %d %s", code, data)
	}
	// The same value is no conflict: both own it.
	if code, data := applyAs(t, s, "gitops", "", coopApplied("8", "")); code != http.StatusOK {
		t.Errorf("apply of the same value: %d %s", code, data)
	}

	// A field only gitops applied, dropped from its configuration, goes.
	withArgs := coopApplied("8", "  args: [\"-nohltv\"]\n")
	if code, data := applyAs(t, s, "gitops", "", withArgs); code != http.StatusOK || len(blueprintOf(t, data).Spec.Args) != 1 {
		t.Fatalf("apply with args: %d %s", code, data)
	}
	code, data = applyAs(t, s, "gitops", "", coopApplied("8", ""))
	if code != http.StatusOK || len(blueprintOf(t, data).Spec.Args) != 0 {
		t.Errorf("args dropped from the configuration are still there: %d %s", code, data)
	}
}

// TestUpdatesAreTrackedForApply: a merge patch records its manager (the
// fieldManager parameter, else the client's program from User-Agent), and
// an apply then conflicts with what that patch set.
func TestUpdatesAreTrackedForApply(t *testing.T) {
	s, _ := servertest.Start(t)
	if code, data := applyAs(t, s, "gitops", "", coopApplied("4", "")); code != http.StatusCreated {
		t.Fatalf("apply: %d %s", code, data)
	}
	h := http.Header{"Content-Type": {server.MergePatchType}, "User-Agent": {"l4mctl/v0.9 (linux/amd64)"}}
	code, data := callWith(t, s, http.MethodPatch, coopPath, h, `{"spec":{"game":{"maxPlayers":6}}}`)
	if code != http.StatusOK {
		t.Fatalf("merge patch: %d %s", code, data)
	}
	if ops := managers(blueprintOf(t, data)); ops["l4mctl"] != metav1.ManagedFieldsOperationUpdate || ops["gitops"] != metav1.ManagedFieldsOperationApply {
		t.Fatalf("managers after a patch by l4mctl: %v", ops)
	}
	if code, data := applyAs(t, s, "gitops", "", coopApplied("4", "")); code != http.StatusConflict || !strings.Contains(string(data), `conflict with \"l4mctl\" using left4me.io/v1alpha1`) {
		t.Errorf("apply over a patched field: %d %s", code, data)
	}
}

// TestServerSideApplyBadInput: what a POST refuses, an apply refuses with
// the same error, and nothing is stored; an apply without a fieldManager,
// force on a merge patch, and an apply naming another object are 400.
func TestServerSideApplyBadInput(t *testing.T) {
	s, _ := servertest.Start(t)
	post := func(body string) (int, string) {
		code, data := call(t, s, http.MethodPost, "/apis/left4me.io/v1alpha1/namespaces/default/blueprints", server.YAMLType, body)
		return code, status(t, data).Message
	}
	for _, c := range []struct{ name, body string }{
		{"unknown field", coopApplied("4", "  colour: red\n")},
		{"wrong type", coopApplied(`"four"`, "")},
		{"invalid value", coopApplied("99", "")},
		{"duplicate field", coopApplied("4", "  args: [a]\n  args: [b]\n")},
		{"two cvars of one name", coopApplied("4", "  - name: sv_region\n    value: \"4\"\n")},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantCode, wantMsg := post(c.body)
			code, data := applyAs(t, s, "gitops", "", c.body)
			if code != wantCode || status(t, data).Message != wantMsg {
				t.Errorf("apply: %d %q; POST: %d %q", code, status(t, data).Message, wantCode, wantMsg)
			}
			if code, _ := call(t, s, http.MethodGet, coopPath, "", ""); code != http.StatusNotFound {
				t.Errorf("a refused apply stored the Blueprint (%d)", code)
			}
		})
	}
	if code, data := call(t, s, http.MethodPatch, coopPath, server.ApplyPatchType, coopApplied("4", "")); code != http.StatusBadRequest || !strings.Contains(string(data), "fieldManager") {
		t.Errorf("apply without fieldManager: %d %s", code, data)
	}
	if code, data := applyAs(t, s, "gitops", "", strings.Replace(coopApplied("4", ""), "name: coop", "name: versus", 1)); code != http.StatusBadRequest || !strings.Contains(string(data), `metadata.name \"versus\" does not match`) {
		t.Errorf("apply naming another object: %d %s", code, data)
	}
	applyAs(t, s, "gitops", "", coopApplied("4", ""))
	if code, data := call(t, s, http.MethodPatch, coopPath+"?force=true", server.MergePatchType, `{"spec":{"args":["x"]}}`); code != http.StatusBadRequest || !strings.Contains(string(data), "force") {
		t.Errorf("force on a merge patch: %d %s", code, data)
	}
	// fieldValidation=Ignore drops the unknown field and applies the rest.
	code, data := applyAs(t, s, "gitops", "fieldValidation=Ignore", coopApplied("6", "  colour: red\n"))
	if code != http.StatusOK || blueprintOf(t, data).Spec.Game.MaxPlayers != 6 || strings.Contains(string(data), "colour") {
		t.Errorf("apply with fieldValidation=Ignore: %d %s", code, data)
	}
	// A dry run answers what would be stored and stores nothing.
	code, data = applyAs(t, s, "gitops", "dryRun=All", coopApplied("2", ""))
	if code != http.StatusOK || blueprintOf(t, data).Spec.Game.MaxPlayers != 2 {
		t.Errorf("dry-run apply: %d %s", code, data)
	}
	if _, data := call(t, s, http.MethodGet, coopPath, "", ""); blueprintOf(t, data).Spec.Game.MaxPlayers != 6 {
		t.Errorf("a dry-run apply was stored: %s", data)
	}
}

// TestNodeCannotForgeManagedFields: a node may write its Instance's
// finalizers and status, but not managedFields: the ones it sends are
// ignored, so it cannot hand a tenant's field to another manager (whose
// next apply would then delete it) or plant an owner that makes every
// apply conflict.
func TestNodeCannotForgeManagedFields(t *testing.T) {
	s, admin := servertest.Start(t)
	nodeToken := servertest.NewToken(t, admin, v1.TokenSpec{Type: v1.TokenNode, NodeName: "node-1"})
	path := "/apis/left4me.io/v1alpha1/namespaces/default/instances/coop-1"
	applied := `apiVersion: left4me.io/v1alpha1
kind: Instance
metadata: {name: coop-1}
spec: {blueprintRef: {name: coop}, nodeName: node-1, state: Stopped}
`
	if code, data := call(t, s, http.MethodPatch, path+"?fieldManager=gitops", server.ApplyPatchType, applied); code != http.StatusCreated {
		t.Fatalf("apply: %d %s", code, data)
	}
	forged := `{"metadata":{"finalizers":["left4me.io/node-cleanup"],"managedFields":[{"manager":"evil","operation":"Apply","apiVersion":"left4me.io/v1alpha1","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:blueprintRef":{"f:name":{}}}}}]}}`
	code, data := callWithToken(t, s, nodeToken, http.MethodPatch, path, http.Header{"Content-Type": {server.MergePatchType}}, forged)
	if code != http.StatusOK {
		t.Fatalf("node's finalizer patch: %d %s", code, data)
	}
	_, data = call(t, s, http.MethodGet, path, "", "")
	var in v1.Instance
	json.Unmarshal(data, &in)
	for _, e := range in.ManagedFields {
		if e.Manager == "evil" {
			t.Fatalf("the node planted a manager: %s", data)
		}
	}
	if len(in.Finalizers) != 1 {
		t.Fatalf("the node's finalizer is missing: %s", data)
	}
	if code, data := call(t, s, http.MethodPatch, path+"?fieldManager=gitops", server.ApplyPatchType, applied); code != http.StatusOK {
		t.Errorf("the tenant's next apply: %d %s", code, data)
	}
}

// TestApplyRefusals: a Token cannot be applied (the server makes its
// secret), a collection takes no patch, and an apply-create's status is
// dropped, as a POST's is.
func TestApplyRefusals(t *testing.T) {
	s, _ := servertest.Start(t)
	token := `{"apiVersion":"left4me.io/v1alpha1","kind":"Token","metadata":{"name":"mine"},"spec":{"type":"User","user":"eve","roles":[{"role":"admin"}]},"status":{"secretHash":"` + strings.Repeat("a", 64) + `"}}`
	if code, data := call(t, s, http.MethodPatch, "/apis/left4me.io/v1alpha1/tokens/mine?fieldManager=eve", server.ApplyPatchType, token); code != http.StatusMethodNotAllowed {
		t.Errorf("apply of a Token: %d %s", code, data)
	}
	if code, data := call(t, s, http.MethodPatch, "/apis/left4me.io/v1alpha1/namespaces/default/blueprints?fieldManager=x", server.ApplyPatchType, coopApplied("4", "")); code != http.StatusMethodNotAllowed {
		t.Errorf("apply to a collection: %d %s", code, data)
	}
	if code, data := call(t, s, http.MethodDelete, "/apis/left4me.io/v1alpha1/namespaces/default/blueprints", "", ""); code != http.StatusMethodNotAllowed {
		t.Errorf("DELETE of a collection: %d %s", code, data)
	}
	running := `{"apiVersion":"left4me.io/v1alpha1","kind":"Instance","metadata":{"name":"fake"},"spec":{"blueprintRef":{"name":"coop"}},"status":{"phase":"Running","address":"203.0.113.9"}}`
	for _, c := range []struct{ method, path, ct string }{
		{http.MethodPatch, "/apis/left4me.io/v1alpha1/namespaces/default/instances/fake?fieldManager=x", server.ApplyPatchType},
		{http.MethodPost, "/apis/left4me.io/v1alpha1/namespaces/default/instances", server.JSONType},
	} {
		code, data := call(t, s, c.method, c.path, c.ct, running)
		if code != http.StatusCreated || strings.Contains(string(data), "203.0.113.9") {
			t.Errorf("%s of an Instance with a status: %d %s", c.method, code, data)
		}
		call(t, s, http.MethodDelete, "/apis/left4me.io/v1alpha1/namespaces/default/instances/fake", "", "")
	}
}

// TestApplyIgnoreKeepsZeroValues: under fieldValidation=Ignore an unknown
// field is dropped and nothing else: an explicit false still uncordons.
func TestApplyIgnoreKeepsZeroValues(t *testing.T) {
	s, _ := servertest.Start(t)
	path := "/apis/left4me.io/v1alpha1/nodes/host-a"
	node := func(unschedulable string) string {
		return `{"apiVersion":"left4me.io/v1alpha1","kind":"Node","metadata":{"name":"host-a"},"spec":{"portRange":{"min":27015,"max":27115},"unschedulable":` + unschedulable + `,"colour":"red"}}`
	}
	if code, data := call(t, s, http.MethodPatch, path+"?fieldManager=ops&fieldValidation=Ignore", server.ApplyPatchType, node("true")); code != http.StatusCreated {
		t.Fatalf("apply cordoned: %d %s", code, data)
	}
	code, data := call(t, s, http.MethodPatch, path+"?fieldManager=ops&fieldValidation=Warn", server.ApplyPatchType, node("false"))
	var n v1.Node
	json.Unmarshal(data, &n)
	if code != http.StatusOK || n.Spec.Unschedulable {
		t.Errorf("apply unschedulable: false under Warn: %d, unschedulable %v\n%s", code, n.Spec.Unschedulable, data)
	}
}

// TestConcurrentAppliesAllLand: appliers racing on one new object, each
// with fields of its own, all succeed: a write meanwhile is merged onto,
// not answered with a 409.
func TestConcurrentAppliesAllLand(t *testing.T) {
	s, _ := servertest.Start(t)
	const n = 12
	codes := make(chan int, n)
	for i := range n {
		go func() {
			body := `{"apiVersion":"left4me.io/v1alpha1","kind":"Blueprint","metadata":{"name":"coop","labels":{"team-` + strconv.Itoa(i) + `":"yes"}}}`
			code, _ := call(t, s, http.MethodPatch, coopPath+"?fieldManager=team-"+strconv.Itoa(i), server.ApplyPatchType, body)
			codes <- code
		}()
	}
	for range n {
		if code := <-codes; code != http.StatusOK && code != http.StatusCreated {
			t.Errorf("a racing apply got %d", code)
		}
	}
	_, data := call(t, s, http.MethodGet, coopPath, "", "")
	if bp := blueprintOf(t, data); len(bp.Labels) != n || len(bp.ManagedFields) != n {
		t.Errorf("after %d applies: %d labels, %d managers", n, len(bp.Labels), len(bp.ManagedFields))
	}
}
