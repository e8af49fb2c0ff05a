package agent

import (
	"slices"
	"testing"
	"time"
)

func TestStartSlots(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	s := newStartSlots(2)
	s.now = func() time.Time { return now }

	// Two games start; a third and a fourth wait, in order.
	for _, id := range []string{"default.a", "default.b"} {
		if !s.take(id, "default/"+id[8:]) {
			t.Fatalf("%s got no slot with slots free", id)
		}
	}
	if s.take("default.c", "default/c") || s.take("default.d", "default/d") || s.take("default.c", "default/c") {
		t.Fatal("a third start got a slot of two")
	}
	if !s.take("default.a", "default/a") {
		t.Fatal("a game lost the slot it holds when it asked again")
	}
	if got := s.wake(); len(got) != 0 {
		t.Fatalf("woke %v with no slot free", got)
	}

	// One game runs: one waiter (the oldest) is woken, and its slot is
	// kept for it against a newcomer.
	s.give("default.a")
	if got := s.wake(); !slices.Equal(got, []string{"default/c"}) {
		t.Fatalf("woke %v, want the oldest waiter alone", got)
	}
	if got := s.wake(); len(got) != 0 {
		t.Fatalf("woke %v again for the same slot", got)
	}
	if s.take("default.e", "default/e") {
		t.Fatal("a newcomer took the slot promised to the woken waiter")
	}
	if !s.take("default.c", "default/c") {
		t.Fatal("the woken waiter found no slot")
	}

	// A woken key whose reconcile did not take the slot (its Instance was
	// deleted) lets it go to the next.
	s.give("default.b")
	if got := s.wake(); !slices.Equal(got, []string{"default/d"}) {
		t.Fatalf("woke %v, want default/d", got)
	}
	s.done("default/d")
	if got := s.wake(); !slices.Equal(got, []string{"default/e"}) {
		t.Fatalf("woke %v after default/d passed, want default/e", got)
	}

	// A start stuck past the timeout gives its slot back.
	now = now.Add(startSlotTimeout + time.Second)
	if !s.take("default.e", "default/e") || !s.take("default.f", "default/f") {
		t.Fatal("slots held by starts past the timeout were not given back")
	}
}

func TestNewStartSlotsDefault(t *testing.T) {
	if s := newStartSlots(0); s.limit != DefaultParallelStarts {
		t.Fatalf("limit %d, want the default %d", s.limit, DefaultParallelStarts)
	}
}
