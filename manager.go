package sessionkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// maxCASRetries bounds the retries of a compare-and-swap loop. Conflicts
// come only from concurrent requests of one session; with backoff between
// attempts even dozens of simultaneous writers settle well within it.
const maxCASRetries = 32

// backoffAfter waits before the attempt-th retry of a compare-and-swap, a random
// time that grows with attempt, so that writers that collided spread out
// instead of colliding again.
func backoffAfter(ctx context.Context, attempt int) error {
	if attempt == 0 {
		return nil
	}
	d := time.Duration(rand.Int64N(int64(attempt+1) * int64(100*time.Microsecond)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Manager creates, validates, renews and ends sessions in a Store. It is
// safe for concurrent use.
type Manager struct {
	store Store
	cfg   Config
}

// New returns a Manager for store. It fails only for an invalid or insecure
// Config.
func New(store Store, cfg Config) (*Manager, error) {
	if store == nil {
		return nil, fmt.Errorf("%w: nil store", ErrConfig)
	}
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Manager{store: store, cfg: c}, nil
}

// Store returns the manager's store.
func (m *Manager) Store() Store { return m.store }

// Config returns the configuration in force, defaults filled in.
func (m *Manager) Config() Config { return m.cfg }

// Now returns the current time from the configured clock.
func (m *Manager) Now() time.Time { return m.cfg.Now() }

type actorKey struct{}

// WithActor returns a context whose events name actor as their cause, e.g.
// the id of the API key that called a service.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// Emit reports e to the configured sink, filling in Time from the clock
// when it is zero and Actor from the context (see WithActor). Packages that
// extend sessions (such as access tokens) report their events through it.
func (m *Manager) Emit(ctx context.Context, e Event) {
	if e.Time.IsZero() {
		e.Time = m.cfg.Now()
	}
	if e.Actor == "" {
		e.Actor, _ = ctx.Value(actorKey{}).(string)
	}
	m.cfg.Events.Emit(ctx, e)
}

func (m *Manager) emit(ctx context.Context, typ EventType, rec *Record, reason string, c Client, detail map[string]string) {
	e := Event{Type: typ, Time: m.cfg.Now(), Reason: reason, Client: c, Detail: detail}
	if rec != nil {
		e.Handle = rec.Handle
		e.Subject = rec.Subject
	}
	e.Actor, _ = ctx.Value(actorKey{}).(string)
	m.cfg.Events.Emit(ctx, e)
}

// CreateParams describes a new session.
type CreateParams struct {
	Subject    string // empty for an anonymous session
	AuthLevel  int
	Data       map[string]json.RawMessage
	Client     Client
	Persistent bool
}

// Create starts a session and returns its token, which exists nowhere else:
// hand it to the client and forget it.
func (m *Manager) Create(ctx context.Context, p CreateParams) (string, *Record, error) {
	if err := checkSubject(p.Subject); err != nil {
		return "", nil, err
	}
	if err := m.checkData(p.Data); err != nil {
		return "", nil, err
	}
	now := m.cfg.Now()
	tok, hash := newToken()
	rec := &Record{
		Handle:           newHandle(),
		TokenHash:        hash,
		Subject:          p.Subject,
		AuthLevel:        p.AuthLevel,
		CreatedAt:        now,
		AbsoluteDeadline: now.Add(m.cfg.AbsoluteTimeout),
		Persistent:       p.Persistent,
		Client:           p.Client,
		Data:             p.Data,
	}
	if p.Subject != "" {
		rec.AuthenticatedAt = now
		rec.AuthLevel = max(rec.AuthLevel, 1)
	}
	rec.Activity = m.activity(rec, now, p.Client)
	evicted, err := m.store.Create(ctx, rec, m.limit(now))
	if err != nil {
		if errors.Is(err, ErrLimit) {
			m.emit(ctx, EventRejected, rec, ReasonLimit, p.Client, nil)
		}
		return "", nil, err
	}
	m.emitEvicted(ctx, evicted)
	m.emit(ctx, EventCreated, rec, "", p.Client, nil)
	if rec.Subject != "" {
		m.emit(ctx, EventAuthenticated, rec, "", p.Client, nil)
	}
	return tok, rec, nil
}

// activity is the activity of rec used at now by client c: the idle deadline
// slides, but never past the absolute deadline. A caller that does not know
// the client (an empty c) keeps the last one seen.
func (m *Manager) activity(rec *Record, now time.Time, c Client) Activity {
	if c == (Client{}) {
		c = rec.LastClient
	}
	idle := now.Add(m.cfg.IdleTimeout)
	if idle.After(rec.AbsoluteDeadline) {
		idle = rec.AbsoluteDeadline
	}
	a := Activity{LastSeenAt: now, IdleDeadline: idle, LastClient: c}
	a.PurgeAt = idle.Add(m.cfg.Retention)
	return a
}

func (m *Manager) limit(now time.Time) Limit {
	return Limit{
		Max:        m.cfg.MaxSessionsPerSubject,
		Policy:     m.cfg.LimitPolicy,
		Now:        now,
		Revocation: m.revocation(now, ReasonLimit),
	}
}

func (m *Manager) revocation(now time.Time, reason string) Revocation {
	return Revocation{At: now, Reason: reason, PurgeAt: now.Add(m.cfg.Retention)}
}

func (m *Manager) emitEvicted(ctx context.Context, evicted []*Record) {
	for _, r := range evicted {
		m.emit(ctx, EventRevoked, r, ReasonLimit, r.LastClient, nil)
	}
}

// ErrDataTooLarge reports application data over Config.MaxDataBytes.
var ErrDataTooLarge = errors.New("sessionkit: session data too large")

// ErrInvalid reports a subject or data value that cannot be stored. Nothing
// was changed.
var ErrInvalid = errors.New("sessionkit: invalid input")

// MaxSubjectLen bounds a subject, which is stored with every session and
// used as an index key.
const MaxSubjectLen = 256

// checkSubject accepts printable UTF-8 subjects up to MaxSubjectLen bytes,
// so that a subject can neither break a store's index keys nor a log line.
func checkSubject(s string) error {
	if len(s) > MaxSubjectLen {
		return fmt.Errorf("%w: subject longer than %d bytes", ErrInvalid, MaxSubjectLen)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: subject is not valid UTF-8", ErrInvalid)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: subject contains a control character", ErrInvalid)
		}
	}
	return nil
}

func (m *Manager) checkData(d map[string]json.RawMessage) error {
	n := 0
	for k, v := range d {
		n += len(k) + len(v)
		if !json.Valid(v) {
			return fmt.Errorf("%w: data key %q is not valid JSON", ErrInvalid, k)
		}
	}
	if n > m.cfg.MaxDataBytes {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrDataTooLarge, n, m.cfg.MaxDataBytes)
	}
	return nil
}

