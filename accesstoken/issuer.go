package accesstoken

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/accesstoken/verify"
)

// Defaults for Config.
const (
	DefaultLifetime      = 5 * time.Minute
	DefaultRefreshGrace  = 30 * time.Second
	DefaultMaxTokenBytes = 4 << 10
)

// Errors returned by Issuer. API layers map ErrRefreshReused to 401
// refresh_token_reused and the others to 401 invalid_token; errors wrapping
// sessionkit.ErrStore mean the store could not be asked (fail closed).
var (
	ErrInvalidRefresh = errors.New("accesstoken: invalid refresh token")
	ErrRefreshReused  = errors.New("accesstoken: refresh token reused; the session was revoked")
	ErrTokenTooLarge  = errors.New("accesstoken: access token too large")
	ErrReservedClaim  = errors.New("accesstoken: extra claim overrides a reserved claim")
	ErrAudience       = errors.New("accesstoken: audience not allowed")
	ErrAnonymous      = errors.New("accesstoken: anonymous sessions get no access tokens")
	ErrConfig         = errors.New("accesstoken: invalid configuration")
)

// ReservedClaims cannot be set by extra claims.
var ReservedClaims = []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "sid", "auth_level", "typ", "cnf", "act", "scope", "client_id"}

// Config configures an Issuer.
type Config struct {
	// Issuer is the iss claim, e.g. the service's URL. Required.
	Issuer string
	// Audience is the aud claim when a request names none. Required.
	Audience string
	// Audiences, if not empty, lists every audience a caller may ask for;
	// otherwise only Audience is allowed.
	Audiences []string
	// Lifetime of an access token. Default 5m, at least 1s.
	Lifetime time.Duration
	// RefreshGrace is how long the previous refresh token still yields its
	// successor (concurrent refreshes by one client). Default 30s.
	RefreshGrace time.Duration
	// MaxTokenBytes refuses access tokens longer than this at issue time.
	// Default 4 KiB (a cookie's limit, and well within proxies' header
	// limits).
	MaxTokenBytes int
	// Claims, if set, returns extra claims for a session; they may not
	// override ReservedClaims.
	Claims func(ctx context.Context, rec *sessionkit.Record) (map[string]any, error)
	// Revocations, if set, is checked by Verifier.
	Revocations *Revocations
}

// Issuer issues access and refresh tokens for the sessions of a Manager.
// It is safe for concurrent use.
type Issuer struct {
	m    *sessionkit.Manager
	keys *KeyRing
	cfg  Config
}

// NewIssuer returns an Issuer signing with keys.
func NewIssuer(m *sessionkit.Manager, keys *KeyRing, cfg Config) (*Issuer, error) {
	if m == nil || keys == nil {
		return nil, fmt.Errorf("%w: manager and keys are required", ErrConfig)
	}
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, fmt.Errorf("%w: issuer and audience are required", ErrConfig)
	}
	switch {
	case cfg.Lifetime == 0:
		cfg.Lifetime = DefaultLifetime
	case cfg.Lifetime < time.Second:
		return nil, fmt.Errorf("%w: lifetime under 1s", ErrConfig)
	}
	switch {
	case cfg.RefreshGrace == 0:
		cfg.RefreshGrace = DefaultRefreshGrace
	case cfg.RefreshGrace < 0:
		return nil, fmt.Errorf("%w: negative refresh grace", ErrConfig)
	}
	if cfg.MaxTokenBytes <= 0 {
		cfg.MaxTokenBytes = DefaultMaxTokenBytes
	}
	cfg.Audiences = slices.Clone(cfg.Audiences)
	if !slices.Contains(cfg.Audiences, cfg.Audience) {
		cfg.Audiences = append(cfg.Audiences, cfg.Audience)
	}
	return &Issuer{m: m, keys: keys, cfg: cfg}, nil
}

// Config returns the configuration in force, defaults filled in.
func (is *Issuer) Config() Config { return is.cfg }

// Keys returns the issuer's key ring.
func (is *Issuer) Keys() *KeyRing { return is.keys }

// Pair is what issuing or refreshing returns.
type Pair struct {
	AccessToken  string
	RefreshToken string
	Expiry       time.Time // of the access token
	Lifetime     time.Duration
	Session      *sessionkit.Record
}

