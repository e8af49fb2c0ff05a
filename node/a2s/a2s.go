// Package a2s speaks Valve's server query protocol (developer wiki, "Server
// queries") over UDP: A2S_INFO, A2S_PLAYER and A2S_RULES with the challenge
// handshake current servers require, and split responses. The node agent
// uses the client to decide readiness; the game double uses the encoders to
// answer like srcds.
package a2s

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Packet headers and types.
const (
	headerSimple = -1 // 0xFFFFFFFF
	headerSplit  = -2 // 0xFFFFFFFE

	TypeInfoRequest   = 0x54 // 'T'
	TypeInfoResponse  = 0x49 // 'I'
	TypePlayerRequest = 0x55 // 'U'
	TypePlayerResp    = 0x44 // 'D'
	TypeRulesRequest  = 0x56 // 'V'
	TypeRulesResp     = 0x45 // 'E'
	TypeChallenge     = 0x41 // 'A'

	// MaxPacket is the largest datagram either side sends.
	MaxPacket = 1400

	infoPayload = "Source Engine Query\x00"
)

// Info is the A2S_INFO answer.
type Info struct {
	Protocol    byte
	Name        string
	Map         string
	Folder      string
	Game        string
	AppID       uint16
	Players     byte
	MaxPlayers  byte
	Bots        byte
	ServerType  byte // 'd' dedicated
	Environment byte // 'l' Linux
	Visibility  byte // 0 public, 1 password
	VAC         byte
	Version     string
	// Extra data (EDF) fields; zero values are left out.
	Port     uint16
	SteamID  uint64
	Keywords string
	GameID   uint64
}

// Player is one A2S_PLAYER entry.
type Player struct {
	Index    byte
	Name     string
	Score    int32
	Duration float32 // seconds connected
}

// ErrMalformed wraps every decoding failure.
var ErrMalformed = errors.New("a2s: malformed packet")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// reader decodes little-endian fields and remembers the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) need(n int, what string) bool {
	if r.err != nil {
		return false
	}
	if len(r.b) < n {
		r.err = malformed("truncated before %s", what)
		return false
	}
	return true
}