// Validate checks a token and returns its live session. It records the
// client's activity (at most one store write per TouchInterval) and applies
// the binding policy. Its errors: ErrMalformed, ErrNotFound, ErrExpired,
// ErrRevoked, or an error wrapping ErrStore, after which the caller must fail
// closed. Each rejection is reported as an event.
func (m *Manager) Validate(ctx context.Context, token string, c Client) (*Record, error) {
	rec, touch, err := m.load(ctx, token, c)
	if err != nil {
		return nil, err
	}
	if touch {
		if err := m.touch(ctx, rec, c); err != nil {
			return nil, err
		}
	}
	return rec, nil
}

// load validates token and reports whether the session's activity is due to
// be written. It does not write activity.
func (m *Manager) load(ctx context.Context, token string, c Client) (*Record, bool, error) {
	hash, err := HashToken(token)
	if err != nil {
		m.emit(ctx, EventRejected, nil, ReasonMalformed, c, nil)
		return nil, false, err
	}
	rec, err := m.store.Get(ctx, hash)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			m.emit(ctx, EventRejected, nil, ReasonUnknown, c, nil)
		}
		return nil, false, err
	}
	now := m.cfg.Now()
	if err := m.checkLive(ctx, rec, now, c); err != nil {
		return nil, false, err
	}
	touch := now.Sub(rec.LastSeenAt) >= m.cfg.TouchInterval
	if c.IP != "" || c.UserAgent != "" {
		changed, err := m.checkBinding(ctx, rec, c)
		if err != nil {
			return nil, false, err
		}
		// Record the new client at once, so one change raises one anomaly.
		touch = touch || changed
	}
	return rec, touch, nil
}

