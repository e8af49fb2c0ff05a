package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/node/a2s"
)

// playersRCONTimeout bounds the RCON status behind GET /players: a game
// slow to answer it costs the SteamIDs and pings, not the whole answer.
const playersRCONTimeout = 2 * time.Second

// statusPlayer is one player line of RCON status. The address (adr) the
// line ends with is deliberately not kept: a player's IP is personal data
// nobody running the server needs to see in a dashboard, and what is not
// read cannot leak through the API.
type statusPlayer struct {
	userID    int32
	name      string
	steamID   string
	connected time.Duration
	ping      int32
	loss      int32
	state     string
	bot       bool
}

// parseStatus reads the player lines of srcds's status output (at most its
// first rconMaxOutput bytes). L4D2 prints a human as
//
//	#  2 1 "Alice" STEAM_1:0:12345 05:12 48 0 active 30000 192.168.1.5:27005
//
// (user id, slot, name, SteamID, connected, ping, loss, state, rate, adr)
// and a bot as
//
//	#  3 "Coach" BOT active
//
// The name is quoted but not escaped, so it runs from the first quote to
// the last: nothing after it holds one. Lines that do not fit (the header,
// #end, the lines above them) are skipped.
func parseStatus(out string) []statusPlayer {
	if len(out) > rconMaxOutput {
		out = out[:rconMaxOutput]
	}
	var ps []statusPlayer
	for line := range strings.Lines(out) {
		if p, ok := parseStatusLine(strings.TrimRight(line, "\r\n")); ok {
			ps = append(ps, p)
		}
	}
	return ps
}

// parseStatusLine reads one line of status, or says it is not a player's.
func parseStatusLine(line string) (statusPlayer, bool) {
	rest, ok := strings.CutPrefix(line, "#")
	first, last := strings.IndexByte(rest, '"'), strings.LastIndexByte(rest, '"')
	if !ok || first < 0 || last <= first {
		return statusPlayer{}, false
	}
	ids := strings.Fields(rest[:first])
	if len(ids) < 1 || len(ids) > 2 {
		return statusPlayer{}, false
	}
	uid, err := strconv.ParseInt(ids[0], 10, 32)
	if err != nil {
		return statusPlayer{}, false
	}
	p := statusPlayer{userID: int32(uid), name: strings.ToValidUTF8(rest[first+1:last], "\uFFFD")}
	tail := strings.Fields(rest[last+1:])
	if len(tail) >= 1 && tail[0] == "BOT" {
		p.bot, p.steamID = true, "BOT"
		if len(tail) > 1 {
			p.state = tail[1]
		}
		return p, true
	}
	// uniqueid connected ping loss state rate [adr]
	if len(tail) < 6 {
		return statusPlayer{}, false
	}
	ping, err1 := strconv.ParseInt(tail[2], 10, 32)
	loss, err2 := strconv.ParseInt(tail[3], 10, 32)
	connected, ok := parseConnected(tail[1])
	if err1 != nil || err2 != nil || !ok {
		return statusPlayer{}, false
	}
	p.steamID, p.connected, p.ping, p.loss, p.state = tail[0], connected, int32(ping), int32(loss), tail[4]
	return p, true
}

// parseConnected reads the engine's connected time, mm:ss or h:mm:ss.
func parseConnected(s string) (time.Duration, bool) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return 0, false
	}
	var secs int64
	for _, part := range parts {
		n, err := strconv.ParseInt(part, 10, 32)
		if err != nil || n < 0 {
			return 0, false
		}
		secs = secs*60 + n
	}
	return time.Duration(secs) * time.Second, true
}

// mergePlayers joins A2S_PLAYER's entries (name, score, time) with status's
// lines by name, each line used once, in A2S's order; lines A2S does not
// list (bots, players still connecting) follow.
func mergePlayers(listed []a2s.Player, lines []statusPlayer) []v1.Player {
	used := make([]bool, len(lines))
	out := make([]v1.Player, 0, len(listed)+len(lines))
	for _, ap := range listed {
		p := v1.Player{Name: strings.ToValidUTF8(ap.Name, "\uFFFD"), Score: ap.Score, DurationSeconds: int64(ap.Duration)}
		for i, l := range lines {
			if !used[i] && l.name == p.Name {
				used[i] = true
				fillFromStatus(&p, l)
				break
			}
		}
		out = append(out, p)
	}
	for i, l := range lines {
		if !used[i] {
			p := v1.Player{Name: l.name, DurationSeconds: int64(l.connected.Seconds())}
			fillFromStatus(&p, l)
			out = append(out, p)
		}
	}
	return out
}

func fillFromStatus(p *v1.Player, l statusPlayer) {
	p.UserID, p.SteamID, p.Ping, p.Loss, p.State, p.Bot = l.userID, l.steamID, l.ping, l.loss, l.state, l.bot
}

// players asks Instance ns/name's game who is on it: A2S_INFO and
// A2S_PLAYER (which must answer), and RCON status at the same time (which
// may fail: then the answer says so in Warning).
func (a *Agent) players(ctx context.Context, ns, name string) (v1.InstancePlayers, error) {
	addr, err := a.runningGame(ns, name)
	if err != nil {
		return v1.InstancePlayers{}, err
	}
	type rconAnswer struct {
		res rconResult
		err error
	}
	status := make(chan rconAnswer, 1)
	go func() {
		rctx, cancel := context.WithTimeout(ctx, playersRCONTimeout)
		defer cancel()
		res, err := a.execRCON(rctx, ns, name, "status")
		status <- rconAnswer{res, err}
	}()
	info, listed, err := queryA2S(ctx, addr)
	st := <-status
	if err != nil {
		return v1.InstancePlayers{}, err
	}
	out := v1.InstancePlayers{Map: info.Map, MaxPlayers: int32(info.MaxPlayers)}
	var lines []statusPlayer
	if st.err != nil {
		out.Warning = fmt.Sprintf("RCON status failed, so SteamIDs and pings are missing: %v", st.err)
	} else {
		lines = parseStatus(st.res.Output)
	}
	out.Players = mergePlayers(listed, lines)
	return out, nil
}

// queryA2S asks A2S_INFO and A2S_PLAYER, each within a2sTimeout.
func queryA2S(ctx context.Context, addr string) (*a2s.Info, []a2s.Player, error) {
	qctx, cancel := context.WithTimeout(ctx, a2sTimeout)
	info, err := a2s.QueryInfo(qctx, addr)
	cancel()
	if err != nil {
		return nil, nil, err
	}
	qctx, cancel = context.WithTimeout(ctx, a2sTimeout)
	defer cancel()
	listed, err := a2s.QueryPlayers(qctx, addr)
	if err != nil {
		return nil, nil, err
	}
	return info, listed, nil
}

// servePlayers answers GET /players/{namespace}/{name} with
// v1.InstancePlayers: 404 not bound here, 409 not running, 502 the game
// did not answer A2S.
func (s *logServer) servePlayers(w http.ResponseWriter, r *http.Request) {
	ns, name, ok := instanceName(w, r)
	if !ok {
		return
	}
	res, err := s.a.players(r.Context(), ns, name)
	if err != nil {
		writeGameError(w, ns, name, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(res)
}
