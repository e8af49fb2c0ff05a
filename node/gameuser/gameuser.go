// Package gameuser gives every Instance on a node an account of its own.
//
// Games run tenants' native plugins, so each is hostile to every other: with
// its own uid and gid, one game cannot read another's files (its RCON
// password in server.cfg), write them, or signal its processes. The
// account's name is derived from the Instance ID (user names are at most 32
// characters; IDs are up to 127) and its GECOS field records the ID, so the
// user database itself is the record: a restarted agent finds the same
// account, and a name collision is detected rather than shared.
package gameuser

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"sync"
)

// Account is the user and group one Instance's game runs as.
type Account struct {
	Name     string
	UID, GID int
}

// Accounts hands out and takes back Instances' accounts.
type Accounts interface {
	// Ensure returns the Instance's account, creating it the first time.
	Ensure(id string) (Account, error)
	// Remove deletes the Instance's account (none is fine). Call it only
	// when nothing of the Instance runs or is left on disk.
	Remove(id string) error
}

// NameFor is the account name of an Instance ID: "l4m-" and 12 hex digits
// of its SHA-256.
func NameFor(id string) string {
	sum := sha256.Sum256([]byte(id))
	return "l4m-" + hex.EncodeToString(sum[:6])
}

// Comment is the GECOS field that ties an account to its Instance.
func Comment(id string) string { return "left4me game " + id }

// DefaultMin and DefaultMax bound the ids the node gives games: above
// Debian's user and system ranges and the 16-bit ones, below systemd's
// container ranges (524288 up), so no other account shares them.
const (
	DefaultMin = 480000
	DefaultMax = 489999
)

// System creates accounts in the host's user database, ids from [Min, Max].
//
// Accounts that are asked for while one batch is being written are
// created together, with one newusers(8) call: the user database is one
// set of files under one lock, so a hundred games applied at once made a
// hundred groupadd+useradd pairs wait for each other (a quarter of a
// second each on a busy host, measured: most of a burst's start time).
type System struct {
	Min, Max int
	// Passwd and Group are the files read to find free ids (default
	// /etc/passwd and /etc/group); useradd writes the same ones.
	Passwd, Group string
	// mu serializes edits of the user database.
	mu sync.Mutex
	// qmu guards pending: Ensure calls waiting for the next batch.
	qmu     sync.Mutex
	pending []*request
}

// request is one Ensure waiting for its batch.
type request struct {
	id   string
	acct Account
	err  error
	done chan struct{}
}

func (r *request) finish(acct Account, err error) {
	r.acct, r.err = acct, err
	close(r.done)
}

// Ensure finds or creates the Instance's account.
func (s *System) Ensure(id string) (Account, error) {
	if acct, err := lookup(NameFor(id), id); err == nil || !errors.As(err, new(user.UnknownUserError)) {
		return acct, err
	}
	r := &request{id: id, done: make(chan struct{})}
	s.qmu.Lock()
	s.pending = append(s.pending, r)
	s.qmu.Unlock()
	// Whoever holds mu next creates every request queued by then, this one
	// included (it was queued before this Lock).
	s.mu.Lock()
	s.qmu.Lock()
	batch := s.pending
	s.pending = nil
	s.qmu.Unlock()
	if len(batch) > 0 {
		s.createBatch(batch)
	}
	s.mu.Unlock()
	<-r.done
	return r.acct, r.err
}

// idRange is [Min, Max], or the default range when both are unset.
func (s *System) idRange() (int, int) {
	if s.Min == 0 && s.Max == 0 {
		return DefaultMin, DefaultMax
	}
	return s.Min, s.Max
}

// freeID is the lowest id in [from, max] that used does not hold.
func freeID(used map[int]bool, from, max int) (int, bool) {
	for n := from; n <= max; n++ {
		if !used[n] {
			return n, true
		}
	}
	return 0, false
}

