package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/coder/websocket"

	"github.com/left4me/left4me/apis/console"
	"github.com/left4me/left4me/apis/resources"
)

// ConsoleSession is a live console on an Instance's game: its new log
// lines and the answers to the commands sent, as console.Messages.
type ConsoleSession struct {
	conn *websocket.Conn
}

// ConsoleClosed is how a console session ended: the server's close code
// and reason ("instance default/coop-1 stopped"). Normal says the game or
// the user ended it, not a failure.
type ConsoleClosed struct {
	Code   int
	Reason string
}

func (e *ConsoleClosed) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("console closed (WebSocket code %d)", e.Code)
	}
	return "console closed: " + e.Reason
}

// Normal reports a session that ended as meant to (the game stopped, the
// client left), not on an error.
func (e *ConsoleClosed) Normal() bool { return e.Code == int(websocket.StatusNormalClosure) }

// Console opens a live console on Instance namespace/name, starting with
// the last tail lines of its log (0: only new ones). A refused open (the
// role, a stopped game, a node not Ready) is the API's error.
func (c *Client) Console(ctx context.Context, namespace, name string, tail int) (*ConsoleSession, error) {
	q := url.Values{}
	if tail > 0 {
		q.Set("tailLines", strconv.Itoa(tail))
	}
	path := Path(resources.Instances, namespace, name, "console")
	h := http.Header{}
	if c.token != "" {
		h.Set("Authorization", "Bearer "+c.token)
	}
	first := int(c.current.Load())
	var err error
	for i := range c.bases {
		n := (first + i) % len(c.bases)
		u := *c.bases[n]
		u.Path = strings.TrimSuffix(u.Path, "/") + path
		u.RawQuery = q.Encode()
		var conn *websocket.Conn
		var resp *http.Response
		conn, resp, err = websocket.Dial(ctx, u.String(), &websocket.DialOptions{HTTPClient: c.http, HTTPHeader: h})
		if err == nil {
			c.current.Store(int32(n))
			conn.SetReadLimit(console.MaxServerMessage)
			return &ConsoleSession{conn: conn}, nil
		}
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			data, _ := io.ReadAll(resp.Body)
			return nil, decodeError(resp.StatusCode, data)
		}
		err = fmt.Errorf("console %s: %w", u.Redacted(), err)
		var op *net.OpError
		if ctx.Err() != nil || !errors.As(err, &op) || op.Op != "dial" {
			return nil, err
		}
	}
	return nil, err
}

// Send runs one command on the game; its answer comes as an "output" (or
// "error") message from Next.
func (s *ConsoleSession) Send(ctx context.Context, command string) error {
	b, err := json.Marshal(console.Message{Type: console.TypeCommand, Command: command})
	if err != nil {
		return err
	}
	return s.conn.Write(ctx, websocket.MessageText, b)
}

// Next returns the next message. When the session ends it returns a
// *ConsoleClosed (or, when the connection broke without a close, another
// error). Canceling ctx ends the session.
func (s *ConsoleSession) Next(ctx context.Context) (console.Message, error) {
	_, b, err := s.conn.Read(ctx)
	if err != nil {
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			return console.Message{}, &ConsoleClosed{Code: int(ce.Code), Reason: ce.Reason}
		}
		return console.Message{}, err
	}
	var m console.Message
	if err := json.Unmarshal(b, &m); err != nil {
		return console.Message{}, fmt.Errorf("console: undecodable message: %w", err)
	}
	return m, nil
}

// Close leaves the session (the game goes on).
func (s *ConsoleSession) Close() error {
	return s.conn.Close(websocket.StatusNormalClosure, "the client left")
}
