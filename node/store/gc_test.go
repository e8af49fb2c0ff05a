package store

import (
	"slices"
	"strings"
	"testing"

	"github.com/left4me/left4me/node/extract"
)

// key is a test key: scheme files, hex made of c.
func key(c string) Key { return Key{Scheme: SchemeFiles, Hex: strings.Repeat(c, 64)} }

func names(keys []Key) string {
	var out []string
	for _, k := range keys {
		out = append(out, k.Hex[:1])
	}
	return strings.Join(out, ",")
}

func TestGC(t *testing.T) {
	a, b, c, d, e := key("a"), key("b"), key("c"), key("d"), key("e")
	cases := []struct {
		name     string
		entries  []Key
		inUse    map[Key]bool
		overlays map[string][]Key
		remove   string
	}{
		{"empty store", nil, nil, nil, ""},
		{"nothing uses anything", []Key{a, b}, nil, nil, "a,b"},
		{"current and previous kept, older goes", []Key{a, b, c}, nil, map[string][]Key{"default/cfgs": {c, b, a}}, "a"},
		{"an older one a game still runs stays", []Key{a, b, c}, map[Key]bool{a: true}, map[string][]Key{"default/cfgs": {c, b}}, ""},
		{"in use with no Overlay left using it", []Key{a, b}, map[Key]bool{b: true}, nil, "a"},
		{"false in inUse is not in use", []Key{a}, map[Key]bool{a: false}, nil, "a"},
		{"one entry shared by two Overlays", []Key{a, b, c, d}, nil, map[string][]Key{"t1/x": {a, b}, "t2/y": {a, c}}, "d"},
		{"an Overlay of another namespace keeps its own", []Key{a, b, c, e}, map[Key]bool{e: true}, map[string][]Key{"t1/x": {a}, "t2/x": {b, c}}, ""},
		{"history longer than kept", []Key{a, b, c, d}, nil, map[string][]Key{"default/cfgs": {d, c, b, a}}, "a,b"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := names(GC(tc.entries, tc.inUse, tc.overlays)); got != tc.remove {
				t.Fatalf("remove %q, want %q", got, tc.remove)
			}
		})
	}
}

func TestRemember(t *testing.T) {
	a, b, c := key("a"), key("b"), key("c")
	cases := []struct {
		history []Key
		k       Key
		want    string
	}{
		{nil, a, "a"},
		{[]Key{a}, a, "a"},
		{[]Key{a}, b, "b,a"},
		{[]Key{b, a}, c, "c,b"},
		{[]Key{b, a}, a, "a,b"}, // rolled back: the previous one is current again
		{[]Key{b, a}, b, "b,a"},
	}
	for _, tc := range cases {
		if got := names(Remember(tc.history, tc.k)); got != tc.want {
			t.Errorf("Remember(%s, %s) = %s, want %s", names(tc.history), names([]Key{tc.k}), got, tc.want)
		}
	}
}

func TestIndexPruneAndRoundTrip(t *testing.T) {
	a, b, c := key("a"), key("b"), key("c")
	x := Index{
		Overlays: map[string][]Key{"default/cfgs": {b, a}, "default/gone": {c}},
		Sources:  map[string]Key{"s1": a, "s2": b, "s3": c},
	}
	y := x.Prune(map[string]bool{"default/cfgs": true}, []Key{a, c})
	want := Index{Overlays: map[string][]Key{"default/cfgs": {a}}, Sources: map[string]Key{"s1": a, "s3": c}}
	if !y.Equal(want) {
		t.Fatalf("pruned %+v, want %+v", y, want)
	}
	if !x.Equal(x.Clone()) || x.Equal(y) {
		t.Fatal("Equal or Clone is wrong")
	}
	clone := x.Clone()
	clone.Overlays["default/cfgs"][0] = c
	if !slices.Equal(x.Overlays["default/cfgs"], []Key{b, a}) {
		t.Fatal("Clone shares its histories")
	}

	s := open(t, extract.Limits{})
	if got, err := s.ReadIndex(); err != nil || len(got.Overlays) != 0 || got.Overlays == nil {
		t.Fatalf("no index yet: %+v %v", got, err)
	}
	if err := s.WriteIndex(x); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReadIndex()
	if err != nil || !got.Equal(x) {
		t.Fatalf("read back %+v %v", got, err)
	}
	if list, _ := s.List(); len(list) != 0 {
		t.Fatalf("the index is listed as an entry: %v", list)
	}
}
