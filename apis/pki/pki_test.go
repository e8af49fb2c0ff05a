package pki

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
)

func TestEnsureCreatesAndReuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	b, err := Ensure(dir, []string{"127.0.0.1", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(dir)
	if st.Mode().Perm() != 0o700 {
		t.Fatalf("PKI dir mode %o", st.Mode().Perm())
	}
	for _, f := range []string{CACertFile, CAKeyFile, ServerCertFile, ServerKeyFile} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v err %v", f, st.Mode().Perm(), err)
		}
	}
	leaf, _ := x509.ParseCertificate(b.Server.Certificate[0])
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: b.Pool(), DNSName: "localhost"}); err != nil {
		t.Fatalf("serving cert does not verify for localhost: %v", err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: b.Pool(), DNSName: "127.0.0.1"}); err != nil {
		t.Fatalf("serving cert does not verify for 127.0.0.1: %v", err)
	}
	// A second start reuses everything.
	b2, err := Ensure(dir, []string{"127.0.0.1", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	if string(b2.CAPEM) != string(b.CAPEM) || string(b2.Server.Certificate[0]) != string(b.Server.Certificate[0]) {
		t.Fatal("second start issued new certificates")
	}
	// A new name gets a new serving certificate from the same CA.
	b3, err := Ensure(dir, []string{"127.0.0.1", "localhost", "api.example"})
	if err != nil {
		t.Fatal(err)
	}
	if string(b3.CAPEM) != string(b.CAPEM) {
		t.Fatal("the CA changed")
	}
	leaf, _ = x509.ParseCertificate(b3.Server.Certificate[0])
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: b.Pool(), DNSName: "api.example"}); err != nil {
		t.Fatalf("reissued cert lacks the new name: %v", err)
	}
}
