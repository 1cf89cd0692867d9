package sessiond

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/accesstoken"
	"github.com/sessionkit/sessionkit/accesstoken/verify"
)

// CodeRefreshTokenReused answers a retired refresh token presented again;
// the session it belonged to has been revoked.
const CodeRefreshTokenReused = "refresh_token_reused"

// EnvTokenKEK holds the key-encryption key of the stored signing keys (32
// bytes as hex or base64). Like API keys it has no flag value of its own,
// so it never appears in a process listing; -token-kek-file reads it from a
// file.
const EnvTokenKEK = "SESSIOND_TOKEN_KEK"

// TokenSettings are the command line settings of access tokens
// (POST /v1/tokens and friends).
type TokenSettings struct {
	Issuer     string
	Audience   string
	Audiences  string // comma-separated extra audiences
	Lifetime   time.Duration
	Grace      time.Duration
	Alg        string
	KeyFile    string
	Rotation   time.Duration
	PrePublish time.Duration
	KEKFile    string
	Off        bool
	// DataDir, when set, holds a generated key-encryption key if none is
	// configured, so generated signing keys survive a restart.
	DataDir string
}

// Register defines the settings' flags on fs.
func (ts *TokenSettings) Register(fs *flag.FlagSet) {
	fs.BoolVar(&ts.Off, "no-tokens", false, "disable the access token endpoints (POST /v1/tokens, JWKS, Bearer forward auth)")
	fs.StringVar(&ts.Issuer, "token-issuer", "", "iss of access tokens, e.g. the service's public URL (default http://<addr>)")
	fs.StringVar(&ts.Audience, "token-audience", "", "aud of access tokens when a request names none (default: the issuer)")
	fs.StringVar(&ts.Audiences, "token-audiences", "", "further audiences callers may ask for, comma-separated")
	fs.DurationVar(&ts.Lifetime, "token-lifetime", accesstoken.DefaultLifetime, "access token lifetime (at least 1s)")
	fs.DurationVar(&ts.Grace, "refresh-grace", accesstoken.DefaultRefreshGrace, "how long a just-rotated refresh token still yields its successor")
	fs.StringVar(&ts.Alg, "token-alg", accesstoken.EdDSA, "signing algorithm of generated keys: EdDSA, ES256, RS256 or HS256")
	fs.StringVar(&ts.KeyFile, "token-key-file", "", "operator-supplied signing keys (PEM private keys or a JWK set); disables generation and rotation")
	fs.DurationVar(&ts.Rotation, "token-key-rotation", 24*time.Hour, "how long a generated key signs before its successor")
	fs.DurationVar(&ts.PrePublish, "token-key-prepublish", 10*time.Minute, "how long a new key is in the JWKS before it signs")
	fs.StringVar(&ts.KEKFile, "token-kek-file", "", "file holding the 32-byte key-encryption key of stored signing keys (hex or base64); or "+EnvTokenKEK)
}

// Validate checks the settings' durations.
func (ts *TokenSettings) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"token-lifetime", ts.Lifetime}, {"refresh-grace", ts.Grace}, {"token-key-rotation", ts.Rotation}, {"token-key-prepublish", ts.PrePublish}} {
		if d.v < time.Second {
			return fmt.Errorf("-%s %v: must be at least 1s", d.name, d.v)
		}
	}
	return nil
}

// Enabled reports whether token endpoints are configured.
func (ts *TokenSettings) Enabled() bool { return !ts.Off && ts.Issuer != "" }

// Tokens serves client-side sessions: POST /v1/tokens, /v1/tokens/refresh,
// /v1/tokens/introspect, GET /v1/tokens/revocations and the public
// GET /.well-known/jwks.json. Build it with NewTokens before the Manager,
// put Revocations in the Manager's events, then pass it to Config as an
// Extension and as the Bearer verifier of forward auth.
type Tokens struct {
	Revocations *accesstoken.Revocations
	Ring        *accesstoken.KeyRing

	cfg    accesstoken.Config
	issuer *accesstoken.Issuer
	verify *verify.Verifier
	m      *sessionkit.Manager
}

