package storage

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
)

// A port claim is one etcd key per (node, port) a game binds there: its game
// port and its client port (v1.GamePorts), written in the same transaction
// as the Instance that uses them. Its key must not exist for a new claim to
// succeed, so two schedulers, or a scheduler and a user naming a port, can
// never hand one port on one node to two Instances, not even one's game port
// as the other's client port: the second transaction fails and nothing of it
// is written.

type portClaim struct {
	node string
	port int32
}

// claimsOf are the claims an Instance holds: every port it binds, once it
// has a node and a game port.
func claimsOf(res *resources.Resource, obj v1.Object) []portClaim {
	if obj == nil || res != resources.Instances {
		return nil
	}
	in, ok := obj.(*v1.Instance)
	if !ok || in.Spec.NodeName == "" {
		return nil
	}
	var out []portClaim
	for _, p := range in.Ports().List() {
		out = append(out, portClaim{node: in.Spec.NodeName, port: p})
	}
	return out
}

func (s *Store) claimKey(c portClaim) string {
	return s.prefix + "/portclaims/" + c.node + "/" + strconv.Itoa(int(c.port))
}

func claimOwner(obj v1.Object) string { return obj.GetNamespace() + "/" + obj.GetName() }

// claimTxn returns what a write from prev to next (either may be nil) must
// check and do to keep the claims in step with the Instance: release the
// ports it no longer binds, take (only if free) the ones it newly binds.
func (s *Store) claimTxn(res *resources.Resource, prev, next v1.Object) ([]clientv3.Cmp, []clientv3.Op) {
	had, has := claimsOf(res, prev), claimsOf(res, next)
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	for _, c := range had {
		if !slices.Contains(has, c) {
			ops = append(ops, clientv3.OpDelete(s.claimKey(c)))
		}
	}
	for _, c := range has {
		if !slices.Contains(had, c) {
			key := s.claimKey(c)
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
			ops = append(ops, clientv3.OpPut(key, claimOwner(next)))
		}
	}
	return cmps, ops
}

// claimConflict explains a failed transaction when one of the new claims is
// taken by another Instance (nil when all are free or the object's own).
func (s *Store) claimConflict(ctx context.Context, res *resources.Resource, next v1.Object) error {
	for _, c := range claimsOf(res, next) {
		resp, err := s.client.Get(ctx, s.claimKey(c))
		if err != nil {
			return etcdError(err, "read port claim %d on %s", c.port, c.node)
		}
		if len(resp.Kvs) == 0 || string(resp.Kvs[0].Value) == claimOwner(next) {
			continue
		}
		return apierrors.NewConflict(res.GroupResource(), next.GetName(),
			fmt.Errorf("port %d on node %s%s is already used by Instance %s", c.port, c.node, roleOf(next, c), resp.Kvs[0].Value))
	}
	return nil
}

// roleOf says which of the Instance's ports a claim is, when it is not the
// game port the user sees.
func roleOf(obj v1.Object, c portClaim) string {
	if p := obj.(*v1.Instance).Ports(); c.port == p.Client {
		return fmt.Sprintf(" (the client port of game port %d)", p.Game)
	}
	return ""
}

// RepairPortClaims takes the claims bound Instances lack. Versions before
// client ports were claimed wrote claims for game ports only, so an etcd
// they wrote has none for the client ports. Each missing claim is taken
// only if free and only while the Instance is unchanged (a write between
// the list and the claim is re-read and tried again). A port another
// Instance already holds is not taken from it: the two games clash on that
// node, and each such clash comes back for someone to resolve.
func (s *Store) RepairPortClaims(ctx context.Context) (repaired int, clashes []PortClash, err error) {
	list, err := s.List(ctx, resources.Instances, ListOptions{})
	if err != nil {
		return 0, nil, err
	}
	for i := range list.(*v1.InstanceList).Items {
		in := &list.(*v1.InstanceList).Items[i]
		n, found, err := s.repairClaims(ctx, in)
		if err != nil {
			return repaired, clashes, err
		}
		repaired += n
		clashes = append(clashes, found...)
	}
	return repaired, clashes, nil
}

// PortClash is a port two bound Instances bind on one node: the one that
// lacks its claim, and the one holding it.
type PortClash struct {
	Node      string
	Port      int32
	Namespace string
	Name      string
	Holder    string // namespace/name
	role      string
}

func (c PortClash) Error() string {
	return fmt.Sprintf("Instance %s/%s binds port %d on node %s%s, which Instance %s holds", c.Namespace, c.Name, c.Port, c.Node, c.role, c.Holder)
}

// repairClaims takes one Instance's missing claims (see RepairPortClaims).
func (s *Store) repairClaims(ctx context.Context, in *v1.Instance) (repaired int, clashes []PortClash, err error) {
	const attempts = 5
	for range attempts {
		rv, err := parseRV(in.ResourceVersion)
		if err != nil {
			return repaired, nil, err
		}
		changed := false
		clashes = nil
		inKey := s.key(resources.Instances, in.Namespace, in.Name)
		for _, c := range claimsOf(resources.Instances, in) {
			key := s.claimKey(c)
			resp, err := s.client.Txn(ctx).
				If(clientv3.Compare(clientv3.ModRevision(inKey), "=", rv), clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
				Then(clientv3.OpPut(key, claimOwner(in))).
				Else(clientv3.OpGet(key), clientv3.OpGet(inKey)).Commit()
			if err != nil {
				return repaired, nil, etcdError(err, "repair port claim %d on %s", c.port, c.node)
			}
			if resp.Succeeded {
				repaired++
				continue
			}
			claim, cur := resp.Responses[0].GetResponseRange().Kvs, resp.Responses[1].GetResponseRange().Kvs
			switch {
			case len(cur) == 0 || cur[0].ModRevision != rv:
				changed = true // written (or deleted) since it was read
			case string(claim[0].Value) != claimOwner(in):
				clashes = append(clashes, PortClash{Node: c.node, Port: c.port, Namespace: in.Namespace, Name: in.Name,
					Holder: string(claim[0].Value), role: roleOf(in, c)})
			}
			if changed {
				break
			}
		}
		if !changed {
			return repaired, clashes, nil
		}
		obj, err := s.Get(ctx, resources.Instances, in.Namespace, in.Name)
		if apierrors.IsNotFound(err) {
			return repaired, nil, nil
		}
		if err != nil {
			return repaired, nil, err
		}
		in = obj.(*v1.Instance)
	}
	return repaired, clashes, fmt.Errorf("repair port claims of Instance %s: it kept changing", claimOwner(in))
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
