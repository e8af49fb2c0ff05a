package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	utilvalidation "k8s.io/apimachinery/pkg/util/validation"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/node/rcon"
	"github.com/left4me/left4me/node/unit"
)

// RCON limits: a command the game does not answer must not hold the API
// server's request, and an answer (cvarlist is hundreds of KiB) is cut so
// one request cannot make the agent buffer without bound.
const (
	rconTimeout     = 10 * time.Second
	rconMaxOutput   = 64 << 10
	rconMaxBodySize = 4 << 10
)

// Errors execRCON's callers map to status codes.
var (
	errNotBound   = errors.New("not bound to this node")
	errNotRunning = errors.New("not running")
)

// rconResult is what POST /rcon answers.
type rconResult struct {
	Output    string `json:"output"`
	Truncated bool   `json:"truncated"`
}

// execRCON runs command on the game of Instance ns/name over RCON on
// loopback, on a connection of its own.
func (a *Agent) execRCON(ctx context.Context, ns, name, command string) (rconResult, error) {
	addr, pw, _, err := a.rconTarget(ns, name)
	if err != nil {
		return rconResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, rconTimeout)
	defer cancel()
	c, err := rcon.Dial(ctx, addr, pw)
	if err != nil {
		return rconResult{}, err
	}
	defer c.Close()
	out, err := c.Exec(ctx, command)
	if err != nil {
		return rconResult{}, err
	}
	return capOutput(out), nil
}

// rconTarget is where the game of Instance ns/name answers RCON, its
// password, and its probe (a new one means a new game process).
func (a *Agent) rconTarget(ns, name string) (addr, password string, pr *probe, err error) {
	pr, err = a.runningProbe(ns, name)
	if err != nil {
		return "", "", nil, err
	}
	pw, err := a.readRCONPassword(unit.ID(ns, name))
	if err != nil {
		return "", "", nil, fmt.Errorf("instance %s/%s is %w: %w", ns, name, errNotRunning, err)
	}
	return pr.addr, pw, pr, nil
}

// runningGame is the loopback address of Instance ns/name's game, or
// errNotBound, or errNotRunning (see runningProbe).
func (a *Agent) runningGame(ns, name string) (string, error) {
	pr, err := a.runningProbe(ns, name)
	if err != nil {
		return "", err
	}
	return pr.addr, nil
}

// runningProbe is the probe of Instance ns/name's game, or errNotBound,
// or errNotRunning: the game counts as running once observe has probed it
// (a probe exists only for a game whose unit was seen) and it is not
// Stopped.
func (a *Agent) runningProbe(ns, name string) (*probe, error) {
	a.mu.Lock()
	in, bound := a.instances[key(ns, name)]
	pr := a.probes[unit.ID(ns, name)]
	a.mu.Unlock()
	if !bound {
		return nil, fmt.Errorf("instance %s/%s is %w %s", ns, name, errNotBound, a.o.NodeName)
	}
	if in.Spec.State == v1.StateStopped || pr == nil {
		return nil, fmt.Errorf("instance %s/%s is %w", ns, name, errNotRunning)
	}
	return pr, nil
}

// instanceName is the request's {ns} and {name}, or false once it has
// answered 400.
func instanceName(w http.ResponseWriter, r *http.Request) (string, string, bool) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if len(utilvalidation.IsDNS1123Label(ns)) > 0 || len(utilvalidation.IsDNS1123Label(name)) > 0 {
		http.Error(w, "bad instance name", http.StatusBadRequest)
		return "", "", false
	}
	return ns, name, true
}

// writeGameError answers err of Instance ns/name's game: 404 not bound
// here, 409 not running, 502 the game did not answer.
func writeGameError(w http.ResponseWriter, ns, name string, err error) {
	switch {
	case errors.Is(err, errNotBound):
		http.Error(w, err.Error(), http.StatusNotFound)
	case errors.Is(err, errNotRunning):
		http.Error(w, err.Error(), http.StatusConflict)
	default:
		http.Error(w, fmt.Sprintf("instance %s/%s: the game did not answer: %v", ns, name, err), http.StatusBadGateway)
	}
}

// capOutput cuts out at rconMaxOutput bytes.
func capOutput(out string) rconResult {
	if len(out) <= rconMaxOutput {
		return rconResult{Output: out}
	}
	return rconResult{Output: strings.ToValidUTF8(out[:rconMaxOutput], ""), Truncated: true}
}

// readRCONPassword reads the password rconPassword stored when the game's
// config was written, never making one: a game that has none was never
// started with RCON.
func (a *Agent) readRCONPassword(id string) (string, error) {
	path := filepath.Join(a.paths.Instance(id), "rcon_password")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read rcon password: %w", err)
	}
	pw := strings.TrimSpace(string(b))
	if pw == "" {
		return "", fmt.Errorf("rcon password %s is empty", path)
	}
	return pw, nil
}

// serveRCON answers POST /rcon/{namespace}/{name} with body
// {"command": "..."}: 404 not bound here, 409 not running, 502 the game
// did not answer.
func (s *logServer) serveRCON(w http.ResponseWriter, r *http.Request) {
	ns, name, ok := instanceName(w, r)
	if !ok {
		return
	}
	var req struct {
		Command string `json:"command"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, rconMaxBodySize)).Decode(&req); err != nil {
		http.Error(w, fmt.Sprintf("body: %v", err), http.StatusBadRequest)
		return
	}
	if req.Command == "" {
		http.Error(w, "command: required", http.StatusBadRequest)
		return
	}
	res, err := s.a.execRCON(r.Context(), ns, name, req.Command)
	if err != nil {
		writeGameError(w, ns, name, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(res)
}
