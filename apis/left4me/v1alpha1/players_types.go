package v1alpha1

import "fmt"

// InstancePlayers is what GET .../instances/{name}/players answers: who is
// on an Instance's game right now. It is asked of the game (through its
// node's agent) on every request and never stored: players come and go
// faster than a status write is worth, and their SteamIDs are personal data
// that has no business in etcd or its backups.
type InstancePlayers struct {
	// Map is the map the game reports (A2S_INFO).
	Map string `json:"map"`
	// MaxPlayers is the game's player limit (A2S_INFO).
	MaxPlayers int32 `json:"maxPlayers"`
	// Players are the connected players, in the game's order.
	//
	// +listType=atomic
	Players []Player `json:"players"`
	// Warning says which part could not be asked (RCON, for SteamIDs and
	// pings); what A2S answered is still there.
	Warning string `json:"warning,omitempty"`
}

// Player is one connected player: name, score and time from A2S_PLAYER;
// user id, SteamID, ping, loss and state from RCON status. The address
// status prints is left out on purpose (see the node agent).
type Player struct {
	Name            string `json:"name"`
	Score           int32  `json:"score"`
	DurationSeconds int64  `json:"durationSeconds"`
	UserID          int32  `json:"userID,omitempty"`
	SteamID         string `json:"steamID,omitempty"`
	Ping            int32  `json:"ping"`
	Loss            int32  `json:"loss"`
	State           string `json:"state,omitempty"`
	Bot             bool   `json:"bot,omitempty"`
}

// PlayTime is how long the player has been on, as the game's status
// prints it: 05:12, and 1:02:03 from an hour on.
func (p Player) PlayTime() string {
	s := max(p.DurationSeconds, 0)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%02d:%02d", s/60, s%60)
}
