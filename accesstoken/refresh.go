package accesstoken

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"

	"github.com/sessionkit/sessionkit"
)

const (
	secretBytes = 32
	secretLen   = 43 // base64url of 32 bytes
	maxHandle   = 64
	// MaxRefreshTokenLen bounds a refresh token before any parsing.
	MaxRefreshTokenLen = maxHandle + 1 + secretLen
)

var b64 = base64.RawURLEncoding.Strict()

// refreshToken is a parsed "<handle>.<secret>".
type refreshToken struct {
	handle string
	secret []byte
}

// A secret is 16 random bytes followed by the first 16 bytes of
// HMAC-SHA256(family key, handle || random). The random half makes each token
// unguessable; the MAC half lets the server recognise any token it ever
// issued for the family, however long ago it was retired, without storing
// it. The family key cannot make a token acceptable: only a secret that
// hashes to the stored current hash is.
const (
	randomBytes    = 16
	familyKeyBytes = 32
)

// newFamilyKey returns the key of a new refresh-token family.
func newFamilyKey() []byte {
	k := make([]byte, familyKeyBytes)
	rand.Read(k)
	return k
}

// newRefreshToken returns a fresh token of the family keyed by key for the
// session with handle.
func newRefreshToken(handle string, key []byte) (string, refreshToken) {
	secret := make([]byte, secretBytes)
	rand.Read(secret[:randomBytes])
	copy(secret[randomBytes:], familyMAC(key, handle, secret[:randomBytes]))
	return handle + "." + b64.EncodeToString(secret), refreshToken{handle, secret}
}

func familyMAC(key []byte, handle string, random []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(handle))
	m.Write(random)
	return m.Sum(nil)[:secretBytes-randomBytes]
}

// issuedBy reports whether t was issued in the family keyed by key.
func (t refreshToken) issuedBy(key []byte) bool {
	if len(key) == 0 {
		return false
	}
	return hmac.Equal(t.secret[randomBytes:], familyMAC(key, t.handle, t.secret[:randomBytes]))
}

// parseRefreshToken checks the shape of s. The check is on length and
// alphabet only and costs the same for any token of the right shape.
func parseRefreshToken(s string) (refreshToken, bool) {
	if len(s) > MaxRefreshTokenLen {
		return refreshToken{}, false
	}
	handle, sec, ok := strings.Cut(s, ".")
	if !ok || handle == "" || len(handle) > maxHandle || len(sec) != secretLen {
		return refreshToken{}, false
	}
	for i := 0; i < len(handle); i++ {
		c := handle[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return refreshToken{}, false
		}
	}
	secret, err := b64.DecodeString(sec)
	if err != nil || len(secret) != secretBytes || b64.EncodeToString(secret) != sec {
		return refreshToken{}, false
	}
	return refreshToken{handle, secret}, true
}

func (t refreshToken) hash() sessionkit.TokenHash { return sha256.Sum256(t.secret) }

func (t refreshToken) String() string { return t.handle + "." + b64.EncodeToString(t.secret) }

func hashEqual(a, b sessionkit.TokenHash) bool {
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

const successorInfo = "sessionkit accesstoken refresh successor v1"

// successorAEAD derives the cipher that seals a successor from the secret
// of the token it replaced. Only a holder of that token can open it.
func successorAEAD(prev refreshToken) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, prev.secret, []byte(prev.handle), successorInfo, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// sealSuccessor encrypts next's secret under a key derived from prev; the
// handle is associated data.
func sealSuccessor(prev, next refreshToken) ([]byte, error) {
	aead, err := successorAEAD(prev)
	if err != nil {
		return nil, err
	}
	out := make([]byte, aead.NonceSize(), aead.NonceSize()+secretBytes+aead.Overhead())
	rand.Read(out)
	return aead.Seal(out, out, next.secret, []byte(prev.handle)), nil
}

// openSuccessor recovers the successor sealed by sealSuccessor.
func openSuccessor(prev refreshToken, sealed []byte) (refreshToken, bool) {
	aead, err := successorAEAD(prev)
	if err != nil || len(sealed) < aead.NonceSize() {
		return refreshToken{}, false
	}
	n := aead.NonceSize()
	secret, err := aead.Open(nil, sealed[:n], sealed[n:], []byte(prev.handle))
	if err != nil || len(secret) != secretBytes {
		return refreshToken{}, false
	}
	return refreshToken{prev.handle, secret}, true
}
