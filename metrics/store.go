package metrics

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sessionkit/sessionkit"
)

type op int

const (
	opCreate op = iota
	opGet
	opGetByHandle
	opUpdate
	opTouch
	opRevoke
	opRevokeSubject
	opDelete
	opListSubject
	opDeleteExpired
	opPing
	opGetValue
	opPutValue
	numOps
)

var opNames = [numOps]string{
	"create", "get", "get_by_handle", "update", "touch", "revoke", "revoke_subject",
	"delete", "list_subject", "delete_expired", "ping", "get_value", "put_value",
}

// opMetrics are the metrics of one operation, curried once so timing an
// operation does no label lookup.
type opMetrics struct {
	dur  prometheus.Observer
	errs prometheus.Counter
	// count is read at scrape time; a plain atomic also gives begin the
	// operation's sequence number to sample by, with no random draw.
	count atomic.Uint64
	// sampled ops are timed one time in Options.TimingSample: reading the
	// clock twice costs more than the rest of the instrumentation.
	sampled bool
}

// hotOps run on every validation; the others are timed every time.
var hotOps = map[op]bool{opGet: true, opGetByHandle: true, opTouch: true}

// begin counts an operation and returns its start time, or the zero time
// when it is not timed.
func (c *Collector) begin(o op) time.Time {
	m := &c.ops[o]
	n := m.count.Add(1)
	if m.sampled && n%uint64(c.sample) != 0 {
		return time.Time{}
	}
	return time.Now()
}

func (c *Collector) done(o op, start time.Time, err error) {
	m := &c.ops[o]
	if !start.IsZero() {
		m.dur.Observe(time.Since(start).Seconds())
	}
	if err != nil && errors.Is(err, sessionkit.ErrStore) {
		m.errs.Inc()
	}
}

// InstrumentStore returns s timed and counted by c. The result also
// implements sessionkit.KVStore and CacheStatser when s does, and Unwrap
// returns s. If s implements CacheStatser, c reports its statistics.
func (c *Collector) InstrumentStore(s sessionkit.Store) sessionkit.Store {
	base := &Store{s: s, c: c}
	c.storeTracked.Store(true)
	kv, isKV := s.(sessionkit.KVStore)
	cs, isCache := s.(CacheStatser)
	if isCache {
		c.cacheMu.Lock()
		c.caches = append(c.caches, cs)
		c.cacheMu.Unlock()
	}
	switch {
	case isKV && isCache:
		return &kvCacheStore{kvStore{base, kv}, cs}
	case isKV:
		return &kvStore{base, kv}
	case isCache:
		return &cacheStore{base, cs}
	}
	return base
}

// Store is a sessionkit.Store that times the operations of another.
type Store struct {
	s sessionkit.Store
	c *Collector
}

// Unwrap returns the instrumented store.
func (s *Store) Unwrap() sessionkit.Store { return s.s }

func (s *Store) Create(ctx context.Context, rec *sessionkit.Record, lim sessionkit.Limit) ([]*sessionkit.Record, error) {
	start := s.c.begin(opCreate)
	ev, err := s.s.Create(ctx, rec, lim)
	s.c.done(opCreate, start, err)
	if err == nil {
		now := s.c.opts.Now()
		s.c.active.add(rec.Handle, rec.Deadline(), true, now)
		for _, r := range ev {
			s.c.active.remove(r.Handle, now)
		}
	}
	return ev, err
}

func (s *Store) Get(ctx context.Context, hash sessionkit.TokenHash) (*sessionkit.Record, error) {
	start := s.c.begin(opGet)
	r, err := s.s.Get(ctx, hash)
	s.c.done(opGet, start, err)
	return r, err
}

func (s *Store) GetByHandle(ctx context.Context, handle string) (*sessionkit.Record, error) {
	start := s.c.begin(opGetByHandle)
	r, err := s.s.GetByHandle(ctx, handle)
	s.c.done(opGetByHandle, start, err)
	return r, err
}

