package memstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/sessionkit/sessionkit"
)

// DefaultMaxSessions bounds a Store whose Options leave MaxSessions zero. At
// a few hundred bytes to a few kilobytes per session it keeps the store well
// under a gigabyte.
const DefaultMaxSessions = 100_000

// Options configures a Store. The zero value is ready to use.
type Options struct {
	// MaxSessions caps the number of stored records, revoked ones included.
	// Default DefaultMaxSessions.
	MaxSessions int
	// Now is the clock used to purge expired records when the store is full
	// and Create carries no Limit.Now. Default time.Now.
	Now func() time.Time
}

// errClosed is returned by every method after Close.
var errClosed = fmt.Errorf("%w: memstore is closed", sessionkit.ErrStore)

// Store is an in-memory sessionkit.Store and sessionkit.KVStore. It is safe
// for concurrent use.
type Store struct {
	max int
	now func() time.Time

	mu       sync.RWMutex
	closed   bool
	byHash   map[sessionkit.TokenHash]*entry
	byHandle map[string]*entry
	// subjects holds each subject's indexed entries sorted by CreatedAt,
	// then handle. Limits keep these lists short.
	subjects map[string][]*entry
	expiry   entryHeap // every entry, by PurgeAt
	anon     entryHeap // entries without a subject, by CreatedAt
	kv       map[string]kvValue
}

type kvValue struct {
	value   []byte
	version uint64
}

var (
	_ sessionkit.Store   = (*Store)(nil)
	_ sessionkit.KVStore = (*Store)(nil)
)