// Params are the per-request options of Issue and Refresh.
type Params struct {
	// Audience of the access token; empty means Config.Audience.
	Audience string
	// Extra claims for this token, on top of Config.Claims.
	Extra  map[string]any
	Client sessionkit.Client
}

// Issue validates the session behind sessionToken (with Manager.Validate)
// and returns an access token and the first refresh token of a new family,
// which replaces any earlier refresh token of that session.
func (is *Issuer) Issue(ctx context.Context, sessionToken string, p Params) (*Pair, error) {
	aud, err := is.audience(p.Audience)
	if err != nil {
		return nil, err
	}
	rec, err := is.m.Validate(ctx, sessionToken, p.Client)
	if err != nil {
		return nil, err
	}
	if rec.Subject == "" {
		return nil, ErrAnonymous
	}
	// Check the claims before the store write, so a refused token leaves
	// the session's refresh family unchanged.
	if _, err := is.sign(ctx, rec, aud, p.Extra); err != nil {
		return nil, err
	}
	for range 16 {
		key := newFamilyKey()
		tok, rt := newRefreshToken(rec.Handle, key)
		next := rec.Clone()
		next.Refresh = sessionkit.RefreshState{Hash: rt.hash(), Generation: rec.Refresh.Generation + 1, Key: key}
		_, err := is.m.Store().Update(ctx, next, sessionkit.Limit{})
		if err == nil {
			return is.pair(ctx, next, tok, aud, p.Extra)
		}
		if !errors.Is(err, sessionkit.ErrConflict) {
			return nil, err
		}
		if rec, err = is.reload(ctx, rec.Handle); err != nil {
			return nil, err
		}
	}
	return nil, sessionkit.ErrConflict
}

// IssueAccessToken returns an access token for a live session record
// without touching its refresh family, for applications that validated the
// session themselves.
func (is *Issuer) IssueAccessToken(ctx context.Context, rec *sessionkit.Record, p Params) (string, time.Time, error) {
	aud, err := is.audience(p.Audience)
	if err != nil {
		return "", time.Time{}, err
	}
	if rec.Subject == "" {
		return "", time.Time{}, ErrAnonymous
	}
	if !rec.Live(is.m.Now()) {
		return "", time.Time{}, sessionkit.ErrExpired
	}
	t, err := is.sign(ctx, rec, aud, p.Extra)
	if err != nil {
		return "", time.Time{}, err
	}
	return t.token, t.exp, nil
}

func (is *Issuer) audience(a string) (string, error) {
	if a == "" {
		return is.cfg.Audience, nil
	}
	if !slices.Contains(is.cfg.Audiences, a) {
		return "", ErrAudience
	}
	return a, nil
}

// reload reads a session after a conflict and checks it is still live.
func (is *Issuer) reload(ctx context.Context, handle string) (*sessionkit.Record, error) {
	rec, err := is.m.Store().GetByHandle(ctx, handle)
	if err != nil {
		return nil, err
	}
	if rec.Revoked() {
		return nil, sessionkit.ErrRevoked
	}
	if !rec.Live(is.m.Now()) {
		return nil, sessionkit.ErrExpired
	}
	return rec, nil
}

func (is *Issuer) pair(ctx context.Context, rec *sessionkit.Record, refresh, aud string, extra map[string]any) (*Pair, error) {
	t, err := is.sign(ctx, rec, aud, extra)
	if err != nil {
		return nil, err
	}
	return &Pair{AccessToken: t.token, RefreshToken: refresh, Expiry: t.exp, Lifetime: t.exp.Sub(t.iat), Session: rec}, nil
}

type signed struct {
	token    string
	iat, exp time.Time
}

