package accesstoken

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"

	jose "github.com/go-jose/go-jose/v4"
)

// maxKeyFile bounds a key file.
const maxKeyFile = 1 << 20

// LoadKeyFile reads operator-supplied signing keys: PEM private keys
// (PKCS #8, SEC 1 "EC PRIVATE KEY" or PKCS #1 "RSA PRIVATE KEY") or a JWK
// set with private keys. The first key signs; the others stay published so
// tokens an earlier key signed keep verifying. PEM keys get their RFC 7638
// thumbprint as kid; JWKs keep theirs.
func LoadKeyFile(path string) ([]*SigningKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseKeys(b)
}

// ParseKeys parses the contents of a key file (see LoadKeyFile).
func ParseKeys(b []byte) ([]*SigningKey, error) {
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrKeyFile, maxKeyFile)
	}
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		return parseJWKSet(t)
	}
	var keys []*SigningKey
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		var priv any
		var err error
		switch blk.Type {
		case "PRIVATE KEY":
			priv, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		case "EC PRIVATE KEY":
			priv, err = x509.ParseECPrivateKey(blk.Bytes)
		case "RSA PRIVATE KEY":
			priv, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
		default:
			continue // certificates and public keys are not signing keys
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrKeyFile, err)
		}
		k, err := newSigningKey("", algFor(priv), priv)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no private key found", ErrKeyFile)
	}
	return keys, nil
}

func algFor(priv any) string {
	switch p := priv.(type) {
	case ed25519.PrivateKey:
		return EdDSA
	case *ecdsa.PrivateKey:
		if p.Curve == elliptic.P256() {
			return ES256
		}
	case *rsa.PrivateKey:
		return RS256
	case []byte:
		return HS256
	}
	return ""
}

func parseJWKSet(b []byte) ([]*SigningKey, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyFile, err)
	}
	var keys []*SigningKey
	for _, j := range set.Keys {
		if j.Use != "" && j.Use != "sig" {
			continue
		}
		if j.IsPublic() {
			return nil, fmt.Errorf("%w: JWK %q has no private key", ErrKeyFile, j.KeyID)
		}
		alg := j.Algorithm
		if alg == "" {
			alg = algFor(j.Key)
		}
		k, err := newSigningKey(j.KeyID, alg, j.Key)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no signing key in the JWK set", ErrKeyFile)
	}
	return keys, nil
}
