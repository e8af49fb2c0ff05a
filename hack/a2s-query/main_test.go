package main

import (
	"bytes"
	"strings"
	"testing"
)

// --help and -h print the usage and succeed; a missing address is a
// usage error. Neither dials anything.
func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"--help"}, 0},
		{[]string{"-h"}, 0},
		{nil, 2},
		{[]string{"127.0.0.1:27015", "extra"}, 2},
		{[]string{"--bogus", "127.0.0.1:27015"}, 2},
	} {
		var out, errOut bytes.Buffer
		code := run(tc.args, &out, &errOut)
		if code != tc.code || !strings.Contains(errOut.String(), "usage: a2s-query") || out.Len() != 0 {
			t.Errorf("a2s-query %v: exit %d (want %d), stdout %q, stderr %q", tc.args, code, tc.code, out.String(), errOut.String())
		}
	}
}
