package server

import (
	"encoding/json"
	"io"
	"sync"
	"time"
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
