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
	// maxRCONAnswer bounds what is read of the agent's answer (its RCON
	// output is capped at 64 KiB, JSON-escaped it may grow; a players
	// answer is smaller still).
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
	payload, _ := json.Marshal(body)
	answer, ok := h.askAgent(w, r, req, http.MethodPost, "/rcon/", payload)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(answer)
}

// askAgent sends one request to the agent of the node the Instance runs on
// (path is the agent's route, the Instance's namespace and name appended)
// and returns its answer, or false once it has written the error: 503 for
// a node that is not Ready (without dialing it) or whose agent cannot be
// reached, and the agent's refusals (not running, not bound, no answer
// from the game) with the agent's own words.
func (h *Handler) askAgent(w http.ResponseWriter, r *http.Request, req *request, method, path string, payload []byte) ([]byte, bool) {
	ag, err := h.readyAgentOf(r, req)
	if err != nil {
		h.writeError(w, r, err)
		return nil, false
	}
	target := url.URL{Scheme: "https", Host: ag.host, Path: path + req.namespace + "/" + req.name}
	hc := &http.Client{Transport: h.agents.transport(ag.node, ag.host, ag.pin)}
	var reqBody io.Reader
	if payload != nil {
		reqBody = bytes.NewReader(payload)
	}
	areq, err := http.NewRequestWithContext(r.Context(), method, target.String(), reqBody)
	if err != nil {
		h.writeError(w, r, err)
		return nil, false
	}
	if payload != nil {
		areq.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(areq)
	if err != nil {
		h.writeError(w, r, apierrors.NewServiceUnavailable(fmt.Sprintf("node %s's agent: %v", ag.node, err)))
		return nil, false
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxRCONAnswer))
	if err == nil {
		// An answer that ends as the request's time runs out may be cut
		// short (an agent that gives up when the connection goes writes
		// an empty 200): it is no answer.
		err = r.Context().Err()
	}
	if err != nil {
		h.writeError(w, r, apierrors.NewServiceUnavailable(fmt.Sprintf("node %s's agent: %v", ag.node, err)))
		return nil, false
	}
	if resp.StatusCode != http.StatusOK {
		// The agent's own words name what is wrong: they replace the
		// generic ones.
		se := apierrors.NewGenericServerResponse(resp.StatusCode, req.subresource, req.res.GroupResource(), req.name, "", 0, false)
		se.ErrStatus.Message = fmt.Sprintf("node %s: %s", ag.node, bytes.TrimSpace(answer))
		h.writeError(w, r, se)
		return nil, false
	}
	return answer, true
}