// checkLive returns nil for a live session, or the error for an ended one.
// A session found past a deadline is ended here, once: the store's Revoke
// lets exactly one caller emit the expiry event.
func (m *Manager) checkLive(ctx context.Context, rec *Record, now time.Time, c Client) error {
	if rec.Revoked() {
		if strings.HasPrefix(rec.RevokedReason, "expired") {
			m.emit(ctx, EventRejected, rec, ReasonExpired, c, nil)
			return ErrExpired
		}
		m.emit(ctx, EventRejected, rec, ReasonRevoked, c, nil)
		return ErrRevoked
	}
	var typ EventType
	switch {
	case !now.Before(rec.AbsoluteDeadline):
		typ = EventExpiredAbs
	case !now.Before(rec.IdleDeadline):
		typ = EventExpiredIdle
	default:
		return nil
	}
	ended, err := m.store.Revoke(ctx, rec.Handle, m.revocation(now, string(typ)))
	switch {
	case err == nil:
		m.emit(ctx, typ, ended, "", c, nil)
	case errors.Is(err, ErrRevoked), errors.Is(err, ErrNotFound):
	default:
		return err
	}
	m.emit(ctx, EventRejected, rec, ReasonExpired, c, nil)
	return ErrExpired
}

// checkBinding compares c with the client the session was last seen with
// and applies the binding policy. It reports whether the client changed.
func (m *Manager) checkBinding(ctx context.Context, rec *Record, c Client) (bool, error) {
	last := rec.LastClient
	ipChanged := c.IP != "" && last.IP != "" && !m.sameNetwork(last.IP, c.IP)
	uaChanged := c.UserAgent != last.UserAgent && last.UserAgent != ""
	checks := []struct {
		changed bool
		action  BindingAction
		reason  string
		from    string
		to      string
	}{
		{ipChanged, m.cfg.Binding.OnIPChange, ReasonIPChange, last.IP, c.IP},
		{uaChanged, m.cfg.Binding.OnUserAgentChange, ReasonUAChange, last.UserAgent, c.UserAgent},
	}
	changed := false
	for _, ch := range checks {
		if !ch.changed || ch.action == BindIgnore {
			continue
		}
		changed = true
		detail := map[string]string{"from": ch.from, "to": ch.to}
		m.emit(ctx, EventAnomaly, rec, ch.reason, c, detail)
		if ch.action == BindReject {
			if _, err := m.store.Revoke(ctx, rec.Handle, m.revocation(m.cfg.Now(), ReasonBinding)); err != nil && !errors.Is(err, ErrRevoked) && !errors.Is(err, ErrNotFound) {
				return false, err
			}
			m.emit(ctx, EventRevoked, rec, ReasonBinding, c, detail)
			m.emit(ctx, EventRejected, rec, ReasonBinding, c, detail)
			return false, ErrRevoked
		}
	}
	return changed, nil
}

func (m *Manager) sameNetwork(a, b string) bool {
	if a == b {
		return true
	}
	pa, err1 := netip.ParseAddr(a)
	pb, err2 := netip.ParseAddr(b)
	if err1 != nil || err2 != nil {
		return false
	}
	pa, pb = pa.Unmap(), pb.Unmap()
	if pa.Is4() != pb.Is4() {
		return false
	}
	bits := m.cfg.Binding.IPv6Prefix
	if pa.Is4() {
		bits = m.cfg.Binding.IPv4Prefix
	}
	na, _ := pa.Prefix(bits)
	nb, _ := pb.Prefix(bits)
	return na == nb
}

// touch writes the session's activity at now.
func (m *Manager) touch(ctx context.Context, rec *Record, c Client) error {
	a := m.activity(rec, m.cfg.Now(), c)
	if err := m.store.Touch(ctx, rec.Handle, a); err != nil {
		return err
	}
	rec.Activity = a
	return nil
}

// RenewParams describes a renewal.
type RenewParams struct {
	// Subject the session belongs to afterwards. Empty keeps the current
	// subject. Moving a session from one subject to another clears its data,
	// so one user's state never reaches another.
	Subject string
	// AuthLevel afterwards; 0 keeps the current level.
	AuthLevel int
	Client    Client
}

