package server_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/left4me/left4me/apis/client"
	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
	"github.com/left4me/left4me/apis/server/servertest"
)

// joinAs asks for a Node token for node with a join token.
func joinAs(ctx context.Context, join *client.Client, node string, dry bool) (string, error) {
	out, err := join.Create(ctx, resources.Tokens, &v1.Token{ObjectMeta: metav1.ObjectMeta{Name: "join"}, Spec: v1.TokenSpec{Type: v1.TokenNode, NodeName: node}}, dry)
	if err != nil {
		return "", err
	}
	return out.(*v1.Token).Status.Token, nil
}

// joinToken creates a join token and returns its bearer token and ID.
func joinToken(t *testing.T, admin *client.Client, spec v1.TokenSpec) (bearer, id string) {
	t.Helper()
	spec.Type = v1.TokenJoin
	bearer = servertest.NewToken(t, admin, spec)
	return bearer, strings.Split(bearer, ".")[1]
}

func getToken(t *testing.T, admin *client.Client, id string) *v1.Token {
	t.Helper()
	obj, err := admin.Get(context.Background(), resources.Tokens, "", id)
	if err != nil {
		t.Fatal(err)
	}
	return obj.(*v1.Token)
}

// TestJoinTokenOneUseRace: eight hosts join at once with one default join
// token. Exactly one gets a Node token; the others are told the token is
// spent; the token says it was used once and expires in 24 hours.
func TestJoinTokenOneUseRace(t *testing.T) {
	s, admin := servertest.Start(t)
	bearer, id := joinToken(t, admin, v1.TokenSpec{})
	join := servertest.ClientWithToken(t, s, bearer)
	ctx := context.Background()

	const hosts = 8
	var wg sync.WaitGroup
	errs := make([]error, hosts)
	start := make(chan struct{})
	for i := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = joinAs(ctx, join, fmt.Sprintf("host-%d", i), false)
		}()
	}
	close(start)
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "uses are spent"):
		default:
			t.Errorf("host-%d: %v, want success or 403 (uses spent)", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d hosts joined with a one-use token, want exactly 1", won, hosts)
	}
	tok := getToken(t, admin, id)
	if tok.Spec.Uses != 1 || tok.Status.Used != 1 {
		t.Fatalf("join token after the race: uses %d, used %d; want 1 and 1", tok.Spec.Uses, tok.Status.Used)
	}
	exp := tok.Spec.ExpirationTime
	if exp == nil || time.Until(exp.Time) < 23*time.Hour || time.Until(exp.Time) > 24*time.Hour {
		t.Fatalf("join token created without expirationTime expires at %v, want in 24h", exp)
	}
	nodeTokens, err := admin.List(ctx, resources.Tokens, "", client.ListOptions{FieldSelector: "spec.type=Node"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(nodeTokens.(*v1.TokenList).Items); n != 1 {
		t.Fatalf("%d Node tokens stored, want 1", n)
	}
}

// TestJoinTokenUses: a join token with three uses admits three new hosts
// and refuses the fourth; dry runs and refused joins spend nothing.
func TestJoinTokenUses(t *testing.T) {
	s, admin := servertest.Start(t)
	bearer, id := joinToken(t, admin, v1.TokenSpec{Uses: 3})
	join := servertest.ClientWithToken(t, s, bearer)
	ctx := context.Background()
	if _, err := joinAs(ctx, join, "host-dry", true); err != nil {
		t.Fatalf("dry-run join: %v", err)
	}
	for i := range 3 {
		if _, err := joinAs(ctx, join, fmt.Sprintf("host-%d", i), false); err != nil {
			t.Fatalf("join %d of 3: %v", i+1, err)
		}
	}
	_, err := joinAs(ctx, join, "host-3", false)
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "all 3 of its uses are spent") {
		t.Fatalf("fourth join with a three-use token: %v, want 403 uses spent", err)
	}
	if tok := getToken(t, admin, id); tok.Status.Used != 3 {
		t.Fatalf("used %d after three joins and a dry run, want 3", tok.Status.Used)
	}
}

// TestJoinRefusesExistingNode: a join token cannot mint a token for a node
// that is registered, or that already has a Node token (taking over a
// node's identity), and a refused attempt spends no use.
func TestJoinRefusesExistingNode(t *testing.T) {
	s, admin := servertest.Start(t)
	ctx := context.Background()
	if _, err := admin.Create(ctx, resources.Nodes, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "game-1"}}, false); err != nil {
		t.Fatal(err)
	}
	servertest.NewToken(t, admin, v1.TokenSpec{Type: v1.TokenNode, NodeName: "game-2"}) // not registered yet
	bearer, id := joinToken(t, admin, v1.TokenSpec{})
	join := servertest.ClientWithToken(t, s, bearer)
	for _, tc := range []struct{ node, why string }{
		{"game-1", "that Node is already registered"},
		{"game-2", "that node already has a token"},
	} {
		_, err := joinAs(ctx, join, tc.node, false)
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("join as existing %s: %v, want 403 %q", tc.node, err, tc.why)
		}
	}
	if tok := getToken(t, admin, id); tok.Status.Used != 0 {
		t.Fatalf("refused joins spent %d uses", tok.Status.Used)
	}
	if _, err := joinAs(ctx, join, "game-3", false); err != nil {
		t.Fatalf("joining as a new node after the refusals: %v", err)
	}
	// An admin may still give an existing node a token.
	servertest.NewToken(t, admin, v1.TokenSpec{Type: v1.TokenNode, NodeName: "game-1"})
}

// TestTokenUsesOnlyForJoin: a use count on another kind of token is refused
// with the field named.
func TestTokenUsesOnlyForJoin(t *testing.T) {
	_, admin := servertest.Start(t)
	_, err := admin.Create(context.Background(), resources.Tokens, &v1.Token{ObjectMeta: metav1.ObjectMeta{Name: "x"},
		Spec: v1.TokenSpec{Type: v1.TokenNode, NodeName: "game-1", Uses: 2}}, false)
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.uses") {
		t.Fatalf("node token with uses: %v, want 422 naming spec.uses", err)
	}
}
