package scheduler

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a goroutine outlives the tests: each
// test stops its controllers and its etcd, and what they started must stop
// with them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// klog's flush daemon starts when the package loads and never ends.
		goleak.IgnoreTopFunction("k8s.io/klog/v2.(*flushDaemon).run.func1"),
	)
}
