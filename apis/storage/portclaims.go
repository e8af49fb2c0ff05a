package storage

import (
	"context"
	"fmt"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
)

// A port claim is one etcd key per (node, game port) in use, written in the
// same transaction as the Instance that uses it. Its key must not exist for
// a new claim to succeed, so two schedulers, or a scheduler and a user naming
// a port, can never hand one port on one node to two Instances: the second
// transaction fails and nothing of it is written.

type portClaim struct {
	node string
	port int32
}

func claimOf(res *resources.Resource, obj v1.Object) (portClaim, bool) {
	if obj == nil || res != resources.Instances {
		return portClaim{}, false
	}
	in, ok := obj.(*v1.Instance)
	if !ok || in.Spec.NodeName == "" || in.GamePort() == 0 {
		return portClaim{}, false
	}
	return portClaim{node: in.Spec.NodeName, port: in.GamePort()}, true
}

func (s *Store) claimKey(c portClaim) string {
	return s.prefix + "/portclaims/" + c.node + "/" + strconv.Itoa(int(c.port))
}

func claimOwner(obj v1.Object) string { return obj.GetNamespace() + "/" + obj.GetName() }

// claimTxn returns what a write from prev to next (either may be nil) must
// check and do to keep the claims in step with the Instance.
func (s *Store) claimTxn(res *resources.Resource, prev, next v1.Object) ([]clientv3.Cmp, []clientv3.Op) {
	pc, hadClaim := claimOf(res, prev)
	nc, hasClaim := claimOf(res, next)
	if hadClaim == hasClaim && pc == nc {
		return nil, nil
	}
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	if hadClaim {
		ops = append(ops, clientv3.OpDelete(s.claimKey(pc)))
	}
	if hasClaim {
		key := s.claimKey(nc)
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
		ops = append(ops, clientv3.OpPut(key, claimOwner(next)))
	}
	return cmps, ops
}

// claimConflict explains a failed transaction when the new claim is taken by
// another Instance (nil when the claim is free or the object's own).
func (s *Store) claimConflict(ctx context.Context, res *resources.Resource, next v1.Object) error {
	c, ok := claimOf(res, next)
	if !ok {
		return nil
	}
	resp, err := s.client.Get(ctx, s.claimKey(c))
	if err != nil {
		return etcdError(err, "read port claim %d on %s", c.port, c.node)
	}
	if len(resp.Kvs) == 0 || string(resp.Kvs[0].Value) == claimOwner(next) {
		return nil
	}
	return apierrors.NewConflict(res.GroupResource(), next.GetName(),
		fmt.Errorf("port %d on node %s is already used by Instance %s", c.port, c.node, resp.Kvs[0].Value))
}

// PortClaims lists the ports in use on a node, from etcd (not a cache): the
// scheduler's view of what it must not allocate.
func (s *Store) PortClaims(ctx context.Context, node string) (map[int32]string, error) {
	resp, err := s.client.Get(ctx, s.prefix+"/portclaims/"+node+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, etcdError(err, "list port claims of node %s", node)
	}
	out := make(map[int32]string, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		k := string(kv.Key)
		p, err := strconv.Atoi(k[len(s.prefix+"/portclaims/"+node+"/"):])
		if err == nil {
			out[int32(p)] = string(kv.Value)
		}
	}
	return out, nil
}
