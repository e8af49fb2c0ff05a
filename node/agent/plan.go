package agent

import "github.com/left4me/left4me/node/systemd"

// The decisions of realize, apart from its effects: what to do with the
// host's units for one Instance, from what is there and what should be.
// The executor (realize) does it; plan_test.go holds the table.

// hostUnits is what the host has of one Instance's game.
type hostUnits struct {
	// Game is the game unit's ActiveState ("" when it has no unit file).
	Game string
	// Installed is the template hash the game was started with ("": none).
	Installed string
	// Mount and Service are the unit files as they are ("" when missing).
	Mount, Service string
}

// wantUnits is what the Instance should run.
type wantUnits struct {
	// Hash names everything rendered, restart requests included.
	Hash string
	// Approved: the rollout allows restarting onto Hash.
	Approved       bool
	Mount, Service string
	// KeepHostMount: the overlay must stay mounted on the host while the
	// game runs (fuse-overlayfs); otherwise the game's namespace holds it.
	KeepHostMount bool
}

// gameStep is what happens to the game unit at the end.
type gameStep int

const (
	// gameEnsure starts it unless it is active or on its way.
	gameEnsure gameStep = iota
	// gameEnqueue starts a unit systemd has never seen (no state to ask).
	gameEnqueue
	// gameRestart restarts the running game onto the new template.
	gameRestart
)

// unitPlan is what to do, in the executor's order: write, reload, stop,
// (stage and) mount, then the game step.
type unitPlan struct {
	// Hold: a running game waits for the rollout; nothing on the host
	// changes.
	Hold bool
	// MountChange and ServiceChange are what writing each file does.
	MountChange, ServiceChange systemd.Change
	// Reload: a file systemd may have loaded changed.
	Reload bool
	// StopGame and StopMount let go of a mount whose layers changed.
	StopGame, StopMount bool
	// Mount: ready the overlay for the game's start (clear the game's
	// copies of generated files; mount a fuse-overlayfs .mount unit; a
	// kernel overlay's unit is pulled into the game's start). Not while
	// the game runs on: it holds its own copy, and a second overlay on the
	// same upper directory is undefined behaviour.
	Mount bool
	// ReleaseMount: the game is active, so its namespace holds its
	// overlay; detach the host's copy, which only slows every later start
	// (see unit.Service).
	ReleaseMount bool
	Game         gameStep
}

func running(activeState string) bool {
	return activeState == "active" || activeState == "activating" || activeState == "reloading"
}

func change(current, want string) systemd.Change {
	switch {
	case current == want:
		return systemd.Unchanged
	case current == "":
		return systemd.Created
	default:
		return systemd.Updated
	}
}

// planUnits decides. Rules:
//   - a running game whose template changed waits for the rollout's
//     approval (players first), touching nothing;
//   - new files need no daemon-reload (systemd loads them when first
//     named); a changed file does;
//   - a changed mount (new layers) stops the game and the mount first: a
//     mount left up keeps its old layers whatever its file says;
//   - a running game restarts when its unit changed or its template did
//     (a restart request changes only the hash), unless the mount change
//     stopped it already, when it is simply started again;
//   - the host mounts the overlay only for a game that does not run (a
//     restart's own start job mounts it: the unit Wants= it); a game that
//     is active and stays so lets go of the host's copy.
func planUnits(w wantUnits, h hostUnits) unitPlan {
	isRunning := running(h.Game)
	if isRunning && h.Installed != w.Hash && !w.Approved {
		return unitPlan{Hold: true}
	}
	p := unitPlan{MountChange: change(h.Mount, w.Mount), ServiceChange: change(h.Service, w.Service)}
	p.Reload = p.MountChange == systemd.Updated || p.ServiceChange == systemd.Updated
	if p.MountChange == systemd.Updated {
		p.StopGame = isRunning
		p.StopMount = true
	}
	templateChanged := h.Installed != "" && h.Installed != w.Hash
	switch {
	case isRunning && !p.StopGame && (p.ServiceChange != systemd.Unchanged || templateChanged):
		p.Game = gameRestart
	case p.ServiceChange == systemd.Created:
		p.Game = gameEnqueue
	default:
		p.Game = gameEnsure
	}
	stays := isRunning && !p.StopGame
	p.Mount = !stays
	p.ReleaseMount = stays && p.Game == gameEnsure && h.Game == "active" && !w.KeepHostMount
	return p
}
