package server

import (
	"sync"

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

// allow takes one request from key's bucket; qps <= 0 disables limiting.
func (l *limiters) allow(key string) bool {
	if l == nil || l.qps <= 0 {
		return true
	}
	l.mu.Lock()
	lim, ok := l.m[key]
	if !ok {
		if len(l.m) >= maxLimiters {
			// Forget everyone: a full bucket for all is the worst this does.
			l.m = map[string]*rate.Limiter{}
		}
		lim = rate.NewLimiter(l.qps, l.burst)
		l.m[key] = lim
	}
	l.mu.Unlock()
	return lim.Allow()
}