// createBatch creates the accounts of batch (callers hold mu), each with
// the lowest free id, and finishes every request.
func (s *System) createBatch(batch []*request) {
	used, err := s.usedIDs()
	if err != nil {
		for _, r := range batch {
			r.finish(Account{}, err)
		}
		return
	}
	min, max := s.idRange()
	var lines strings.Builder
	var made []*request
	next := min
	for _, r := range batch {
		name := NameFor(r.id)
		if acct, err := lookup(name, r.id); err == nil || !errors.As(err, new(user.UnknownUserError)) {
			r.finish(acct, err) // made by an earlier batch, or not ours
			continue
		}
		if strings.ContainsAny(r.id, ":\n\r") {
			// newusers reads colon-separated lines: an ID cannot be one.
			r.finish(Account{}, fmt.Errorf("instance ID %q cannot name an account", r.id))
			continue
		}
		n, ok := freeID(used, next, max)
		if !ok {
			r.finish(Account{}, fmt.Errorf("no free game uid left in %d-%d for %s", min, max, r.id))
			continue
		}
		used[n], next = true, n+1
		// name:password:uid:gid:gecos:home:shell. No password: newusers
		// locks the account ("!"). No home: newusers would create it.
		fmt.Fprintf(&lines, "%s::%d:%d:%s::/usr/sbin/nologin\n", name, n, n, Comment(r.id))
		made = append(made, r)
	}
	if len(made) == 0 {
		return
	}
	cmd := exec.Command("newusers", "--system")
	cmd.Stdin = strings.NewReader(lines.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		// newusers writes nothing when one line fails: make each alone,
		// so that one bad account does not fail the others.
		batchErr := fmt.Errorf("newusers: %w: %s", err, strings.TrimSpace(string(out)))
		for _, r := range made {
			acct, err := s.createOne(r.id, used)
			if err != nil {
				err = fmt.Errorf("%w (after %v)", err, batchErr)
			}
			r.finish(acct, err)
		}
		return
	}
	for _, r := range made {
		r.finish(lookup(NameFor(r.id), r.id))
	}
}

// createOne makes one account with groupadd and useradd (callers hold mu).
func (s *System) createOne(id string, used map[int]bool) (Account, error) {
	name := NameFor(id)
	if acct, err := lookup(name, id); err == nil || !errors.As(err, new(user.UnknownUserError)) {
		return acct, err
	}
	min, max := s.idRange()
	n, ok := freeID(used, min, max)
	if !ok {
		return Account{}, fmt.Errorf("no free game uid left in %d-%d for %s", min, max, id)
	}
	used[n] = true
	ids := strconv.Itoa(n)
	if out, err := exec.Command("groupadd", "--system", "--gid", ids, name).CombinedOutput(); err != nil {
		return Account{}, fmt.Errorf("create group %s (gid %d) for %s: %w: %s", name, n, id, err, strings.TrimSpace(string(out)))
	}
	out, err := exec.Command("useradd", "--system", "--uid", ids, "--gid", ids, "--no-create-home",
		"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "--comment", Comment(id), name).CombinedOutput()
	if err != nil {
		exec.Command("groupdel", name).Run()
		return Account{}, fmt.Errorf("create user %s (uid %d) for %s: %w: %s", name, n, id, err, strings.TrimSpace(string(out)))
	}
	return lookup(name, id)
}

// Remove deletes the account and its group.
func (s *System) Remove(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := NameFor(id)
	if _, err := lookup(name, id); err != nil {
		if errors.As(err, new(user.UnknownUserError)) {
			return s.removeGroup(name)
		}
		return err
	}
	if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
		return fmt.Errorf("delete user %s of %s: %w: %s", name, id, err, strings.TrimSpace(string(out)))
	}
	return s.removeGroup(name)
}

