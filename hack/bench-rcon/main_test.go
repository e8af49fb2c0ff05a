package main

import (
	"slices"
	"testing"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/node/unit"
)

// TestExecStartReadsTheAgentsUnit: the argv read back from a rendered
// game unit is the one node/unit rendered, with quotes, a backslash and a
// dollar in its path; a unit without ExecStart is an error.
func TestExecStartReadsTheAgentsUnit(t *testing.T) {
	p := unit.Paths{Root: `/srv/l4m $x "y" \z`}
	s := unit.Spec{ID: unit.ID("default", "coop-1"), Namespace: "default", Name: "coop-1", Blueprint: "coop",
		Game:  v1.GameSpec{Map: "c1m1_hotel", Mode: "coop", MaxPlayers: 8, Tickrate: 30},
		Args:  []string{"+sv_tags", "coop"},
		Ports: unit.Ports{Game: 27015, Client: 28015}, RCONPassword: "Zq3xTj9wP2mKf7Lc"}
	svc, err := unit.Service(p, s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := execStart(svc)
	if want := unit.Argv(p, s); err != nil || !slices.Equal(got, want) {
		t.Fatalf("execStart: %q, %v; want %q", got, err, want)
	}
	if _, err := execStart("[Service]\nType=simple\n"); err == nil {
		t.Error("a unit without ExecStart: no error")
	}
}
