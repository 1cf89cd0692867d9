package verify

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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
	algIndex int // of alg in Config.Algorithms
}

// forbiddenHeaders carry or point to keys, or ask for extensions we do not
// implement; a verifier that honoured them would let the token choose its
// own key.
var forbiddenHeaders = []string{"jwk", "jku", "x5u", "x5c", "crit", "b64", "zip", "enc"}

// headerFields are the raw values of the header members Verify reads, nil
// when absent, and the first forbidden header present.
type headerFields struct {
	alg, typ, kid []byte
	forbidden     string
}

// checkHeader scans the header with sc and checks it. When every key is
// plain ASCII, the scanned members are looked up directly; otherwise the
// header is decoded as a map, so an escaped name such as "\u006awk" is
// still seen as the name it spells.
func (v *Verifier) checkHeader(sc *keyScanner, raw []byte) (header, error) {
	var h header
	if err := sc.Scan(raw); err != nil {
		return h, err
	}
	var f headerFields
	if sc.allPlain() {
		forbidden := len(forbiddenHeaders)
		for _, m := range sc.members {
			switch k := sc.bytes(m.key); string(k) {
			case "alg":
				f.alg = sc.bytes(m.val)
			case "typ":
				f.typ = sc.bytes(m.val)
			case "kid":
				f.kid = sc.bytes(m.val)
			default:
				if i := slices.Index(forbiddenHeaders, string(k)); i >= 0 && i < forbidden {
					forbidden = i
				}
			}
		}
		if forbidden < len(forbiddenHeaders) {
			f.forbidden = forbiddenHeaders[forbidden]
		}
	} else {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			return h, fmt.Errorf("%w: header: invalid JSON", ErrMalformed)
		}
		f.alg, f.typ, f.kid = m["alg"], m["typ"], m["kid"]
		for _, name := range forbiddenHeaders {
			if _, ok := m[name]; ok {
				f.forbidden = name
				break
			}
		}
	}
	if f.forbidden != "" {
		return h, fmt.Errorf("%w: %q", ErrHeader, f.forbidden)
	}
	alg, ok := jsonString(f.alg)
	if !ok {
		return h, fmt.Errorf("%w: alg missing or not a string", ErrAlgorithm)
	}
	ai := slices.Index(v.cfg.Algorithms, alg)
	if strings.EqualFold(alg, "none") || ai < 0 {
		return h, fmt.Errorf("%w: %q", ErrAlgorithm, alg)
	}
	if body, ok := plainBody(f.typ); ok {
		// The common case, checked without copying the value.
		if !isAccessTokenType(string(body)) {
			return h, fmt.Errorf("%w: %q", ErrType, body)
		}
	} else if typ, ok := jsonString(f.typ); !ok || !isAccessTokenType(typ) {
		return h, fmt.Errorf("%w: %q", ErrType, typ)
	}
	kid, ok := jsonString(f.kid)
	if !ok || kid == "" {
		return h, fmt.Errorf("%w: kid missing or not a string", ErrUnknownKey)
	}
	h.alg, h.algIndex, h.kid = v.cfg.Algorithms[ai], ai, kid
	return h, nil
}

// plainBody returns the body of a JSON string of printable ASCII without
// escapes, the common case, whose value is its text.
func plainBody(raw []byte) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, false
	}
	body := raw[1 : len(raw)-1]
	for _, c := range body {
		if c < 0x20 || c >= utf8.RuneSelf || c == '\\' || c == '"' {
			return nil, false
		}
	}
	return body, true
}

// plainString is plainBody as a string.
func plainString(raw []byte) (string, bool) {
	body, ok := plainBody(raw)
	return string(body), ok
}

