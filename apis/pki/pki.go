// Package pki creates the API server's certificate authority and serving
// certificate on first start, so that l4m-server serves only HTTPS without
// an operator running openssl. Keys are written 0600 in a 0700 directory.
// It also holds the CA's pin (CAHash) and the pinned first contact a
// joining node makes (DiscoverCA), so that l4mctl, which prints the pin,
// and l4m-node, which checks it, hash the same way.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// File names inside the PKI directory.
const (
	CACertFile     = "ca.crt"
	CAKeyFile      = "ca.key"
	ServerCertFile = "server.crt"
	ServerKeyFile  = "server.key"
)

// Validity of what this package issues.
const (
	caValidity     = 10 * 365 * 24 * time.Hour
	serverValidity = 2 * 365 * 24 * time.Hour
)

// Bundle is a CA and a serving certificate signed by it.
type Bundle struct {
	Dir    string
	CAPEM  []byte
	Server tls.Certificate
	// Client is the API server's client certificate (CN l4m-server), which
	// node agents require before they serve logs.
	Client tls.Certificate
}

// ClientCommonName is the subject node agents accept as the API server.
const ClientCommonName = "l4m-server"

// File names of the API server's client certificate.
const (
	ClientCertFile = "apiserver-client.crt"
	ClientKeyFile  = "apiserver-client.key"
)

// Ensure loads the bundle from dir, creating the CA and the serving
// certificate when they are missing. A serving certificate that lacks one of
// hosts (names or IPs) is issued again by the same CA, so clients that trust
// the CA keep working.
func Ensure(dir string, hosts []string) (*Bundle, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create PKI dir %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("restrict PKI dir %s: %w", dir, err)
	}
	caCert, caKey, caPEM, err := loadOrCreateCA(dir)
	if err != nil {
		return nil, err
	}
	certPath, keyPath := filepath.Join(dir, ServerCertFile), filepath.Join(dir, ServerKeyFile)
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil || !covers(cert, hosts) || !signedBy(cert, caCert) {
		if err := issue(caCert, caKey, hosts, "l4m-server", x509.ExtKeyUsageServerAuth, certPath, keyPath); err != nil {
			return nil, err
		}
		if cert, err = tls.LoadX509KeyPair(certPath, keyPath); err != nil {
			return nil, fmt.Errorf("load serving certificate: %w", err)
		}
	}
	// The CA follows the serving certificate in the chain the server
	// presents, as is usual: a joining node takes it from the handshake and
	// checks it against the hash it was given (DiscoverCA); clients that
	// already trust the CA ignore the extra certificate.
	cert.Certificate = append(cert.Certificate, caCert.Raw)
	ccPath, ckPath := filepath.Join(dir, ClientCertFile), filepath.Join(dir, ClientKeyFile)
	client, err := tls.LoadX509KeyPair(ccPath, ckPath)
	if err != nil || !covers(client, nil) || !signedBy(client, caCert) {
		if err := issue(caCert, caKey, nil, ClientCommonName, x509.ExtKeyUsageClientAuth, ccPath, ckPath); err != nil {
			return nil, err
		}
		if client, err = tls.LoadX509KeyPair(ccPath, ckPath); err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
	}
	return &Bundle{Dir: dir, CAPEM: caPEM, Server: cert, Client: client}, nil
}

func loadOrCreateCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	certPEM, err := os.ReadFile(certPath)
	if errors.Is(err, fs.ErrNotExist) {
		return createCA(certPath, keyPath)
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read CA: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read CA key: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("load CA from %s: %w", dir, err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, nil, fmt.Errorf("CA key in %s is not ECDSA", keyPath)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, nil, fmt.Errorf("parse CA: %w", err)
	}
	return cert, key, certPEM, nil
}

func createCA(certPath, keyPath string) (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "left4me CA", Organization: []string{"left4me"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("create CA: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := writeKey(keyPath, key); err != nil {
		return nil, nil, nil, err
	}
	if err := writeFile(certPath, certPEM); err != nil {
		return nil, nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, certPEM, err
}

// IssueFiles signs a certificate for hosts with the CA in dir (made by
// Ensure) and writes name.crt and name.key there. serverAndClient sets both
// usages (what etcd wants of its own certificate); otherwise it is a client
// certificate.
func IssueFiles(dir, name string, hosts []string, serverAndClient bool) (certFile, keyFile string, err error) {
	caCert, caKey, _, err := loadOrCreateCA(dir)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	usages := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if serverAndClient {
		usages = append(usages, x509.ExtKeyUsageServerAuth)
	}
	return certFile, keyFile, issueUsages(caCert, caKey, hosts, name, usages, certFile, keyFile)
}

func issue(ca *x509.Certificate, caKey *ecdsa.PrivateKey, hosts []string, cn string, usage x509.ExtKeyUsage, certPath, keyPath string) error {
	return issueUsages(ca, caKey, hosts, cn, []x509.ExtKeyUsage{usage}, certPath, keyPath)
}

func issueUsages(ca *x509.Certificate, caKey *ecdsa.PrivateKey, hosts []string, cn string, usages []x509.ExtKeyUsage, certPath, keyPath string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"left4me"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(serverValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usages,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("issue certificate %s: %w", cn, err)
	}
	if err := writeKey(keyPath, key); err != nil {
		return err
	}
	return writeFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// covers reports whether the certificate names every host.
func covers(cert tls.Certificate, hosts []string) bool {
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil || time.Until(leaf.NotAfter) < 30*24*time.Hour {
		return false
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
				return false
			}
		} else if h != "" && !slices.Contains(leaf.DNSNames, h) {
			return false
		}
	}
	return true
}

func signedBy(cert tls.Certificate, ca *x509.Certificate) bool {
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	return err == nil && leaf.CheckSignatureFrom(ca) == nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return writeFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
}

// writeFile writes 0600 through a temp file and a rename, so a crash never
// leaves half a key.
func writeFile(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// WriteFile0600 writes a secret file (such as the admin client config)
// with mode 0600, atomically.
func WriteFile0600(path string, data []byte) error { return writeFile(path, data) }

// Pool returns a cert pool holding the CA.
func (b *Bundle) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(b.CAPEM)
	return p
}
