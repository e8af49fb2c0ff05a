package e2e

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/left4me/left4me/hack/sandboxtest"
)

// testNetns is a network namespace of a test's own, with one bridge whose
// gateway address is the control plane's; sandbox hosts booted inside it
// hang their veths on the bridge, and nothing reaches the machine's
// network.
type testNetns struct {
	name, bridge, gateway string
	// boxes are the sandboxes the inner test boots: torn down here too,
	// in case it was killed before it could.
	boxes []string
	// timeout bounds the inner run (-test.timeout).
	timeout string
}

// runInside makes the namespace and bridge, runs the calling test again
// inside it (env added, naming the namespace among others), and fails
// unless the inner run passed. It removes the namespace when the test ends.
func (n testNetns) runInside(t *testing.T, env ...string) {
	t.Helper()
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", n.name)
	t.Cleanup(func() {
		for _, box := range n.boxes {
			exec.Command(sandboxtest.Script(), "down", box).Run()
		}
		if out, err := exec.Command("ip", "netns", "del", n.name).CombinedOutput(); err != nil {
			t.Errorf("delete netns %s: %v: %s", n.name, err, out)
		}
	})
	ip("-n", n.name, "link", "set", "lo", "up")
	ip("-n", n.name, "link", "add", n.bridge, "type", "bridge")
	ip("-n", n.name, "addr", "add", n.gateway+"/24", "dev", n.bridge)
	ip("-n", n.name, "link", "set", n.bridge, "up")
	var out bytes.Buffer
	cmd := exec.Command("nsenter", "--net=/run/netns/"+n.name, os.Args[0], "-test.run", "^"+t.Name()+"$", "-test.v", "-test.count", "1", "-test.timeout", n.timeout)
	cmd.Env = append(os.Environ(), env...)
	if testing.Verbose() {
		cmd.Stdout, cmd.Stderr = io.MultiWriter(&out, os.Stdout), io.MultiWriter(&out, os.Stdout)
	} else {
		cmd.Stdout, cmd.Stderr = &out, &out
	}
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s inside netns %s failed: %v\n%s", t.Name(), n.name, err, out.String())
	}
	if !strings.Contains(out.String(), "--- PASS: "+t.Name()) {
		t.Fatalf("%s did not pass inside netns %s:\n%s", t.Name(), n.name, out.String())
	}
}