// jsonString decodes a scanned JSON value into a string as json.Unmarshal
// would: null leaves it empty, anything but a string fails, and so does a
// missing (nil) value.
func jsonString(raw []byte) (string, bool) {
	if s, ok := plainString(raw); ok {
		return s, true
	}
	if raw == nil {
		return "", false
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err == nil
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
	s := getScratch()
	defer putScratch(s)
	p, err := s.split(token)
	if err != nil {
		return nil, err
	}
	h, err := v.checkHeader(&s.hdr, p.header)
	if err != nil {
		return nil, err
	}
	if err := s.payload.Scan(p.payload); err != nil {
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
	jws, err := jose.ParseSignedCompact(token, v.algs[h.algIndex:h.algIndex+1:h.algIndex+1])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if _, err := jws.Verify(key.Key); err != nil {
		return nil, ErrSignature
	}
	// The payload go-jose verified is the one decoded and scanned above:
	// both decode the same canonical base64url text.
	f, err := payloadFields(&s.payload, p.payload)
	if err != nil {
		return nil, err
	}
	c, err := f.claims()
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

// claimFields are the raw values of the registered claims, nil when
// absent, and every other claim.
type claimFields struct {
	iss, sub, jti, sid, exp, iat, nbf, aud, authLevel []byte
	extra                                             map[string]json.RawMessage
}

// payloadFields collects the claims of a payload sc has scanned. Plain
// ASCII keys are taken from the scan; a payload with any other key is
// decoded as a map, so escaped names resolve as every JSON parser resolves
// them. Nothing returned points into payload.
func payloadFields(sc *keyScanner, payload []byte) (claimFields, error) {
	if !sc.allPlain() {
		return payloadFieldsMap(payload)
	}
	var f claimFields
	for _, m := range sc.members {
		val := sc.bytes(m.val)
		switch k := sc.bytes(m.key); string(k) {
		case "iss":
			f.iss = val
		case "sub":
			f.sub = val
		case "jti":
			f.jti = val
		case "sid":
			f.sid = val
		case "exp":
			f.exp = val
		case "iat":
			f.iat = val
		case "nbf":
			f.nbf = val
		case "aud":
			f.aud = val
		case "auth_level":
			f.authLevel = val
		default:
			if f.extra == nil {
				f.extra = make(map[string]json.RawMessage)
			}
			f.extra[string(k)] = bytes.Clone(val)
		}
	}
	return f, nil
}

// payloadFieldsMap collects the claims of a payload by decoding it as a
// map, which resolves escaped and non-ASCII keys.
func payloadFieldsMap(payload []byte) (claimFields, error) {
	var f claimFields
	var m map[string]json.RawMessage
	if err := json.Unmarshal(payload, &m); err != nil {
		return f, fmt.Errorf("%w: payload", ErrMalformed)
	}
	for _, r := range []struct {
		name string
		dst  *[]byte
	}{
		{"iss", &f.iss}, {"sub", &f.sub}, {"jti", &f.jti}, {"sid", &f.sid}, {"exp", &f.exp},
		{"iat", &f.iat}, {"nbf", &f.nbf}, {"aud", &f.aud}, {"auth_level", &f.authLevel},
	} {
		if raw, ok := m[r.name]; ok {
			*r.dst = raw
			delete(m, r.name)
		}
	}
	if len(m) > 0 {
		f.extra = m
	}
	return f, nil
}

// claims checks the claim types and returns the claims. Values are only
// read, never kept: strings and dates are copied out.
func (f *claimFields) claims() (*Claims, error) {
	c := &Claims{}
	str := func(name string, raw []byte, dst *string, required bool) error {
		if raw == nil {
			if required {
				return fmt.Errorf("%w: %s missing", ErrClaims, name)
			}
			return nil
		}
		s, ok := jsonString(raw)
		if !ok {
			return fmt.Errorf("%w: %s is not a string", ErrClaims, name)
		}
		*dst = s
		return nil
	}
	date := func(name string, raw []byte, dst *time.Time, missing error) error {
		if raw == nil {
			return missing
		}
		var d jwt.NumericDate
		if raw[0] == '"' || d.UnmarshalJSON(raw) != nil {
			return fmt.Errorf("%w: %s is not a NumericDate", ErrClaims, name)
		}
		*dst = d.Time()
		return nil
	}
	if err := str("iss", f.iss, &c.Issuer, true); err != nil {
		return nil, err
	}
	if err := str("sub", f.sub, &c.Subject, true); err != nil {
		return nil, err
	}
	if err := str("jti", f.jti, &c.ID, true); err != nil {
		return nil, err
	}
	if err := str("sid", f.sid, &c.SessionID, true); err != nil {
		return nil, err
	}
	if err := date("exp", f.exp, &c.Expiry, errExpMissing); err != nil {
		return nil, err
	}
	if err := date("iat", f.iat, &c.IssuedAt, errIatMissing); err != nil {
		return nil, err
	}
	if err := date("nbf", f.nbf, &c.NotBefore, nil); err != nil {
		return nil, err
	}
	if f.aud == nil {
		return nil, fmt.Errorf("%w: aud missing", ErrAudience)
	}
	if s, ok := plainString(f.aud); ok {
		c.Audience = []string{s}
	} else {
		var aud jwt.Audience
		if err := aud.UnmarshalJSON(f.aud); err != nil {
			return nil, fmt.Errorf("%w: aud is not a string or array of strings", ErrAudience)
		}
		c.Audience = aud
	}
	if f.authLevel != nil {
		n, ok := jsonInt(f.authLevel)
		if !ok {
			return nil, fmt.Errorf("%w: auth_level is not an integer", ErrClaims)
		}
		c.AuthLevel = n
	}
	c.Extra = f.extra
	return c, nil
}

var (
	errExpMissing = fmt.Errorf("%w: exp missing", ErrExpired)
	errIatMissing = fmt.Errorf("%w: iat missing", ErrClaims)
)

// jsonInt decodes a scanned JSON value into an int as json.Unmarshal
// would: null leaves it zero; a fraction, an exponent or an overflow fails.
func jsonInt(raw []byte) (int, bool) {
	digits := raw
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	plain := len(digits) > 0
	for _, c := range digits {
		if c < '0' || c > '9' {
			plain = false
			break
		}
	}
	if plain {
		n, err := strconv.ParseInt(string(raw), 10, strconv.IntSize)
		return int(n), err == nil
	}
	var n int
	err := json.Unmarshal(raw, &n)
	return n, err == nil
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
