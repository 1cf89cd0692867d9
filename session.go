package sessionkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// ErrCommitted is returned by changes made to a Session after the response
// started: the session was already saved, so the change would be lost.
var ErrCommitted = errors.New("sessionkit: session already saved for this response")

// Session is the session of one request, as loaded by Manager.LoadAndSave.
// Reads see the request's own changes; changes are saved when the response
// starts, in one compare-and-swap write merged with concurrent requests'
// changes to other keys. A Session is safe for use by the request's
// goroutines.
type Session struct {
	m      *Manager
	client Client

	mu   sync.Mutex
	base *Record // as stored; nil while no session exists
	data map[string]json.RawMessage
	// ops are this request's data changes, replayed on a fresh copy when
	// a concurrent request changed the session first.
	ops []dataOp

	token      string // the current token: presented, created or renewed
	setCookie  bool   // the cookie must be (re)written with token
	dirty      bool
	touchDue   bool
	clear      bool // the client's cookie is to be removed
	persistSet bool
	persist    bool
	committed  bool
}

type dataOp struct {
	key   string
	value json.RawMessage // nil removes key
	clear bool            // removes every key
}

type sessionKey struct{}

// FromContext returns the request's Session, or nil outside
// Manager.LoadAndSave.
func FromContext(ctx context.Context) *Session {
	s, _ := ctx.Value(sessionKey{}).(*Session)
	return s
}

// Exists reports whether a stored session backs the request.
func (s *Session) Exists() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.base != nil
}

// Handle returns the session's public handle, or "" when none exists yet.
func (s *Session) Handle() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.base == nil {
		return ""
	}
	return s.base.Handle
}

// Subject returns the user the session belongs to, or "" if anonymous.
func (s *Session) Subject() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.base == nil {
		return ""
	}
	return s.base.Subject
}

// AuthLevel returns the session's auth level.
func (s *Session) AuthLevel() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.base == nil {
		return 0
	}
	return s.base.AuthLevel
}

// Record returns a copy of the stored record with this request's changes, or
// nil when no session exists yet.
func (s *Session) Record() *Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.base == nil {
		return nil
	}
	r := s.base.Clone()
	r.Data = maps.Clone(s.data)
	return r
}

// Get returns the JSON value stored under key.
func (s *Session) Get(key string) (json.RawMessage, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.data[key]
	return v, ok
}

// Decode unmarshals the value under key into v. It reports false, leaving
// v alone, when the key is missing or holds another type.
func (s *Session) Decode(key string, v any) bool {
	raw, ok := s.Get(key)
	return ok && json.Unmarshal(raw, v) == nil
}

// decoded returns the value of type T under key, or T's zero value.
func decoded[T any](s *Session, key string) T {
	var v T
	s.Decode(key, &v)
	return v
}

// GetString returns the string under key, or "".
func (s *Session) GetString(key string) string { return decoded[string](s, key) }

// GetInt returns the integer under key, or 0.
func (s *Session) GetInt(key string) int { return decoded[int](s, key) }

// GetInt64 returns the 64-bit integer under key, or 0.
func (s *Session) GetInt64(key string) int64 { return decoded[int64](s, key) }

// GetFloat64 returns the number under key, or 0.
func (s *Session) GetFloat64(key string) float64 { return decoded[float64](s, key) }

// GetBool returns the boolean under key, or false.
func (s *Session) GetBool(key string) bool { return decoded[bool](s, key) }

// GetTime returns the time under key, or the zero time.
func (s *Session) GetTime(key string) time.Time { return decoded[time.Time](s, key) }

// PopString returns the string under key and removes it: a flash message
// read once.
func (s *Session) PopString(key string) string {
	var v string
	s.Pop(key, &v)
	return v
}

// Keys returns the data keys in sorted order.
func (s *Session) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.data))
}

// Put stores value, encoded as JSON, under key. The session is created when
// the response starts if none exists.
func (s *Session) Put(key string, value any) error {
	raw, err := json.Marshal(value)
	if err != nil {
		return fmt.Errorf("sessionkit: value for %q: %w", key, err)
	}
	return s.change(dataOp{key: key, value: raw})
}

// Remove deletes key.
func (s *Session) Remove(key string) error {
	return s.change(dataOp{key: key})
}

// Clear deletes every key.
func (s *Session) Clear() error {
	return s.change(dataOp{clear: true})
}

// Pop decodes the value under key into v and removes the key. It reports
// whether a value of v's type was there.
func (s *Session) Pop(key string, v any) bool {
	ok := s.Decode(key, v)
	if _, exists := s.Get(key); exists {
		s.Remove(key)
	}
	return ok
}

func (s *Session) change(op dataOp) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.committed {
		return ErrCommitted
	}
	s.ops = append(s.ops, op)
	s.data = applyOp(s.data, op, true)
	s.dirty = true
	return nil
}

// applyOp applies op to data. The first change copies data when it may be
// shared with the stored record.
func applyOp(data map[string]json.RawMessage, op dataOp, owned bool) map[string]json.RawMessage {
	if op.clear {
		return nil
	}
	if data == nil {
		data = make(map[string]json.RawMessage)
	} else if !owned {
		data = maps.Clone(data)
	}
	if op.value == nil {
		delete(data, op.key)
	} else {
		data[op.key] = op.value
	}
	return data
}

