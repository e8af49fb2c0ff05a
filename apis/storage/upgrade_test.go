package storage

import (
	"context"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"
)

// TestStartsOnDataDirOfListeningMember: a data dir written by a member
// that listened on loopback ports (before the embedded etcd stopped
// listening) starts as it is, with its keys.
func TestStartsOnDataDirOfListeningMember(t *testing.T) {
	dir := t.TempDir()
	clientAddr, err := FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	peerAddr, err := FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	cfg := embed.NewConfig()
	cfg.Dir = filepath.Join(dir, embeddedMemberDir)
	cfg.Name = embeddedName
	cu, pu := url.URL{Scheme: "http", Host: clientAddr}, url.URL{Scheme: "http", Host: peerAddr}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	old, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-old.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		t.Fatal("old-style member not ready")
	}
	c := v3client.New(old.Server)
	if _, err := c.Put(context.Background(), "/left4me/namespaces/default", "{}"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	old.Close()

	e, err := StartEmbedded(context.Background(), EmbeddedOptions{Dir: dir}, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	resp, err := e.Client.Get(context.Background(), "/left4me/namespaces/default")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("key of the old member: %v %v", resp, err)
	}
}
