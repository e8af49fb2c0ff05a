package agent

import (
	"sync"
	"time"
)

// DefaultParallelStarts is how many games one node lets hold a host mount
// while they start (see startSlots).
const DefaultParallelStarts = 8

// startSlotTimeout is how long a start may hold its slot: a game whose
// unit is still not active after it (a start job stuck, a game failing
// over and over) gives its slot to the next one and goes on without.
const startSlotTimeout = 30 * time.Second

// startSlots bounds how many games are between "overlay mounted on the
// host" and "game active, host copy released". Every mount on the host is
// copied into each game namespace systemd sets up meanwhile, and systemd
// parses the mount table once per entry while it does (systemd #42375):
// 100 games mounted at once made each start see 100 overlays, and the
// burst spent its time in the kernel. With a window, each start sees at
// most a window's worth. Waiting Instances are queued in order and woken
// one per freed slot.
//
// It decides only; the agent enqueues the keys it hands out.
type startSlots struct {
	mu    sync.Mutex
	limit int
	now   func() time.Time
	// held: the games (unit IDs) holding a slot, and since when.
	held map[string]time.Time
	// waiting: the Instance keys refused a slot, oldest first; invited:
	// those woken whose reconcile has not run yet (each counts against
	// the free slots, so one freed slot wakes one Instance).
	waiting []string
	invited map[string]bool
}

func newStartSlots(limit int) *startSlots {
	if limit <= 0 {
		limit = DefaultParallelStarts
	}
	return &startSlots{limit: limit, now: time.Now, held: map[string]time.Time{}, invited: map[string]bool{}}
}

// take gives the game id a slot (it keeps one it has) or, when all are
// held, queues key to be woken.
func (s *startSlots) take(id, key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.invited, key)
	if _, ok := s.held[id]; ok {
		return true
	}
	s.expire()
	// Slots promised to woken keys are theirs: a newcomer waits behind.
	if len(s.held)+len(s.invited) < s.limit {
		s.held[id] = s.now()
		s.dropWaiting(key)
		return true
	}
	for _, k := range s.waiting {
		if k == key {
			return false
		}
	}
	s.waiting = append(s.waiting, key)
	return false
}

// give frees id's slot, if it holds one.
func (s *startSlots) give(id string) {
	s.mu.Lock()
	delete(s.held, id)
	s.mu.Unlock()
}

// done marks key's reconcile over; an invited key that neither took a
// slot nor waits again lets its invitation go to the next.
func (s *startSlots) done(key string) {
	s.mu.Lock()
	delete(s.invited, key)
	s.mu.Unlock()
}

// wake returns the waiting keys to reconcile now: one for each slot free
// and not promised to a key already woken.
func (s *startSlots) wake() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire()
	var out []string
	for len(s.waiting) > 0 && len(s.held)+len(s.invited) < s.limit {
		k := s.waiting[0]
		s.waiting = s.waiting[1:]
		s.invited[k] = true
		out = append(out, k)
	}
	return out
}

func (s *startSlots) expire() {
	for id, since := range s.held {
		if s.now().Sub(since) > startSlotTimeout {
			delete(s.held, id)
		}
	}
}

func (s *startSlots) dropWaiting(key string) {
	for i, k := range s.waiting {
		if k == key {
			s.waiting = append(s.waiting[:i], s.waiting[i+1:]...)
			return
		}
	}
}