// SetPersistent chooses whether the cookie outlives the browser session
// ("remember me"). Its Max-Age never exceeds the absolute deadline.
func (s *Session) SetPersistent(persistent bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.committed {
		return ErrCommitted
	}
	s.persistSet, s.persist, s.dirty = true, persistent, true
	return nil
}

// Login gives the session to subject at authLevel under a new token; the old
// token stops working in the same store step, which defeats session
// fixation. An anonymous session keeps its data; a session that belonged to
// another subject starts empty.
func (s *Session) Login(ctx context.Context, subject string, authLevel int) error {
	if subject == "" {
		return fmt.Errorf("%w: empty subject", ErrInvalid)
	}
	if err := checkSubject(subject); err != nil {
		return err
	}
	return s.renew(ctx, RenewParams{Subject: subject, AuthLevel: authLevel})
}

// Renew issues a new token for the session at authLevel (0 keeps the
// current level). Call it when privileges change.
func (s *Session) Renew(ctx context.Context, authLevel int) error {
	return s.renew(ctx, RenewParams{AuthLevel: authLevel})
}

func (s *Session) renew(ctx context.Context, p RenewParams) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.committed {
		return ErrCommitted
	}
	p.Client = s.client
	m := s.m
	if s.base == nil {
		tok, rec, err := m.Create(ctx, CreateParams{
			Subject: p.Subject, AuthLevel: p.AuthLevel, Data: s.data,
			Client: s.client, Persistent: s.persistent(),
		})
		if err != nil {
			return err
		}
		s.settle(rec, tok)
		return nil
	}
	ops, persist, persistSet := s.ops, s.persist, s.persistSet
	tok, rec, err := m.renew(ctx, s.base, p, func(r *Record) {
		for _, op := range ops {
			r.Data = applyOp(r.Data, op, true)
		}
		if persistSet {
			r.Persistent = persist
		}
	})
	if err != nil {
		return err
	}
	s.settle(rec, tok)
	return nil
}

// settle records a successful write of rec; tok is the new token, if any.
func (s *Session) settle(rec *Record, tok string) {
	s.base = rec
	s.data = rec.Data
	s.ops = nil
	s.dirty, s.touchDue = false, false
	if tok != "" {
		s.token = tok
		s.setCookie, s.clear = true, false
	}
}

func (s *Session) persistent() bool {
	if s.persistSet {
		return s.persist
	}
	return s.m.cfg.Cookie.Persistent
}

// Logout ends the session in the store at once and removes the cookie.
func (s *Session) Logout(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.committed {
		return ErrCommitted
	}
	if s.base != nil {
		err := s.m.logout(ctx, s.base, s.client)
		if err != nil && !errors.Is(err, ErrRevoked) && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	s.base, s.data, s.ops = nil, nil, nil
	s.token, s.setCookie, s.dirty, s.touchDue = "", false, false, false
	s.clear = true
	return nil
}

// commit saves the request's changes. It runs once, when the response
// starts or the handler returns. It returns only store errors, after which
// the request must fail closed.
func (s *Session) commit(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.committed {
		return nil
	}
	s.committed = true
	m := s.m
	switch {
	case s.base == nil && s.dirty && (len(s.data) > 0 || s.persistSet):
		tok, rec, err := m.Create(ctx, CreateParams{Data: s.data, Client: s.client, Persistent: s.persistent()})
		if err != nil {
			return err
		}
		s.settle(rec, tok)
	case s.base != nil && s.dirty:
		return s.save(ctx)
	case s.base != nil && s.touchDue:
		// Activity is best effort: the request was validated already.
		if err := m.touch(ctx, s.base, s.client); err != nil && !errors.Is(err, ErrStore) {
			s.ended()
		}
	}
	return nil
}

// save writes the changes with compare-and-swap, replaying them on a fresh
// copy after a conflict. A session that ended meanwhile stays ended.
func (s *Session) save(ctx context.Context) error {
	m := s.m
	base := s.base
	for attempt := range maxCASRetries {
		if err := backoffAfter(ctx, attempt); err != nil {
			return err
		}
		next := base.Clone()
		for _, op := range s.ops {
			next.Data = applyOp(next.Data, op, true)
		}
		if s.persistSet {
			next.Persistent = s.persist
		}
		if err := m.checkData(next.Data); err != nil {
			return err
		}
		next.Activity = m.activity(next, m.cfg.Now(), s.client)
		_, err := m.store.Update(ctx, next, Limit{})
		switch {
		case err == nil:
			m.emit(ctx, EventUpdated, next, "", s.client, nil)
			persistChanged := s.persistSet && next.Persistent != s.base.Persistent
			s.settle(next, "")
			s.setCookie = s.setCookie || persistChanged
			return nil
		case errors.Is(err, ErrConflict):
			fresh, err := m.reload(ctx, base.Handle, s.client)
			if err != nil {
				if errors.Is(err, ErrStore) {
					return err
				}
				s.ended()
				return nil
			}
			base = fresh
		case errors.Is(err, ErrStore):
			return err
		default:
			s.ended()
			return nil
		}
	}
	return ErrConflict
}

// ended drops a session that was revoked or expired while the request ran.
func (s *Session) ended() {
	s.base, s.data, s.ops = nil, nil, nil
	s.token, s.setCookie, s.clear = "", false, true
}

func contextWithSession(ctx context.Context, s *Session) context.Context {
	return context.WithValue(ctx, sessionKey{}, s)
}
