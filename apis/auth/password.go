package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
)

// Argon2Params are argon2id's cost settings. DefaultArgon2 is RFC 9106's
// second recommended option (64 MiB, 3 passes, 4 lanes): about 50-100 ms
// on a server core, so a stolen etcd snapshot costs an attacker that much
// per guess and per user (each hash has its own 16-byte salt).
type Argon2Params struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
}

// DefaultArgon2 is what new passwords are hashed with. Old hashes keep the
// parameters written in their PHC string, so raising these later needs no
// migration.
var DefaultArgon2 = Argon2Params{Memory: 64 * 1024, Time: 3, Threads: 4}

const (
	saltBytes = 16
	keyBytes  = 32
)

// hashSlots bounds how many password hashes run at once: each takes
// DefaultArgon2.Memory, and a crowd of logins must not exhaust memory.
var hashSlots = make(chan struct{}, 4)

// HashPassword returns the PHC string of pw's argon2id hash with a fresh
// salt: $argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash> (unpadded base64).
func HashPassword(pw string) string {
	return hashWith(DefaultArgon2, pw)
}

func hashWith(p Argon2Params, pw string) string {
	salt := make([]byte, saltBytes)
	rand.Read(salt)
	key := argon2IDKey(pw, salt, p, keyBytes)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

func argon2IDKey(pw string, salt []byte, p Argon2Params, n uint32) []byte {
	hashSlots <- struct{}{}
	defer func() { <-hashSlots }()
	return argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, n)
}

// maxArgon2Memory refuses stored hashes whose parameters would make one
// check take more than 1 GiB (a hash someone planted to stall logins).
const maxArgon2Memory = 1 << 20

// PasswordMatches checks pw against a PHC string from HashPassword, in
// constant time. A malformed string never matches.
func PasswordMatches(encoded, pw string) bool {
	p, salt, key, err := parsePHC(encoded)
	if err != nil {
		return false
	}
	got := argon2IDKey(pw, salt, p, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1
}

func parsePHC(s string) (Argon2Params, []byte, []byte, error) {
	var p Argon2Params
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, errors.New("not an argon2id PHC string")
	}
	var ver int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &ver); err != nil || ver != argon2.Version {
		return p, nil, nil, fmt.Errorf("argon2 version %q", parts[2])
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return p, nil, nil, fmt.Errorf("argon2 parameters %q: %w", parts[3], err)
	}
	if p.Memory == 0 || p.Memory > maxArgon2Memory || p.Time == 0 || p.Time > 16 || p.Threads == 0 {
		return p, nil, nil, fmt.Errorf("argon2 parameters %q out of range", parts[3])
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return p, nil, nil, errors.New("argon2 salt")
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 64 {
		return p, nil, nil, errors.New("argon2 hash")
	}
	return p, salt, key, nil
}

// dummyHash is checked when the user does not exist, so that a wrong name
// takes as long as a wrong password and names cannot be probed by timing.
var dummyHash = hashWith(DefaultArgon2, "no such user")

// AuthenticatePassword returns the User named name if pw is its password,
// with the stamp LookupUser compares (the stored hash: a new password
// ends the sessions of the old one), or ErrUnauthenticated (never saying which of the two was wrong). It
// reads the User from the store, so a deleted user or a changed password
// counts at once.
func (a *Authenticator) AuthenticatePassword(ctx context.Context, name, pw string) (*User, string, error) {
	if name == "" || pw == "" || len(pw) > 1024 || len(name) > 63 {
		return nil, "", ErrUnauthenticated
	}
	obj, err := a.store.Get(ctx, resources.Users, "", name)
	if apierrors.IsNotFound(err) || apierrors.IsBadRequest(err) || apierrors.IsInvalid(err) {
		PasswordMatches(dummyHash, pw)
		return nil, "", ErrUnauthenticated
	}
	if err != nil {
		return nil, "", fmt.Errorf("look up user %s: %w", name, err)
	}
	u := obj.(*v1.User)
	if u.DeletionTimestamp != nil || !PasswordMatches(u.Status.PasswordHash, pw) {
		return nil, "", ErrUnauthenticated
	}
	return PasswordUser(u), u.Status.PasswordHash, nil
}

// PasswordUser is the caller a password user's session acts as. Audit logs
// show "user:<name>", so a password user cannot pass for a token holder of
// the same name.
func PasswordUser(u *v1.User) *User {
	return &User{Name: "user:" + u.Name, Type: v1.TokenUser, Roles: u.Spec.Roles}
}

// LookupUser re-reads a password user: a dashboard session checks, on
// every request, that its user still exists, with its current roles, and
// that its password (stamp) has not changed since the login.
func (a *Authenticator) LookupUser(ctx context.Context, name, stamp string) (*User, error) {
	obj, err := a.store.Get(ctx, resources.Users, "", name)
	if apierrors.IsNotFound(err) {
		return nil, ErrUnauthenticated
	}
	if err != nil {
		return nil, fmt.Errorf("look up user %s: %w", name, err)
	}
	u := obj.(*v1.User)
	if u.DeletionTimestamp != nil || subtle.ConstantTimeCompare([]byte(u.Status.PasswordHash), []byte(stamp)) != 1 {
		return nil, ErrUnauthenticated
	}
	return PasswordUser(u), nil
}