// Renew gives the session behind token a new token and makes the old one
// invalid in the same atomic store step. Apps call it on login (an anonymous
// session becomes the user's and keeps its data) and on privilege change.
// The absolute deadline never moves.
func (m *Manager) Renew(ctx context.Context, token string, p RenewParams) (string, *Record, error) {
	if err := checkSubject(p.Subject); err != nil {
		return "", nil, err
	}
	rec, _, err := m.load(ctx, token, p.Client)
	if err != nil {
		return "", nil, err
	}
	return m.renew(ctx, rec, p, nil)
}

// renew replaces rec's token, applying change (if not nil) to the record in
// the same write. It retries on version conflicts by reloading the record.
func (m *Manager) renew(ctx context.Context, rec *Record, p RenewParams, change func(*Record)) (string, *Record, error) {
	for attempt := range maxCASRetries {
		if err := backoffAfter(ctx, attempt); err != nil {
			return "", nil, err
		}
		now := m.cfg.Now()
		next := rec.Clone()
		if change != nil {
			change(next)
		}
		if err := m.checkData(next.Data); err != nil {
			return "", nil, err
		}
		tok, hash := newToken()
		next.TokenHash = hash
		login := p.Subject != "" && p.Subject != rec.Subject
		if login {
			if rec.Subject != "" {
				next.Data = nil
			}
			next.Subject = p.Subject
			next.AuthenticatedAt = now
		}
		if p.AuthLevel != 0 {
			if p.AuthLevel > rec.AuthLevel {
				next.AuthenticatedAt = now
			}
			next.AuthLevel = p.AuthLevel
		}
		if next.Subject != "" {
			// A session that belongs to someone is authenticated: level 1 at least.
			next.AuthLevel = max(next.AuthLevel, 1)
		}
		client := p.Client
		if client == (Client{}) {
			client = rec.LastClient
		}
		next.Activity = m.activity(next, now, client)
		lim := Limit{}
		if login {
			lim = m.limit(now)
		}
		evicted, err := m.store.Update(ctx, next, lim)
		switch {
		case err == nil:
			m.emitEvicted(ctx, evicted)
			typ := EventRenewed
			if login {
				typ = EventAuthenticated
			}
			m.emit(ctx, typ, next, "", client, nil)
			return tok, next, nil
		case errors.Is(err, ErrConflict):
			fresh, err := m.reload(ctx, rec.Handle, client)
			if err != nil {
				return "", nil, err
			}
			rec = fresh
		case errors.Is(err, ErrLimit):
			m.emit(ctx, EventRejected, rec, ReasonLimit, client, nil)
			return "", nil, err
		default:
			return "", nil, err
		}
	}
	return "", nil, ErrConflict
}

// reload reads a session by handle after a conflict and checks it is still
// live: a session that ended meanwhile must not be written again.
func (m *Manager) reload(ctx context.Context, handle string, c Client) (*Record, error) {
	rec, err := m.store.GetByHandle(ctx, handle)
	if err != nil {
		return nil, err
	}
	if err := m.checkLive(ctx, rec, m.cfg.Now(), c); err != nil {
		return nil, err
	}
	return rec, nil
}

// LowerAuthLevel lowers the auth level of the session with handle, e.g. to
// make the app ask for step-up authentication after an anomaly. Raising a
// level needs a new token: use Renew.
func (m *Manager) LowerAuthLevel(ctx context.Context, handle string, level int) (*Record, error) {
	for attempt := range maxCASRetries {
		if err := backoffAfter(ctx, attempt); err != nil {
			return nil, err
		}
		cur, err := m.reload(ctx, handle, Client{})
		if err != nil {
			return nil, err
		}
		if level >= cur.AuthLevel {
			return cur, nil
		}
		next := cur.Clone()
		next.AuthLevel = level
		_, err = m.store.Update(ctx, next, Limit{})
		if err == nil {
			m.emit(ctx, EventUpdated, next, "auth_level_lowered", Client{}, nil)
			return next, nil
		}
		if !errors.Is(err, ErrConflict) {
			return nil, err
		}
	}
	return nil, ErrConflict
}

