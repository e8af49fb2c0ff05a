package overlay_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a goroutine outlives the tests: each
// test stops its controller and its etcd, and what they started must stop
// with them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
