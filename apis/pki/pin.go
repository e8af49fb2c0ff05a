package pki

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// CAHashPrefix starts every CA hash: the hash's algorithm, as kubeadm's
// --discovery-token-ca-cert-hash writes it.
const CAHashPrefix = "sha256:"

// CAHash is the pin a joining node checks the server's CA against:
// "sha256:" and the lowercase hex SHA-256 of the certificate's DER-encoded
// SubjectPublicKeyInfo, kubeadm's format. It hashes the public key, not
// the certificate, so a CA certificate issued again for the same key (a
// longer validity, say) keeps its pin. On the server:
//
//	openssl x509 -in ca.crt -pubkey -noout | openssl pkey -pubin -outform der | sha256sum
func CAHash(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return CAHashPrefix + hex.EncodeToString(sum[:])
}

// CAHashesPEM returns the CAHash of every certificate in a PEM bundle, in
// order (a bundle with none is an error: there is nothing to pin).
func CAHashesPEM(data []byte) ([]string, error) {
	var hashes []string
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d of the bundle: %w", len(hashes)+1, err)
		}
		hashes = append(hashes, CAHash(cert))
	}
	if len(hashes) == 0 {
		return nil, errors.New("the certificate authority data holds no PEM certificate")
	}
	return hashes, nil
}

// ParseCAHash checks that s is a CA hash (sha256: and 64 hex digits) and
// returns it in CAHash's form (lowercase), so hashes compare as strings.
func ParseCAHash(s string) (string, error) {
	hexPart, ok := strings.CutPrefix(strings.TrimSpace(s), CAHashPrefix)
	if !ok {
		return "", fmt.Errorf("CA hash %q: want sha256:<64 hex digits>, the SHA-256 of the CA's public key (`l4mctl config ca-hash` prints it)", s)
	}
	b, err := hex.DecodeString(hexPart)
	if err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("CA hash %q: want sha256: and 64 hex digits (`l4mctl config ca-hash` prints it)", s)
	}
	return CAHashPrefix + hex.EncodeToString(b), nil
}

// ErrNotTrusted is wrapped by every DiscoverCA error that is about what
// the server presented (the pin, the chain, the name), as opposed to not
// reaching it: another server might be reachable, but a server that fails
// the pin must end the join.
var ErrNotTrusted = errors.New("server not trusted")

// CAMismatchError is DiscoverCA's answer when no CA certificate the server
// presents has the pinned hash.
type CAMismatchError struct {
	// Presented is the hash of the outermost CA certificate the server sent.
	Presented string
	// Pinned is the hash the caller asked for.
	Pinned string
}

func (e *CAMismatchError) Error() string {
	return fmt.Sprintf("the server's CA is %s, not %s", e.Presented, e.Pinned)
}

// Unwrap makes errors.Is(err, ErrNotTrusted) hold.
func (e *CAMismatchError) Unwrap() error { return ErrNotTrusted }

// DiscoverCA is a joining node's first contact: it dials server (an https
// URL) without trusting anything yet, takes the CA certificate from the
// chain the server presents after its own (l4m-server's generated
// certificate sends its CA; an operator's --tls-cert-file must hold the
// chain up to it), checks that its CAHash is pin, and verifies the
// server's certificate against that CA for the URL's host name. Only then
// is the CA returned, for the caller to trust from now on. Someone in the
// middle can present any chain, but not one whose CA has the pinned key and
// signed a certificate for this host, without holding the CA's key.
//
// pin "" skips the hash check (kubeadm's unsafe-skip-ca-verification): the
// outermost CA certificate presented is returned; the caller should say so,
// with its hash.
//
// It sends nothing but a TLS handshake: no token leaves before the CA is
// checked.
func DiscoverCA(ctx context.Context, server, pin string) (*x509.Certificate, error) {
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" {
		return nil, fmt.Errorf("server %q: want an https URL such as https://api.example.org:6443", server)
	}
	host, addr := u.Hostname(), u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(host, "443")
	}
	// Nothing is verified by the handshake: the checks below are the whole
	// of it. The name is still sent, for a server with several certificates.
	tc := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
	if net.ParseIP(host) == nil {
		tc.ServerName = host
	}
	d := &tls.Dialer{Config: tc}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("reach %s: %w", server, err)
	}
	chain := conn.(*tls.Conn).ConnectionState().PeerCertificates
	conn.Close()
	ca, err := pickCA(chain, pin)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", server, err)
	}
	if err := verifyLeaf(chain, ca, host); err != nil {
		return nil, fmt.Errorf("%s: %w", server, err)
	}
	return ca, nil
}

// pickCA finds the CA certificate in the chain after the leaf whose hash
// is pin, or the outermost one when pin is "".
func pickCA(chain []*x509.Certificate, pin string) (*x509.Certificate, error) {
	if len(chain) == 0 {
		return nil, fmt.Errorf("%w: it presented no certificate", ErrNotTrusted)
	}
	if len(chain) == 1 {
		return nil, fmt.Errorf("%w: it presented its own certificate alone, no CA certificate after it, so there is no CA to check against the hash (an l4m-server that generates its certificate sends its CA; a --tls-cert-file must hold the chain up to the CA)", ErrNotTrusted)
	}
	outer := chain[len(chain)-1]
	var ca *x509.Certificate
	if pin == "" {
		ca = outer
	} else {
		for _, c := range chain[1:] {
			if CAHash(c) == pin {
				ca = c
				break
			}
		}
		if ca == nil {
			return nil, &CAMismatchError{Presented: CAHash(outer), Pinned: pin}
		}
	}
	if !ca.BasicConstraintsValid || !ca.IsCA {
		return nil, fmt.Errorf("%w: the certificate %s it presents (%q) is not a CA certificate", ErrNotTrusted, CAHash(ca), ca.Subject.String())
	}
	// The pin covers the key; a self-signed CA's own signature covers the
	// rest (validity, constraints), so nobody relaying the handshake can
	// hand over the right key in a certificate of their making.
	if bytes.Equal(ca.RawIssuer, ca.RawSubject) {
		if err := ca.CheckSignatureFrom(ca); err != nil {
			return nil, fmt.Errorf("%w: the CA certificate %s is not signed by its own key: %v", ErrNotTrusted, CAHash(ca), err)
		}
	}
	return ca, nil
}

// verifyLeaf checks the server's own certificate the way a TLS client
// trusting ca alone would: a valid chain to ca (through the other
// certificates presented), for serving, naming host.
func verifyLeaf(chain []*x509.Certificate, ca *x509.Certificate, host string) error {
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		if c != ca {
			inter.AddCert(c)
		}
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: host}); err != nil {
		return fmt.Errorf("%w: its certificate does not verify against the CA %s: %w", ErrNotTrusted, CAHash(ca), err)
	}
	return nil
}

// EncodeCertPEM is a certificate as the PEM a config's
// certificateAuthorityData holds.
func EncodeCertPEM(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}
