package rcon

import (
	"bytes"
	"errors"
	"testing"
)

func TestPacketRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	in := Packet{ID: 42, Type: TypeExecCommand, Body: "status"}
	if err := Write(&buf, in); err != nil {
		t.Fatal(err)
	}
	// The wire form from the Valve wiki: size = 4 + 4 + len(body) + 2.
	if got := buf.Bytes()[0]; got != 16 {
		t.Fatalf("size field %d, want 16", got)
	}
	out, err := Read(&buf)
	if err != nil || out != in {
		t.Fatalf("round trip: %+v %v", out, err)
	}
}

func TestMalformed(t *testing.T) {
	for name, raw := range map[string][]byte{
		"size too small": {4, 0, 0, 0, 1, 0, 0, 0},
		"size too large": {0xff, 0xff, 0xff, 0x7f},
		"negative size":  {0xff, 0xff, 0xff, 0xff},
		"truncated":      {20, 0, 0, 0, 1, 0, 0, 0},
		"no terminator":  {10, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 'a', 'b'},
	} {
		if _, err := Read(bytes.NewReader(raw)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzRead: no byte stream makes the reader panic or allocate unboundedly;
// what decodes, encodes back to the same bytes.
func FuzzRead(f *testing.F) {
	var buf bytes.Buffer
	Write(&buf, Packet{ID: 1, Type: TypeAuth, Body: "pw"})
	f.Add(buf.Bytes())
	f.Add([]byte{10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Read(bytes.NewReader(b))
		if err != nil {
			return
		}
		var out bytes.Buffer
		Write(&out, p)
		if !bytes.HasPrefix(b, out.Bytes()) {
			t.Fatalf("re-encoding differs: %x vs %x", out.Bytes(), b)
		}
	})
}
