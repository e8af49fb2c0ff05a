package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"sync"
	"time"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/apis/pki"
	"github.com/left4me/left4me/node/unit"
)

// logServer serves the journals of this node's games to the API server
// only: the client must present a certificate from the cluster CA naming
// the API server. Its own certificate is made at start; the agent publishes
// its fingerprint in the Node's status, which is how the API server knows it.
type logServer struct {
	a        *Agent
	listener net.Listener
	endpoint v1.LogsEndpoint
	srv      *http.Server
	// cancel ends every stream (their requests' contexts derive from it).
	cancel context.CancelFunc
	served chan struct{}
	// sessions counts console sessions, which Shutdown does not wait for
	// (their connections are hijacked).
	sessions sync.WaitGroup
}

// Log server timeouts. Streams (follow=true) may last for hours, so there
// is no write timeout; what bounds them is the client going away or the
// agent stopping.
const (
	logsReadHeaderTimeout = 10 * time.Second
	// logsIdleTimeout closes kept-alive connections the API server does not
	// reuse.
	logsIdleTimeout = 2 * time.Minute
	// logsStopTimeout bounds how long stop waits for streams to end.
	logsStopTimeout = 10 * time.Second
)

// journalctl is the program that reads a game's journal (a test puts a
// stand-in here).
var journalctl = "journalctl"

// startLogServer listens on addr and serves until stop is called or ctx
// ends; every stream ends with ctx.
func (a *Agent) startLogServer(ctx context.Context, addr string, caPEM []byte) (*logServer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "l4m-node " + a.o.NodeName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("log server: the config holds no CA to check the API server's certificate against")
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		VerifyPeerCertificate: func(_ [][]byte, chains [][]*x509.Certificate) error {
			if len(chains) == 0 || chains[0][0].Subject.CommonName != pki.ClientCommonName {
				return errors.New("only the API server may read logs")
			}
			return nil
		},
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("log server: listen on %s: %w", addr, err)
	}
	sum := sha256.Sum256(der)
	ctx, cancel := context.WithCancel(ctx)
	s := &logServer{a: a, listener: l, endpoint: v1.LogsEndpoint{Port: int32(l.Addr().(*net.TCPAddr).Port), CertSHA256: hex.EncodeToString(sum[:])},
		cancel: cancel, served: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /logs/{ns}/{name}", s.serve)
	mux.HandleFunc("POST /rcon/{ns}/{name}", s.serveRCON)
	mux.HandleFunc("GET /console/{ns}/{name}", s.serveConsole)
	mux.HandleFunc("GET /players/{ns}/{name}", s.servePlayers)
	s.srv = &http.Server{Handler: mux, TLSConfig: cfg, ReadHeaderTimeout: logsReadHeaderTimeout, IdleTimeout: logsIdleTimeout,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() {
		defer close(s.served)
		s.srv.Serve(tls.NewListener(l, cfg))
	}()
	return s, nil
}

// stop ends every stream and console session, closes the listener and
// every connection, and returns when the server and all its handlers (and
// their journalctl) are done.
func (s *logServer) stop() {
	s.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), logsStopTimeout)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.a.o.Log.Error(err, "log streams did not end in time; closing their connections")
		s.srv.Close()
	}
	<-s.served
	s.sessions.Wait()
}

// serve answers GET /logs/{namespace}/{name}?follow=true&tailLines=N with
// the game unit's journal, message text only.
func (s *logServer) serve(w http.ResponseWriter, r *http.Request) {
	ns, name, ok := instanceName(w, r)
	if !ok {
		return
	}
	s.a.mu.Lock()
	_, bound := s.a.instances[key(ns, name)]
	s.a.mu.Unlock()
	if !bound {
		http.Error(w, fmt.Sprintf("instance %s/%s is not bound to node %s", ns, name, s.a.o.NodeName), http.StatusNotFound)
		return
	}
	args := []string{"--unit", unit.ServiceName(unit.ID(ns, name)), "--output", "cat", "--no-pager"}
	if n, err := strconv.Atoi(r.URL.Query().Get("tailLines")); err == nil && n >= 0 {
		args = append(args, "--lines", strconv.Itoa(n))
	}
	if r.URL.Query().Get("follow") == "true" {
		args = append(args, "--follow")
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	cmd := exec.CommandContext(ctx, journalctl, args...)
	// A stream ends when its client goes or the agent stops (ctx): the
	// process is killed, and its output is not waited for beyond this.
	cmd.WaitDelay = time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if err := cmd.Start(); err != nil {
		http.Error(w, "journalctl: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	flusher, _ := w.(http.Flusher)
	buf := make([]byte, 32*1024)
	for {
		n, err := out.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				break
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				s.a.o.Log.V(1).Info("log stream ended", "error", err.Error())
			}
			break
		}
	}
	cancel()
	cmd.Wait()
}
