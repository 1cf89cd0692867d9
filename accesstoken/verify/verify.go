package verify

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Errors returned by Verify. Every one except ErrKeysUnavailable means the
// token is invalid; all of those wrap ErrInvalid too.
var (
	ErrInvalid         = errors.New("verify: invalid access token")
	ErrTooLarge        = fmt.Errorf("%w: token too large", ErrInvalid)
	ErrMalformed       = fmt.Errorf("%w: malformed", ErrInvalid)
	ErrAlgorithm       = fmt.Errorf("%w: algorithm not allowed", ErrInvalid)
	ErrHeader          = fmt.Errorf("%w: header not allowed", ErrInvalid)
	ErrType            = fmt.Errorf("%w: not an access token (typ)", ErrInvalid)
	ErrUnknownKey      = fmt.Errorf("%w: unknown key id", ErrInvalid)
	ErrSignature       = fmt.Errorf("%w: bad signature", ErrInvalid)
	ErrClaims          = fmt.Errorf("%w: missing or ill-typed claim", ErrInvalid)
	ErrExpired         = fmt.Errorf("%w: expired", ErrInvalid)
	ErrNotYetValid     = fmt.Errorf("%w: not valid yet", ErrInvalid)
	ErrIssuer          = fmt.Errorf("%w: wrong issuer", ErrInvalid)
	ErrAudience        = fmt.Errorf("%w: wrong audience", ErrInvalid)
	ErrRevoked         = fmt.Errorf("%w: revoked", ErrInvalid)
	ErrKeysUnavailable = errors.New("verify: verification keys unavailable")
	ErrConfig          = errors.New("verify: invalid configuration")
)

// Defaults and bounds.
const (
	DefaultLeeway        = 30 * time.Second
	MaxLeeway            = 60 * time.Second
	DefaultMaxTokenBytes = 8 << 10
)

// DefaultAlgorithms are accepted when Config.Algorithms is empty. HS256 is
// never a default: a shared secret must be asked for explicitly.
var DefaultAlgorithms = []string{"EdDSA", "ES256", "RS256"}

// Supported algorithms.
var supported = []string{"EdDSA", "ES256", "ES384", "RS256", "HS256"}