// sign builds and signs the access token of rec.
func (is *Issuer) sign(ctx context.Context, rec *sessionkit.Record, aud string, extra map[string]any) (signed, error) {
	now := is.m.Now().Truncate(time.Second)
	exp := now.Add(is.cfg.Lifetime)
	// A token never outlives its session's absolute deadline.
	if d := rec.AbsoluteDeadline.Truncate(time.Second); d.Before(exp) {
		exp = d
	}
	if !exp.After(now) {
		return signed{}, sessionkit.ErrExpired
	}
	claims := map[string]any{}
	if is.cfg.Claims != nil {
		more, err := is.cfg.Claims(ctx, rec)
		if err != nil {
			return signed{}, err
		}
		if err := addExtra(claims, more); err != nil {
			return signed{}, err
		}
	}
	if err := addExtra(claims, extra); err != nil {
		return signed{}, err
	}
	var jti [16]byte
	rand.Read(jti[:])
	claims["iss"] = is.cfg.Issuer
	claims["sub"] = rec.Subject
	claims["aud"] = aud
	claims["exp"] = exp.Unix()
	claims["iat"] = now.Unix()
	claims["nbf"] = now.Unix()
	claims["jti"] = base64.RawURLEncoding.EncodeToString(jti[:])
	claims["sid"] = rec.Handle
	claims["auth_level"] = rec.AuthLevel
	payload, err := json.Marshal(claims)
	if err != nil {
		return signed{}, fmt.Errorf("accesstoken: claims: %w", err)
	}
	// A cheap bound before signing: base64 grows the payload by a third.
	if len(payload)*4/3 > is.cfg.MaxTokenBytes {
		return signed{}, fmt.Errorf("%w: claims of %d bytes exceed the %d-byte limit", ErrTokenTooLarge, len(payload), is.cfg.MaxTokenBytes)
	}
	key, err := is.keys.SigningKey(is.m.Now())
	if err != nil {
		return signed{}, err
	}
	signer, err := key.Signer()
	if err != nil {
		return signed{}, err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return signed{}, err
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		return signed{}, err
	}
	if len(tok) > is.cfg.MaxTokenBytes {
		return signed{}, fmt.Errorf("%w: %d bytes, limit %d", ErrTokenTooLarge, len(tok), is.cfg.MaxTokenBytes)
	}
	return signed{tok, now, exp}, nil
}

func addExtra(dst, extra map[string]any) error {
	for k, v := range extra {
		if slices.Contains(ReservedClaims, k) {
			return fmt.Errorf("%w: %q", ErrReservedClaim, k)
		}
		dst[k] = v
	}
	return nil
}

// Refresh rotates refreshToken and returns a new pair. The record's
// refresh state changes in one compare-and-swap update, which also records
// the client's activity (refreshing is use of the session). Within
// Config.RefreshGrace of a rotation, the previous token yields the same
// successor again; after it, presenting the previous token, or any older
// token of the family, revokes the session and returns ErrRefreshReused.
func (is *Issuer) Refresh(ctx context.Context, refreshToken string, p Params) (*Pair, error) {
	aud, err := is.audience(p.Audience)
	if err != nil {
		return nil, err
	}
	rt, ok := parseRefreshToken(refreshToken)
	if !ok {
		is.reject(ctx, nil, sessionkit.ReasonMalformed, p.Client)
		return nil, ErrInvalidRefresh
	}
	h := rt.hash()
	for range 16 {
		rec, err := is.m.Store().GetByHandle(ctx, rt.handle)
		if errors.Is(err, sessionkit.ErrNotFound) {
			is.reject(ctx, nil, sessionkit.ReasonUnknown, p.Client)
			return nil, ErrInvalidRefresh
		}
		if err != nil {
			return nil, err
		}
		now := is.m.Now()
		rs := rec.Refresh
		switch {
		case rec.Revoked():
			is.reject(ctx, rec, sessionkit.ReasonRevoked, p.Client)
			return nil, fmt.Errorf("%w: %w", ErrInvalidRefresh, sessionkit.ErrRevoked)
		case !rec.Live(now):
			is.reject(ctx, rec, sessionkit.ReasonExpired, p.Client)
			return nil, fmt.Errorf("%w: %w", ErrInvalidRefresh, sessionkit.ErrExpired)
		case hashEqual(h, rs.Hash):
			tok, next, err := is.rotate(ctx, rec, rt, p.Client)
			if errors.Is(err, sessionkit.ErrConflict) {
				continue // another refresh won; its result decides ours
			}
			if err != nil {
				return nil, err
			}
			is.m.Emit(ctx, sessionkit.Event{Type: sessionkit.EventRefreshed, Handle: rec.Handle, Subject: rec.Subject, Client: p.Client})
			return is.pair(ctx, next, tok, aud, p.Extra)
		case rs.PrevHash != (sessionkit.TokenHash{}) && hashEqual(h, rs.PrevHash):
			if now.Sub(rs.RotatedAt) <= is.cfg.RefreshGrace {
				succ, ok := openSuccessor(rt, rs.Successor)
				if ok && hashEqual(succ.hash(), rs.Hash) {
					is.m.Emit(ctx, sessionkit.Event{Type: sessionkit.EventRefreshed, Handle: rec.Handle, Subject: rec.Subject, Client: p.Client, Detail: map[string]string{"grace": "true"}})
					return is.pair(ctx, rec, succ.String(), aud, p.Extra)
				}
			}
			return nil, is.reused(ctx, rec, p.Client)
		case rt.issuedBy(rs.Key):
			// A token of this family retired more than one rotation ago.
			return nil, is.reused(ctx, rec, p.Client)
		default:
			is.reject(ctx, rec, sessionkit.ReasonUnknown, p.Client)
			return nil, ErrInvalidRefresh
		}
	}
	return nil, sessionkit.ErrConflict
}

