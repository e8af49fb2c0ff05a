package server_test

import (
	"context"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/server"
	"github.com/left4me/left4me/apis/server/servertest"
)

// kubectl runs the machine's kubectl (Debian's kubernetes-client in CI,
// which .ci/run installs) against s as the admin, the way the README says
// to (--server, --token and --certificate-authority), and fails the test
// when it fails.
func kubectl(t *testing.T, s *server.Server, args ...string) string {
	t.Helper()
	out, err := kubectlErr(t, s, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// kubectlErr is kubectl, returning its failure.
func kubectlErr(t *testing.T, s *server.Server, args ...string) (string, error) {
	t.Helper()
	out, err := kubectlCmd(t, s, args...).CombinedOutput()
	return string(out), err
}

// kubectlCmd is the kubectl command, to run on any goroutine.
func kubectlCmd(t *testing.T, s *server.Server, args ...string) *exec.Cmd {
	t.Helper()
	return servertest.KubectlCmd(t, s, args...)
}

// TestKubectlGetPrintsTheColumnsOfL4mctl: kubectl get shows an Instance
// with l4mctl get's columns, the wide ones with -o wide, NAMESPACE with
// -A and labels with --show-labels (read from the rows' metadata).
func TestKubectlGetPrintsTheColumnsOfL4mctl(t *testing.T) {
	s, admin := servertest.Start(t)
	in := &v1.Instance{ObjectMeta: metav1.ObjectMeta{Name: "coop-1", Namespace: "default", Labels: map[string]string{"mode": "coop"}},
		Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}}}
	if _, err := admin.Create(context.Background(), instances, in, false); err != nil {
		t.Fatal(err)
	}
	header := func(out string) string { return strings.Join(strings.Fields(strings.SplitN(out, "\n", 2)[0]), " ") }
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"get", "instances"}, "NAME PHASE NODE ADDRESS PLAYERS MAP AGE"},
		{[]string{"get", "instances", "-o", "wide"}, "NAME PHASE NODE ADDRESS PLAYERS MAP AGE BLUEPRINT DESIRED READY UNIT RESTARTS BUILD"},
		{[]string{"get", "instances", "-A"}, "NAMESPACE NAME PHASE NODE ADDRESS PLAYERS MAP AGE"},
		{[]string{"get", "instances", "--show-labels"}, "NAME PHASE NODE ADDRESS PLAYERS MAP AGE LABELS"},
	} {
		out := kubectl(t, s, c.args...)
		if got := header(out); got != c.want {
			t.Errorf("kubectl %s: header %q, want %q\n%s", strings.Join(c.args, " "), got, c.want, out)
		}
		if !strings.Contains(out, "coop-1") || !strings.Contains(out, "Pending") {
			t.Errorf("kubectl %s shows no row for coop-1:\n%s", strings.Join(c.args, " "), out)
		}
	}
	if out := kubectl(t, s, "get", "instances", "--show-labels"); !strings.Contains(out, "mode=coop") {
		t.Errorf("no labels:\n%s", out)
	}
	if out := kubectl(t, s, "get", "instance", "coop-1", "-o", "wide", "--no-headers"); !strings.Contains(strings.Join(strings.Fields(out), " "), "coop Running Unknown") {
		t.Errorf("one Instance, wide: %s", out)
	}
}

// TestKubectlWaitForReady: kubectl wait --for=condition=Ready returns once
// the Instance's node reports it Ready (written here as its agent would),
// and times out with an error naming it while it is not.
func TestKubectlWaitForReady(t *testing.T) {
	s, admin := servertest.Start(t)
	ctx := context.Background()
	in := &v1.Instance{ObjectMeta: metav1.ObjectMeta{Name: "coop-1", Namespace: "default"},
		Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}}}
	if _, err := admin.Create(ctx, instances, in, false); err != nil {
		t.Fatal(err)
	}
	if out, err := kubectlErr(t, s, "wait", "--for=condition=Ready", "instance/coop-1", "--timeout=1s"); err == nil || !strings.Contains(out, "coop-1") {
		t.Fatalf("kubectl wait on an Instance not Ready: %v\n%s", err, out)
	}
	done := make(chan string, 1)
	wait := kubectlCmd(t, s, "wait", "--for=condition=Ready", "instance/coop-1", "--timeout=30s")
	var buf strings.Builder
	wait.Stdout, wait.Stderr = &buf, &buf
	if err := wait.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wait.Process.Kill(); <-done }) // a failed test leaves no kubectl behind
	go func() {
		wait.Wait()
		done <- buf.String()
	}()
	obj, err := admin.Get(ctx, instances, "default", "coop-1")
	if err != nil {
		t.Fatal(err)
	}
	ready := obj.(*v1.Instance)
	ready.Status.Phase = v1.PhaseRunning
	ready.Status.Conditions = []metav1.Condition{{Type: v1.ConditionReady, Status: metav1.ConditionTrue, Reason: "A2SAnswered", Message: "answers", LastTransitionTime: metav1.Now()}}
	if _, err := admin.UpdateStatus(ctx, instances, ready); err != nil {
		t.Fatal(err)
	}
	select {
	case out := <-done:
		done <- out // for the cleanup
		if !strings.Contains(out, "instance.left4me.io/coop-1 condition met") {
			t.Fatalf("kubectl wait: %s", out)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("kubectl wait did not return after the Instance turned Ready")
	}
}

// TestKubectlGetWatch: kubectl get -w prints the header once, the row, and
// a row again for each change, in l4mctl get's columns.
func TestKubectlGetWatch(t *testing.T) {
	s, admin := servertest.Start(t)
	ctx := context.Background()
	in := &v1.Instance{ObjectMeta: metav1.ObjectMeta{Name: "coop-1", Namespace: "default"},
		Spec: v1.InstanceSpec{BlueprintRef: v1.LocalObjectReference{Name: "coop"}}}
	if _, err := admin.Create(ctx, instances, in, false); err != nil {
		t.Fatal(err)
	}
	w := kubectlCmd(t, s, "get", "instances", "-w", "--output-watch-events")
	var buf syncBuffer
	w.Stdout, w.Stderr = &buf, &buf
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Process.Kill(); w.Wait() })
	waitOutput := func(what string, ok func(string) bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !ok(buf.String()); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("kubectl get -w: no %s in:\n%s", what, buf.String())
			}
		}
	}
	waitOutput("first row", func(out string) bool { return strings.Contains(out, "coop-1") })
	obj, err := admin.Get(ctx, instances, "default", "coop-1")
	if err != nil {
		t.Fatal(err)
	}
	running := obj.(*v1.Instance)
	running.Status.Phase, running.Status.Map = v1.PhaseRunning, "c2m1_highway"
	if _, err := admin.UpdateStatus(ctx, instances, running); err != nil {
		t.Fatal(err)
	}
	waitOutput("row for the change", func(out string) bool { return strings.Contains(out, "c2m1_highway") })
	out := buf.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if h := strings.Join(strings.Fields(lines[0]), " "); h != "EVENT NAME PHASE NODE ADDRESS PLAYERS MAP AGE" || strings.Count(out, "PHASE") != 1 {
		t.Fatalf("header %q (once):\n%s", h, out)
	}
	if last := strings.Fields(lines[len(lines)-1]); len(last) < 3 || last[0] != "MODIFIED" || last[1] != "coop-1" || last[2] != "Running" {
		t.Fatalf("the change's row %v:\n%s", last, out)
	}
}

// syncBuffer is a bytes.Buffer safe for kubectl's writes and the test's
// reads at once.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
