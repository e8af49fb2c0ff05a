package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/watch"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/storage"
)

// User is an authenticated caller.
type User struct {
	// Name is what audit logs show: the token's user, "node:<name>" or
	// "join:<id>".
	Name     string
	TokenID  string
	Type     v1.TokenType
	Roles    []v1.RoleBinding
	NodeName string
}

// IsAdmin reports an admin binding.
func (u *User) IsAdmin() bool {
	if u.Type != v1.TokenUser {
		return false
	}
	for _, r := range u.Roles {
		if r.Role == v1.RoleAdmin {
			return true
		}
	}
	return false
}

// ErrUnauthenticated is why a request gets 401. The message never says
// which part was wrong, so it tells an attacker nothing.
var ErrUnauthenticated = errors.New("unauthenticated")

var tokens = resources.Tokens

// Authenticator checks bearer tokens against the Tokens in storage. It
// keeps them in memory, following a watch, so a request costs no etcd
// round trip; a token created a moment ago and not yet seen is read from
// etcd directly.
type Authenticator struct {
	store *storage.Store
	log   logr.Logger
	now   func() time.Time

	mu   sync.RWMutex
	byID map[string]*v1.Token
}

// NewAuthenticator returns an authenticator over store. Run must be
// running for revocations to take effect without a restart.
func NewAuthenticator(store *storage.Store, log logr.Logger) *Authenticator {
	return &Authenticator{store: store, log: log, now: time.Now, byID: map[string]*v1.Token{}}
}

// Run keeps the token cache in step with etcd until ctx ends.
func (a *Authenticator) Run(ctx context.Context) {
	for ctx.Err() == nil {
		if err := a.follow(ctx); err != nil && ctx.Err() == nil {
			a.log.Error(err, "token watch ended; relisting")
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (a *Authenticator) follow(ctx context.Context) error {
	list, err := a.store.List(ctx, tokens, storage.ListOptions{})
	if err != nil {
		return err
	}
	fresh := map[string]*v1.Token{}
	for i := range list.(*v1.TokenList).Items {
		t := &list.(*v1.TokenList).Items[i]
		fresh[t.Name] = t
	}
	a.mu.Lock()
	a.byID = fresh
	a.mu.Unlock()
	w, err := a.store.Watch(ctx, tokens, storage.ListOptions{ResourceVersion: list.GetResourceVersion()})
	if err != nil {
		return err
	}
	defer w.Stop()
	for ev := range w.ResultChan() {
		t, ok := ev.Object.(*v1.Token)
		if !ok {
			return fmt.Errorf("token watch: %v", ev.Object)
		}
		a.mu.Lock()
		if ev.Type == watch.Deleted {
			delete(a.byID, t.Name)
		} else {
			a.byID[t.Name] = t
		}
		a.mu.Unlock()
	}
	return errors.New("token watch closed")
}

// Authenticate returns the caller of r, or ErrUnauthenticated.
func (a *Authenticator) Authenticate(r *http.Request) (*User, error) {
	h := r.Header.Get("Authorization")
	bearer, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return nil, ErrUnauthenticated
	}
	id, secret, ok := ParseBearer(strings.TrimSpace(bearer))
	if !ok {
		return nil, ErrUnauthenticated
	}
	t, err := a.lookup(r.Context(), id)
	if err != nil {
		return nil, err
	}
	if t == nil || t.DeletionTimestamp != nil || !secretMatches(secret, t.Status.SecretHash) {
		return nil, ErrUnauthenticated
	}
	if exp := t.Spec.ExpirationTime; exp != nil && !a.now().Before(exp.Time) {
		return nil, ErrUnauthenticated
	}
	u := &User{TokenID: t.Name, Type: t.Spec.Type, Roles: t.Spec.Roles, NodeName: t.Spec.NodeName}
	switch t.Spec.Type {
	case v1.TokenUser:
		u.Name = t.Spec.User
	case v1.TokenNode:
		u.Name = "node:" + t.Spec.NodeName
	case v1.TokenJoin:
		u.Name = "join:" + t.Name
	}
	return u, nil
}

func (a *Authenticator) lookup(ctx context.Context, id string) (*v1.Token, error) {
	a.mu.RLock()
	t, ok := a.byID[id]
	a.mu.RUnlock()
	if ok {
		return t, nil
	}
	// Not in the cache: maybe created a moment ago, or the cache is still
	// filling. Ask etcd.
	obj, err := a.store.Get(ctx, tokens, "", id)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return obj.(*v1.Token), nil
}
