package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/left4me/left4me/apis/console"
)

// RCON limits (a command's own are console.CheckCommand's). The per-user
// rate keeps one editor from flooding a game.
const (
	maxRCONBody = 4 << 10
	rconQPS     = 5
	rconBurst   = 10
	// maxRCONAnswer bounds what is read of the agent's answer (its output
	// is capped at 64 KiB, JSON-escaped it may grow).
	maxRCONAnswer = 1 << 20
)

// rconBody is POST .../instances/{name}/rcon's body.
type rconBody struct {
	Command string `json:"command"`
}

// validRCONCommand says what is wrong with command, or nil.
func validRCONCommand(command string) error {
	if err := console.CheckCommand(command); err != nil {
		return apierrors.NewBadRequest(err.Error())
	}
	return nil
}

// rconLimited spends one of user's RCON commands, or says it has none
// left and in how many seconds it will.
func (h *Handler) rconLimited(user string) (int, bool) {
	lim := h.rconLimits.get(user)
	if lim.Allow() {
		return 0, false
	}
	return max(int(math.Ceil((1-lim.Tokens())/rconQPS)), 1), true
}

// rcon runs a console command on an Instance's game through its node's
// agent, over the same pinned connection the logs use. The agent's answer
// ({"output", "truncated"}) is passed through, as are its refusals.
func (h *Handler) rcon(w http.ResponseWriter, r *http.Request, req *request) {
	var body rconBody
	if err := json.NewDecoder(io.LimitReader(r.Body, maxRCONBody)).Decode(&body); err != nil {
		h.writeError(w, r, apierrors.NewBadRequest(fmt.Sprintf("body: %v", err)))
		return
	}
	req.command = body.Command
	if err := validRCONCommand(body.Command); err != nil {
		h.writeError(w, r, err)
		return
	}
	if secs, limited := h.rconLimited(req.user.Name); limited {
		h.writeError(w, r, apierrors.NewTooManyRequests(fmt.Sprintf("%s sends more than %d RCON commands a second", req.user.Name, rconQPS), secs))
		return
	}
	ag, err := h.readyAgentOf(r, req)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	payload, _ := json.Marshal(body)
	target := url.URL{Scheme: "https", Host: ag.host, Path: "/rcon/" + req.namespace + "/" + req.name}
	hc := &http.Client{Transport: h.agents.transport(ag.node, ag.host, ag.pin)}
	areq, err := http.NewRequestWithContext(r.Context(), http.MethodPost, target.String(), bytes.NewReader(payload))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	areq.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(areq)
	if err != nil {
		h.writeError(w, r, apierrors.NewServiceUnavailable(fmt.Sprintf("node %s's agent: %v", ag.node, err)))
		return
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxRCONAnswer))
	if err != nil {
		h.writeError(w, r, apierrors.NewServiceUnavailable(fmt.Sprintf("node %s's agent: %v", ag.node, err)))
		return
	}
	if resp.StatusCode != http.StatusOK {
		// The agent's own words name what is wrong (not running, not
		// bound, no answer from the game): they replace the generic ones.
		se := apierrors.NewGenericServerResponse(resp.StatusCode, "rcon", req.res.GroupResource(), req.name, "", 0, false)
		se.ErrStatus.Message = fmt.Sprintf("node %s: %s", ag.node, bytes.TrimSpace(answer))
		h.writeError(w, r, se)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(answer)
}
