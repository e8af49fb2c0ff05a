package server

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestEscapeControl(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"changelevel c2m3_coaster", "changelevel c2m3_coaster"},
		{"say héllo 🧟", "say héllo 🧟"},
		{"status\x7f", `status\x7f`},
		{"say a\nquit", `say a\x0aquit`},
		{"say \x1b[2Jcleared", `say \x1b[2Jcleared`},
		{"say \u0085next", `say \u0085next`},
		{"say \u202edrowssap_nocr", `say \u202edrowssap_nocr`},
		{"say zero\u200bwidth", `say zero\u200bwidth`},
		{"say \xff\xfe", `say \xff\xfe`},
		{`say \x7f`, `say \\x7f`}, // typed as text: not mistaken for a DEL
	} {
		if got := escapeControl(tc.in); got != tc.want {
			t.Errorf("escapeControl(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestAuditLineHasNoControlBytes: whatever the command, the audit line is
// one line of printable JSON that reads back as the escaped command.
func TestAuditLineHasNoControlBytes(t *testing.T) {
	var buf bytes.Buffer
	a := &auditor{w: &buf}
	a.record(auditRecord{User: "ed", Verb: "create", Resource: "instances", Subresource: "rcon", Command: "status\x7f\r\n\u2028rcon_password x\x00"})
	line := buf.String()
	if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
		t.Fatalf("not one line: %q", line)
	}
	for _, c := range line[:len(line)-1] {
		if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
			t.Fatalf("control character %U in the audit line %q", c, line)
		}
	}
	var back auditRecord
	if err := json.Unmarshal([]byte(line), &back); err != nil || back.Command != `status\x7f\x0d\x0a\u2028rcon_password x\x00` {
		t.Fatalf("read back: %q %v", back.Command, err)
	}
}