// Config configures a Verifier. Issuer, Audience and Keys are required.
type Config struct {
	Issuer   string
	Audience string
	Keys     KeySource
	// AnyAudience accepts any aud, for the issuer's own introspection;
	// services leave it false.
	AnyAudience bool
	// Algorithms is the allow-list for the alg header. Default
	// DefaultAlgorithms.
	Algorithms []string
	// Leeway tolerates clock skew on exp, nbf and iat. Default 30s, at most
	// 60s.
	Leeway time.Duration
	// MaxTokenBytes rejects longer tokens before any parsing. Default 8 KiB.
	MaxTokenBytes int
	// Revocations, if set, is asked about every token whose signature and
	// claims are valid.
	Revocations Checker
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Checker reports whether a verified token was revoked before its expiry,
// by returning an error wrapping ErrRevoked.
type Checker interface {
	Check(c *Claims) error
}

// Claims are the verified claims of an access token.
type Claims struct {
	Issuer    string
	Subject   string
	Audience  []string
	Expiry    time.Time
	IssuedAt  time.Time
	NotBefore time.Time // zero when absent
	ID        string    // jti
	SessionID string    // sid: the handle of the server-side session
	AuthLevel int       // auth_level
	// Extra holds every other claim, as JSON.
	Extra map[string]json.RawMessage
}

// Verifier checks access tokens. It is safe for concurrent use.
type Verifier struct {
	cfg  Config
	algs []jose.SignatureAlgorithm
}

// New returns a Verifier for cfg.
func New(cfg Config) (*Verifier, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, fmt.Errorf("%w: issuer and audience are required", ErrConfig)
	}
	if cfg.Keys == nil {
		return nil, fmt.Errorf("%w: no key source", ErrConfig)
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = DefaultAlgorithms
	}
	cfg.Algorithms = slices.Clone(cfg.Algorithms)
	algs := make([]jose.SignatureAlgorithm, 0, len(cfg.Algorithms))
	for _, a := range cfg.Algorithms {
		if !slices.Contains(supported, a) {
			return nil, fmt.Errorf("%w: unsupported algorithm %q", ErrConfig, a)
		}
		algs = append(algs, jose.SignatureAlgorithm(a))
	}
	switch {
	case cfg.Leeway == 0:
		cfg.Leeway = DefaultLeeway
	case cfg.Leeway < 0 || cfg.Leeway > MaxLeeway:
		return nil, fmt.Errorf("%w: leeway must be within (0, %v]", ErrConfig, MaxLeeway)
	}
	if cfg.MaxTokenBytes <= 0 {
		cfg.MaxTokenBytes = DefaultMaxTokenBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Verifier{cfg: cfg, algs: algs}, nil
}

// header is the protected header after the strict checks.
type header struct {
	alg, kid string
}

// forbiddenHeaders carry or point to keys, or ask for extensions we do not
// implement; a verifier that honoured them would let the token choose its
// own key.
var forbiddenHeaders = []string{"jwk", "jku", "x5u", "x5c", "crit", "b64", "zip", "enc"}

func (v *Verifier) checkHeader(raw []byte) (header, error) {
	var h header
	if err := checkObjectKeys(raw); err != nil {
		return h, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return h, fmt.Errorf("%w: header: invalid JSON", ErrMalformed)
	}
	for _, name := range forbiddenHeaders {
		if _, ok := m[name]; ok {
			return h, fmt.Errorf("%w: %q", ErrHeader, name)
		}
	}
	var alg, typ, kid string
	if json.Unmarshal(m["alg"], &alg) != nil {
		return h, fmt.Errorf("%w: alg missing or not a string", ErrAlgorithm)
	}
	if strings.EqualFold(alg, "none") || !slices.Contains(v.cfg.Algorithms, alg) {
		return h, fmt.Errorf("%w: %q", ErrAlgorithm, alg)
	}
	if json.Unmarshal(m["typ"], &typ) != nil || !isAccessTokenType(typ) {
		return h, fmt.Errorf("%w: %q", ErrType, typ)
	}
	if json.Unmarshal(m["kid"], &kid) != nil || kid == "" {
		return h, fmt.Errorf("%w: kid missing or not a string", ErrUnknownKey)
	}
	h.alg, h.kid = alg, kid
	return h, nil
}

// isAccessTokenType accepts the media type of RFC 9068 in both spellings,
// case-insensitively as RFC 8725 section 3.11 asks.
func isAccessTokenType(typ string) bool {
	return strings.EqualFold(typ, "at+jwt") || strings.EqualFold(typ, "application/at+jwt")
}

// Verify checks token and returns its claims. Its errors wrap ErrInvalid
// (and a more specific sentinel) for a bad token, or ErrKeysUnavailable when
// the keys could not be fetched; the token must be refused either way.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	if len(token) > v.cfg.MaxTokenBytes {
		return nil, ErrTooLarge
	}
	p, err := split(token)
	if err != nil {
		return nil, err
	}
	h, err := v.checkHeader(p.header)
	if err != nil {
		return nil, err
	}
	if err := checkObjectKeys(p.payload); err != nil {
		return nil, err
	}
	key, err := v.cfg.Keys.Key(ctx, h.kid)
	if err != nil {
		return nil, err
	}
	// The key decides the algorithm: an RSA public key is never used as an
	// HMAC secret, whatever the header says.
	if key.Algorithm != h.alg {
		return nil, fmt.Errorf("%w: key %q is for %s, token says %s", ErrAlgorithm, h.kid, key.Algorithm, h.alg)
	}
	if !sigLenOK(h.alg, key.Key, len(p.sig)) {
		return nil, fmt.Errorf("%w: signature length", ErrSignature)
	}
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(h.alg)})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	payload, err := jws.Verify(key.Key)
	if err != nil {
		return nil, ErrSignature
	}
	c, err := parseClaims(payload)
	if err != nil {
		return nil, err
	}
	if err := v.checkClaims(c); err != nil {
		return nil, err
	}
	if v.cfg.Revocations != nil {
		if err := v.cfg.Revocations.Check(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// sigLenOK checks the signature length an algorithm and key demand, so
// that only one encoding of a signature is ever accepted.
func sigLenOK(alg string, key any, n int) bool {
	switch alg {
	case "EdDSA":
		return n == ed25519.SignatureSize
	case "ES256":
		return n == 64
	case "ES384":
		return n == 96
	case "HS256":
		return n == 32
	case "RS256":
		k, ok := key.(*rsa.PublicKey)
		return ok && n == k.Size()
	}
	return false
}

func parseClaims(payload []byte) (*Claims, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(payload, &m); err != nil {
		return nil, fmt.Errorf("%w: payload", ErrMalformed)
	}
	c := &Claims{}
	str := func(name string, dst *string, required bool) error {
		raw, ok := m[name]
		if !ok {
			if required {
				return fmt.Errorf("%w: %s missing", ErrClaims, name)
			}
			return nil
		}
		delete(m, name)
		if json.Unmarshal(raw, dst) != nil {
			return fmt.Errorf("%w: %s is not a string", ErrClaims, name)
		}
		return nil
	}
	date := func(name string, dst *time.Time, missing error) error {
		raw, ok := m[name]
		if !ok {
			return missing
		}
		delete(m, name)
		var d jwt.NumericDate
		if raw[0] == '"' || d.UnmarshalJSON(raw) != nil {
			return fmt.Errorf("%w: %s is not a NumericDate", ErrClaims, name)
		}
		*dst = d.Time()
		return nil
	}
	for _, err := range []error{
		str("iss", &c.Issuer, true),
		str("sub", &c.Subject, true),
		str("jti", &c.ID, true),
		str("sid", &c.SessionID, true),
		date("exp", &c.Expiry, fmt.Errorf("%w: exp missing", ErrExpired)),
		date("iat", &c.IssuedAt, fmt.Errorf("%w: iat missing", ErrClaims)),
		date("nbf", &c.NotBefore, nil),
	} {
		if err != nil {
			return nil, err
		}
	}
	raw, ok := m["aud"]
	if !ok {
		return nil, fmt.Errorf("%w: aud missing", ErrAudience)
	}
	delete(m, "aud")
	var aud jwt.Audience
	if err := aud.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("%w: aud is not a string or array of strings", ErrAudience)
	}
	c.Audience = aud
	if raw, ok := m["auth_level"]; ok {
		delete(m, "auth_level")
		if json.Unmarshal(raw, &c.AuthLevel) != nil {
			return nil, fmt.Errorf("%w: auth_level is not an integer", ErrClaims)
		}
	}
	if len(m) > 0 {
		c.Extra = m
	}
	return c, nil
}

func (v *Verifier) checkClaims(c *Claims) error {
	now := v.cfg.Now()
	lee := v.cfg.Leeway
	switch {
	case !now.Before(c.Expiry.Add(lee)):
		return ErrExpired
	case !c.NotBefore.IsZero() && now.Add(lee).Before(c.NotBefore):
		return fmt.Errorf("%w: nbf in the future", ErrNotYetValid)
	case now.Add(lee).Before(c.IssuedAt):
		return fmt.Errorf("%w: iat in the future", ErrNotYetValid)
	case c.Issuer != v.cfg.Issuer:
		return ErrIssuer
	case !v.cfg.AnyAudience && !slices.Contains(c.Audience, v.cfg.Audience):
		return ErrAudience
	case c.Subject == "" || c.SessionID == "" || c.ID == "":
		return fmt.Errorf("%w: empty sub, sid or jti", ErrClaims)
	}
	return nil
}

// publicKey reports whether k is a public key of a supported type, or an
// HMAC secret.
func publicKey(k any) bool {
	switch k.(type) {
	case ed25519.PublicKey, *ecdsa.PublicKey, *rsa.PublicKey, []byte:
		return true
	}
	return false
}

func isInvalid(err error) bool { return errors.Is(err, ErrInvalid) }
