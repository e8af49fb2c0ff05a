package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/apis/server/servertest"
)

// kubectlAccept is what kubectl get sends.
const kubectlAccept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"

func getAccept(t *testing.T, s *server.Server, path, accept string) (int, []byte) {
	t.Helper()
	return callWith(t, s, "GET", path, http.Header{"Accept": {accept}}, "")
}

// TestTablesForKubectl: asked as kubectl get asks, the server answers a
// meta.k8s.io Table with the columns l4mctl get prints (the -o wide ones
// at priority 1), rows carrying their object's metadata, for one object, a
// list in pages, and a watch; plain JSON stays plain.
func TestTablesForKubectl(t *testing.T) {
	s, admin := servertest.Start(t)
	ctx := context.Background()
	for _, name := range []string{"coop-1", "versus-1"} {
		in := &v1.Instance{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"mode": strings.Split(name, "-")[0]}},
			Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}}}
		if _, err := admin.Create(ctx, instances, in, false); err != nil {
			t.Fatal(err)
		}
	}
	coll := base + "/namespaces/default/instances"

	code, data := getAccept(t, s, coll+"?limit=1", kubectlAccept)
	var tab metav1.Table
	if err := json.Unmarshal(data, &tab); code != http.StatusOK || err != nil || tab.Kind != "Table" || tab.APIVersion != "meta.k8s.io/v1" {
		t.Fatalf("list as Table: %d %v %s", code, err, data)
	}
	var names []string
	wide := map[string]bool{}
	for _, c := range tab.ColumnDefinitions {
		names = append(names, c.Name)
		wide[c.Name] = c.Priority == 1
	}
	if got := strings.Join(names, " "); got != "NAME PHASE NODE ADDRESS PLAYERS MAP AGE BLUEPRINT DESIRED READY UNIT RESTARTS BUILD" {
		t.Fatalf("columns %s", got)
	}
	if wide["PHASE"] || !wide["BLUEPRINT"] || !wide["BUILD"] {
		t.Fatalf("priorities %v: the -o wide columns are priority 1, the rest 0", wide)
	}
	if len(tab.Rows) != 1 || tab.Continue == "" {
		t.Fatalf("limit=1: %d rows, continue %q", len(tab.Rows), tab.Continue)
	}
	row := tab.Rows[0]
	if row.Cells[0] != "coop-1" || row.Cells[1] != "Pending" || row.Cells[7] != "coop" || row.Cells[8] != "Running" {
		t.Fatalf("row %v", row.Cells)
	}
	var pm metav1.PartialObjectMetadata
	if err := json.Unmarshal(row.Object.Raw, &pm); err != nil || pm.Kind != "PartialObjectMetadata" || pm.Namespace != "default" || pm.Labels["mode"] != "coop" {
		t.Fatalf("row object %s %v", row.Object.Raw, err)
	}
	code, data = getAccept(t, s, coll+"?limit=1&continue="+tab.Continue, kubectlAccept)
	if err := json.Unmarshal(data, &tab); code != http.StatusOK || err != nil || len(tab.Rows) != 1 || tab.Rows[0].Cells[0] != "versus-1" {
		t.Fatalf("the next page: %d %s", code, data)
	}

	// One object; includeObject=None; v1beta1 for older kubectl.
	code, data = getAccept(t, s, coll+"/coop-1?includeObject=None", "application/json;as=Table;v=v1beta1;g=meta.k8s.io")
	tab = metav1.Table{}
	if err := json.Unmarshal(data, &tab); code != http.StatusOK || err != nil || tab.APIVersion != "meta.k8s.io/v1beta1" || len(tab.Rows) != 1 || tab.Rows[0].Object.Raw != nil {
		t.Fatalf("one object, no row objects: %d %s", code, data)
	}
	if code, data := getAccept(t, s, coll+"?includeObject=Everything", kubectlAccept); code != http.StatusBadRequest || !strings.Contains(string(data), "includeObject") {
		t.Fatalf("a bad includeObject: %d %s", code, data)
	}
	// Plain JSON first, or no Accept: the objects.
	for _, accept := range []string{"application/json", "", "application/json, application/json;as=Table;v=v1;g=meta.k8s.io"} {
		code, data := getAccept(t, s, coll+"/coop-1", accept)
		var in v1.Instance
		if err := json.Unmarshal(data, &in); code != http.StatusOK || err != nil || in.Kind != "Instance" {
			t.Fatalf("Accept %q: %d %s", accept, code, data)
		}
	}

	// kubectl get -w: every event's object a Table of one row, its labels
	// in the row's metadata.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(wctx, "GET", s.URL()+coll+"?watch=true&fieldSelector=metadata.name%3Dcoop-1", nil)
	req.Header.Set("Accept", kubectlAccept)
	req.Header.Set("Authorization", "Bearer "+servertest.AdminToken(t, s))
	resp, err := servertest.HTTPClient(s).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := admin.Patch(ctx, instances, "default", "coop-1", "application/merge-patch+json", []byte(`{"metadata":{"labels":{"mode":"realism"}}}`), false); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(resp.Body)
	if !lines.Scan() {
		t.Fatalf("no watch event: %v", lines.Err())
	}
	var ev struct {
		Type   string       `json:"type"`
		Object metav1.Table `json:"object"`
	}
	if err := json.Unmarshal(lines.Bytes(), &ev); err != nil || ev.Type != "MODIFIED" || ev.Object.Kind != "Table" || len(ev.Object.Rows) != 1 || ev.Object.Rows[0].Cells[0] != "coop-1" ||
		!strings.Contains(string(ev.Object.Rows[0].Object.Raw), `"realism"`) {
		t.Fatalf("watch event %s %v", lines.Bytes(), err)
	}
}

// TestTableOfUsersHidesPasswordHashes: a Table row carrying the whole
// object (includeObject=Object) is redacted as a GET is.
func TestTableOfUsersHidesPasswordHashes(t *testing.T) {
	s, admin := servertest.Start(t)
	ctx := context.Background()
	u := &v1.User{ObjectMeta: metav1.ObjectMeta{Name: "alice"},
		Spec: v1.UserSpec{Roles: []v1.RoleBinding{{Role: v1.RoleViewer, Namespace: "default"}}, Password: "correct horse battery"}}
	if _, err := admin.Create(ctx, resources.Users, u, false); err != nil {
		t.Fatal(err)
	}
	code, data := getAccept(t, s, base+"/users?includeObject=Object", kubectlAccept)
	if code != http.StatusOK || !strings.Contains(string(data), `"alice"`) || strings.Contains(string(data), "argon2") || strings.Contains(string(data), "correct horse") {
		t.Fatalf("users as a Table: %d %s", code, data)
	}
}