// NewTokens builds the key ring (from the key file, or generated and kept in
// store when it is a sessionkit.KVStore) and the revocation list. getenv
// reads EnvTokenKEK.
func NewTokens(ctx context.Context, ts TokenSettings, store sessionkit.Store, getenv func(string) string) (*Tokens, error) {
	if !ts.Enabled() {
		return nil, errors.New("-token-issuer is required for access tokens")
	}
	if err := ts.Validate(); err != nil {
		return nil, err
	}
	cfg := accesstoken.Config{
		Issuer: ts.Issuer, Audience: ts.Audience, Lifetime: ts.Lifetime, RefreshGrace: ts.Grace,
	}
	if cfg.Audience == "" {
		cfg.Audience = ts.Issuer
	}
	for a := range strings.SplitSeq(ts.Audiences, ",") {
		if a = strings.TrimSpace(a); a != "" {
			cfg.Audiences = append(cfg.Audiences, a)
		}
	}
	// Entries live as long as an access token can, plus verifiers' leeway.
	t := &Tokens{cfg: cfg, Revocations: accesstoken.NewRevocations(ts.Lifetime+verify.MaxLeeway, nil)}
	t.cfg.Revocations = t.Revocations
	var err error
	if ts.KeyFile != "" {
		keys, err := accesstoken.LoadKeyFile(ts.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("-token-key-file: %w", err)
		}
		if t.Ring, err = accesstoken.StaticKeyRing(keys); err != nil {
			return nil, err
		}
		return t, nil
	}
	rc := accesstoken.KeyRingConfig{
		Algorithm: ts.Alg, RotationPeriod: ts.Rotation, PrePublish: ts.PrePublish,
		TokenLifetime: ts.Lifetime + verify.MaxLeeway,
	}
	if kv, ok := store.(sessionkit.KVStore); ok {
		kek, err := loadKEK(ts.KEKFile, getenv)
		if err != nil {
			return nil, err
		}
		if kek == nil && ts.DataDir != "" {
			if kek, err = dataDirKEK(ts.DataDir); err != nil {
				return nil, err
			}
		}
		if kek != nil {
			rc.KV, rc.KEK = kv, kek
		}
	}
	if t.Ring, err = accesstoken.NewKeyRing(ctx, rc); err != nil {
		return nil, err
	}
	return t, nil
}

// loadKEK returns the key-encryption key from the file or the environment,
// or nil when neither is set (keys then live in this process only).
func loadKEK(file string, getenv func(string) string) ([]byte, error) {
	s := ""
	if getenv != nil {
		s = getenv(EnvTokenKEK)
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("-token-kek-file: %w", err)
		}
		s = string(b)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if b, err := hex.DecodeString(s); err == nil && len(b) == 32 {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == 32 {
			return b, nil
		}
	}
	return nil, errors.New("the token key-encryption key must be 32 bytes, hex or base64")
}

// KEKFileName is the generated key-encryption key in the data directory.
const KEKFileName = "token-kek"

// dataDirKEK reads the key-encryption key generated into dir, creating it
// (mode 0600) on first use. It serves one instance; instances sharing a
// store must share a configured key instead.
func dataDirKEK(dir string) ([]byte, error) {
	path := filepath.Join(dir, KEKFileName)
	if _, err := os.Stat(path); err == nil {
		return loadKEK(path, nil)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	kek := make([]byte, 32)
	rand.Read(kek)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return loadKEK(path, nil)
		}
		return nil, err
	}
	_, err = f.WriteString(hex.EncodeToString(kek) + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return kek, nil
}

// Run keeps the key ring current (rotation, and keys other instances
// added) until ctx is done. Its interval is well under the
// pre-publication period, so every instance knows a key before it signs.
func (t *Tokens) Run(ctx context.Context, interval time.Duration, onErr func(error)) {
	t.Ring.Run(ctx, interval, onErr)
}

