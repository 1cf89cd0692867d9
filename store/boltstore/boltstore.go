package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sessionkit/sessionkit"
)

// Defaults for Options.
const (
	DefaultMode    os.FileMode = 0o600
	DefaultTimeout             = time.Second
)

// Options configures Open. The zero value is ready to use.
type Options struct {
	// Mode is the permission of a new database file. Default 0600: the file
	// holds session state and must not be readable by other users.
	Mode os.FileMode
	// Timeout bounds the wait for the file lock held by another process
	// using the same file. Default 1s; Open then fails instead of hanging.
	Timeout time.Duration
	// NoSync skips fsync on commit. It is faster and loses the last commits
	// on a power failure or kernel crash; leave it false in production.
	NoSync bool
}

// Bucket names. The layout is described in the package documentation.
var (
	bucketMeta     = []byte("meta")
	bucketRecords  = []byte("records")
	bucketHashes   = []byte("hashes")
	bucketSubjects = []byte("subjects")
	bucketExpiry   = []byte("expiry")
	bucketKV       = []byte("kv")

	keyFormat = []byte("format")
)

// format is the layout version written to the meta bucket.
const format = 1

// Store is a sessionkit.Store and sessionkit.KVStore kept in one bbolt file.
// It is safe for concurrent use; writes are serialized by bbolt.
type Store struct {
	db *bolt.DB

	mu     sync.Mutex
	closed bool
}

var (
	_ sessionkit.Store   = (*Store)(nil)
	_ sessionkit.KVStore = (*Store)(nil)
)

// Open opens or creates the database file at path. If another process holds
// the file, Open fails after Options.Timeout with an error saying so.
func Open(path string, opts Options) (*Store, error) {
	if opts.Mode == 0 {
		opts.Mode = DefaultMode
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	db, err := bolt.Open(path, opts.Mode, &bolt.Options{Timeout: opts.Timeout, NoSync: opts.NoSync})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s is locked by another process (waited %v)", sessionkit.ErrStore, path, opts.Timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %v", sessionkit.ErrStore, path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		switch v := meta.Get(keyFormat); {
		case v == nil:
			if err := meta.Put(keyFormat, []byte{format}); err != nil {
				return err
			}
		case len(v) != 1 || v[0] != format:
			return fmt.Errorf("unsupported layout version %x", v)
		}
		for _, name := range [][]byte{bucketRecords, bucketHashes, bucketSubjects, bucketExpiry, bucketKV} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("%w: initialize %s: %v", sessionkit.ErrStore, path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the file. It is idempotent; every other method fails after
// it with an error wrapping sessionkit.ErrStore.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("%w: close: %v", sessionkit.ErrStore, err)
	}
	return nil
}

// sentinels pass through storeErr unchanged.
var sentinels = []error{
	sessionkit.ErrNotFound, sessionkit.ErrRevoked, sessionkit.ErrConflict,
	sessionkit.ErrExists, sessionkit.ErrLimit, sessionkit.ErrStore,
}

// storeErr makes err wrap sessionkit.ErrStore unless it is a sentinel.
func storeErr(err error) error {
	if err == nil {
		return nil
	}
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return err
		}
	}
	return fmt.Errorf("%w: %v", sessionkit.ErrStore, err)
}

func (s *Store) view(fn func(t *txn) error) error {
	return storeErr(s.db.View(func(tx *bolt.Tx) error { return fn(newTxn(tx)) }))
}

func (s *Store) update(fn func(t *txn) error) error {
	return storeErr(s.db.Update(func(tx *bolt.Tx) error { return fn(newTxn(tx)) }))
}

// txn bundles a transaction with its buckets and the index upkeep.
type txn struct {
	records, hashes, subjects, expiry *bolt.Bucket
}

func newTxn(tx *bolt.Tx) *txn {
	return &txn{
		records:  tx.Bucket(bucketRecords),
		hashes:   tx.Bucket(bucketHashes),
		subjects: tx.Bucket(bucketSubjects),
		expiry:   tx.Bucket(bucketExpiry),
	}
}

// readTxn opens only the buckets a lookup needs, for the request path.
func readTxn(tx *bolt.Tx) *txn {
	return &txn{records: tx.Bucket(bucketRecords), hashes: tx.Bucket(bucketHashes)}
}

// timeKey encodes t as 8 bytes that sort like the times: Unix nanoseconds
// with the sign bit flipped. The zero time sorts first; times beyond the
// range of int64 nanoseconds are clamped.
func timeKey(b []byte, t time.Time) []byte {
	var n int64
	switch {
	case t.IsZero() || t.Before(minTime):
		n = math.MinInt64
	case t.After(maxTime):
		n = math.MaxInt64
	default:
		n = t.UnixNano()
	}
	return binary.BigEndian.AppendUint64(b, uint64(n)^(1<<63))
}

