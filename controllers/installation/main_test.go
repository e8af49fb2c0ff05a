package installation_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a goroutine outlives the tests: each
// test stops its controllers and its etcd, and what they started must stop
// with them. Nothing is ignored: no goroutine of a dependency outlives them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