// UpdateData applies changes to the data of the session with handle, if it
// is still at version (0 skips the check): a key mapped to nil is removed.
func (m *Manager) UpdateData(ctx context.Context, handle string, version uint64, changes map[string]json.RawMessage) (*Record, error) {
	for attempt := range maxCASRetries {
		if err := backoffAfter(ctx, attempt); err != nil {
			return nil, err
		}
		cur, err := m.reload(ctx, handle, Client{})
		if err != nil {
			return nil, err
		}
		if version != 0 && cur.Version != version {
			return nil, ErrConflict
		}
		next := cur.Clone()
		applyChanges(next, changes)
		if err := m.checkData(next.Data); err != nil {
			return nil, err
		}
		_, err = m.store.Update(ctx, next, Limit{})
		if err == nil {
			m.emit(ctx, EventUpdated, next, "", Client{}, nil)
			return next, nil
		}
		if !errors.Is(err, ErrConflict) || version != 0 {
			return nil, err
		}
	}
	return nil, ErrConflict
}

func applyChanges(rec *Record, changes map[string]json.RawMessage) {
	for k, v := range changes {
		if v == nil || string(v) == "null" {
			delete(rec.Data, k)
			continue
		}
		if rec.Data == nil {
			rec.Data = make(map[string]json.RawMessage, len(changes))
		}
		rec.Data[k] = v
	}
}

// Get returns the session with handle, live or not, for operators.
func (m *Manager) Get(ctx context.Context, handle string) (*Record, error) {
	return m.store.GetByHandle(ctx, handle)
}

// Revoke ends the session with handle. reason is recorded and reported
// (e.g. ReasonOperator).
func (m *Manager) Revoke(ctx context.Context, handle, reason string) (*Record, error) {
	rec, err := m.store.Revoke(ctx, handle, m.revocation(m.cfg.Now(), reason))
	if err != nil {
		return nil, err
	}
	m.emit(ctx, EventRevoked, rec, reason, Client{}, nil)
	return rec, nil
}

// Logout ends the session behind token. A token that is already invalid
// gets its error; logging out twice is ErrRevoked.
func (m *Manager) Logout(ctx context.Context, token string) error {
	hash, err := HashToken(token)
	if err != nil {
		m.emit(ctx, EventRejected, nil, ReasonMalformed, Client{}, nil)
		return err
	}
	rec, err := m.store.Get(ctx, hash)
	if err != nil {
		return err
	}
	return m.logout(ctx, rec, rec.LastClient)
}

func (m *Manager) logout(ctx context.Context, rec *Record, c Client) error {
	ended, err := m.store.Revoke(ctx, rec.Handle, m.revocation(m.cfg.Now(), ReasonLogout))
	if err != nil {
		return err
	}
	m.emit(ctx, EventLoggedOut, ended, "", c, nil)
	return nil
}

// List returns the live sessions of subject, oldest first.
func (m *Manager) List(ctx context.Context, subject string) ([]*Record, error) {
	recs, err := m.store.ListSubject(ctx, subject)
	if err != nil {
		return nil, err
	}
	now := m.cfg.Now()
	live := recs[:0]
	for _, r := range recs {
		if r.Live(now) {
			live = append(live, r)
		}
	}
	return live, nil
}

// RevokeSubject ends every session of subject except the one with handle
// except (empty for none) and returns how many it ended.
func (m *Manager) RevokeSubject(ctx context.Context, subject, except, reason string) (int, error) {
	recs, err := m.store.RevokeSubject(ctx, subject, except, m.revocation(m.cfg.Now(), reason))
	if err != nil {
		return 0, err
	}
	for _, r := range recs {
		m.emit(ctx, EventRevoked, r, reason, Client{}, nil)
	}
	return len(recs), nil
}

// sweepBatch bounds one DeleteExpired call so a sweep never holds a store
// lock for long.
const sweepBatch = 500

// Sweep removes the records whose retention has passed and returns how many
// it removed.
func (m *Manager) Sweep(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := m.store.DeleteExpired(ctx, m.cfg.Now(), sweepBatch)
		total += n
		if err != nil || n < sweepBatch {
			return total, err
		}
	}
}

// RunSweeper calls Sweep every interval until ctx is done. Stores with
// native expiry (Redis) need no sweeper; it does no harm there.
func (m *Manager) RunSweeper(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.Sweep(ctx)
		}
	}
}
