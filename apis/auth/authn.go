package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
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
// keeps every token in memory, following a watch, so that no request costs
// an etcd read: an ID it has not seen is answered at once, which is what
// makes guessing IDs cheap for us and useless for the guesser. A token
// created through this server is known the moment it is stored (Observe);
// one created through another server of a fleet once the watch brings it,
// milliseconds later.
type Authenticator struct {
	store *storage.Store
	log   logr.Logger
	now   func() time.Time

	synced   chan struct{}
	syncOnce sync.Once

	mu   sync.RWMutex
	byID map[string]*v1.Token
	// rev is the etcd revision the cache reflects: the list's, then each
	// watch event's.
	rev int64
}

// NewAuthenticator returns an authenticator over store. Run must be
// running: it loads the tokens and follows revocations.
func NewAuthenticator(store *storage.Store, log logr.Logger) *Authenticator {
	return &Authenticator{store: store, log: log, now: time.Now, byID: map[string]*v1.Token{}, synced: make(chan struct{})}
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

// WaitForSync returns once the first list of tokens is in memory (an
// error if ctx ends first).
func (a *Authenticator) WaitForSync(ctx context.Context) error {
	select {
	case <-a.synced:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("load tokens: %w", ctx.Err())
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
	a.byID, a.rev = fresh, revision(list.GetResourceVersion())
	a.mu.Unlock()
	a.syncOnce.Do(func() { close(a.synced) })
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
		a.rev = max(a.rev, revision(t.ResourceVersion))
		a.mu.Unlock()
	}
	return errors.New("token watch closed")
}

// Observe records a token this server has just stored, so that it works
// at once rather than when the watch brings it. A token older than what
// the watch has already shown is ignored: the watch knows better (it may
// have seen the token deleted since).
func (a *Authenticator) Observe(t *v1.Token) {
	rv := revision(t.ResourceVersion)
	a.mu.Lock()
	defer a.mu.Unlock()
	if rv > a.rev {
		c := t.DeepCopy()
		c.Status.Token = "" // the bearer shown once to its creator is not kept
		a.byID[t.Name] = c
	}
}

func revision(rv string) int64 {
	n, _ := strconv.ParseInt(rv, 10, 64)
	return n
}

// Authenticate returns the caller of r, or ErrUnauthenticated.
func (a *Authenticator) Authenticate(r *http.Request) (*User, error) {
	h := r.Header.Get("Authorization")
	bearer, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return nil, ErrUnauthenticated
	}
	return a.AuthenticateBearer(bearer)
}

// AuthenticateBearer returns the holder of a bearer token (l4m.<id>.<secret>),
// or ErrUnauthenticated: Authenticate without the header (the dashboard's
// token login, and each of its requests after).
func (a *Authenticator) AuthenticateBearer(bearer string) (*User, error) {
	id, secret, ok := ParseBearer(strings.TrimSpace(bearer))
	if !ok {
		return nil, ErrUnauthenticated
	}
	t, err := a.lookup(id)
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

// lookup reads the cache only: an ID missing there does not exist (or was
// made a moment ago on another server), and asking etcd each time would
// let anyone who sends made-up IDs make us read etcd.
func (a *Authenticator) lookup(id string) (*v1.Token, error) {
	select {
	case <-a.synced:
	default:
		return nil, apierrors.NewServiceUnavailable("the API server is still loading its tokens; retry in a moment")
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.byID[id], nil
}
