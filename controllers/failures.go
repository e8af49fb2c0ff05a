package controllers

import "sync"

// FailureMemo remembers, per object, which nodes were last seen failing it
// and why, so a controller tells each failure in an event once, not on
// every reconcile. It lives in memory: after a restart an ongoing failure
// is told once more (the event's count goes up).
type FailureMemo struct {
	mu     sync.Mutex
	failed map[string]map[string]string
}

// News records failing (node → why) for key and returns the nodes whose
// failure is new or has a new why, in the order of nodes.
func (m *FailureMemo) News(key string, failing map[string]string, nodes []string) []string {
	m.mu.Lock()
	if m.failed == nil {
		m.failed = map[string]map[string]string{}
	}
	before := m.failed[key]
	m.failed[key] = failing
	m.mu.Unlock()
	var out []string
	for _, n := range nodes {
		why, ok := failing[n]
		if prev, was := before[n]; ok && (!was || prev != why) {
			out = append(out, n)
		}
	}
	return out
}

// Forget drops what is remembered of key (the object was deleted).
func (m *FailureMemo) Forget(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.failed, key)
}