// Mount implements Extension.
func (t *Tokens) Mount(mux *http.ServeMux, api APIContext) {
	is, err := accesstoken.NewIssuer(api.Manager, t.Ring, t.cfg)
	if err != nil {
		// NewTokens checked everything NewIssuer checks.
		panic(err)
	}
	v, err := is.Verifier("")
	if err != nil {
		panic(err)
	}
	t.issuer, t.verify, t.m = is, v, api.Manager
	key := api.RequireAPIKey
	mux.Handle("POST /v1/tokens", key(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.issue(w, r, api) })))
	mux.Handle("POST /v1/tokens/refresh", key(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.refresh(w, r, api) })))
	mux.Handle("POST /v1/tokens/introspect", key(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.introspect(w, r, api) })))
	mux.Handle("GET /v1/tokens/revocations", key(t.Revocations))
	mux.HandleFunc("GET /.well-known/jwks.json", t.jwks)
}

// TokenPair is the answer of POST /v1/tokens and /v1/tokens/refresh.
type TokenPair struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

func pairJSON(p *accesstoken.Pair) TokenPair {
	return TokenPair{p.AccessToken, p.RefreshToken, "Bearer", int(p.Lifetime / time.Second)}
}

func (t *Tokens) issue(w http.ResponseWriter, r *http.Request, api APIContext) {
	var req struct {
		Token    string            `json:"token"`
		Audience string            `json:"audience"`
		Client   sessionkit.Client `json:"client"`
	}
	if err := DecodeJSON(w, r, api.MaxBodyBytes, &req); err != nil {
		WriteErr(w, err, http.StatusUnauthorized)
		return
	}
	p, err := t.issuer.Issue(r.Context(), req.Token, accesstoken.Params{Audience: req.Audience, Client: req.Client})
	if err != nil {
		t.fail(w, r, api, err)
		return
	}
	WriteJSON(w, http.StatusOK, pairJSON(p))
}

func (t *Tokens) refresh(w http.ResponseWriter, r *http.Request, api APIContext) {
	var req struct {
		RefreshToken string            `json:"refresh_token"`
		Audience     string            `json:"audience"`
		Client       sessionkit.Client `json:"client"`
	}
	if err := DecodeJSON(w, r, api.MaxBodyBytes, &req); err != nil {
		WriteErr(w, err, http.StatusUnauthorized)
		return
	}
	p, err := t.issuer.Refresh(r.Context(), req.RefreshToken, accesstoken.Params{Audience: req.Audience, Client: req.Client})
	if err != nil {
		t.fail(w, r, api, err)
		return
	}
	WriteJSON(w, http.StatusOK, pairJSON(p))
}

// fail maps the issuer's errors to the API.
func (t *Tokens) fail(w http.ResponseWriter, r *http.Request, api APIContext, err error) {
	switch {
	case errors.Is(err, sessionkit.ErrStore):
		api.Logger.WarnContext(r.Context(), "token request failed", "err", err.Error())
		WriteErr(w, err, http.StatusUnauthorized)
	case errors.Is(err, accesstoken.ErrRefreshReused):
		WriteError(w, http.StatusUnauthorized, CodeRefreshTokenReused, "the refresh token was already used; the session has been revoked")
	case errors.Is(err, accesstoken.ErrInvalidRefresh):
		WriteError(w, http.StatusUnauthorized, CodeInvalidToken, "the refresh token is not valid")
	case errors.Is(err, accesstoken.ErrAudience):
		WriteError(w, http.StatusBadRequest, CodeInvalidRequest, "audience not allowed")
	case errors.Is(err, accesstoken.ErrAnonymous):
		WriteError(w, http.StatusBadRequest, CodeInvalidRequest, "anonymous sessions get no access tokens")
	case errors.Is(err, accesstoken.ErrTokenTooLarge), errors.Is(err, accesstoken.ErrReservedClaim):
		api.Logger.ErrorContext(r.Context(), "access token claims refused", "err", err.Error())
		WriteError(w, http.StatusInternalServerError, CodeInternal, "the access token could not be built")
	default:
		if !errors.Is(err, sessionkit.ErrMalformed) && !errors.Is(err, sessionkit.ErrNotFound) &&
			!errors.Is(err, sessionkit.ErrExpired) && !errors.Is(err, sessionkit.ErrRevoked) {
			api.Logger.ErrorContext(r.Context(), "token request failed", "err", err.Error())
		}
		WriteErr(w, err, http.StatusUnauthorized)
	}
}