func (r *reader) byte(what string) byte {
	if !r.need(1, what) {
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) u16(what string) uint16 {
	if !r.need(2, what) {
		return 0
	}
	v := binary.LittleEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *reader) i32(what string) int32 {
	if !r.need(4, what) {
		return 0
	}
	v := int32(binary.LittleEndian.Uint32(r.b))
	r.b = r.b[4:]
	return v
}

func (r *reader) u64(what string) uint64 {
	if !r.need(8, what) {
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) f32(what string) float32 {
	return math.Float32frombits(uint32(r.i32(what)))
}

func (r *reader) str(what string) string {
	if r.err != nil {
		return ""
	}
	i := bytes.IndexByte(r.b, 0)
	if i < 0 {
		r.err = malformed("unterminated string in %s", what)
		return ""
	}
	s := string(r.b[:i])
	r.b = r.b[i+1:]
	return s
}

// expect reads the single-packet header and the answer type.
func (r *reader) expect(typ byte, name string) error {
	if h := r.i32("header"); r.err == nil && h != headerSimple {
		return malformed("header %#x", uint32(h))
	}
	if t := r.byte("type"); r.err == nil && t != typ {
		return malformed("type %#x is not %s", t, name)
	}
	return r.err
}

// writer encodes little-endian fields.
type writer struct{ bytes.Buffer }

func (w *writer) u16(v uint16) { binary.Write(&w.Buffer, binary.LittleEndian, v) }
func (w *writer) i32(v int32)  { binary.Write(&w.Buffer, binary.LittleEndian, v) }
func (w *writer) u64(v uint64) { binary.Write(&w.Buffer, binary.LittleEndian, v) }
func (w *writer) f32(v float32) {
	binary.Write(&w.Buffer, binary.LittleEndian, math.Float32bits(v))
}
func (w *writer) str(s string) {
	w.WriteString(s)
	w.WriteByte(0)
}

func simple(typ byte) *writer {
	w := &writer{}
	w.i32(headerSimple)
	w.WriteByte(typ)
	return w
}

// EncodeInfo is the A2S_INFO response payload (before splitting).
func EncodeInfo(in Info) []byte {
	w := simple(TypeInfoResponse)
	w.WriteByte(in.Protocol)
	w.str(in.Name)
	w.str(in.Map)
	w.str(in.Folder)
	w.str(in.Game)
	w.u16(in.AppID)
	w.WriteByte(in.Players)
	w.WriteByte(in.MaxPlayers)
	w.WriteByte(in.Bots)
	w.WriteByte(in.ServerType)
	w.WriteByte(in.Environment)
	w.WriteByte(in.Visibility)
	w.WriteByte(in.VAC)
	w.str(in.Version)
	var edf byte
	if in.Port != 0 {
		edf |= 0x80
	}
	if in.SteamID != 0 {
		edf |= 0x10
	}
	if in.Keywords != "" {
		edf |= 0x20
	}
	if in.GameID != 0 {
		edf |= 0x01
	}
	w.WriteByte(edf)
	if edf&0x80 != 0 {
		w.u16(in.Port)
	}
	if edf&0x10 != 0 {
		w.u64(in.SteamID)
	}
	if edf&0x20 != 0 {
		w.str(in.Keywords)
	}
	if edf&0x01 != 0 {
		w.u64(in.GameID)
	}
	return w.Bytes()
}

// DecodeInfo parses an A2S_INFO response (header included).
func DecodeInfo(b []byte) (*Info, error) {
	r := &reader{b: b}
	if err := r.expect(TypeInfoResponse, "A2S_INFO"); err != nil {
		return nil, err
	}
	in := &Info{}
	in.Protocol = r.byte("protocol")
	in.Name = r.str("name")
	in.Map = r.str("map")
	in.Folder = r.str("folder")
	in.Game = r.str("game")
	in.AppID = r.u16("app id")
	in.Players = r.byte("players")
	in.MaxPlayers = r.byte("max players")
	in.Bots = r.byte("bots")
	in.ServerType = r.byte("server type")
	in.Environment = r.byte("environment")
	in.Visibility = r.byte("visibility")
	in.VAC = r.byte("vac")
	in.Version = r.str("version")
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) == 0 {
		return in, nil
	}
	edf := r.byte("edf")
	if edf&0x80 != 0 {
		in.Port = r.u16("port")
	}
	if edf&0x10 != 0 {
		in.SteamID = r.u64("steam id")
	}
	if edf&0x40 != 0 {
		r.u16("tv port")
		r.str("tv name")
	}
	if edf&0x20 != 0 {
		in.Keywords = r.str("keywords")
	}
	if edf&0x01 != 0 {
		in.GameID = r.u64("game id")
	}
	return in, r.err
}

// EncodePlayers is the A2S_PLAYER response payload.
func EncodePlayers(ps []Player) []byte {
	w := simple(TypePlayerResp)
	w.WriteByte(byte(len(ps)))
	for _, p := range ps {
		w.WriteByte(p.Index)
		w.str(p.Name)
		w.i32(p.Score)
		w.f32(p.Duration)
	}
	return w.Bytes()
}

// DecodePlayers parses an A2S_PLAYER response.
func DecodePlayers(b []byte) ([]Player, error) {
	r := &reader{b: b}
	if err := r.expect(TypePlayerResp, "A2S_PLAYER"); err != nil {
		return nil, err
	}
	n := int(r.byte("player count"))
	ps := make([]Player, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		p := Player{Index: r.byte("index"), Name: r.str("name"), Score: r.i32("score"), Duration: r.f32("duration")}
		if r.err == nil {
			ps = append(ps, p)
		}
	}
	return ps, r.err
}

// Rule is one server cvar from A2S_RULES.
type Rule struct{ Name, Value string }

// EncodeRules is the A2S_RULES response payload (often over one packet:
// Split it).
func EncodeRules(rules []Rule) []byte {
	w := simple(TypeRulesResp)
	w.u16(uint16(len(rules)))
	for _, r := range rules {
		w.str(r.Name)
		w.str(r.Value)
	}
	return w.Bytes()
}

// DecodeRules parses an A2S_RULES response.
func DecodeRules(b []byte) ([]Rule, error) {
	r := &reader{b: b}
	if err := r.expect(TypeRulesResp, "A2S_RULES"); err != nil {
		return nil, err
	}
	n := int(r.u16("rule count"))
	rules := make([]Rule, 0, min(n, 1024))
	for i := 0; i < n && r.err == nil; i++ {
		rule := Rule{Name: r.str("rule name"), Value: r.str("rule value")}
		if r.err == nil {
			rules = append(rules, rule)
		}
	}
	return rules, r.err
}

// EncodeChallenge is S2C_CHALLENGE.
func EncodeChallenge(c int32) []byte {
	w := simple(TypeChallenge)
	w.i32(c)
	return w.Bytes()
}

// Request is a decoded query a server received.
type Request struct {
	Type byte
	// Challenge is the number the client sent back (-1 or 0: none yet).
	Challenge int32
}

// DecodeRequest parses a query as a server sees it.
func DecodeRequest(b []byte) (Request, error) {
	r := &reader{b: b}
	if h := r.i32("header"); r.err == nil && h != headerSimple {
		return Request{}, malformed("header %#x", uint32(h))
	}
	req := Request{Type: r.byte("type")}
	if r.err != nil {
		return req, r.err
	}
	switch req.Type {
	case TypeInfoRequest:
		if !bytes.HasPrefix(r.b, []byte(infoPayload)) {
			return req, malformed("A2S_INFO without its payload")
		}
		r.b = r.b[len(infoPayload):]
		if len(r.b) >= 4 {
			req.Challenge = r.i32("challenge")
		}
	case TypePlayerRequest, TypeRulesRequest:
		req.Challenge = r.i32("challenge")
	default:
		return req, malformed("unknown request type %#x", req.Type)
	}
	return req, r.err
}

func encodeRequest(typ byte, challenge int32) []byte {
	w := simple(typ)
	if typ == TypeInfoRequest {
		w.WriteString(infoPayload)
		if challenge != 0 && challenge != -1 {
			w.i32(challenge)
		}
		return w.Bytes()
	}
	w.i32(challenge)
	return w.Bytes()
}

// Split cuts a response into datagrams of at most MaxPacket bytes, in the
// Source split format (0xFFFFFFFE, id, total, number, size) when it does
// not fit one.
func Split(payload []byte, id int32) [][]byte {
	if len(payload) <= MaxPacket {
		return [][]byte{payload}
	}
	const headerLen = 12
	chunk := MaxPacket - headerLen
	total := (len(payload) + chunk - 1) / chunk
	out := make([][]byte, 0, total)
	for i := 0; i < total; i++ {
		part := payload[i*chunk : min(len(payload), (i+1)*chunk)]
		w := &writer{}
		w.i32(headerSplit)
		w.i32(id &^ int32(-0x80000000)) // never claim compression
		w.WriteByte(byte(total))
		w.WriteByte(byte(i))
		w.u16(MaxPacket)
		w.Write(part)
		out = append(out, w.Bytes())
	}
	return out
}

// reassembler collects split packets until a response is whole.
type reassembler struct {
	id    int32
	total int
	parts map[int][]byte
}

// add takes one datagram and returns the whole payload once complete.
func (ra *reassembler) add(b []byte) ([]byte, bool, error) {
	r := &reader{b: b}
	h := r.i32("header")
	if r.err != nil {
		return nil, false, r.err
	}
	if h == headerSimple {
		return b, true, nil
	}
	if h != headerSplit {
		return nil, false, malformed("header %#x", uint32(h))
	}
	id := r.i32("split id")
	total := int(r.byte("split total"))
	num := int(r.byte("split number"))
	r.u16("split size")
	if r.err != nil {
		return nil, false, r.err
	}
	if id < 0 {
		return nil, false, malformed("compressed split responses are not supported")
	}
	if total == 0 || num >= total {
		return nil, false, malformed("split part %d of %d", num, total)
	}
	if ra.parts == nil {
		ra.id, ra.total, ra.parts = id, total, map[int][]byte{}
	}
	if id != ra.id || total != ra.total {
		return nil, false, malformed("split parts of two responses mixed")
	}
	ra.parts[num] = append([]byte(nil), r.b...)
	if len(ra.parts) < ra.total {
		return nil, false, nil
	}
	var whole []byte
	for i := 0; i < ra.total; i++ {
		whole = append(whole, ra.parts[i]...)
	}
	return whole, true, nil
}
