package ui

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"sync"
	"time"
)

// session is one logged-in browser, kept in this process's memory only: a
// restart of l4m-server logs everyone out, and with several servers behind
// one address a browser must stay on the one it logged in to.
type session struct {
	// user is the password user's name, or empty for a token session.
	user  string
	stamp string // the password hash at login: a new password ends the session
	// bearer is a token session's token, checked again on every request
	// (a revoked token ends the session at once).
	bearer  string
	csrf    string
	expires time.Time
}

// maxSessions bounds the memory sessions take; expired ones are swept
// when a new one is made, and past this many a login is refused.
const maxSessions = 10000

// sessions maps the SHA-256 of a cookie's id to its session, so that the
// map holds no usable cookie value.
type sessions struct {
	ttl time.Duration
	now func() time.Time

	mu sync.Mutex
	m  map[[32]byte]*session
}

func newSessions(ttl time.Duration) *sessions {
	return &sessions{ttl: ttl, now: time.Now, m: map[[32]byte]*session{}}
}

// randomToken is 256 random bits, base64url.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func key(id string) [32]byte { return sha256.Sum256([]byte(id)) }

// create stores s under a fresh id and returns the id (false: too many).
func (ss *sessions) create(s *session) (string, bool) {
	now := ss.now()
	s.csrf = randomToken()
	s.expires = now.Add(ss.ttl)
	id := randomToken()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for k, old := range ss.m {
		if !now.Before(old.expires) {
			delete(ss.m, k)
		}
	}
	if len(ss.m) >= maxSessions {
		return "", false
	}
	ss.m[key(id)] = s
	return id, true
}

// get returns the unexpired session of id (a copy), or nil.
func (ss *sessions) get(id string) *session {
	if id == "" {
		return nil
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.m[key(id)]
	if !ok {
		return nil
	}
	if !ss.now().Before(s.expires) {
		delete(ss.m, key(id))
		return nil
	}
	c := *s
	return &c
}

func (ss *sessions) delete(id string) {
	ss.mu.Lock()
	delete(ss.m, key(id))
	ss.mu.Unlock()
}
