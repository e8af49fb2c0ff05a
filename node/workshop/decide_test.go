package workshop

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestValidID(t *testing.T) {
	for id, ok := range map[string]bool{
		"121115793": true, "1": true, "18446744073709551615": true,
		"": false, "0": false, "0123": false, "+5": false, "-5": false, "12a": false, " 1": false,
		"18446744073709551616": false, "1_000": false, "0x10": false,
	} {
		if err := ValidID(id); (err == nil) != ok {
			t.Errorf("ValidID(%q) = %v", id, err)
		}
	}
}

func col(result int, children ...collectionChild) *collectionEntry {
	return &collectionEntry{Result: result, Children: children}
}

func child(id string, sort, fileType int) collectionChild {
	return collectionChild{ID: flexString(id), SortOrder: sort, FileType: fileType}
}

func TestExpand(t *testing.T) {
	cols := map[string]*collectionEntry{
		"100": col(1, child("3", 2, 0), child("1", 0, 0), child("200", 1, 2), child("2", 1, 0)),
		"200": col(1, child("4", 0, 0), child("1", 1, 0)),
		"300": col(9),
		"400": col(1),
		"500": col(1, child("200", 0, 2)),
		"600": col(1, child("x", 0, 0), child("5", 1, 0)),
	}
	for _, tc := range []struct {
		name              string
		items, cols       []string
		want, wantSkipped []wanted
		wantErrs          []string // "<reason> <id>"
	}{{
		name: "items only, deduplicated", items: []string{"5", "6", "5"},
		want: []wanted{{"5", ""}, {"6", ""}},
	}, {
		name: "sort order, nested collection skipped", cols: []string{"100"},
		want:        []wanted{{"1", "100"}, {"2", "100"}, {"3", "100"}},
		wantSkipped: []wanted{{"200", "100"}},
	}, {
		name:  "items first, then collections; each id once where it first appears",
		items: []string{"2"}, cols: []string{"100", "200", "100"},
		want:        []wanted{{"2", ""}, {"1", "100"}, {"3", "100"}, {"4", "200"}},
		wantSkipped: []wanted{{"200", "100"}},
	}, {
		name: "unavailable, empty, only nested, absent from the answer, bad child",
		cols: []string{"300", "400", "500", "700", "600"},
		want: []wanted{{"5", "600"}}, wantSkipped: []wanted{{"200", "500"}},
		wantErrs: []string{"ItemUnavailable 300", "EmptyCollection 400", "EmptyCollection 500", "BadResponse 700", "BadResponse 600"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, skipped, errs := expand(tc.items, tc.cols, cols)
			if !slices.Equal(got, tc.want) || !slices.Equal(skipped, tc.wantSkipped) {
				t.Errorf("got %v skipped %v", got, skipped)
			}
			var es []string
			for _, err := range errs {
				e := err.(*Error)
				if !e.Collection || !strings.Contains(e.Error(), "collection "+e.ID) {
					t.Errorf("%v does not name the collection", e)
				}
				es = append(es, e.Reason+" "+e.ID)
			}
			if !slices.Equal(es, tc.wantErrs) {
				t.Errorf("errors %q, want %q", es, tc.wantErrs)
			}
		})
	}
}

func TestCheckItem(t *testing.T) {
	good := fileDetails{Result: 1, ConsumerAppID: 550, Filename: "maps/dcr.VPK", FileSize: 1000,
		FileURL: "https://steamusercontent-a.akamaihd.net/ugc/1/ABC/", Title: "DCR", TimeUpdated: 1700000000}
	with := func(f func(*fileDetails)) *fileDetails { d := good; f(&d); return &d }
	for _, tc := range []struct {
		name   string
		d      *fileDetails
		reason string
	}{
		{"good", &good, ""},
		{"not in the answer", nil, BadResponse},
		{"result 9", &fileDetails{Result: 9}, ItemUnavailable},
		{"another game", with(func(d *fileDetails) { d.ConsumerAppID = 730 }), WrongGame},
		{"banned", with(func(d *fileDetails) { d.Banned = true; d.BanReason = "spam" }), Banned},
		{"no file_url", with(func(d *fileDetails) { d.FileURL = "" }), NoFileURL},
		{"file_url scheme", with(func(d *fileDetails) { d.FileURL = "file:///etc/passwd" }), BadResponse},
		{"not a vpk", with(func(d *fileDetails) { d.Filename = "map.zip" }), NotVPK},
		{"no filename", with(func(d *fileDetails) { d.Filename = "" }), NotVPK},
		{"backslash path", with(func(d *fileDetails) { d.Filename = `addons\map.vpk` }), ""},
		{"size 0", with(func(d *fileDetails) { d.FileSize = 0 }), BadResponse},
		{"too large", with(func(d *fileDetails) { d.FileSize = 2001 }), TooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			it, e := checkItem(wanted{ID: "42", From: "7"}, tc.d, 2000)
			if tc.reason == "" {
				if e != nil {
					t.Fatal(e)
				}
				want := Item{ID: "42", From: "7", Title: "DCR", Filename: tc.d.Filename, FileURL: good.FileURL, Size: 1000,
					TimeUpdated: time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC)}
				if it != want {
					t.Fatalf("got %+v\nwant %+v", it, want)
				}
				return
			}
			if e == nil || e.Reason != tc.reason {
				t.Fatalf("got %v, want reason %s", e, tc.reason)
			}
			if msg := e.Error(); !strings.HasPrefix(msg, "workshop item 42") || !strings.Contains(msg, "(in collection 7)") {
				t.Fatalf("%q does not name the item and its collection", msg)
			}
		})
	}
}

// Steam's types, and the other shapes tools report having seen.
func TestDetailsJSON(t *testing.T) {
	var ds []fileDetails
	err := json.Unmarshal([]byte(`[
		{"publishedfileid":"1","result":1,"consumer_app_id":550,"file_size":"83763796","time_updated":1699419831,"banned":0},
		{"publishedfileid":2,"result":1,"consumer_app_id":"550","file_size":66636018,"banned":true},
		{"publishedfileid":"3","result":9}
	]`), &ds)
	if err != nil {
		t.Fatal(err)
	}
	if ds[0].FileSize != 83763796 || ds[1].FileSize != 66636018 || ds[1].PublishedFileID != "2" || ds[1].ConsumerAppID != 550 ||
		bool(ds[0].Banned) || !bool(ds[1].Banned) || ds[2].Result != 9 {
		t.Fatalf("%+v", ds)
	}
	for _, bad := range []string{`{"file_size":"12x"}`, `{"banned":2}`, `{"publishedfileid":{}}`} {
		var d fileDetails
		if err := json.Unmarshal([]byte(bad), &d); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}
