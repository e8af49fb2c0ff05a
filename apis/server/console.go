package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/left4me/left4me/apis/console"
)

// Console session limits (the keepalive ones are console.Ping* and
// console.WriteTimeout, the same at every hop).
const (
	// consoleDialTimeout bounds the handshake with the agent.
	consoleDialTimeout = 20 * time.Second
)

// console relays a live console session between the client and the
// Instance's node agent (GET .../instances/{name}/console, a WebSocket):
// the agent's messages (log lines, answers) pass through; each command the
// client sends is checked (console.CheckCommand), rate limited as rcon is,
// and written to the audit log before it is sent on. A refused command gets
// an "error" message and the session goes on. Everything the agent refuses
// before its upgrade (not bound: 404, not running: 409) is passed through
// as the API's error, before the client's upgrade.
func (h *Handler) console(w http.ResponseWriter, r *http.Request, req *request) {
	ag, err := h.readyAgentOf(r, req)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	q := url.Values{}
	if n, err := strconv.Atoi(r.URL.Query().Get("tailLines")); err == nil && n >= 0 {
		q.Set("tailLines", strconv.Itoa(n))
	}
	target := url.URL{Scheme: "https", Host: ag.host, Path: "/console/" + req.namespace + "/" + req.name, RawQuery: q.Encode()}
	dctx, cancel := context.WithTimeout(r.Context(), consoleDialTimeout)
	agent, resp, err := websocket.Dial(dctx, target.String(), &websocket.DialOptions{HTTPClient: &http.Client{Transport: h.agents.transport(ag.node, ag.host, ag.pin)}})
	cancel()
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			se := apierrors.NewGenericServerResponse(resp.StatusCode, "console", req.res.GroupResource(), req.name, "", 0, false)
			se.ErrStatus.Message = fmt.Sprintf("node %s: %s", ag.node, strings.TrimSpace(string(body)))
			h.writeError(w, r, se)
			return
		}
		h.writeError(w, r, apierrors.NewServiceUnavailable(fmt.Sprintf("node %s's agent: %v", ag.node, err)))
		return
	}
	agent.SetReadLimit(console.MaxServerMessage)
	// Counted before the upgrade, while Shutdown still tracks the
	// connection (see waitConsoles).
	h.consoles.Add(1)
	defer h.consoles.Done()
	client, err := websocket.Accept(w, r, nil)
	if err != nil {
		agent.Close(websocket.StatusGoingAway, "the client's upgrade failed")
		return
	}
	h.auditRequest(r, req, time.Now(), http.StatusSwitchingProtocols)
	client.SetReadLimit(console.MaxMessage)
	h.relayConsole(r, req, client, agent)
}

// relayConsole runs a session until either side (or this server) ends it,
// closes both connections and returns when its goroutines are done. The
// agent's close reason (the game stopped) reaches the client as it is.
func (h *Handler) relayConsole(r *http.Request, req *request, client, agent *websocket.Conn) {
	done, pinged := make(chan struct{}), make(chan struct{})
	fromAgent := make(chan struct{})
	go func() {
		defer close(fromAgent)
		code, reason := pipeAgent(agent, client)
		client.Close(code, reason)
	}()
	go func() {
		defer close(pinged)
		t := time.NewTicker(console.PingInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-r.Context().Done(): // this server is stopping, or the dashboard's login ended
				const reason = "the API server ended the session (it is stopping, or the login ended)"
				client.Close(websocket.StatusGoingAway, reason)
				agent.Close(websocket.StatusGoingAway, reason)
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), console.PingTimeout)
				err := client.Ping(ctx)
				cancel()
				if err != nil {
					client.CloseNow()
					return
				}
			}
		}
	}()
	h.pipeClient(r, req, client, agent)
	// The client is gone (or closed by the agent's side): end the agent's
	// session too, then wait for the relay from it.
	agent.Close(websocket.StatusNormalClosure, "the client left")
	client.CloseNow()
	<-fromAgent
	close(done)
	<-pinged
}

// pipeAgent copies the agent's messages to the client until the agent's
// side ends, and returns the close to pass on.
func pipeAgent(agent, client *websocket.Conn) (websocket.StatusCode, string) {
	for {
		typ, b, err := agent.Read(context.Background())
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code, ce.Reason
			}
			return websocket.StatusGoingAway, "the node agent's connection ended"
		}
		ctx, cancel := context.WithTimeout(context.Background(), console.WriteTimeout)
		err = client.Write(ctx, typ, b)
		cancel()
		if err != nil {
			return websocket.StatusGoingAway, "client gone"
		}
	}
}

// pipeClient reads the client's commands until its side ends, sending each
// allowed one to the agent; each is audited.
func (h *Handler) pipeClient(r *http.Request, req *request, client, agent *websocket.Conn) {
	reply := func(m console.Message) {
		b, _ := json.Marshal(m)
		ctx, cancel := context.WithTimeout(context.Background(), console.WriteTimeout)
		defer cancel()
		client.Write(ctx, websocket.MessageText, b)
	}
	for {
		_, b, err := client.Read(context.Background())
		if err != nil {
			return
		}
		var m console.Message
		if err := json.Unmarshal(b, &m); err != nil || m.Type != console.TypeCommand {
			reply(console.Message{Type: console.TypeError, Message: `not a console message: want {"type":"command","command":"..."}`})
			continue
		}
		code, refusal := h.allowConsoleCommand(req, m.Command)
		req.command = m.Command
		h.auditRequest(r, req, time.Now(), code)
		if refusal != "" {
			reply(console.Message{Type: console.TypeError, Command: m.Command, Message: refusal})
			continue
		}
		out, _ := json.Marshal(console.Message{Type: console.TypeCommand, Command: m.Command})
		ctx, cancel := context.WithTimeout(context.Background(), console.WriteTimeout)
		err = agent.Write(ctx, websocket.MessageText, out)
		cancel()
		if err != nil {
			return
		}
	}
}

// allowConsoleCommand decides whether command goes to the game: the code
// for the audit record and, for a refusal, what to tell the client.
func (h *Handler) allowConsoleCommand(req *request, command string) (int, string) {
	if err := console.CheckCommand(command); err != nil {
		return http.StatusBadRequest, err.Error()
	}
	if secs, limited := h.rconLimited(req.user.Name); limited {
		return http.StatusTooManyRequests, fmt.Sprintf("%s sends more than %d RCON commands a second: try again in %ds", req.user.Name, rconQPS, secs)
	}
	return http.StatusOK, ""
}

// waitConsoles returns when every console session has ended (Server.Close
// calls it after Shutdown, which does not wait for upgraded connections;
// their sessions end with the server's context).
func (h *Handler) waitConsoles() { h.consoles.Wait() }