var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// subjectPrefix is the start of every subject index key of subject.
func subjectPrefix(subject string) []byte {
	b := make([]byte, 0, len(subject)+1+8+24)
	b = append(b, subject...)
	return append(b, 0)
}

// subjectKey is subject, 0, CreatedAt, handle: a prefix scan lists a subject
// oldest first.
func subjectKey(r *sessionkit.Record) []byte {
	return append(timeKey(subjectPrefix(r.Subject), r.CreatedAt), r.Handle...)
}

// expiryKey is PurgeAt, handle: a scan from the start finds what is due.
func expiryKey(r *sessionkit.Record) []byte {
	return append(timeKey(make([]byte, 0, 8+24), r.PurgeAt), r.Handle...)
}

func indexed(r *sessionkit.Record) bool { return r.Subject != "" && !r.Revoked() }

// checkSubject refuses subjects the index cannot keep apart: a NUL byte
// would make one subject's keys a prefix match of another's.
func checkSubject(subject string) error {
	if strings.IndexByte(subject, 0) >= 0 {
		return fmt.Errorf("%w: subject contains a NUL byte", sessionkit.ErrStore)
	}
	return nil
}

// load reads and decodes the record of handle.
func (t *txn) load(handle []byte) (*sessionkit.Record, error) {
	v := t.records.Get(handle)
	if v == nil {
		return nil, sessionkit.ErrNotFound
	}
	r := new(sessionkit.Record)
	if err := r.UnmarshalBinary(v); err != nil {
		return nil, fmt.Errorf("%w: record %q: %v", sessionkit.ErrStore, handle, err)
	}
	if r.Handle != string(handle) {
		return nil, fmt.Errorf("%w: record %q holds handle %q", sessionkit.ErrStore, handle, r.Handle)
	}
	return r, nil
}

// put stores r, which replaces old (nil for a new record), and moves every
// index entry that changed.
func (t *txn) put(old, r *sessionkit.Record) error {
	v, err := r.MarshalBinary()
	if err != nil {
		return err
	}
	h := []byte(r.Handle)
	if err := t.records.Put(h, v); err != nil {
		return err
	}
	if old == nil || old.TokenHash != r.TokenHash {
		if old != nil {
			if err := t.hashes.Delete(old.TokenHash[:]); err != nil {
				return err
			}
		}
		hash := r.TokenHash
		if err := t.hashes.Put(hash[:], h); err != nil {
			return err
		}
	}
	var oldSubj, oldExp []byte
	if old != nil {
		if indexed(old) {
			oldSubj = subjectKey(old)
		}
		oldExp = expiryKey(old)
	}
	var newSubj []byte
	if indexed(r) {
		newSubj = subjectKey(r)
	}
	if !bytes.Equal(oldSubj, newSubj) {
		if oldSubj != nil {
			if err := t.subjects.Delete(oldSubj); err != nil {
				return err
			}
		}
		if newSubj != nil {
			if err := t.subjects.Put(newSubj, nil); err != nil {
				return err
			}
		}
	}
	if newExp := expiryKey(r); !bytes.Equal(oldExp, newExp) {
		if oldExp != nil {
			if err := t.expiry.Delete(oldExp); err != nil {
				return err
			}
		}
		if err := t.expiry.Put(newExp, nil); err != nil {
			return err
		}
	}
	return nil
}

// del removes r and its index entries.
func (t *txn) del(r *sessionkit.Record) error {
	if err := t.records.Delete([]byte(r.Handle)); err != nil {
		return err
	}
	if err := t.hashes.Delete(r.TokenHash[:]); err != nil {
		return err
	}
	if indexed(r) {
		if err := t.subjects.Delete(subjectKey(r)); err != nil {
			return err
		}
	}
	return t.expiry.Delete(expiryKey(r))
}

// revoke revokes r as Store.Revoke describes and returns the result.
func (t *txn) revoke(r *sessionkit.Record, rv sessionkit.Revocation) (*sessionkit.Record, error) {
	n := *r
	n.RevokedAt = rv.At
	n.RevokedReason = rv.Reason
	n.PurgeAt = rv.PurgeAt
	n.Data = nil
	n.Refresh = sessionkit.RefreshState{}
	n.Version++
	return &n, t.put(r, &n)
}

