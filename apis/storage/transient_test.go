package storage

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
		{status.Error(codes.Unavailable, "error reading from server: EOF"), true},
		{fmt.Errorf("count instances: %w", status.Error(codes.Unavailable, "connection reset")), true},
		{status.Error(codes.InvalidArgument, "bad key"), false},
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
