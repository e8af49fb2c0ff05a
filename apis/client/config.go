package client

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"

	"sigs.k8s.io/yaml"
)

// File is the client config file l4mctl reads and l4m-server writes for
// its admin at first start:
//
//	server: https://127.0.0.1:6443
//	token: l4m.<id>.<secret>
//	certificateAuthorityData: |
//	  -----BEGIN CERTIFICATE-----
//	namespace: default
type File struct {
	Server string `json:"server"`
	Token  string `json:"token,omitempty"`
	// CertificateAuthority is a path to the CA bundle; CertificateAuthorityData
	// is the bundle itself (PEM). Without either, the system roots are used.
	CertificateAuthority     string `json:"certificateAuthority,omitempty"`
	CertificateAuthorityData string `json:"certificateAuthorityData,omitempty"`
	Namespace                string `json:"namespace,omitempty"`
}

// LoadFile reads and strictly decodes a config file.
func LoadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f := &File{}
	if err := yaml.UnmarshalStrict(data, f); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return f, nil
}

// Config turns the file into a client Config.
func (f *File) Config() (Config, error) {
	cfg := Config{Server: f.Server, Token: f.Token, CAData: []byte(f.CertificateAuthorityData)}
	if f.CertificateAuthority != "" {
		data, err := os.ReadFile(f.CertificateAuthority)
		if err != nil {
			return cfg, fmt.Errorf("certificateAuthority: %w", err)
		}
		cfg.CAData = data
	}
	return cfg, nil
}

// transport builds the HTTP transport: TLS verified against CAData (or the
// system roots), and enough idle connections for concurrent callers.
func transport(cfg Config) (*http.Transport, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	// Controllers and benchmarks send many requests at once; Go's default
	// of two idle connections per host would reconnect for most of them.
	t.MaxIdleConnsPerHost = 64
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(cfg.CAData) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(cfg.CAData) {
			return nil, fmt.Errorf("the certificate authority data holds no PEM certificate")
		}
		tc.RootCAs = pool
	}
	t.TLSClientConfig = tc
	return t, nil
}
