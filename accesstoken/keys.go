package accesstoken

import (
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/accesstoken/verify"
)

// Algorithms.
const (
	EdDSA = "EdDSA"
	ES256 = "ES256"
	RS256 = "RS256"
	HS256 = "HS256"
)

// Errors about keys.
var (
	ErrNoSigningKey = errors.New("accesstoken: no signing key")
	ErrKeyFile      = errors.New("accesstoken: bad key file")
	ErrKeyDecrypt   = errors.New("accesstoken: stored keys cannot be decrypted with the key-encryption key")
)

// SigningKey is one key of a KeyRing with its schedule: it is published in
// the JWKS from PublishAt, signs from SignFrom until SignUntil (zero: until
// a successor takes over), and leaves the JWKS at ExpireAt (zero: never),
// once every token it signed has expired.
type SigningKey struct {
	ID        string
	Algorithm string
	Private   any // ed25519.PrivateKey, *ecdsa.PrivateKey, *rsa.PrivateKey, or []byte for HS256

	PublishAt time.Time
	SignFrom  time.Time
	SignUntil time.Time
	ExpireAt  time.Time

	once   sync.Once
	signer jose.Signer
	err    error
}

// Signer returns the go-jose signer of k, which sets typ "at+jwt" and kid.
func (k *SigningKey) Signer() (jose.Signer, error) {
	k.once.Do(func() {
		opts := (&jose.SignerOptions{}).WithType("at+jwt")
		k.signer, k.err = jose.NewSigner(jose.SigningKey{
			Algorithm: jose.SignatureAlgorithm(k.Algorithm),
			Key:       jose.JSONWebKey{Key: k.Private, KeyID: k.ID, Algorithm: k.Algorithm},
		}, opts)
	})
	return k.signer, k.err
}

// Public returns the verification key of k.
func (k *SigningKey) Public() verify.Key {
	var pub any
	switch p := k.Private.(type) {
	case []byte:
		pub = p
	case crypto.Signer:
		pub = p.Public()
	}
	return verify.Key{ID: k.ID, Algorithm: k.Algorithm, Key: pub}
}

// JWK returns the public JWK of k. HS256 secrets have none.
func (k *SigningKey) JWK() (jose.JSONWebKey, bool) {
	if k.Algorithm == HS256 {
		return jose.JSONWebKey{}, false
	}
	return jose.JSONWebKey{Key: k.Public().Key, KeyID: k.ID, Algorithm: k.Algorithm, Use: "sig"}, true
}

// GenerateKey returns a fresh key for alg with a kid that is its RFC 7638
// thumbprint (random for HS256).
func GenerateKey(alg string) (*SigningKey, error) {
	var priv any
	var err error
	switch alg {
	case EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case HS256:
		b := make([]byte, 32)
		rand.Read(b)
		priv = b
	default:
		return nil, fmt.Errorf("accesstoken: unsupported algorithm %q", alg)
	}
	if err != nil {
		return nil, err
	}
	return newSigningKey("", alg, priv)
}

func newSigningKey(kid, alg string, priv any) (*SigningKey, error) {
	k := &SigningKey{ID: kid, Algorithm: alg, Private: priv}
	if !algFits(alg, priv) {
		return nil, fmt.Errorf("%w: algorithm %q does not fit a %T", ErrKeyFile, alg, priv)
	}
	if kid == "" {
		if alg == HS256 {
			b := make([]byte, 12)
			rand.Read(b)
			k.ID = base64.RawURLEncoding.EncodeToString(b)
		} else {
			jwk := jose.JSONWebKey{Key: k.Public().Key}
			tp, err := jwk.Thumbprint(crypto.SHA256)
			if err != nil {
				return nil, err
			}
			k.ID = base64.RawURLEncoding.EncodeToString(tp)
		}
	}
	return k, nil
}

func algFits(alg string, priv any) bool {
	switch p := priv.(type) {
	case ed25519.PrivateKey:
		return alg == EdDSA
	case *ecdsa.PrivateKey:
		return alg == ES256 && p.Curve == elliptic.P256()
	case *rsa.PrivateKey:
		return alg == RS256 && p.Size() >= 256
	case []byte:
		return alg == HS256 && len(p) >= 32
	}
	return false
}