// list returns the records in subject's index, oldest first.
func (t *txn) list(subject string) ([]*sessionkit.Record, error) {
	prefix := subjectPrefix(subject)
	var out []*sessionkit.Record
	c := t.subjects.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if len(k) < len(prefix)+8 {
			return nil, fmt.Errorf("%w: malformed subject index key", sessionkit.ErrStore)
		}
		r, err := t.load(k[len(prefix)+8:])
		if errors.Is(err, sessionkit.ErrNotFound) {
			return nil, fmt.Errorf("%w: subject index names a missing record", sessionkit.ErrStore)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// admit checks lim for adding a session (with handle self, which may already
// be indexed elsewhere) to subject's index, and revokes the sessions it
// evicts.
func (t *txn) admit(subject, self string, lim sessionkit.Limit) ([]*sessionkit.Record, error) {
	if subject == "" || lim.Max <= 0 {
		return nil, nil
	}
	recs, err := t.list(subject)
	if err != nil {
		return nil, err
	}
	var live []*sessionkit.Record
	for _, r := range recs {
		if r.Handle != self && r.Live(lim.Now) {
			live = append(live, r)
		}
	}
	if len(live) < lim.Max {
		return nil, nil
	}
	if lim.Policy != sessionkit.LimitEvictOldest {
		return nil, sessionkit.ErrLimit
	}
	return t.revokeAll(live[:len(live)-lim.Max+1], lim.Revocation)
}

func (t *txn) revokeAll(recs []*sessionkit.Record, rv sessionkit.Revocation) ([]*sessionkit.Record, error) {
	var out []*sessionkit.Record
	for _, r := range recs {
		n, err := t.revoke(r, rv)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// Create implements sessionkit.Store.
func (s *Store) Create(ctx context.Context, rec *sessionkit.Record, lim sessionkit.Limit) ([]*sessionkit.Record, error) {
	if err := checkSubject(rec.Subject); err != nil {
		return nil, err
	}
	r := rec.Clone()
	r.Version = 1
	var evicted []*sessionkit.Record
	err := s.update(func(t *txn) error {
		if t.records.Get([]byte(r.Handle)) != nil || t.hashes.Get(r.TokenHash[:]) != nil {
			return sessionkit.ErrExists
		}
		if indexed(r) {
			var err error
			if evicted, err = t.admit(r.Subject, r.Handle, lim); err != nil {
				return err
			}
		}
		return t.put(nil, r)
	})
	if err != nil {
		return nil, err
	}
	rec.Version = 1
	return evicted, nil
}

// Get implements sessionkit.Store.
func (s *Store) Get(ctx context.Context, hash sessionkit.TokenHash) (*sessionkit.Record, error) {
	var r *sessionkit.Record
	err := storeErr(s.db.View(func(tx *bolt.Tx) error {
		t := readTxn(tx)
		h := t.hashes.Get(hash[:])
		if h == nil {
			return sessionkit.ErrNotFound
		}
		var err error
		r, err = t.load(h)
		if errors.Is(err, sessionkit.ErrNotFound) {
			return fmt.Errorf("%w: token hash names a missing record", sessionkit.ErrStore)
		}
		return err
	}))
	return r, err
}

// GetByHandle implements sessionkit.Store.
func (s *Store) GetByHandle(ctx context.Context, handle string) (*sessionkit.Record, error) {
	var r *sessionkit.Record
	err := storeErr(s.db.View(func(tx *bolt.Tx) error {
		var err error
		r, err = readTxn(tx).load([]byte(handle))
		return err
	}))
	return r, err
}

// loadLive returns the record of handle if it is not revoked.
func (t *txn) loadLive(handle string) (*sessionkit.Record, error) {
	r, err := t.load([]byte(handle))
	if err != nil {
		return nil, err
	}
	if r.Revoked() {
		return nil, sessionkit.ErrRevoked
	}
	return r, nil
}

// Update implements sessionkit.Store.
func (s *Store) Update(ctx context.Context, rec *sessionkit.Record, lim sessionkit.Limit) ([]*sessionkit.Record, error) {
	if err := checkSubject(rec.Subject); err != nil {
		return nil, err
	}
	var evicted []*sessionkit.Record
	var version uint64
	err := s.update(func(t *txn) error {
		old, err := t.loadLive(rec.Handle)
		if err != nil {
			return err
		}
		if old.Version != rec.Version {
			return sessionkit.ErrConflict
		}
		if rec.TokenHash != old.TokenHash && t.hashes.Get(rec.TokenHash[:]) != nil {
			return sessionkit.ErrExists
		}
		if indexed(rec) && (!indexed(old) || old.Subject != rec.Subject) {
			if evicted, err = t.admit(rec.Subject, rec.Handle, lim); err != nil {
				return err
			}
		}
		r := rec.Clone()
		if rec.LastSeenAt.Before(old.LastSeenAt) {
			r.Activity = old.Activity
		}
		r.Version = old.Version + 1
		version = r.Version
		return t.put(old, r)
	})
	if err != nil {
		return nil, err
	}
	rec.Version = version
	return evicted, nil
}

// Touch implements sessionkit.Store.
func (s *Store) Touch(ctx context.Context, handle string, a sessionkit.Activity) error {
	return s.update(func(t *txn) error {
		old, err := t.loadLive(handle)
		if err != nil {
			return err
		}
		if a.LastSeenAt.Before(old.LastSeenAt) {
			return nil
		}
		r := *old
		r.Activity = a
		return t.put(old, &r)
	})
}

// Revoke implements sessionkit.Store.
func (s *Store) Revoke(ctx context.Context, handle string, rv sessionkit.Revocation) (*sessionkit.Record, error) {
	var out *sessionkit.Record
	err := s.update(func(t *txn) error {
		r, err := t.loadLive(handle)
		if err != nil {
			return err
		}
		out, err = t.revoke(r, rv)
		return err
	})
	return out, err
}

// RevokeSubject implements sessionkit.Store.
func (s *Store) RevokeSubject(ctx context.Context, subject, except string, rv sessionkit.Revocation) ([]*sessionkit.Record, error) {
	if subject == "" {
		return nil, nil
	}
	var out []*sessionkit.Record
	err := s.update(func(t *txn) error {
		recs, err := t.list(subject)
		if err != nil {
			return err
		}
		var victims []*sessionkit.Record
		for _, r := range recs {
			if r.Handle != except {
				victims = append(victims, r)
			}
		}
		out, err = t.revokeAll(victims, rv)
		return err
	})
	return out, err
}

// Delete implements sessionkit.Store.
func (s *Store) Delete(ctx context.Context, handle string) error {
	return s.update(func(t *txn) error {
		r, err := t.load([]byte(handle))
		if err != nil {
			return err
		}
		return t.del(r)
	})
}

// ListSubject implements sessionkit.Store.
func (s *Store) ListSubject(ctx context.Context, subject string) ([]*sessionkit.Record, error) {
	if subject == "" {
		return nil, nil
	}
	var out []*sessionkit.Record
	err := s.view(func(t *txn) error {
		var err error
		out, err = t.list(subject)
		return err
	})
	return out, err
}

// DeleteExpired implements sessionkit.Store. It walks the expiry index from
// its start and stops at the first record not yet due, so it reads only
// what it removes. A max of zero or less means no limit; records with a
// zero PurgeAt are always due.
func (s *Store) DeleteExpired(ctx context.Context, now time.Time, max int) (int, error) {
	end := timeKey(nil, now)
	n := 0
	err := s.update(func(t *txn) error {
		n = 0
		var due [][]byte
		c := t.expiry.Cursor()
		for k, _ := c.First(); k != nil && (max <= 0 || len(due) < max); k, _ = c.Next() {
			if len(k) < 8 {
				return fmt.Errorf("%w: malformed expiry index key", sessionkit.ErrStore)
			}
			if bytes.Compare(k[:8], end) > 0 {
				break
			}
			due = append(due, bytes.Clone(k[8:]))
		}
		for _, h := range due {
			r, err := t.load(h)
			if err != nil {
				return err
			}
			if err := t.del(r); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// Ping implements sessionkit.Store: it opens a read transaction.
func (s *Store) Ping(ctx context.Context) error {
	return s.view(func(*txn) error { return nil })
}

// GetValue implements sessionkit.KVStore.
func (s *Store) GetValue(ctx context.Context, key string) ([]byte, uint64, error) {
	var val []byte
	var version uint64
	err := storeErr(s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketKV).Get([]byte(key))
		if v == nil {
			return sessionkit.ErrNotFound
		}
		if len(v) < 8 {
			return fmt.Errorf("%w: malformed value for key %q", sessionkit.ErrStore, key)
		}
		version = binary.BigEndian.Uint64(v)
		val = bytes.Clone(v[8:])
		if val == nil {
			val = []byte{}
		}
		return nil
	}))
	if err != nil {
		return nil, 0, err
	}
	return val, version, nil
}

// PutValue implements sessionkit.KVStore.
func (s *Store) PutValue(ctx context.Context, key string, value []byte, expect uint64) (uint64, error) {
	version := expect + 1
	err := storeErr(s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKV)
		var stored uint64
		if v := b.Get([]byte(key)); v != nil {
			if len(v) < 8 {
				return fmt.Errorf("%w: malformed value for key %q", sessionkit.ErrStore, key)
			}
			stored = binary.BigEndian.Uint64(v)
		}
		if stored != expect {
			return sessionkit.ErrConflict
		}
		v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(value)), version)
		return b.Put([]byte(key), append(v, value...))
	}))
	if err != nil {
		return 0, err
	}
	return version, nil
}