// introspect answers RFC 7662: active only for a currently valid access
// token; everything else, refresh tokens included, is {"active": false}.
func (t *Tokens) introspect(w http.ResponseWriter, r *http.Request, api APIContext) {
	var token, audience string
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "application/x-www-form-urlencoded" {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, api.MaxBodyBytes))
		if err != nil {
			WriteErr(w, decodeError(err), http.StatusUnauthorized)
			return
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			WriteError(w, http.StatusBadRequest, CodeInvalidRequest, "malformed form body")
			return
		}
		token, audience = form.Get("token"), form.Get("audience")
	} else {
		var req struct {
			Token         string `json:"token"`
			Audience      string `json:"audience"`
			TokenTypeHint string `json:"token_type_hint"`
		}
		if err := DecodeJSON(w, r, api.MaxBodyBytes, &req); err != nil {
			var re *RequestError
			if errors.As(err, &re) && re.Status == http.StatusRequestEntityTooLarge {
				WriteErr(w, err, http.StatusUnauthorized)
				return
			}
			// Bad input is an inactive token, not an error (RFC 7662).
			WriteJSON(w, http.StatusOK, map[string]bool{"active": false})
			return
		}
		token, audience = req.Token, req.Audience
	}
	c, err := t.check(r.Context(), token)
	if err != nil || (audience != "" && !contains(c.Audience, audience)) {
		WriteJSON(w, http.StatusOK, map[string]bool{"active": false})
		return
	}
	resp := map[string]any{
		"active": true, "token_type": "Bearer", "iss": c.Issuer, "sub": c.Subject, "sid": c.SessionID,
		"aud": c.Audience, "exp": c.Expiry.Unix(), "iat": c.IssuedAt.Unix(), "jti": c.ID,
		"auth_level": c.AuthLevel,
	}
	if !c.NotBefore.IsZero() {
		resp["nbf"] = c.NotBefore.Unix()
	}
	if raw, ok := c.Extra["scope"]; ok {
		resp["scope"] = json.RawMessage(raw)
	}
	WriteJSON(w, http.StatusOK, resp)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// check verifies an access token strictly, with the revocation list, and
// then asks the store whether its session is still live, so a token of a
// session revoked on another instance is refused here too.
func (t *Tokens) check(ctx context.Context, token string) (*verify.Claims, error) {
	if t.verify == nil {
		return nil, errors.New("sessiond: token extension not mounted")
	}
	c, err := t.verify.Verify(ctx, token)
	if err != nil {
		return nil, err
	}
	rec, err := t.m.Get(ctx, c.SessionID)
	if err != nil {
		return nil, err
	}
	if !rec.Live(t.m.Now()) {
		return nil, sessionkit.ErrRevoked
	}
	return c, nil
}

// VerifyBearer implements BearerVerifier for GET /v1/auth.
func (t *Tokens) VerifyBearer(ctx context.Context, token string, _ sessionkit.Client) (Identity, error) {
	c, err := t.check(ctx, token)
	if err != nil {
		return Identity{}, err
	}
	return Identity{Subject: c.Subject, Handle: c.SessionID, AuthLevel: c.AuthLevel}, nil
}

// jwks serves the public keys. Verifiers may cache them for a fraction of
// the pre-publication period, so a new key reaches them before it signs.
func (t *Tokens) jwks(w http.ResponseWriter, r *http.Request) {
	b, err := json.Marshal(t.Ring.JWKS(t.m.Now()))
	if err != nil {
		WriteError(w, http.StatusInternalServerError, CodeInternal, "key set could not be encoded")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=60")
	h.Set("X-Content-Type-Options", "nosniff")
	w.Write(append(b, '\n'))
}
