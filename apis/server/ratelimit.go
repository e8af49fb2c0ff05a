package server

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiters hands out one token bucket per key (a token ID, or the remote
// address of failed logins), so that one flooding client gets 429 while
// everyone else is served.
type limiters struct {
	qps   rate.Limit
	burst int

	mu sync.Mutex
	m  map[string]*rate.Limiter
}

// maxLimiters bounds the memory an attacker can make us spend on keys.
const maxLimiters = 10000

func newLimiters(qps float64, burst int) *limiters {
	return &limiters{qps: rate.Limit(qps), burst: burst, m: map[string]*rate.Limiter{}}
}

func (l *limiters) disabled() bool { return l == nil || l.qps <= 0 }

// get returns key's bucket, making a full one for a key not seen before.
func (l *limiters) get(key string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.m[key]
	if !ok {
		if len(l.m) >= maxLimiters {
			// Forget everyone: a full bucket for all is the worst this does.
			l.m = map[string]*rate.Limiter{}
		}
		lim = rate.NewLimiter(l.qps, l.burst)
		l.m[key] = lim
	}
	return lim
}

// allow takes one request from key's bucket; qps <= 0 disables limiting.
func (l *limiters) allow(key string) bool {
	if l.disabled() {
		return true
	}
	return l.get(key).Allow()
}

// exhausted reports whether key's bucket is empty and how long until it
// holds one again, taking nothing from it. The failed-login limit asks this
// before a token is checked: an address that has guessed too often is
// refused without its next guess being looked at, right or wrong.
func (l *limiters) exhausted(key string) (time.Duration, bool) {
	if l.disabled() {
		return 0, false
	}
	l.mu.Lock()
	lim, ok := l.m[key]
	l.mu.Unlock()
	if !ok {
		return 0, false
	}
	tokens := lim.TokensAt(time.Now())
	if tokens >= 1 {
		return 0, false
	}
	return time.Duration((1 - tokens) / float64(l.qps) * float64(time.Second)), true
}

// spend takes one from key's bucket (a failed login), if it holds one.
func (l *limiters) spend(key string) {
	if !l.disabled() {
		l.get(key).Allow()
	}
}

// retryAfterSeconds rounds a wait up to the whole seconds of Retry-After
// (at least 1).
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
