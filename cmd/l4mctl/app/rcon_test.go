package app_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
)

// TestRCON: l4mctl rcon joins the words after -- into one command, prints
// the game's answer as it is, and fails with the API's reason.
func TestRCON(t *testing.T) {
	e := newEnv(t)
	e.agentNode("host-a", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Command string }
		json.NewDecoder(r.Body).Decode(&body)
		fmt.Fprintf(w, `{"output":%q,"truncated":false}`, "ran <"+body.Command+">\nno newline at the end")
	}))
	e.instanceOn("default", "coop-1", "host-a")
	if out := e.mustRun("rcon", "coop-1", "--", "changelevel", "c1m1_hotel"); out != "ran <changelevel c1m1_hotel>\nno newline at the end" {
		t.Fatalf("output %q", out)
	}
	if _, _, err := e.run("", "rcon", "coop-1", "--", "say", "a\nquit"); err == nil || !strings.Contains(err.Error(), "command") {
		t.Fatalf("a newline in the command: %v", err)
	}
	if _, _, err := e.run("", "rcon", "absent", "--", "status"); err == nil || !strings.Contains(err.Error(), "absent") {
		t.Fatalf("an absent Instance: %v", err)
	}
}

// agentNode makes Node name whose agent (its log server, which also
// serves RCON and players) is h, over TLS with the pinned certificate.
func (e *env) agentNode(name string, h http.Handler) {
	e.t.Helper()
	agent := httptest.NewUnstartedServer(h)
	agent.StartTLS()
	e.t.Cleanup(agent.Close)
	ctx := context.Background()
	host, port, _ := net.SplitHostPort(agent.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	sum := sha256.Sum256(agent.Certificate().Raw)
	if _, err := e.cl.Create(ctx, resources.Nodes, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.NodeSpec{PortRange: v1.PortRange{Min: 27015, Max: 27030}}}, false); err != nil {
		e.t.Fatal(err)
	}
	status := fmt.Sprintf(`{"status":{"addresses":[%q],"logsEndpoint":{"port":%d,"certSHA256":%q}}}`, host, p, hex.EncodeToString(sum[:]))
	if _, err := e.cl.PatchStatus(ctx, resources.Nodes, "", name, []byte(status)); err != nil {
		e.t.Fatal(err)
	}
}

// instanceOn makes Instance ns/name bound to node.
func (e *env) instanceOn(ns, name, node string) {
	e.t.Helper()
	if _, err := e.cl.Create(context.Background(), resources.Instances, &v1.Instance{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "bp"}, NodeName: node}}, false); err != nil {
		e.t.Fatal(err)
	}
}
