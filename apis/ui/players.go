package ui

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
)

// playersView is the Instance page's players section, rendered with the
// page and sent as JSON by its refresh (the script sets it as text).
type playersView struct {
	URL string `json:"-"`
	// Summary is "map M, N/MAX players", or that nobody plays.
	Summary string `json:"summary"`
	// Message is the game's warning, or why nobody could be asked.
	Message string      `json:"message"`
	Rows    []playerRow `json:"rows"`
}

// playerRow is one player as l4mctl players prints it.
type playerRow struct {
	Name    string `json:"name"`
	SteamID string `json:"steamID"`
	Score   string `json:"score"`
	Time    string `json:"time"`
	Ping    string `json:"ping"`
}

// playersOf asks the API (as c's user, so its Authorizer decides: viewers
// may) who plays on Instance ns/name; nil when the user may not ask.
func (u *UI) playersOf(r *http.Request, c *caller, ns, name string) *playersView {
	if u.allowed(r.Context(), c, "get", resources.Instances, ns, name, "players") != nil {
		return nil
	}
	view := &playersView{URL: "/ui/namespaces/" + ns + "/instances/" + name + "/players", Rows: []playerRow{}}
	rec, err := u.serveAPI(r, c, http.MethodGet, apiPath(ns, name)+"/players", "", "")
	if err != nil {
		view.Message = err.Error()
		return view
	}
	if rec.code != http.StatusOK {
		msg := rec.body.String()
		var st metav1.Status
		if json.Unmarshal(rec.body.Bytes(), &st) == nil && st.Message != "" {
			msg = st.Message
		}
		view.Message = fmt.Sprintf("Players unavailable (%d): %s", rec.code, msg)
		return view
	}
	var ps v1.InstancePlayers
	if err := json.Unmarshal(rec.body.Bytes(), &ps); err != nil {
		view.Message = "Players unavailable: " + err.Error()
		return view
	}
	view.Message = ps.Warning
	view.Summary = fmt.Sprintf("Map %s, %d/%d players", ps.Map, len(ps.Players), ps.MaxPlayers)
	if len(ps.Players) == 0 {
		view.Summary = fmt.Sprintf("No players on %s/%s (map %s).", ns, name, ps.Map)
	}
	for _, p := range ps.Players {
		row := playerRow{Name: p.Name, SteamID: p.SteamID, Score: strconv.Itoa(int(p.Score)), Time: p.PlayTime(), Ping: strconv.Itoa(int(p.Ping))}
		if p.Bot || p.SteamID == "" {
			row.Ping = "-"
		}
		if row.SteamID == "" {
			row.SteamID = "-"
		}
		view.Rows = append(view.Rows, row)
	}
	return view
}

// players is the players section's refresh: its view as JSON.
func (u *UI) players(w http.ResponseWriter, r *http.Request, c *caller) {
	view := u.playersOf(r, c, r.PathValue("ns"), r.PathValue("name"))
	if view == nil {
		http.Error(w, "you may not see this Instance's players", http.StatusForbidden)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(view)
}
