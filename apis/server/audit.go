package server

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// auditRecord is one line of the audit log: who did what, and the result.
// Bodies are never logged (they may hold secrets).
type auditRecord struct {
	Time        time.Time `json:"time"`
	User        string    `json:"user"`
	TokenID     string    `json:"tokenID,omitempty"`
	Verb        string    `json:"verb"`
	Resource    string    `json:"resource"`
	Subresource string    `json:"subresource,omitempty"`
	Namespace   string    `json:"namespace,omitempty"`
	Name        string    `json:"name,omitempty"`
	DryRun      bool      `json:"dryRun,omitempty"`
	Code        int       `json:"code"`
	Remote      string    `json:"remote"`
	// Command is an RCON request's console command (never a password:
	// the game's stays on its node).
	Command string `json:"command,omitempty"`
}

// auditor writes JSON lines; one mutex keeps lines whole.
type auditor struct {
	mu sync.Mutex
	w  io.Writer
}

func (a *auditor) record(r auditRecord) {
	if a == nil || a.w == nil {
		return
	}
	r.Command = escapeControl(r.Command)
	line, _ := json.Marshal(r)
	line = append(line, '\n')
	a.mu.Lock()
	a.w.Write(line)
	a.mu.Unlock()
}

func mutating(verb string) bool {
	switch verb {
	case "create", "update", "patch", "delete":
		return true
	}
	return false
}

// escapeControl writes what JSON would pass through raw as visible text:
// control characters (DEL and C1 too, which JSON does not escape), line
// separators and format characters (a right-to-left override or a
// zero-width space would make the line read as another command in a
// terminal) become \uNNNN, or \xNN for ASCII and for bytes that are not
// UTF-8; a backslash becomes \\, so the escapes are unambiguous.
// A command is refused when it holds a control character, but the refused
// one is recorded too.
func escapeControl(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r < utf8.RuneSelf && unicode.IsControl(r):
			fmt.Fprintf(&b, "\\x%02x", r)
		case unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp):
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