func (s *System) removeGroup(name string) error {
	if _, err := user.LookupGroup(name); err != nil {
		return nil // userdel took it along, or it never was
	}
	if out, err := exec.Command("groupdel", name).CombinedOutput(); err != nil {
		return fmt.Errorf("delete group %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// lookup reads the account and checks it is this Instance's.
func lookup(name, id string) (Account, error) {
	return lookupOwned(name, Comment(id), "Instance "+id)
}

// lookupOwned reads the account and checks its GECOS field is comment.
func lookupOwned(name, comment, owner string) (Account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return Account{}, err
	}
	if u.Name != comment {
		return Account{}, fmt.Errorf("account %s belongs to %q, not to %s: refusing to share it", name, u.Name, owner)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil || uid == 0 || gid == 0 {
		return Account{}, fmt.Errorf("account %s has uid %q gid %q: not an unprivileged account", name, u.Uid, u.Gid)
	}
	return Account{Name: name, UID: uid, GID: gid}, nil
}

// ServiceComment is the GECOS field of a node service account (steamcmd's).
func ServiceComment(service string) string { return "left4me " + service }

// EnsureService finds or creates a system account of the node's own, not
// an Instance's: the one steamcmd runs as, say. useradd picks its id from
// the system range; the GECOS field (ServiceComment) marks it as left4me's,
// so an unrelated account of that name is refused rather than used.
func (s *System) EnsureService(name, service string) (Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	comment := ServiceComment(service)
	acct, err := lookupOwned(name, comment, "left4me's "+service)
	if err == nil || !errors.As(err, new(user.UnknownUserError)) {
		return acct, err
	}
	if _, gerr := user.LookupGroup(name); gerr != nil {
		if out, err := exec.Command("groupadd", "--system", name).CombinedOutput(); err != nil {
			return Account{}, fmt.Errorf("create group %s for %s: %w: %s", name, service, err, strings.TrimSpace(string(out)))
		}
	}
	out, err := exec.Command("useradd", "--system", "--gid", name, "--no-create-home",
		"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "--comment", comment, name).CombinedOutput()
	if err != nil {
		return Account{}, fmt.Errorf("create user %s for %s: %w: %s", name, service, err, strings.TrimSpace(string(out)))
	}
	return lookupOwned(name, comment, "left4me's "+service)
}

// usedIDs are the uids and gids in the user and group files: an id is free
// for a game only when neither has it.
func (s *System) usedIDs() (map[int]bool, error) {
	used := map[int]bool{}
	for _, f := range []string{or(s.Passwd, "/etc/passwd"), or(s.Group, "/etc/group")} {
		file, err := os.Open(f)
		if err != nil {
			return nil, fmt.Errorf("read ids in use: %w", err)
		}
		sc := bufio.NewScanner(file)
		for sc.Scan() {
			// name:x:id:... in both files
			if parts := strings.SplitN(sc.Text(), ":", 4); len(parts) >= 3 {
				if n, err := strconv.Atoi(parts[2]); err == nil {
					used[n] = true
				}
			}
		}
		file.Close()
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("read %s: %w", f, err)
		}
	}
	return used, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Fake hands out distinct ids without touching the user database, for the
// agent's unit tests (files can be owned by any id; no game process runs).
type Fake struct {
	mu   sync.Mutex
	next int
	byID map[string]Account
	// Removed lists the Instance IDs whose accounts were removed.
	Removed []string
}

// NewFake starts handing out ids at first.
func NewFake(first int) *Fake { return &Fake{next: first, byID: map[string]Account{}} }

func (f *Fake) Ensure(id string) (Account, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a, ok := f.byID[id]; ok {
		return a, nil
	}
	a := Account{Name: NameFor(id), UID: f.next, GID: f.next}
	f.next++
	f.byID[id] = a
	return a, nil
}

func (f *Fake) Remove(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.byID[id]; ok {
		delete(f.byID, id)
		f.Removed = append(f.Removed, id)
	}
	return nil
}

// EnsureService hands out a service account like Ensure, keyed by name.
func (f *Fake) EnsureService(name, service string) (Account, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := "service " + name
	if a, ok := f.byID[key]; ok {
		return a, nil
	}
	a := Account{Name: name, UID: f.next, GID: f.next}
	f.next++
	f.byID[key] = a
	return a, nil
}

// Lookup returns the account Ensure gave id, if any.
func (f *Fake) Lookup(id string) (Account, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.byID[id]
	return a, ok
}