// KeyRingConfig configures a KeyRing.
type KeyRingConfig struct {
	// Algorithm of generated keys. Default EdDSA.
	Algorithm string
	// RotationPeriod is how long a key signs before its successor takes
	// over. Default 24h.
	RotationPeriod time.Duration
	// PrePublish is how long a new key is in the JWKS before it signs, so
	// verifiers that cache the JWKS know it by then. Default 10m; it must
	// exceed the verifiers' JWKS refresh interval.
	PrePublish time.Duration
	// TokenLifetime is the longest access token lifetime plus leeway; a
	// retired key stays published this long after it last signed. Default
	// 5m plus 1m.
	TokenLifetime time.Duration

	// KV, if set, persists the keys so every instance sharing the store
	// signs with the same key and publishes the same JWKS. The value is
	// encrypted with KEK (AES-256-GCM); KV without a 32-byte KEK is an
	// error.
	KV  sessionkit.KVStore
	KEK []byte
	// KVKey names the value. Default "accesstoken/signing-keys".
	KVKey string

	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// KeyRing holds the signing keys of an issuer. It is safe for concurrent
// use.
type KeyRing struct {
	cfg    KeyRingConfig
	static bool

	mu      sync.RWMutex
	keys    []*SigningKey // by SignFrom
	version uint64        // of the KV value
}

// NewKeyRing returns a ring with generated keys. With cfg.KV it loads the
// shared keys, creating the first one if there are none.
func NewKeyRing(ctx context.Context, cfg KeyRingConfig) (*KeyRing, error) {
	if cfg.Algorithm == "" {
		cfg.Algorithm = EdDSA
	}
	if cfg.RotationPeriod <= 0 {
		cfg.RotationPeriod = 24 * time.Hour
	}
	if cfg.PrePublish <= 0 {
		cfg.PrePublish = 10 * time.Minute
	}
	if cfg.TokenLifetime <= 0 {
		cfg.TokenLifetime = DefaultLifetime + time.Minute
	}
	if cfg.KVKey == "" {
		cfg.KVKey = "accesstoken/signing-keys"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.KV != nil && len(cfg.KEK) != 32 {
		return nil, errors.New("accesstoken: persisting keys needs a 32-byte key-encryption key")
	}
	switch cfg.Algorithm {
	case EdDSA, ES256, RS256, HS256:
	default:
		return nil, fmt.Errorf("accesstoken: unsupported algorithm %q", cfg.Algorithm)
	}
	r := &KeyRing{cfg: cfg}
	if err := r.Maintain(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// StaticKeyRing returns a ring of operator-supplied keys that never
// rotates: the first key signs, and all are published.
func StaticKeyRing(keys []*SigningKey) (*KeyRing, error) {
	if len(keys) == 0 {
		return nil, ErrNoSigningKey
	}
	r := &KeyRing{static: true, cfg: KeyRingConfig{Now: time.Now}}
	for i, k := range keys {
		if i == 0 {
			k.SignFrom = time.Time{}
		} else {
			// Only the first key signs; later keys verify tokens that an
			// earlier key file signed.
			k.SignFrom = time.Unix(1<<40, 0)
		}
		r.keys = append(r.keys, k)
	}
	return r, nil
}

// SigningKey returns the key that signs at now: the published key with the
// latest SignFrom not after now.
func (r *KeyRing) SigningKey(now time.Time) (*SigningKey, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var best *SigningKey
	for _, k := range r.keys {
		if k.SignFrom.After(now) || k.PublishAt.After(now) {
			continue
		}
		if !k.SignUntil.IsZero() && !now.Before(k.SignUntil) {
			continue
		}
		if best == nil || k.SignFrom.After(best.SignFrom) {
			best = k
		}
	}
	if best == nil {
		return nil, ErrNoSigningKey
	}
	return best, nil
}

// Published returns the keys in the JWKS at now.
func (r *KeyRing) Published(now time.Time) []*SigningKey {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []*SigningKey
	for _, k := range r.keys {
		if !k.PublishAt.After(now) && (k.ExpireAt.IsZero() || now.Before(k.ExpireAt)) {
			out = append(out, k)
		}
	}
	return out
}

// Key implements verify.KeySource with the published keys, so the issuer's
// own checks (introspection, forward auth) trust exactly what it publishes.
func (r *KeyRing) Key(_ context.Context, kid string) (verify.Key, error) {
	for _, k := range r.Published(r.cfg.Now()) {
		if k.ID == kid {
			return k.Public(), nil
		}
	}
	return verify.Key{}, verify.ErrUnknownKey
}

// Algorithms returns the algorithms of the ring's keys.
func (r *KeyRing) Algorithms() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []string
	for _, k := range r.keys {
		if !slices.Contains(out, k.Algorithm) {
			out = append(out, k.Algorithm)
		}
	}
	return out
}

// JWKS returns the public key set at now.
func (r *KeyRing) JWKS(now time.Time) jose.JSONWebKeySet {
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, k := range r.Published(now) {
		if jwk, ok := k.JWK(); ok {
			set.Keys = append(set.Keys, jwk)
		}
	}
	return set
}

// Rotate schedules a new key now, whatever the rotation period: it is
// published at once and signs after PrePublish. If a successor is already
// scheduled, Rotate does nothing. Static rings cannot rotate.
func (r *KeyRing) Rotate(ctx context.Context) error {
	if r.static {
		return errors.New("accesstoken: operator-supplied keys do not rotate")
	}
	return r.update(ctx, true)
}

// Maintain loads the shared keys, drops expired ones and schedules the next
// key when the current one is due to retire. Call it regularly (Run does)
// and well within PrePublish, so every instance learns of a new key before
// it signs.
func (r *KeyRing) Maintain(ctx context.Context) error {
	if r.static {
		return nil
	}
	return r.update(ctx, false)
}

// Run calls Maintain every interval until ctx is done. Errors are passed to
// onErr, if not nil, and retried at the next tick.
func (r *KeyRing) Run(ctx context.Context, interval time.Duration, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.Maintain(ctx); err != nil && onErr != nil {
				onErr(err)
			}
		}
	}
}

// update reads the shared keys, changes them if due and writes them back
// with a compare-and-swap on the KV version, retrying after a conflict with
// another instance's change.
func (r *KeyRing) update(ctx context.Context, force bool) error {
	for range 8 {
		keys, version, err := r.load(ctx)
		if err != nil {
			return err
		}
		next, changed, err := r.schedule(keys, force)
		if err != nil {
			return err
		}
		if !changed {
			r.set(keys, version)
			return nil
		}
		if r.cfg.KV == nil {
			r.set(next, version)
			return nil
		}
		blob, err := r.seal(next)
		if err != nil {
			return err
		}
		v, err := r.cfg.KV.PutValue(ctx, r.cfg.KVKey, blob, version)
		if errors.Is(err, sessionkit.ErrConflict) {
			continue
		}
		if err != nil {
			return err
		}
		r.set(next, v)
		return nil
	}
	return sessionkit.ErrConflict
}

func (r *KeyRing) set(keys []*SigningKey, version uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Keep the existing objects (and their cached signers) for kids we
	// already hold.
	old := make(map[string]*SigningKey, len(r.keys))
	for _, k := range r.keys {
		old[k.ID] = k
	}
	out := make([]*SigningKey, 0, len(keys))
	for _, k := range keys {
		if o, ok := old[k.ID]; ok && o.SignFrom.Equal(k.SignFrom) && o.SignUntil.Equal(k.SignUntil) && o.ExpireAt.Equal(k.ExpireAt) {
			k = o
		}
		out = append(out, k)
	}
	r.keys, r.version = out, version
}

func (r *KeyRing) load(ctx context.Context) ([]*SigningKey, uint64, error) {
	if r.cfg.KV == nil {
		r.mu.RLock()
		defer r.mu.RUnlock()
		return slices.Clone(r.keys), r.version, nil
	}
	blob, version, err := r.cfg.KV.GetValue(ctx, r.cfg.KVKey)
	if errors.Is(err, sessionkit.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	keys, err := r.open(blob)
	return keys, version, err
}

// schedule returns keys with expired keys dropped and, when due (or
// forced), a successor added; changed reports whether anything changed.
func (r *KeyRing) schedule(keys []*SigningKey, force bool) ([]*SigningKey, bool, error) {
	now := r.cfg.Now()
	changed := false
	out := make([]*SigningKey, 0, len(keys)+1)
	for _, k := range keys {
		if !k.ExpireAt.IsZero() && !now.Before(k.ExpireAt) {
			changed = true
			continue
		}
		out = append(out, k)
	}
	var cur, pending *SigningKey
	for _, k := range out {
		if k.SignUntil.IsZero() {
			if k.SignFrom.After(now) {
				pending = k
			} else if cur == nil || k.SignFrom.After(cur.SignFrom) {
				cur = k
			}
		}
	}
	due := force || cur == nil || !now.Before(cur.SignFrom.Add(r.cfg.RotationPeriod-r.cfg.PrePublish))
	if pending != nil || !due {
		return out, changed, nil
	}
	k, err := GenerateKey(r.cfg.Algorithm)
	if err != nil {
		return nil, false, err
	}
	k.PublishAt = now
	k.SignFrom = now
	if cur != nil {
		// Signing moves to k only after PrePublish, and cur stays published
		// until its last token has expired.
		k.SignFrom = now.Add(r.cfg.PrePublish)
		c := &SigningKey{ID: cur.ID, Algorithm: cur.Algorithm, Private: cur.Private,
			PublishAt: cur.PublishAt, SignFrom: cur.SignFrom,
			SignUntil: k.SignFrom, ExpireAt: k.SignFrom.Add(r.cfg.TokenLifetime)}
		for i := range out {
			if out[i] == cur {
				out[i] = c
			}
		}
	}
	return append(out, k), true, nil
}

// storedKey is the persisted form of a SigningKey.
type storedKey struct {
	ID        string    `json:"kid"`
	Algorithm string    `json:"alg"`
	Private   []byte    `json:"key"` // PKCS #8, or the HS256 secret
	PublishAt time.Time `json:"publish_at"`
	SignFrom  time.Time `json:"sign_from"`
	SignUntil time.Time `json:"sign_until,omitzero"`
	ExpireAt  time.Time `json:"expire_at,omitzero"`
}

const sealVersion = 1

func (r *KeyRing) aead() (cipher.AEAD, error) {
	block, err := aes.NewCipher(r.cfg.KEK)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// seal encrypts the keys with the KEK; the KV key name is the associated
// data, so a value cannot be moved to another name.
func (r *KeyRing) seal(keys []*SigningKey) ([]byte, error) {
	stored := make([]storedKey, 0, len(keys))
	for _, k := range keys {
		var der []byte
		if b, ok := k.Private.([]byte); ok {
			der = b
		} else {
			var err error
			if der, err = x509.MarshalPKCS8PrivateKey(k.Private); err != nil {
				return nil, err
			}
		}
		stored = append(stored, storedKey{k.ID, k.Algorithm, der, k.PublishAt, k.SignFrom, k.SignUntil, k.ExpireAt})
	}
	plain, err := json.Marshal(stored)
	if err != nil {
		return nil, err
	}
	aead, err := r.aead()
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(plain)+aead.Overhead())
	out[0] = sealVersion
	rand.Read(out[1:])
	return aead.Seal(out, out[1:], plain, []byte(r.cfg.KVKey)), nil
}

func (r *KeyRing) open(blob []byte) ([]*SigningKey, error) {
	aead, err := r.aead()
	if err != nil {
		return nil, err
	}
	if len(blob) < 1+aead.NonceSize() || blob[0] != sealVersion {
		return nil, ErrKeyDecrypt
	}
	n := 1 + aead.NonceSize()
	plain, err := aead.Open(nil, blob[1:n], blob[n:], []byte(r.cfg.KVKey))
	if err != nil {
		return nil, ErrKeyDecrypt
	}
	var stored []storedKey
	if err := json.Unmarshal(plain, &stored); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyDecrypt, err)
	}
	keys := make([]*SigningKey, 0, len(stored))
	for _, s := range stored {
		var priv any = s.Private
		if s.Algorithm != HS256 {
			if priv, err = x509.ParsePKCS8PrivateKey(s.Private); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrKeyDecrypt, err)
			}
		}
		k, err := newSigningKey(s.ID, s.Algorithm, priv)
		if err != nil {
			return nil, err
		}
		k.PublishAt, k.SignFrom, k.SignUntil, k.ExpireAt = s.PublishAt, s.SignFrom, s.SignUntil, s.ExpireAt
		keys = append(keys, k)
	}
	return keys, nil
}
