package verify

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Key is a verification key: a public key, or an HMAC secret for HS256,
// bound to one algorithm.
type Key struct {
	ID        string
	Algorithm string
	Key       any // ed25519.PublicKey, *ecdsa.PublicKey, *rsa.PublicKey or []byte
}

// KeySource finds the verification key for a kid. It returns an error
// wrapping ErrUnknownKey for a kid it does not know, or ErrKeysUnavailable
// when it cannot tell.
type KeySource interface {
	Key(ctx context.Context, kid string) (Key, error)
}

// StaticKeys is a fixed key set.
type StaticKeys map[string]Key

// Key returns the key with kid.
func (s StaticKeys) Key(_ context.Context, kid string) (Key, error) {
	k, ok := s[kid]
	if !ok {
		return Key{}, ErrUnknownKey
	}
	return k, nil
}

// KeysFromJWKS returns the public keys of a JWK set. Every key must have a
// kid and be a public key whose algorithm is known (from alg, or from its
// type for Ed25519 and P-256); keys whose use is not "sig" are skipped.
func KeysFromJWKS(set *jose.JSONWebKeySet) (StaticKeys, error) {
	out := make(StaticKeys, len(set.Keys))
	for _, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if !k.IsPublic() {
			return nil, fmt.Errorf("%w: JWK %q is not a public key", ErrConfig, k.KeyID)
		}
		key, err := keyFromJWK(k)
		if err != nil {
			return nil, err
		}
		out[key.ID] = key
	}
	return out, nil
}

func keyFromJWK(k jose.JSONWebKey) (Key, error) {
	if k.KeyID == "" {
		return Key{}, fmt.Errorf("%w: JWK without kid", ErrConfig)
	}
	alg := k.Algorithm
	switch pub := k.Key.(type) {
	case ed25519.PublicKey:
		if alg == "" {
			alg = "EdDSA"
		}
	case *ecdsa.PublicKey:
		if alg == "" {
			switch pub.Curve {
			case elliptic.P256():
				alg = "ES256"
			case elliptic.P384():
				alg = "ES384"
			}
		}
	case *rsa.PublicKey:
		if pub.Size() < 256 {
			return Key{}, fmt.Errorf("%w: RSA key %q shorter than 2048 bits", ErrConfig, k.KeyID)
		}
	}
	if alg == "" || alg == "HS256" || !publicKey(k.Key) || !algFitsKey(alg, k.Key) {
		return Key{}, fmt.Errorf("%w: JWK %q: algorithm %q does not fit its key", ErrConfig, k.KeyID, alg)
	}
	return Key{ID: k.KeyID, Algorithm: alg, Key: k.Key}, nil
}

func algFitsKey(alg string, key any) bool {
	switch k := key.(type) {
	case ed25519.PublicKey:
		return alg == "EdDSA"
	case *ecdsa.PublicKey:
		return alg == "ES256" && k.Curve == elliptic.P256() || alg == "ES384" && k.Curve == elliptic.P384()
	case *rsa.PublicKey:
		return alg == "RS256"
	case []byte:
		return alg == "HS256"
	}
	return false
}

// RemoteKeys fetches the key set from one JWKS URL. Keys are cached; an
// unknown kid triggers a refetch at most once per MinRefresh, so a flood of
// tokens with random kids cannot turn into a flood of requests, while a key
// published during rotation is picked up within MinRefresh. Keys are only
// ever fetched from URL, never from a location named in a token.
type RemoteKeys struct {
	URL    string
	Client *http.Client // default: a client with a 10s timeout
	// MinRefresh bounds how often the set is fetched. Default 30s.
	MinRefresh time.Duration
	// MaxAge refetches a set this old even without an unknown kid, so
	// retired keys leave the cache. Default 10m.
	MaxAge time.Duration
	// MaxBytes bounds the JWKS document. Default 256 KiB.
	MaxBytes int64
	// Now is the clock. Default time.Now.
	Now func() time.Time

	mu      sync.Mutex
	keys    StaticKeys
	fetched time.Time // last attempt
	loaded  time.Time // last success
}

func (r *RemoteKeys) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Key returns the key with kid, fetching the set when needed.
func (r *RemoteKeys) Key(ctx context.Context, kid string) (Key, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	minRefresh, maxAge := r.MinRefresh, r.MaxAge
	if minRefresh <= 0 {
		minRefresh = 30 * time.Second
	}
	if maxAge <= 0 {
		maxAge = 10 * time.Minute
	}
	now := r.now()
	k, known := r.keys[kid]
	stale := r.keys == nil || now.Sub(r.loaded) >= maxAge
	if known && !stale {
		return k, nil
	}
	if r.keys == nil || now.Sub(r.fetched) >= minRefresh {
		r.fetched = now
		keys, err := r.fetch(ctx)
		if err == nil {
			r.keys, r.loaded = keys, now
		} else if r.keys == nil {
			return Key{}, err
		}
		// On a failed refetch the cached set stays in use: a JWKS outage
		// must not reject tokens signed by known keys.
	}
	if k, ok := r.keys[kid]; ok {
		return k, nil
	}
	return Key{}, ErrUnknownKey
}

func (r *RemoteKeys) fetch(ctx context.Context) (StaticKeys, error) {
	client := r.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	max := r.MaxBytes
	if max <= 0 {
		max = 256 << 10
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeysUnavailable, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeysUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: JWKS answered %s", ErrKeysUnavailable, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeysUnavailable, err)
	}
	if int64(len(body)) > max {
		return nil, fmt.Errorf("%w: JWKS larger than %d bytes", ErrKeysUnavailable, max)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("%w: JWKS: %v", ErrKeysUnavailable, err)
	}
	keys, err := KeysFromJWKS(&set)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeysUnavailable, err)
	}
	return keys, nil
}
