package controllers

import (
	"slices"
	"testing"
)

// TestFailureMemo: a node's failure is news once, again when its reason
// changes or after it recovered, and never for a node not failing.
func TestFailureMemo(t *testing.T) {
	var m FailureMemo
	nodes := []string{"n1", "n2", "n3"}
	steps := []struct {
		failing map[string]string
		want    []string
	}{
		{map[string]string{"n2": "DownloadFailed"}, []string{"n2"}},
		{map[string]string{"n2": "DownloadFailed"}, nil},
		{map[string]string{"n2": "InsufficientDisk", "n3": "DownloadFailed"}, []string{"n2", "n3"}},
		{map[string]string{"n3": "DownloadFailed"}, nil},
		{map[string]string{"n2": "InsufficientDisk", "n3": "DownloadFailed"}, []string{"n2"}},
	}
	for i, s := range steps {
		if got := m.News("l4d2", s.failing, nodes); !slices.Equal(got, s.want) {
			t.Fatalf("step %d: news %v, want %v", i, got, s.want)
		}
	}
	m.Forget("l4d2")
	if got := m.News("l4d2", map[string]string{"n3": "DownloadFailed"}, nodes); !slices.Equal(got, []string{"n3"}) {
		t.Fatalf("after Forget: %v", got)
	}
}