// New returns an empty Store.
func New(opts Options) *Store {
	s := &Store{
		max:      opts.MaxSessions,
		now:      opts.Now,
		byHash:   make(map[sessionkit.TokenHash]*entry),
		byHandle: make(map[string]*entry),
		subjects: make(map[string][]*entry),
		kv:       make(map[string]kvValue),
		expiry: entryHeap{
			key: func(e *entry) time.Time { return e.rec.PurgeAt },
			pos: func(e *entry) *int { return &e.exp },
		},
		anon: entryHeap{
			key: func(e *entry) time.Time { return e.rec.CreatedAt },
			pos: func(e *entry) *int { return &e.anon },
		},
	}
	if s.max <= 0 {
		s.max = DefaultMaxSessions
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// copyRecord returns a copy of r that shares no memory with it. The Data
// values and the refresh successor are copied into one buffer, each capped
// so that appending to one cannot overwrite the next.
func copyRecord(r *sessionkit.Record) *sessionkit.Record {
	c := *r
	n := len(r.Refresh.Successor)
	for _, v := range r.Data {
		n += len(v)
	}
	if n == 0 {
		if r.Data != nil {
			c.Data = make(map[string]json.RawMessage, len(r.Data))
			for k, v := range r.Data {
				c.Data[k] = v[:0:0]
			}
		}
		if r.Refresh.Successor != nil {
			c.Refresh.Successor = r.Refresh.Successor[:0:0]
		}
		return &c
	}
	buf := make([]byte, 0, n)
	carve := func(v []byte) []byte {
		start := len(buf)
		buf = append(buf, v...)
		return buf[start:len(buf):len(buf)]
	}
	if r.Data != nil {
		c.Data = make(map[string]json.RawMessage, len(r.Data))
		for k, v := range r.Data {
			if v == nil {
				c.Data[k] = nil
				continue
			}
			c.Data[k] = carve(v)
		}
	}
	if r.Refresh.Successor != nil {
		c.Refresh.Successor = carve(r.Refresh.Successor)
	}
	return &c
}

// indexed reports whether r belongs in its subject's index.
func indexed(r *sessionkit.Record) bool { return r.Subject != "" && !r.Revoked() }

func entryLess(a, b *entry) int {
	if c := a.rec.CreatedAt.Compare(b.rec.CreatedAt); c != 0 {
		return c
	}
	switch {
	case a.rec.Handle < b.rec.Handle:
		return -1
	case a.rec.Handle > b.rec.Handle:
		return 1
	}
	return 0
}

func (s *Store) indexAdd(e *entry) {
	l := s.subjects[e.rec.Subject]
	i, _ := slices.BinarySearchFunc(l, e, entryLess)
	s.subjects[e.rec.Subject] = slices.Insert(l, i, e)
}

func (s *Store) indexRemove(e *entry) {
	l := s.subjects[e.rec.Subject]
	if i := slices.Index(l, e); i >= 0 {
		l = slices.Delete(l, i, i+1)
	}
	if len(l) == 0 {
		delete(s.subjects, e.rec.Subject)
	} else {
		s.subjects[e.rec.Subject] = l
	}
}

// insert adds a new entry for rec, which the store now owns.
func (s *Store) insert(rec *sessionkit.Record) {
	e := &entry{rec: rec, anon: -1}
	s.byHash[rec.TokenHash] = e
	s.byHandle[rec.Handle] = e
	s.expiry.push(e)
	if rec.Subject == "" {
		s.anon.push(e)
	}
	if indexed(rec) {
		s.indexAdd(e)
	}
}

// remove deletes e and every index entry pointing to it.
func (s *Store) remove(e *entry) {
	delete(s.byHash, e.rec.TokenHash)
	delete(s.byHandle, e.rec.Handle)
	s.expiry.remove(e)
	if e.anon >= 0 {
		s.anon.remove(e)
	}
	if indexed(e.rec) {
		s.indexRemove(e)
	}
}

// replace makes rec the record of e, moving every index entry that changed.
func (s *Store) replace(e *entry, rec *sessionkit.Record) {
	old := e.rec
	if indexed(old) {
		s.indexRemove(e)
	}
	if old.TokenHash != rec.TokenHash {
		delete(s.byHash, old.TokenHash)
		s.byHash[rec.TokenHash] = e
	}
	e.rec = rec
	if !old.PurgeAt.Equal(rec.PurgeAt) {
		s.expiry.fix(e)
	}
	switch {
	case e.anon >= 0 && rec.Subject != "":
		s.anon.remove(e)
	case e.anon < 0 && rec.Subject == "":
		s.anon.push(e)
	case e.anon >= 0 && !old.CreatedAt.Equal(rec.CreatedAt):
		s.anon.fix(e)
	}
	if indexed(rec) {
		s.indexAdd(e)
	}
}

// revoke revokes e as Store.Revoke describes and returns a copy of the
// result.
func (s *Store) revoke(e *entry, rv sessionkit.Revocation) *sessionkit.Record {
	r := *e.rec
	r.RevokedAt = rv.At
	r.RevokedReason = rv.Reason
	r.PurgeAt = rv.PurgeAt
	r.Data = nil
	r.Refresh = sessionkit.RefreshState{}
	r.Version++
	s.replace(e, &r)
	return copyRecord(&r)
}

// admit checks lim for adding a session (self, if it is already stored) to
// subject's index, and returns the entries to evict.
func (s *Store) admit(subject string, self *entry, lim sessionkit.Limit) ([]*entry, error) {
	if subject == "" || lim.Max <= 0 {
		return nil, nil
	}
	var live []*entry
	for _, e := range s.subjects[subject] {
		if e != self && e.rec.Live(lim.Now) {
			live = append(live, e)
		}
	}
	if len(live) < lim.Max {
		return nil, nil
	}
	if lim.Policy != sessionkit.LimitEvictOldest {
		return nil, sessionkit.ErrLimit
	}
	return live[:len(live)-lim.Max+1], nil
}

func (s *Store) evict(victims []*entry, rv sessionkit.Revocation) []*sessionkit.Record {
	if len(victims) == 0 {
		return nil
	}
	out := make([]*sessionkit.Record, len(victims))
	for i, e := range victims {
		out[i] = s.revoke(e, rv)
	}
	return out
}

// makeRoom frees a slot when the store is full: it purges the records due
// at now and, if that is not enough, deletes the oldest anonymous session.
func (s *Store) makeRoom(now time.Time) error {
	if len(s.byHandle) < s.max {
		return nil
	}
	s.deleteExpired(now, -1)
	if len(s.byHandle) < s.max {
		return nil
	}
	if e := s.anon.min(); e != nil {
		s.remove(e)
		return nil
	}
	return sessionkit.ErrStoreFull
}

// Create implements sessionkit.Store. When the store is full it first purges
// expired records, then deletes the oldest anonymous session (which is not
// reported as evicted), and otherwise returns ErrStoreFull.
func (s *Store) Create(ctx context.Context, rec *sessionkit.Record, lim sessionkit.Limit) ([]*sessionkit.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	if s.byHandle[rec.Handle] != nil || s.byHash[rec.TokenHash] != nil {
		return nil, sessionkit.ErrExists
	}
	var victims []*entry
	if indexed(rec) {
		var err error
		if victims, err = s.admit(rec.Subject, nil, lim); err != nil {
			return nil, err
		}
	}
	now := lim.Now
	if now.IsZero() {
		now = s.now()
	}
	if err := s.makeRoom(now); err != nil {
		return nil, err
	}
	// Making room may have purged a victim that was past its PurgeAt.
	victims = slices.DeleteFunc(victims, func(e *entry) bool { return s.byHandle[e.rec.Handle] != e })
	evicted := s.evict(victims, lim.Revocation)
	r := copyRecord(rec)
	r.Version = 1
	s.insert(r)
	rec.Version = 1
	return evicted, nil
}

// Get implements sessionkit.Store.
func (s *Store) Get(ctx context.Context, hash sessionkit.TokenHash) (*sessionkit.Record, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errClosed
	}
	e := s.byHash[hash]
	if e == nil {
		return nil, sessionkit.ErrNotFound
	}
	return copyRecord(e.rec), nil
}

// GetByHandle implements sessionkit.Store.
func (s *Store) GetByHandle(ctx context.Context, handle string) (*sessionkit.Record, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errClosed
	}
	e := s.byHandle[handle]
	if e == nil {
		return nil, sessionkit.ErrNotFound
	}
	return copyRecord(e.rec), nil
}

