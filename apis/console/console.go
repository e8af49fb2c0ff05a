// Package console is the wire format of a live console session: the
// WebSocket messages a node agent, the API server and l4mctl (or the
// dashboard) exchange. Each message is one JSON text frame.
//
// From the server: "log" (a new line of the game's journal), "output" (a
// command's answer) and "error" (a command refused or unanswered: the
// session goes on). From the client: "command". The session ends with a
// WebSocket close whose reason says why (the game stopped, the agent is
// stopping).
package console

import (
	"errors"
	"fmt"
	"time"
)

// Message types.
const (
	TypeLog     = "log"
	TypeOutput  = "output"
	TypeError   = "error"
	TypeCommand = "command"
)

// Limits shared by every hop. MaxMessage bounds a frame read from the
// client side (a command of at most MaxCommand bytes, JSON-escaped); the
// server side's frames are read up to MaxServerMessage (a 64 KiB answer,
// escaped).
const (
	MaxCommand       = 512
	MaxMessage       = 4 << 10
	MaxServerMessage = 1 << 20
)

// Keepalive limits, the same at every hop that serves a session (the agent
// to the API server, the API server to its client). A peer that answers no
// ping within PingTimeout is gone (a vanished laptop leaves no TCP reset),
// and a write that takes WriteTimeout means the same.
const (
	PingInterval = 30 * time.Second
	PingTimeout  = 10 * time.Second
	WriteTimeout = 10 * time.Second
)

// Message is one console message; which fields are set depends on Type.
type Message struct {
	Type string `json:"type"`
	// Line is a "log" message's journal line, without its newline.
	Line string `json:"line,omitempty"`
	// Command is what a "command" message runs, and what an "output" or
	// "error" message answers.
	Command string `json:"command,omitempty"`
	// Output is an "output" message's answer, cut at 64 KiB (Truncated).
	Output    string `json:"output,omitempty"`
	Truncated bool   `json:"truncated,omitempty"`
	// Message is an "error" message's text.
	Message string `json:"message,omitempty"`
}

// CheckCommand says what is wrong with a console command, or nil. A
// command is one line of the game's console: a control character (a
// newline above all) would smuggle a second command past the audit record.
func CheckCommand(command string) error {
	switch {
	case command == "":
		return errors.New("command: required")
	case len(command) > MaxCommand:
		return fmt.Errorf("command: %d bytes, at most %d", len(command), MaxCommand)
	}
	for i := 0; i < len(command); i++ {
		if c := command[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("command: control character 0x%02x at byte %d (one command per request)", c, i)
		}
	}
	return nil
}
