package transfer

import (
	"net/http"
	"testing"
	"time"
)

func TestNextDelay(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		n          int
		retryAfter string
		j          float64
		want       time.Duration
		tooLong    bool
	}{
		{1, "", 0, 500 * time.Millisecond, false},
		{1, "", 0.999999, time.Second - 500*time.Nanosecond, false},
		{2, "", 0, time.Second, false},
		{3, "", 0.5, 3 * time.Second, false},
		{10, "", 0, 15 * time.Second, false}, // capped at 30 s
		{60, "", 1, 30 * time.Second, false},
		{1, "7", 0.5, 7 * time.Second, false},
		{1, " 0 ", 0.5, 0, false},
		{1, "61", 0, 61 * time.Second, true},
		{1, "Thu, 01 Jan 2026 12:00:20 GMT", 0, 20 * time.Second, false},
		{1, "Thu, 01 Jan 2026 11:00:00 GMT", 0, 0, false},
		{1, "soon", 0, 500 * time.Millisecond, false}, // unreadable: backoff
	} {
		d, tooLong := NextDelay(tc.n, time.Second, 30*time.Second, tc.retryAfter, time.Minute, now, tc.j)
		if d != tc.want || tooLong != tc.tooLong {
			t.Errorf("NextDelay(%d, %q, %v) = %v, %v; want %v, %v", tc.n, tc.retryAfter, tc.j, d, tooLong, tc.want, tc.tooLong)
		}
	}
}

func TestNextDelayCases(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name       string
		n          int
		retryAfter string
		j          float64
		want       time.Duration
		tooLong    bool
	}{
		{"first backoff, no jitter", 1, "", 0, 500 * time.Millisecond, false},
		{"first backoff, half jitter", 1, "", 0.5, 750 * time.Millisecond, false},
		{"third", 3, "", 0, 2 * time.Second, false},
		{"capped", 10, "", 1, 30 * time.Second, false},
		{"retry-after seconds", 1, "5", 0, 5 * time.Second, false},
		{"retry-after date", 1, now.Add(20 * time.Second).Format(http.TimeFormat), 0, 20 * time.Second, false},
		{"retry-after in the past", 1, now.Add(-time.Hour).Format(http.TimeFormat), 0, 0, false},
		{"retry-after too long", 1, "61", 0, 61 * time.Second, true},
		{"retry-after garbage: backoff", 2, "soon", 0, time.Second, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, tooLong := NextDelay(c.n, time.Second, 30*time.Second, c.retryAfter, time.Minute, now, c.j)
			if d != c.want || tooLong != c.tooLong {
				t.Errorf("nextDelay = %s, %v; want %s, %v", d, tooLong, c.want, c.tooLong)
			}
		})
	}
}

func TestStalledBy(t *testing.T) {
	cases := []struct {
		got, min, remaining int64
		stalled             bool
	}{
		{100, 64, -1, false},
		{10, 64, -1, true},
		{10, 64, 10, false}, // the last window needs only what remains
		{9, 64, 10, true},
		{0, 64, 0, false},
	}
	for _, c := range cases {
		if got := StalledBy(c.got, c.min, c.remaining); got != c.stalled {
			t.Errorf("StalledBy(%d, %d, %d) = %v", c.got, c.min, c.remaining, got)
		}
	}
}
