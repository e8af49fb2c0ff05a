// Package auth decides who is asking (bearer tokens, stored hashed) and what
// they may do (admin, editor and viewer role bindings, and the node role
// that, like Kubernetes' NodeRestriction, confines an agent to its own Node
// and the Instances bound to it).
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// tokenPrefix marks left4me bearer tokens so that secret scanners and
// humans recognise them: l4m.<id>.<secret>.
const tokenPrefix = "l4m."

const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// NewToken returns a fresh token ID, the whole bearer token, and the hash
// to store.
func NewToken() (id, bearer, hash string) {
	b := make([]byte, 10)
	rand.Read(b)
	idb := make([]byte, len(b))
	for i, c := range b {
		idb[i] = idAlphabet[int(c)%len(idAlphabet)]
	}
	// Token IDs are object names: they must start with a letter.
	idb[0] = idAlphabet[int(b[0])%26]
	secret := make([]byte, 32)
	rand.Read(secret)
	sec := base64.RawURLEncoding.EncodeToString(secret)
	id = string(idb)
	return id, tokenPrefix + id + "." + sec, HashSecret(sec)
}

// HashSecret is what is stored for a secret. The secret has 256 random
// bits, so a plain SHA-256 cannot be brute-forced; no slow hash is needed.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// ParseBearer splits "l4m.<id>.<secret>".
func ParseBearer(token string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, ".")
	if !ok || id == "" || len(secret) < 32 || len(id) > 63 {
		return "", "", false
	}
	return id, secret, true
}

// secretMatches compares in constant time.
func secretMatches(secret, hash string) bool {
	return subtle.ConstantTimeCompare([]byte(HashSecret(secret)), []byte(hash)) == 1
}
