package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
)

// playersTimeout bounds a players request end to end: the agent answers
// within about two seconds (A2S and RCON status each have their own
// timeouts), so a node that is Ready on paper but does not answer (lost
// since its last heartbeat) costs a caller this long, not the dial and
// response timeouts of a log stream.
const playersTimeout = 5 * time.Second

// players answers GET .../instances/{name}/players: who is on the game
// now, asked of the node's agent (which asks the game) on every request
// and never stored. The agent's answer is decoded and encoded again, so
// only v1.InstancePlayers's fields leave the API server, whatever a node
// sends.
func (h *Handler) players(w http.ResponseWriter, r *http.Request, req *request) {
	ctx, cancel := context.WithTimeout(r.Context(), playersTimeout)
	defer cancel()
	answer, ok := h.askAgent(w, r.WithContext(ctx), req, http.MethodGet, "/players/", nil)
	if !ok {
		return
	}
	var out v1.InstancePlayers
	if err := json.Unmarshal(answer, &out); err != nil {
		h.writeError(w, r, apierrors.NewServiceUnavailable(fmt.Sprintf("instance %s/%s: the node's players answer: %v", req.namespace, req.name, err)))
		return
	}
	if out.Players == nil {
		out.Players = []v1.Player{}
	}
	writeJSON(w, http.StatusOK, out)
}
