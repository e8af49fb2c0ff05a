package ui_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a goroutine outlives the tests: every
// live stream, and the server each test starts, must stop with it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
