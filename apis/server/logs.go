package server

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/resources"
)

var nodeResource = resources.Nodes

// logs streams an Instance's game log from its node's agent, as the
// Kubernetes API server reads pod logs through the kubelet. The agent is
// trusted by the certificate fingerprint it published in its Node's status;
// it trusts us by our client certificate.
func (h *Handler) logs(w http.ResponseWriter, r *http.Request, req *request) {
	ag, err := h.agentOf(r, req)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	q := url.Values{}
	if r.URL.Query().Get("follow") == "true" {
		q.Set("follow", "true")
	}
	if n, err := strconv.Atoi(r.URL.Query().Get("tailLines")); err == nil && n >= 0 {
		q.Set("tailLines", strconv.Itoa(n))
	}
	target := url.URL{Scheme: "https", Host: ag.host, Path: "/logs/" + req.namespace + "/" + req.name, RawQuery: q.Encode()}
	hc := &http.Client{Transport: h.agents.transport(ag.node, ag.host, ag.pin)}
	areq, err := http.NewRequestWithContext(r.Context(), http.MethodGet, target.String(), nil)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	resp, err := hc.Do(areq)
	if err != nil {
		h.writeError(w, r, apierrors.NewServiceUnavailable(fmt.Sprintf("node %s's log server: %v", ag.node, err)))
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		h.writeError(w, r, apierrors.NewGenericServerResponse(resp.StatusCode, "get", req.res.GroupResource(), req.name, string(body), 0, false))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	buf := make([]byte, 32*1024)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if err != nil {
			return
		}
	}
}

// agentEndpoint is where an Instance's node agent serves and the
// certificate it must show.
type agentEndpoint struct {
	node, host, pin string
	ready           bool
}

// agentOf finds the node an Instance runs on and its agent's endpoint.
func (h *Handler) agentOf(r *http.Request, req *request) (agentEndpoint, error) {
	if h.logsCert == nil {
		return agentEndpoint{}, apierrors.NewServiceUnavailable("this API server has no client certificate for node agents (it runs with an operator-provided serving certificate)")
	}
	obj, err := h.store.Get(r.Context(), req.res, req.namespace, req.name)
	if err != nil {
		return agentEndpoint{}, err
	}
	in := obj.(*v1.Instance)
	nodeName := in.Status.NodeName
	if nodeName == "" {
		nodeName = in.Spec.NodeName
	}
	if nodeName == "" {
		return agentEndpoint{}, apierrors.NewBadRequest(fmt.Sprintf("instance %s/%s runs on no node yet", req.namespace, req.name))
	}
	nobj, err := h.store.Get(r.Context(), nodeResource, "", nodeName)
	if apierrors.IsNotFound(err) {
		h.agents.forget(nodeName)
	}
	if err != nil {
		return agentEndpoint{}, err
	}
	node := nobj.(*v1.Node)
	ep := node.Status.LogsEndpoint
	if ep == nil || len(node.Status.Addresses) == 0 {
		return agentEndpoint{}, apierrors.NewServiceUnavailable(fmt.Sprintf("node %s publishes no log server", nodeName))
	}
	cond := apimeta.FindStatusCondition(node.Status.Conditions, v1.ConditionReady)
	return agentEndpoint{node: nodeName, host: net.JoinHostPort(node.Status.Addresses[0], strconv.Itoa(int(ep.Port))), pin: ep.CertSHA256,
		ready: cond == nil || cond.Status == metav1.ConditionTrue}, nil
}

// readyAgentOf is agentOf for a request that changes the game (rcon, a
// console): a node not Ready is not asked, it is refused with 503.
func (h *Handler) readyAgentOf(r *http.Request, req *request) (agentEndpoint, error) {
	ag, err := h.agentOf(r, req)
	if err == nil && !ag.ready {
		err = apierrors.NewServiceUnavailable(fmt.Sprintf("node %s is not Ready: its agent is not asked", ag.node))
	}
	return ag, err
}

// agentTransports keeps one Transport per node agent, so log requests to a
// node reuse its connections (and a handshake) instead of each building a
// Transport whose connections would stay open after it. A node's entry is
// replaced when it publishes another endpoint or certificate, dropped when
// the Node is gone, and closed with the server.
type agentTransports struct {
	cert *tls.Certificate

	mu     sync.Mutex
	byNode map[string]*agentTransport
}

type agentTransport struct {
	addr, pin string
	rt        *http.Transport
}

// Limits of the connections to one node agent: a few streams at once are
// common (several players follow logs), more stay only while in use.
const (
	agentMaxIdleConns    = 4
	agentIdleConnTimeout = 90 * time.Second
	agentDialTimeout     = 10 * time.Second
	// agentResponseTimeout: the agent answers at once (a stream's body
	// may then take as long as it likes).
	agentResponseTimeout = 30 * time.Second
)

func newAgentTransports(cert *tls.Certificate) *agentTransports {
	return &agentTransports{cert: cert, byNode: map[string]*agentTransport{}}
}

// transport returns the Transport for node's agent at addr, which must show
// the certificate whose SHA-256 is pin.
func (a *agentTransports) transport(node, addr, pin string) *http.Transport {
	a.mu.Lock()
	defer a.mu.Unlock()
	if t := a.byNode[node]; t != nil {
		if t.addr == addr && t.pin == pin {
			return t.rt
		}
		t.rt.CloseIdleConnections()
	}
	rt := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: agentDialTimeout}).DialContext,
		TLSHandshakeTimeout:   agentDialTimeout,
		ResponseHeaderTimeout: agentResponseTimeout,
		MaxIdleConnsPerHost:   agentMaxIdleConns,
		IdleConnTimeout:       agentIdleConnTimeout,
		TLSClientConfig: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{*a.cert},
			// The agent's certificate is self-made; what makes it trusted is
			// the fingerprint the node, authenticated by its token, published.
			InsecureSkipVerify: true,
			VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
				if len(raw) == 0 {
					return errors.New("the node agent showed no certificate")
				}
				sum := sha256.Sum256(raw[0])
				if hex.EncodeToString(sum[:]) != pin {
					return fmt.Errorf("node %s's log server certificate does not match the one it published", node)
				}
				return nil
			},
		},
	}
	a.byNode[node] = &agentTransport{addr: addr, pin: pin, rt: rt}
	return rt
}

// forget drops a deleted node's Transport.
func (a *agentTransports) forget(node string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if t := a.byNode[node]; t != nil {
		t.rt.CloseIdleConnections()
		delete(a.byNode, node)
	}
}

// closeIdle closes every idle connection to every agent (streams in use
// end with their requests).
func (a *agentTransports) closeIdle() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, t := range a.byNode {
		t.rt.CloseIdleConnections()
	}
}

// CloseIdleConnections closes the handler's idle connections to node
// agents; Server.Close calls it once requests have ended.
func (h *Handler) CloseIdleConnections() { h.agents.closeIdle() }