func (s *Store) Update(ctx context.Context, rec *sessionkit.Record, lim sessionkit.Limit) ([]*sessionkit.Record, error) {
	start := s.c.begin(opUpdate)
	ev, err := s.s.Update(ctx, rec, lim)
	s.c.done(opUpdate, start, err)
	if err == nil {
		s.c.active.extend(rec.Handle, rec.Deadline())
		now := s.c.opts.Now()
		for _, r := range ev {
			s.c.active.remove(r.Handle, now)
		}
	}
	return ev, err
}

func (s *Store) Touch(ctx context.Context, handle string, a sessionkit.Activity) error {
	start := s.c.begin(opTouch)
	err := s.s.Touch(ctx, handle, a)
	s.c.done(opTouch, start, err)
	if err == nil {
		// The idle deadline never passes the absolute one (the Manager
		// caps it), so it is the session's deadline.
		s.c.active.extend(handle, a.IdleDeadline)
	}
	return err
}

func (s *Store) Revoke(ctx context.Context, handle string, rv sessionkit.Revocation) (*sessionkit.Record, error) {
	start := s.c.begin(opRevoke)
	r, err := s.s.Revoke(ctx, handle, rv)
	s.c.done(opRevoke, start, err)
	if err == nil {
		s.c.active.remove(handle, s.c.opts.Now())
	}
	return r, err
}

func (s *Store) RevokeSubject(ctx context.Context, subject, except string, rv sessionkit.Revocation) ([]*sessionkit.Record, error) {
	start := s.c.begin(opRevokeSubject)
	rs, err := s.s.RevokeSubject(ctx, subject, except, rv)
	s.c.done(opRevokeSubject, start, err)
	now := s.c.opts.Now()
	for _, r := range rs {
		s.c.active.remove(r.Handle, now)
	}
	return rs, err
}

func (s *Store) Delete(ctx context.Context, handle string) error {
	start := s.c.begin(opDelete)
	err := s.s.Delete(ctx, handle)
	s.c.done(opDelete, start, err)
	if err == nil {
		s.c.active.remove(handle, s.c.opts.Now())
	}
	return err
}

func (s *Store) ListSubject(ctx context.Context, subject string) ([]*sessionkit.Record, error) {
	start := s.c.begin(opListSubject)
	rs, err := s.s.ListSubject(ctx, subject)
	s.c.done(opListSubject, start, err)
	return rs, err
}

func (s *Store) DeleteExpired(ctx context.Context, now time.Time, max int) (int, error) {
	start := s.c.begin(opDeleteExpired)
	n, err := s.s.DeleteExpired(ctx, now, max)
	s.c.done(opDeleteExpired, start, err)
	return n, err
}

func (s *Store) Ping(ctx context.Context) error {
	start := s.c.begin(opPing)
	err := s.s.Ping(ctx)
	s.c.done(opPing, start, err)
	return err
}

func (s *Store) Close() error { return s.s.Close() }

type kvStore struct {
	*Store
	kv sessionkit.KVStore
}

func (s *kvStore) GetValue(ctx context.Context, key string) ([]byte, uint64, error) {
	start := s.c.begin(opGetValue)
	v, ver, err := s.kv.GetValue(ctx, key)
	s.c.done(opGetValue, start, err)
	return v, ver, err
}

func (s *kvStore) PutValue(ctx context.Context, key string, value []byte, expect uint64) (uint64, error) {
	start := s.c.begin(opPutValue)
	ver, err := s.kv.PutValue(ctx, key, value, expect)
	s.c.done(opPutValue, start, err)
	return ver, err
}

type cacheStore struct {
	*Store
	cs CacheStatser
}

func (s *cacheStore) CacheStats() (hits, misses uint64) { return s.cs.CacheStats() }

type kvCacheStore struct {
	kvStore
	cs CacheStatser
}

func (s *kvCacheStore) CacheStats() (hits, misses uint64) { return s.cs.CacheStats() }

var (
	_ sessionkit.Store   = (*Store)(nil)
	_ sessionkit.KVStore = (*kvStore)(nil)
	_ CacheStatser       = (*cacheStore)(nil)
	_ CacheStatser       = (*kvCacheStore)(nil)
)