// lookup returns the live entry for handle, or the error Update and Touch
// report. The caller holds the write lock.
func (s *Store) lookup(handle string) (*entry, error) {
	if s.closed {
		return nil, errClosed
	}
	e := s.byHandle[handle]
	if e == nil {
		return nil, sessionkit.ErrNotFound
	}
	if e.rec.Revoked() {
		return nil, sessionkit.ErrRevoked
	}
	return e, nil
}

// Update implements sessionkit.Store.
func (s *Store) Update(ctx context.Context, rec *sessionkit.Record, lim sessionkit.Limit) ([]*sessionkit.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.lookup(rec.Handle)
	if err != nil {
		return nil, err
	}
	old := e.rec
	if old.Version != rec.Version {
		return nil, sessionkit.ErrConflict
	}
	if rec.TokenHash != old.TokenHash && s.byHash[rec.TokenHash] != nil {
		return nil, sessionkit.ErrExists
	}
	var victims []*entry
	if indexed(rec) && (!indexed(old) || old.Subject != rec.Subject) {
		if victims, err = s.admit(rec.Subject, e, lim); err != nil {
			return nil, err
		}
	}
	evicted := s.evict(victims, lim.Revocation)
	r := copyRecord(rec)
	if rec.LastSeenAt.Before(old.LastSeenAt) {
		r.Activity = old.Activity
	}
	r.Version = old.Version + 1
	s.replace(e, r)
	rec.Version = r.Version
	return evicted, nil
}

// Touch implements sessionkit.Store.
func (s *Store) Touch(ctx context.Context, handle string, a sessionkit.Activity) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.lookup(handle)
	if err != nil {
		return err
	}
	if a.LastSeenAt.Before(e.rec.LastSeenAt) {
		return nil
	}
	r := *e.rec // Data and Successor are shared but never changed in place
	r.Activity = a
	s.replace(e, &r)
	return nil
}

// Revoke implements sessionkit.Store.
func (s *Store) Revoke(ctx context.Context, handle string, rv sessionkit.Revocation) (*sessionkit.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.lookup(handle)
	if err != nil {
		return nil, err
	}
	return s.revoke(e, rv), nil
}

// RevokeSubject implements sessionkit.Store.
func (s *Store) RevokeSubject(ctx context.Context, subject, except string, rv sessionkit.Revocation) ([]*sessionkit.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	if subject == "" {
		return nil, nil
	}
	var victims []*entry
	for _, e := range s.subjects[subject] {
		if e.rec.Handle != except {
			victims = append(victims, e)
		}
	}
	return s.evict(victims, rv), nil
}

// Delete implements sessionkit.Store.
func (s *Store) Delete(ctx context.Context, handle string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	e := s.byHandle[handle]
	if e == nil {
		return sessionkit.ErrNotFound
	}
	s.remove(e)
	return nil
}

// ListSubject implements sessionkit.Store.
func (s *Store) ListSubject(ctx context.Context, subject string) ([]*sessionkit.Record, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errClosed
	}
	l := s.subjects[subject]
	out := make([]*sessionkit.Record, len(l))
	for i, e := range l {
		out[i] = copyRecord(e.rec)
	}
	return out, nil
}

// DeleteExpired implements sessionkit.Store. A max of zero or less means no
// limit. Records with a zero PurgeAt are always due.
func (s *Store) DeleteExpired(ctx context.Context, now time.Time, max int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, errClosed
	}
	return s.deleteExpired(now, max), nil
}

func (s *Store) deleteExpired(now time.Time, max int) int {
	n := 0
	for max <= 0 || n < max {
		e := s.expiry.min()
		if e == nil || e.rec.PurgeAt.After(now) {
			break
		}
		s.remove(e)
		n++
	}
	return n
}

// Ping implements sessionkit.Store. It fails only after Close.
func (s *Store) Ping(ctx context.Context) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return errClosed
	}
	return nil
}

// Close drops every record. It is idempotent; every other method fails
// after it with an error wrapping sessionkit.ErrStore.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.byHash, s.byHandle, s.subjects, s.kv = nil, nil, nil, nil
	s.expiry.items, s.anon.items = nil, nil
	return nil
}

// Len returns the number of stored records, revoked ones included.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.byHandle)
}

// GetValue implements sessionkit.KVStore.
func (s *Store) GetValue(ctx context.Context, key string) ([]byte, uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, 0, errClosed
	}
	v, ok := s.kv[key]
	if !ok {
		return nil, 0, sessionkit.ErrNotFound
	}
	return slices.Clone(v.value), v.version, nil
}

// PutValue implements sessionkit.KVStore.
func (s *Store) PutValue(ctx context.Context, key string, value []byte, expect uint64) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, errClosed
	}
	if s.kv[key].version != expect {
		return 0, sessionkit.ErrConflict
	}
	v := kvValue{value: slices.Clone(value), version: expect + 1}
	if v.value == nil {
		v.value = []byte{}
	}
	s.kv[key] = v
	return v.version, nil
}
