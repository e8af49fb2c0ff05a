package auth

import (
	"strings"
	"testing"
)

func TestPasswordHashIsArgon2idPHCAndVerifies(t *testing.T) {
	h := HashPassword("correct horse battery")
	if !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=3,p=4$") {
		t.Fatalf("hash %q is not an argon2id PHC string with the stated parameters", h)
	}
	if h == HashPassword("correct horse battery") {
		t.Error("two hashes of one password are equal: the salt is not per hash")
	}
	if !PasswordMatches(h, "correct horse battery") {
		t.Error("the right password does not match")
	}
	if PasswordMatches(h, "correct horse batterz") {
		t.Error("a wrong password matches")
	}
}

func TestMalformedOrCostlyHashesNeverMatch(t *testing.T) {
	for _, h := range []string{"", "plain", "$argon2i$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=4194304,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", // 4 GiB: refused before hashing
		"$argon2id$v=19$m=65536,t=3,p=0$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"} {
		if PasswordMatches(h, "anything at all") {
			t.Errorf("%q matched", h)
		}
	}
}
