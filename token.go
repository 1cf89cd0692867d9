package sessionkit

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
)

const (
	tokenBytes  = 32
	handleBytes = 16
	// TokenLen is the length of an encoded session token.
	TokenLen = 43
)

// newToken returns a fresh token and its hash. crypto/rand.Read never fails
// on supported platforms (it crashes the program rather than return weak
// bytes), so there is no error to handle.
func newToken() (string, TokenHash) {
	var raw [tokenBytes]byte
	rand.Read(raw[:])
	tok := base64.RawURLEncoding.EncodeToString(raw[:])
	return tok, sha256.Sum256([]byte(tok))
}

// newHandle returns a fresh random session handle.
func newHandle() string {
	var raw [handleBytes]byte
	rand.Read(raw[:])
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

// HashToken checks that token is well formed and returns its hash. The check
// is on length and alphabet only, so it costs the same for every token of
// the right shape and reveals nothing about stored sessions.
func HashToken(token string) (TokenHash, error) {
	if len(token) != TokenLen {
		return TokenHash{}, ErrMalformed
	}
	for i := 0; i < len(token); i++ {
		c := token[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return TokenHash{}, ErrMalformed
		}
	}
	// 43 characters carry 258 bits; the last character must leave the two
	// spare bits zero, or two spellings would name the same 32 bytes.
	if base64.RawURLEncoding.Strict().DecodedLen(TokenLen) != tokenBytes || !canonicalLast(token[TokenLen-1]) {
		return TokenHash{}, ErrMalformed
	}
	// Hash a stack copy: converting the string would allocate on every
	// request.
	var buf [TokenLen]byte
	copy(buf[:], token)
	return sha256.Sum256(buf[:]), nil
}

func canonicalLast(c byte) bool {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := 0; i < len(alphabet); i++ {
		if alphabet[i] == c {
			return i&3 == 0
		}
	}
	return false
}
