// Package consoletest is a node agent's console route for tests of what
// relays it (the API server, l4mctl, the dashboard).
package consoletest

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/coder/websocket"

	"github.com/left4me/left4me/apis/console"
)

// Answer is how a fake game answers one command: the messages to send,
// or a reason to close the session with (normally, as the agent does when
// the game stops).
type Answer func(r *http.Request, command string) (msgs []console.Message, closeReason string)

// Handler serves one session per request: it sends greeting (a log line,
// unless empty), then answers each command with answer until the client
// goes or answer closes the session.
func Handler(greeting string, answer Answer) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := context.Background()
		write := func(m console.Message) {
			b, _ := json.Marshal(m)
			c.Write(ctx, websocket.MessageText, b)
		}
		if greeting != "" {
			write(console.Message{Type: console.TypeLog, Line: greeting})
		}
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			var m console.Message
			json.Unmarshal(b, &m)
			msgs, reason := answer(r, m.Command)
			if reason != "" {
				c.Close(websocket.StatusNormalClosure, reason)
				return
			}
			for _, m := range msgs {
				write(m)
			}
		}
	}
}

// Output is an "output" message answering command.
func Output(command, output string) console.Message {
	return console.Message{Type: console.TypeOutput, Command: command, Output: output}
}

// Log is a "log" message.
func Log(line string) console.Message {
	return console.Message{Type: console.TypeLog, Line: line}
}
