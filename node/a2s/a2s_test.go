package a2s

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestInfoRoundTrip(t *testing.T) {
	in := Info{Protocol: 17, Name: "EU #1", Map: "c1m1_hotel", Folder: "left4dead2", Game: "Left 4 Dead 2", AppID: 550,
		Players: 3, MaxPlayers: 8, ServerType: 'd', Environment: 'l', Version: "2.2.4.3", Port: 27015, Keywords: "coop", SteamID: 9, GameID: 550}
	out, err := DecodeInfo(EncodeInfo(in))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*out, in) {
		t.Fatalf("round trip:\n%+v\n%+v", *out, in)
	}
}

// TestDecodeValveExample decodes the A2S_INFO answer printed on the Valve
// developer wiki's "Server queries" page (a Counter-Strike: Source server).
func TestDecodeValveExample(t *testing.T) {
	pkt := []byte("\xFF\xFF\xFF\xFFI\x02game2xs.com Counter-Strike Source #1\x00de_dust\x00cstrike\x00Counter-Strike: Source\x00\xF0\x00\x05\x10\x04dl\x00\x001.0.0.22\x00")
	info, err := DecodeInfo(pkt)
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "game2xs.com Counter-Strike Source #1" || info.Map != "de_dust" || info.AppID != 240 || info.Players != 5 || info.MaxPlayers != 16 || info.Bots != 4 || info.Version != "1.0.0.22" {
		t.Fatalf("%+v", info)
	}
}

func TestPlayersAndRules(t *testing.T) {
	ps := []Player{{Index: 0, Name: "Alice", Score: 3, Duration: 61.5}, {Index: 1, Name: "Bob"}}
	got, err := DecodePlayers(EncodePlayers(ps))
	if err != nil || !reflect.DeepEqual(got, ps) {
		t.Fatalf("players: %+v %v", got, err)
	}
	rules := []Rule{{"sv_alltalk", "1"}, {"mp_gamemode", "versus"}}
	gotR, err := DecodeRules(EncodeRules(rules))
	if err != nil || !reflect.DeepEqual(gotR, rules) {
		t.Fatalf("rules: %+v %v", gotR, err)
	}
}

func TestSplitReassembles(t *testing.T) {
	var rules []Rule
	for i := 0; i < 300; i++ {
		rules = append(rules, Rule{strings.Repeat("x", 10), strings.Repeat("y", 10)})
	}
	payload := EncodeRules(rules)
	parts := Split(payload, 77)
	if len(parts) < 4 {
		t.Fatalf("%d bytes split into %d parts", len(payload), len(parts))
	}
	for _, p := range parts {
		if len(p) > MaxPacket {
			t.Fatalf("part of %d bytes exceeds %d", len(p), MaxPacket)
		}
	}
	// Parts may arrive in any order.
	var ra reassembler
	order := []int{2, 0, 3, 1}
	for i := 4; i < len(parts); i++ {
		order = append(order, i)
	}
	var whole []byte
	for n, i := range order {
		b, done, err := ra.add(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if done != (n == len(order)-1) {
			t.Fatalf("done=%v after %d of %d parts", done, n+1, len(order))
		}
		whole = b
	}
	if !bytes.Equal(whole, payload) {
		t.Fatal("reassembled payload differs")
	}
}

func TestMalformed(t *testing.T) {
	for name, pkt := range map[string][]byte{
		"empty":          {},
		"wrong header":   []byte("\x00\x00\x00\x00I"),
		"wrong type":     []byte("\xFF\xFF\xFF\xFFD\x00"),
		"unterminated":   []byte("\xFF\xFF\xFF\xFFI\x11name"),
		"truncated edf":  append(EncodeInfo(Info{Name: "x"})[:len(EncodeInfo(Info{Name: "x"}))-1], 0x80),
		"truncated port": append(EncodeInfo(Info{Name: "x"})[:len(EncodeInfo(Info{Name: "x"}))-1], 0x80, 0x01),
	} {
		if _, err := DecodeInfo(pkt); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := DecodeRequest([]byte("\xFF\xFF\xFF\xFFTnot the payload")); !errors.Is(err, ErrMalformed) {
		t.Errorf("info request without payload: %v", err)
	}
}

// FuzzDecode: no datagram makes a decoder panic or loop; what decodes,
// re-encodes to an equal answer.
func FuzzDecode(f *testing.F) {
	f.Add(EncodeInfo(Info{Name: "a", Map: "b", Port: 1, Keywords: "k"}))
	f.Add(EncodePlayers([]Player{{Name: "p", Duration: 1}}))
	f.Add(EncodeRules([]Rule{{"a", "b"}}))
	f.Add(Split(EncodeRules(make([]Rule, 200)), 5)[0])
	f.Add([]byte("\xFF\xFF\xFF\xFFTSource Engine Query\x00\x01\x02\x03\x04"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if in, err := DecodeInfo(b); err == nil {
			if again, err := DecodeInfo(EncodeInfo(*in)); err != nil || !reflect.DeepEqual(again, in) {
				t.Fatalf("info round trip: %+v %+v %v", in, again, err)
			}
		}
		if ps, err := DecodePlayers(b); err == nil {
			if again, err := DecodePlayers(EncodePlayers(ps)); err != nil || len(again) != len(ps) {
				t.Fatalf("players round trip: %v", err)
			}
		}
		DecodeRules(b)
		DecodeRequest(b)
		var ra reassembler
		ra.add(b)
	})
}
