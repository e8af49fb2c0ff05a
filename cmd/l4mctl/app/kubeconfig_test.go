package app_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

// TestKubeconfigForKubectl: the kubeconfig l4mctl prints lets kubectl,
// with nothing else, list the Instances of the config's namespace with
// l4mctl get's columns.
func TestKubeconfigForKubectl(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("kubectl missing: .ci/run installs kubernetes-client")
		}
		t.Skip("kubectl is not installed (apt-get install kubernetes-client)")
	}
	e := newEnv(t)
	in := &v1.Instance{ObjectMeta: metav1.ObjectMeta{Name: "coop-1", Namespace: "default"},
		Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}}}
	if _, err := e.cl.Create(context.Background(), instances, in, false); err != nil {
		t.Fatal(err)
	}
	kc := e.mustRun("config", "kubeconfig")
	if !strings.Contains(kc, "certificate-authority-data:") || !strings.Contains(kc, "namespace: default") || !strings.Contains(kc, "current-context: left4me") {
		t.Fatalf("kubeconfig:\n%s", kc)
	}
	path := filepath.Join(e.dir, "left4me.kubeconfig")
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(kubectl, "get", "instances", "-o", "wide")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+path, "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl with the kubeconfig: %v\n%s", err, out)
	}
	if h := strings.Join(strings.Fields(strings.SplitN(string(out), "\n", 2)[0]), " "); h != "NAME PHASE NODE ADDRESS PLAYERS MAP AGE BLUEPRINT DESIRED READY UNIT RESTARTS BUILD" || !strings.Contains(string(out), "coop-1") {
		t.Fatalf("kubectl get instances -o wide:\n%s", out)
	}
	// A CA named by a path that is not there is refused, naming it.
	if _, _, err := e.run("", "--certificate-authority", filepath.Join(e.dir, "missing.crt"), "config", "kubeconfig"); err == nil || !strings.Contains(err.Error(), "missing.crt") {
		t.Fatalf("a missing CA file: %v", err)
	}
}
