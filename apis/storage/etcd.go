package storage

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"
)

// Embedded is an etcd member running inside this process. By default it
// listens on nothing at all: the API server reaches it through the
// in-process client, and nobody else can reach it (a plain-HTTP loopback
// port would let any local user read every token hash and write an admin
// token).
type Embedded struct {
	etcd *embed.Etcd
	// Client is an in-process client (no network in between).
	Client *clientv3.Client
	// Endpoint is the client URL (https://127.0.0.1:port) when
	// EmbeddedOptions.ClientAddr asked for a listener; empty otherwise.
	Endpoint string
}

// EmbeddedOptions configure StartEmbedded.
type EmbeddedOptions struct {
	// Dir holds etcd's data.
	Dir string
	// ClientAddr, when set, opens a client listener on this loopback
	// host:port (":0" picks a free port) for etcd clients in other
	// processes. It serves only TLS and requires a client certificate
	// signed by ClientTLS.TrustedCAFile.
	ClientAddr string
	// ClientTLS is the listener's certificate, key and the CA its clients
	// must present a certificate from (required with ClientAddr).
	ClientTLS *EmbeddedTLS
}

// EmbeddedTLS names the PEM files of the embedded etcd's client listener.
type EmbeddedTLS struct{ CertFile, KeyFile, TrustedCAFile string }

// Member settings of the embedded single-member cluster. A snapshot
// restore must give the same ones (RestoreEmbedded).
const (
	embeddedName = "left4me"
	// embeddedPeerURL is recorded in the cluster's membership but never
	// listened on: a single member has no peers to talk to.
	embeddedPeerURL = "http://127.0.0.1:0"
	// embeddedMemberDir is etcd's data dir inside EmbeddedOptions.Dir.
	embeddedMemberDir = "member-data"
)

// StartEmbedded starts a single-member etcd and waits until it serves.
// Close it when done.
func StartEmbedded(ctx context.Context, opts EmbeddedOptions, log logr.Logger) (*Embedded, error) {
	dir := opts.Dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create etcd data dir %s: %w", dir, err)
	}
	cfg, err := embeddedConfig(opts)
	if err != nil {
		return nil, err
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd in %s: %w", dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd failed: %w", err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s not ready after 60s", dir)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
	// The server in this process talks to etcd without gRPC over TCP: the
	// in-process client gives the API about 40% more write throughput.
	client := v3client.New(e.Server)
	emb := &Embedded{etcd: e, Client: client}
	if len(e.Clients) > 0 {
		emb.Endpoint = "https://" + e.Clients[0].Addr().String()
	}
	log.V(1).Info("embedded etcd ready", "dir", dir, "endpoint", emb.Endpoint)
	return emb, nil
}

// embeddedConfig is the member's configuration: no peer listener, and a
// client listener only when asked for, and then only with mutual TLS.
func embeddedConfig(opts EmbeddedOptions) (*embed.Config, error) {
	cfg := embed.NewConfig()
	cfg.Dir = filepath.Join(opts.Dir, embeddedMemberDir)
	cfg.Name = embeddedName
	peerURL, err := url.Parse(embeddedPeerURL)
	if err != nil {
		return nil, err
	}
	cfg.ListenPeerUrls = []url.URL{}
	cfg.AdvertisePeerUrls = []url.URL{*peerURL}
	cfg.InitialCluster = cfg.Name + "=" + embeddedPeerURL
	cfg.ListenClientUrls = []url.URL{}
	// Advertised in the membership only; nothing listens there unless
	// ClientAddr asks for it below.
	cfg.AdvertiseClientUrls = []url.URL{{Scheme: "https", Host: "127.0.0.1:0"}}
	// The JSON gateway would dial the gRPC port with the server's own
	// certificate; nothing here needs it.
	cfg.EnableGRPCGateway = false
	if opts.ClientAddr != "" {
		if err := clientListener(cfg, opts); err != nil {
			return nil, err
		}
	}
	cfg.LogLevel = "error"
	cfg.Logger = "zap"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	// Keep an hour of history so watches can resume; compact automatically.
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "1h"
	return cfg, nil
}

// clientListener adds the optional loopback client listener: TLS only,
// client certificates required.
func clientListener(cfg *embed.Config, opts EmbeddedOptions) error {
	host, _, err := net.SplitHostPort(opts.ClientAddr)
	if err != nil {
		return fmt.Errorf("embedded etcd client address %q: %w", opts.ClientAddr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("embedded etcd client address %q: must be a loopback IP", opts.ClientAddr)
	}
	t := opts.ClientTLS
	if t == nil || t.CertFile == "" || t.KeyFile == "" || t.TrustedCAFile == "" {
		return fmt.Errorf("embedded etcd client address %q: a certificate, key and client CA are required", opts.ClientAddr)
	}
	u := url.URL{Scheme: "https", Host: opts.ClientAddr}
	cfg.ListenClientUrls = []url.URL{u}
	cfg.AdvertiseClientUrls = []url.URL{u}
	cfg.ClientTLSInfo = transport.TLSInfo{CertFile: t.CertFile, KeyFile: t.KeyFile, TrustedCAFile: t.TrustedCAFile, ClientCertAuth: true}
	return nil
}

// FreeLoopbackAddr returns a 127.0.0.1 port that was free a moment ago.
func FreeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Close stops the client and the member.
func (e *Embedded) Close() {
	e.Client.Close()
	e.etcd.Close()
}
