package scheduler

// TrackedNodes is how many nodes the scheduler keeps a picture of (tests
// check that deleted Nodes are forgotten).
func (s *Scheduler) TrackedNodes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.nodes)
}