// rotate replaces rec's refresh token (whose secret is cur) with a new one
// in one compare-and-swap.
func (is *Issuer) rotate(ctx context.Context, rec *sessionkit.Record, cur refreshToken, c sessionkit.Client) (string, *sessionkit.Record, error) {
	now := is.m.Now()
	tok, next := newRefreshToken(rec.Handle, rec.Refresh.Key)
	sealed, err := sealSuccessor(cur, next)
	if err != nil {
		return "", nil, err
	}
	n := rec.Clone()
	n.Refresh = sessionkit.RefreshState{
		Hash:       next.hash(),
		PrevHash:   cur.hash(),
		RotatedAt:  now,
		Successor:  sealed,
		Generation: rec.Refresh.Generation + 1,
		Key:        rec.Refresh.Key,
	}
	n.Activity = is.activity(rec, now, c)
	if _, err := is.m.Store().Update(ctx, n, sessionkit.Limit{}); err != nil {
		return "", nil, err
	}
	return tok, n, nil
}

// activity slides the idle deadline as the Manager does on validation,
// never past the absolute deadline.
func (is *Issuer) activity(rec *sessionkit.Record, now time.Time, c sessionkit.Client) sessionkit.Activity {
	cfg := is.m.Config()
	idle := now.Add(cfg.IdleTimeout)
	if idle.After(rec.AbsoluteDeadline) {
		idle = rec.AbsoluteDeadline
	}
	if c == (sessionkit.Client{}) {
		c = rec.LastClient
	}
	return sessionkit.Activity{LastSeenAt: now, IdleDeadline: idle, PurgeAt: idle.Add(cfg.Retention), LastClient: c}
}

// reused ends the session whose retired refresh token was presented: one
// of the two holders is not the user.
func (is *Issuer) reused(ctx context.Context, rec *sessionkit.Record, c sessionkit.Client) error {
	_, err := is.m.Revoke(ctx, rec.Handle, sessionkit.ReasonRefreshReuse)
	if err != nil && !errors.Is(err, sessionkit.ErrRevoked) && !errors.Is(err, sessionkit.ErrNotFound) {
		return err
	}
	is.m.Emit(ctx, sessionkit.Event{Type: sessionkit.EventRefreshReused, Handle: rec.Handle, Subject: rec.Subject, Reason: sessionkit.ReasonRefreshReuse, Client: c})
	return ErrRefreshReused
}

func (is *Issuer) reject(ctx context.Context, rec *sessionkit.Record, reason string, c sessionkit.Client) {
	e := sessionkit.Event{Type: sessionkit.EventRejected, Reason: reason, Client: c, Detail: map[string]string{"credential": "refresh_token"}}
	if rec != nil {
		e.Handle, e.Subject = rec.Handle, rec.Subject
	}
	is.m.Emit(ctx, e)
}

// Verifier returns a strict verifier of this issuer's access tokens for
// audience (empty: any audience the issuer may issue), trusting the key
// ring and checking Config.Revocations.
func (is *Issuer) Verifier(audience string) (*verify.Verifier, error) {
	vc := verify.Config{
		Issuer:     is.cfg.Issuer,
		Audience:   audience,
		Keys:       is.keys,
		Algorithms: is.keys.Algorithms(),
		Now:        is.m.Now,
	}
	if audience == "" {
		vc.Audience, vc.AnyAudience = is.cfg.Audience, true
	}
	if is.cfg.Revocations != nil {
		vc.Revocations = is.cfg.Revocations
	}
	return verify.New(vc)
}
