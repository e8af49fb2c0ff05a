// Package rcon speaks the Source RCON protocol (developer wiki, "Source RCON
// Protocol") over TCP: little-endian packets of size, id, type and a
// NUL-terminated body plus one empty NUL. The node agent uses the client;
// the game double uses the packet codec to answer like srcds.
package rcon

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// Packet types. EXECCOMMAND and AUTH_RESPONSE share the value 2; which one
// is meant depends on the direction.
const (
	TypeAuth         = 3
	TypeExecCommand  = 2
	TypeAuthResponse = 2
	TypeResponse     = 0
)

// Limits from the protocol: a packet is at most 4096 bytes on the wire
// from the server (bodies above that are split), at least 10.
const (
	MaxBody       = 4096 - 10
	maxPacketSize = 4096 * 1024 // what we accept reading: generous, but bounded
	minPacketSize = 10
)

// Packet is one RCON packet.
type Packet struct {
	ID   int32
	Type int32
	Body string
}

// ErrMalformed wraps every decoding failure.
var ErrMalformed = errors.New("rcon: malformed packet")

// ErrAuth is a refused password.
var ErrAuth = errors.New("rcon: authentication refused")

// Write encodes p onto w.
func Write(w io.Writer, p Packet) error {
	size := int32(len(p.Body) + minPacketSize)
	buf := make([]byte, 4+size)
	binary.LittleEndian.PutUint32(buf[0:], uint32(size))
	binary.LittleEndian.PutUint32(buf[4:], uint32(p.ID))
	binary.LittleEndian.PutUint32(buf[8:], uint32(p.Type))
	copy(buf[12:], p.Body)
	_, err := w.Write(buf)
	return err
}

// Read decodes one packet from r.
func Read(r io.Reader) (Packet, error) {
	var size int32
	if err := binary.Read(r, binary.LittleEndian, &size); err != nil {
		return Packet{}, err
	}
	if size < minPacketSize || size > maxPacketSize {
		return Packet{}, fmt.Errorf("%w: size %d", ErrMalformed, size)
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(r, buf); err != nil {
		return Packet{}, fmt.Errorf("%w: truncated: %v", ErrMalformed, err)
	}
	return Decode(buf)
}

// Decode parses a packet without its size field.
func Decode(buf []byte) (Packet, error) {
	if len(buf) < minPacketSize {
		return Packet{}, fmt.Errorf("%w: %d bytes", ErrMalformed, len(buf))
	}
	if buf[len(buf)-1] != 0 || buf[len(buf)-2] != 0 {
		return Packet{}, fmt.Errorf("%w: body not NUL-terminated", ErrMalformed)
	}
	return Packet{
		ID:   int32(binary.LittleEndian.Uint32(buf[0:])),
		Type: int32(binary.LittleEndian.Uint32(buf[4:])),
		Body: string(buf[8 : len(buf)-2]),
	}, nil
}

// Client is an authenticated RCON connection. Commands are sent one at a
// time.
type Client struct {
	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
	id   int32
}

// Dial connects and authenticates. A wrong password is ErrAuth.
func Dial(ctx context.Context, addr, password string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("rcon %s: %w", addr, err)
	}
	c := &Client{conn: conn, r: bufio.NewReader(conn)}
	if err := c.auth(ctx, password); err != nil {
		conn.Close()
		return nil, fmt.Errorf("rcon %s: %w", addr, err)
	}
	return c, nil
}

func (c *Client) deadline(ctx context.Context) {
	if d, ok := ctx.Deadline(); ok {
		c.conn.SetDeadline(d)
	} else {
		c.conn.SetDeadline(time.Now().Add(5 * time.Second))
	}
}

func (c *Client) nextID() int32 {
	c.id++
	if c.id <= 0 {
		c.id = 1
	}
	return c.id
}

func (c *Client) auth(ctx context.Context, password string) error {
	c.deadline(ctx)
	id := c.nextID()
	if err := Write(c.conn, Packet{ID: id, Type: TypeAuth, Body: password}); err != nil {
		return err
	}
	// The server answers with an empty RESPONSE_VALUE, then AUTH_RESPONSE
	// whose id is ours, or -1 for a wrong password.
	for i := 0; i < 2; i++ {
		p, err := Read(c.r)
		if err != nil {
			return err
		}
		if p.Type != TypeAuthResponse {
			continue
		}
		if p.ID == -1 {
			return ErrAuth
		}
		if p.ID == id {
			return nil
		}
		return fmt.Errorf("%w: auth response for id %d, sent %d", ErrMalformed, p.ID, id)
	}
	return fmt.Errorf("%w: no auth response", ErrMalformed)
}

// Exec runs a command and returns its whole output, however many packets
// it spans: after the command the client sends an empty RESPONSE_VALUE,
// which the server mirrors only after the last part of the answer.
func (c *Client) Exec(ctx context.Context, cmd string) (string, error) {
	if strings.ContainsAny(cmd, "\x00") || len(cmd) > MaxBody {
		return "", fmt.Errorf("rcon: command must be under %d bytes without NUL", MaxBody)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline(ctx)
	id, mirror := c.nextID(), c.nextID()
	if err := Write(c.conn, Packet{ID: id, Type: TypeExecCommand, Body: cmd}); err != nil {
		return "", err
	}
	if err := Write(c.conn, Packet{ID: mirror, Type: TypeResponse}); err != nil {
		return "", err
	}
	var out strings.Builder
	for {
		p, err := Read(c.r)
		if err != nil {
			return "", fmt.Errorf("rcon %q: %w", cmd, err)
		}
		switch p.ID {
		case id:
			out.WriteString(p.Body)
		case mirror:
			// srcds follows the mirror with one more packet (body
			// 00 01 00 00); read it if it comes, so the next command
			// starts clean.
			c.drainMirrorTail()
			return out.String(), nil
		}
	}
}

func (c *Client) drainMirrorTail() {
	c.conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.r.Peek(4); err == nil {
		Read(c.r)
	}
	c.conn.SetReadDeadline(time.Time{})
}

// Close ends the connection.
func (c *Client) Close() error { return c.conn.Close() }
