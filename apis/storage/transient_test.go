package storage

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// TestTransient: what etcd answers while a member dies is retried; what it
// answers about the request itself is not.
func TestTransient(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{rpctypes.ErrGRPCLeaderChanged, true},
		{rpctypes.ErrLeaderChanged, true},
		{rpctypes.ErrGRPCNoLeader, true},
		{rpctypes.ErrGRPCTimeout, true},
		{rpctypes.ErrGRPCTimeoutDueToLeaderFail, true},
		{fmt.Errorf("create: %w", rpctypes.ErrLeaderChanged), true},
		{rpctypes.ErrGRPCCompacted, false},
		{rpctypes.ErrGRPCRequestTooLarge, false},
		{context.Canceled, false},
		{errors.New("etcdserver: leader changed (a string, not the error)"), false},
	} {
		if got := transient(c.err); got != c.want {
			t.Errorf("transient(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
