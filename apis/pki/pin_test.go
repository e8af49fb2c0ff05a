package pki

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func caOf(t *testing.T, b *Bundle) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(b.CAPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// serveTLS serves HTTPS on loopback with the chain given and counts the
// requests that reach it (DiscoverCA must send none).
func serveTLS(t *testing.T, cert tls.Certificate) (url string, requests *int) {
	t.Helper()
	n := 0
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { n++ }))
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	// The handshakes DiscoverCA ends without a request, and those it
	// refuses, are no news.
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.StartTLS()
	t.Cleanup(s.Close)
	return s.URL, &n
}

// TestCAHashIsOpenSSLs: the pin is what the documented openssl pipeline
// prints on the server, so an operator can compute it without l4mctl.
func TestCAHashIsOpenSSLs(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("no openssl on this machine")
	}
	dir := t.TempDir()
	b, err := Ensure(dir, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sh", "-c", "openssl x509 -in "+filepath.Join(dir, CACertFile)+" -pubkey -noout | openssl pkey -pubin -outform der | sha256sum").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := CAHashPrefix + strings.Fields(string(out))[0]
	if got := CAHash(caOf(t, b)); got != want {
		t.Fatalf("CAHash = %s, openssl says %s", got, want)
	}
	hashes, err := CAHashesPEM(b.CAPEM)
	if err != nil || len(hashes) != 1 || hashes[0] != want {
		t.Fatalf("CAHashesPEM = %v, %v; want [%s]", hashes, err, want)
	}
	if _, err := CAHashesPEM([]byte("not a certificate")); err == nil {
		t.Fatal("CAHashesPEM accepted data with no certificate")
	}
}

func TestParseCAHash(t *testing.T) {
	const lower = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	if got, err := ParseCAHash(strings.ToUpper(lower[:7]) + strings.ToUpper(lower[7:])); err == nil {
		t.Fatalf("an upper-case SHA256: prefix was accepted: %s", got)
	}
	if got, err := ParseCAHash("sha256:" + strings.ToUpper(lower[7:])); err != nil || got != lower {
		t.Fatalf("upper-case hex = %q, %v; want %s", got, err, lower)
	}
	for _, bad := range []string{"", lower[7:], "sha1:0123", lower[:70], lower + "00", "sha256:" + strings.Repeat("g", 64)} {
		if _, err := ParseCAHash(bad); err == nil || !strings.Contains(err.Error(), "sha256:") {
			t.Errorf("ParseCAHash(%q) = %v; want an error showing the format", bad, err)
		}
	}
}

// TestServedChainHoldsCA: the serving certificate is followed by the CA,
// which is what a joining node pins.
func TestServedChainHoldsCA(t *testing.T) {
	b, err := Ensure(t.TempDir(), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Server.Certificate) != 2 || !bytes.Equal(b.Server.Certificate[1], caOf(t, b).Raw) {
		t.Fatalf("served chain has %d certificates; want the serving certificate and the CA", len(b.Server.Certificate))
	}
}

func TestDiscoverCA(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	genuine, err := Ensure(dir, []string{"127.0.0.1", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	genuineCA := caOf(t, genuine)
	pin := CAHash(genuineCA)
	url, requests := serveTLS(t, genuine.Server)

	t.Run("the pinned CA", func(t *testing.T) {
		ca, err := DiscoverCA(ctx, url, pin)
		if err != nil {
			t.Fatal(err)
		}
		if !ca.Equal(genuineCA) {
			t.Fatalf("DiscoverCA returned %s, not the server's CA", ca.Subject)
		}
		// By name as well as by address: the certificate covers localhost.
		if _, err := DiscoverCA(ctx, strings.Replace(url, "127.0.0.1", "localhost", 1), pin); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("another hash", func(t *testing.T) {
		other := CAHashPrefix + strings.Repeat("ab", 32)
		_, err := DiscoverCA(ctx, url, other)
		var mm *CAMismatchError
		if !errors.As(err, &mm) || mm.Presented != pin || mm.Pinned != other || !errors.Is(err, ErrNotTrusted) {
			t.Fatalf("err = %v; want a mismatch naming %s and %s", err, pin, other)
		}
		if !strings.Contains(err.Error(), pin) || !strings.Contains(err.Error(), other) {
			t.Fatalf("error %q should name both hashes", err)
		}
	})
	t.Run("no pin takes the presented CA", func(t *testing.T) {
		ca, err := DiscoverCA(ctx, url, "")
		if err != nil || !ca.Equal(genuineCA) {
			t.Fatalf("DiscoverCA without a pin = %v, %v", ca, err)
		}
	})

	// Someone in the middle with a CA of their own, who also sends the
	// genuine CA after a certificate that CA never signed.
	mitm, err := Ensure(t.TempDir(), []string{"127.0.0.1", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("a certificate the pinned CA did not sign", func(t *testing.T) {
		forged := tls.Certificate{Certificate: [][]byte{mitm.Server.Certificate[0], genuineCA.Raw}, PrivateKey: mitm.Server.PrivateKey}
		url, _ := serveTLS(t, forged)
		_, err := DiscoverCA(ctx, url, pin)
		if !errors.Is(err, ErrNotTrusted) || !strings.Contains(err.Error(), "does not verify") {
			t.Fatalf("err = %v; want the server's certificate refused", err)
		}
	})
	t.Run("a CA of its own", func(t *testing.T) {
		url, _ := serveTLS(t, mitm.Server)
		_, err := DiscoverCA(ctx, url, pin)
		var mm *CAMismatchError
		if !errors.As(err, &mm) || mm.Presented != CAHash(caOf(t, mitm)) {
			t.Fatalf("err = %v; want a mismatch naming the impostor's CA", err)
		}
	})
	t.Run("the pinned CA's certificate for another host", func(t *testing.T) {
		certFile, keyFile, err := IssueFiles(dir, "elsewhere", []string{"elsewhere.example.org"}, true)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		cert.Certificate = append(cert.Certificate, genuineCA.Raw)
		url, _ := serveTLS(t, cert)
		_, err = DiscoverCA(ctx, url, pin)
		if !errors.Is(err, ErrNotTrusted) || !strings.Contains(err.Error(), "127.0.0.1") {
			t.Fatalf("err = %v; want the certificate refused for 127.0.0.1", err)
		}
	})
	t.Run("no CA in the chain", func(t *testing.T) {
		alone := tls.Certificate{Certificate: genuine.Server.Certificate[:1], PrivateKey: genuine.Server.PrivateKey}
		url, _ := serveTLS(t, alone)
		_, err := DiscoverCA(ctx, url, pin)
		if !errors.Is(err, ErrNotTrusted) || !strings.Contains(err.Error(), "no CA certificate") {
			t.Fatalf("err = %v; want the missing CA named", err)
		}
	})
	t.Run("nobody there", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		_, err = DiscoverCA(ctx, "https://"+addr, pin)
		if err == nil || errors.Is(err, ErrNotTrusted) {
			t.Fatalf("err = %v; want a connection error, not a trust one", err)
		}
	})
	t.Run("not https", func(t *testing.T) {
		for _, u := range []string{"http://127.0.0.1:6443", "127.0.0.1:6443", "https://"} {
			if _, err := DiscoverCA(ctx, u, pin); err == nil || !strings.Contains(err.Error(), "https URL") {
				t.Errorf("DiscoverCA(%q) = %v; want an https URL asked for", u, err)
			}
		}
	})
	if *requests != 0 {
		t.Fatalf("%d HTTP requests reached the server; DiscoverCA must send none", *requests)
	}
}
