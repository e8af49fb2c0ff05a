package server

import (
	"context"
	"crypto/tls"
	"path/filepath"

	"github.com/left4me/left4me/apis/pki"
	"github.com/left4me/left4me/apis/storage"
)

// EtcdPKIDir is where, under the PKI directory, the embedded etcd's own CA
// and certificates live when its client port is open. It is a CA of its
// own: a certificate the API's CA signs for anything else never opens etcd.
const EtcdPKIDir = "etcd"

// startEmbedded starts the embedded etcd: no listener at all, or with
// EmbeddedEtcdClientAddr a loopback port that takes only clients holding a
// certificate from <data-dir>/pki/etcd (root-only files).
func (s *Server) startEmbedded(ctx context.Context, opts Options) error {
	eo := storage.EmbeddedOptions{Dir: filepath.Join(opts.DataDir, "etcd")}
	if opts.EmbeddedEtcdClientAddr != "" {
		dir := filepath.Join(opts.DataDir, "pki", EtcdPKIDir)
		b, err := pki.Ensure(dir, []string{"127.0.0.1", "::1", "localhost"})
		if err != nil {
			return err
		}
		eo.ClientAddr = opts.EmbeddedEtcdClientAddr
		eo.ClientTLS = &storage.EmbeddedTLS{
			CertFile: filepath.Join(dir, pki.ServerCertFile), KeyFile: filepath.Join(dir, pki.ServerKeyFile),
			TrustedCAFile: filepath.Join(dir, pki.CACertFile),
		}
		s.EtcdClientTLS = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: b.Pool(), Certificates: []tls.Certificate{b.Client}}
	}
	e, err := storage.StartEmbedded(ctx, eo, opts.Log)
	if err != nil {
		return err
	}
	s.embedded, s.Etcd = e, e.Client
	if e.Endpoint != "" {
		s.EtcdEndpoints = []string{e.Endpoint}
	}
	return nil
}
