package gameuser

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strings"
	"sync"
	"testing"

	"github.com/left4me/left4me/hack/sandboxtest"
)

// TestAccountsOnAHost creates accounts in a real user database: it boots
// a sandbox host and runs this test binary in it (TestAccountsInsideSandbox).
func TestAccountsOnAHost(t *testing.T) {
	sb := sandboxtest.Boot(t, "gameuser")
	sb.RunInside(t, "TestAccountsInsideSandbox")
}

// TestAccountsInsideSandbox: forty Instances asking at once (a burst
// applied to one host) each get an account of their own, created in
// batches: distinct ids in the range, locked, no home directory made, the
// same account when asked again; a name another owner holds is refused,
// and the batch around it is not failed by it; Remove takes user and group.
func TestAccountsInsideSandbox(t *testing.T) {
	if !sandboxtest.Inside() {
		t.Skip("runs inside a sandbox host, started by TestAccountsOnAHost")
	}
	s := &System{Min: 480000, Max: 480100}
	// Someone else's account under the name an Instance would get.
	taken := "default.taken"
	if out, err := exec.Command("useradd", "--system", "--no-create-home", "--comment", "not a game", NameFor(taken)).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v: %s", err, out)
	}
	ids := []string{taken}
	for i := range 40 {
		ids = append(ids, fmt.Sprintf("default.coop-%d", i))
	}
	accts := make([]Account, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() { defer wg.Done(); accts[i], errs[i] = s.Ensure(id) }()
	}
	wg.Wait()
	if errs[0] == nil || !strings.Contains(errs[0].Error(), "refusing to share it") {
		t.Fatalf("the taken name: %+v, %v; want it refused", accts[0], errs[0])
	}
	seen := map[int]string{}
	shadow, _ := os.ReadFile("/etc/shadow")
	for i, id := range ids[1:] {
		a, err := accts[i+1], errs[i+1]
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if a.Name != NameFor(id) || a.UID != a.GID || a.UID < s.Min || a.UID > s.Max {
			t.Fatalf("%s got %+v", id, a)
		}
		if other, dup := seen[a.UID]; dup {
			t.Fatalf("%s and %s share uid %d", id, other, a.UID)
		}
		seen[a.UID] = id
		if !strings.Contains(string(shadow), "\n"+a.Name+":!:") {
			t.Fatalf("%s's account is not locked in /etc/shadow", a.Name)
		}
		u, err := user.Lookup(a.Name)
		if err != nil || u.HomeDir != "" {
			t.Fatalf("%s: home %q (%v), want none", a.Name, u.HomeDir, err)
		}
		if again, err := s.Ensure(id); err != nil || again != a {
			t.Fatalf("%s again: %+v, %v; want %+v", id, again, err, a)
		}
	}
	if _, err := os.Stat("/nonexistent"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("/nonexistent exists (%v): an account's home was created", err)
	}
	for _, id := range ids[1:] {
		if err := s.Remove(id); err != nil {
			t.Fatal(err)
		}
		if _, err := user.Lookup(NameFor(id)); !errors.As(err, new(user.UnknownUserError)) {
			t.Fatalf("%s's user is still there: %v", id, err)
		}
		if _, err := user.LookupGroup(NameFor(id)); !errors.As(err, new(user.UnknownGroupError)) {
			t.Fatalf("%s's group is still there: %v", id, err)
		}
	}
}
