package pgstore

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sessionkit/sessionkit"
)

// cols are the columns a record is read from: the encoded record, with the
// version and activity columns authoritative over the copies inside it
// (Touch changes only the columns).
const cols = `rec, version, last_seen, idle_deadline, purge_at, last_ip, last_ua`

func scanRecord(row pgx.Row) (*sessionkit.Record, error) {
	var (
		raw                     []byte
		version                 int64
		lastSeen, idle, purgeAt int64
		lastIP, lastUA          string
	)
	if err := row.Scan(&raw, &version, &lastSeen, &idle, &purgeAt, &lastIP, &lastUA); err != nil {
		return nil, err
	}
	r := new(sessionkit.Record)
	if err := r.UnmarshalBinary(raw); err != nil {
		return nil, err
	}
	r.Version = uint64(version)
	r.Activity = sessionkit.Activity{
		LastSeenAt:   fromNanos(lastSeen),
		IdleDeadline: fromNanos(idle),
		PurgeAt:      fromNanos(purgeAt),
		LastClient:   sessionkit.Client{IP: lastIP, UserAgent: lastUA},
	}
	return r, nil
}

func (s *Store) queryRecords(ctx context.Context, q pgx.Tx, sql string, args ...any) ([]*sessionkit.Record, error) {
	var rows pgx.Rows
	var err error
	if q != nil {
		rows, err = q.Query(ctx, sql, args...)
	} else {
		rows, err = s.pool.Query(ctx, sql, args...)
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*sessionkit.Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Get returns the record for a token hash. With the near-cache enabled and
// its listener up, a recent copy may be served without a query.
func (s *Store) Get(ctx context.Context, hash sessionkit.TokenHash) (*sessionkit.Record, error) {
	var epoch uint64
	if s.cache != nil {
		if r, ok := s.cache.get(hash); ok {
			return r, nil
		}
		epoch = s.cache.begin()
	}
	r, err := scanRecord(s.pool.QueryRow(ctx, `SELECT `+cols+` FROM `+s.sessions+` WHERE token_hash = $1`, hash[:]))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, sessionkit.ErrNotFound
	}
	if err != nil {
		return nil, wrap("get", err)
	}
	if s.cache != nil {
		s.cache.fill(epoch, r)
	}
	return r, nil
}

// GetByHandle returns the record for a handle, always from the database.
func (s *Store) GetByHandle(ctx context.Context, handle string) (*sessionkit.Record, error) {
	r, err := scanRecord(s.pool.QueryRow(ctx, `SELECT `+cols+` FROM `+s.sessions+` WHERE handle = $1`, handle))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, sessionkit.ErrNotFound
	}
	if err != nil {
		return nil, wrap("get by handle", err)
	}
	return r, nil
}

// row holds the column values of a record.
type row struct {
	handle   string
	hash     []byte
	subject  string
	created  int64
	revoked  bool
	version  int64
	lastSeen int64
	idle     int64
	purgeAt  int64
	lastIP   string
	lastUA   string
	rec      []byte
}

func toRow(r *sessionkit.Record) (row, error) {
	b, err := r.MarshalBinary()
	if err != nil {
		return row{}, err
	}
	return row{
		handle: r.Handle, hash: r.TokenHash[:], subject: r.Subject, created: nanos(r.CreatedAt),
		revoked: r.Revoked(), version: int64(r.Version),
		lastSeen: nanos(r.LastSeenAt), idle: nanos(r.IdleDeadline), purgeAt: nanos(r.PurgeAt),
		lastIP: r.LastClient.IP, lastUA: r.LastClient.UserAgent, rec: b,
	}, nil
}

// Create inserts rec with Version 1. With a subject and a limit, it runs in
// a transaction holding the subject's advisory lock, so concurrent Creates
// for one subject count each other's sessions.
func (s *Store) Create(ctx context.Context, rec *sessionkit.Record, lim sessionkit.Limit) ([]*sessionkit.Record, error) {
	r := rec.Clone()
	r.Version = 1
	rw, err := toRow(r)
	if err != nil {
		return nil, wrap("create: encode", err)
	}
	sql := `INSERT INTO ` + s.sessions + ` (handle, token_hash, subject, created_at, revoked, version,
		last_seen, idle_deadline, purge_at, last_ip, last_ua, rec)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING`
	args := []any{rw.handle, rw.hash, rw.subject, rw.created, rw.revoked, rw.version,
		rw.lastSeen, rw.idle, rw.purgeAt, rw.lastIP, rw.lastUA, rw.rec}

	if r.Subject == "" || lim.Max <= 0 || r.Revoked() {
		tag, err := s.pool.Exec(ctx, sql, args...)
		if err != nil {
			return nil, wrap("create", err)
		}
		if tag.RowsAffected() == 0 {
			return nil, sessionkit.ErrExists
		}
		rec.Version = 1
		return nil, nil
	}

	var evicted []*sessionkit.Record
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if err := s.lockSubject(ctx, tx, r.Subject); err != nil {
			return err
		}
		// Check uniqueness first so a duplicate evicts nobody.
		var taken bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+s.sessions+` WHERE handle = $1 OR token_hash = $2)`,
			rw.handle, rw.hash).Scan(&taken); err != nil {
			return err
		}
		if taken {
			return sessionkit.ErrExists
		}
		var err error
		if evicted, err = s.enforce(ctx, tx, r.Subject, r.Handle, lim); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, sql, args...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return sessionkit.ErrExists
		}
		return nil
	})
	s.dropEvicted(evicted)
	if err != nil {
		return nil, s.txErr("create", err)
	}
	rec.Version = 1
	return evicted, nil
}

// Update is a compare-and-swap on the version. The common case (same
// subject) is one UPDATE; a subject change, or any failure of that UPDATE,
// takes a transaction that locks the new subject and the row, finds out
// why, and enforces the limit.
func (s *Store) Update(ctx context.Context, rec *sessionkit.Record, lim sessionkit.Limit) ([]*sessionkit.Record, error) {
	r := rec.Clone()
	r.Version++
	rw, err := toRow(r)
	if err != nil {
		return nil, wrap("update: encode", err)
	}
	// Activity moves only forward: an older LastSeenAt keeps the stored
	// activity columns. A revoking update always takes its PurgeAt.
	sql := `UPDATE ` + s.sessions + ` SET
		token_hash = $3, subject = $4, created_at = $5, revoked = $6, version = version + 1,
		last_seen     = CASE WHEN $7::bigint >= last_seen THEN $7::bigint ELSE last_seen END,
		idle_deadline = CASE WHEN $7::bigint >= last_seen THEN $8::bigint ELSE idle_deadline END,
		purge_at      = CASE WHEN $6::boolean OR $7::bigint >= last_seen THEN $9::bigint ELSE purge_at END,
		last_ip       = CASE WHEN $7::bigint >= last_seen THEN $10::text ELSE last_ip END,
		last_ua       = CASE WHEN $7::bigint >= last_seen THEN $11::text ELSE last_ua END,
		rec = $12
		WHERE handle = $1 AND version = $2 AND NOT revoked AND ($13::boolean OR subject = $4)`
	args := func(anySubject bool) []any {
		return []any{rw.handle, int64(rec.Version), rw.hash, rw.subject, rw.created, rw.revoked,
			rw.lastSeen, rw.idle, rw.purgeAt, rw.lastIP, rw.lastUA, rw.rec, anySubject}
	}
	if s.cache != nil {
		defer s.cache.invalidate(r.Handle, sessionkit.TokenHash{})
	}

	tag, err := s.pool.Exec(ctx, sql, args(false)...)
	if pgCode(err) == codeUniqueViolation {
		return nil, sessionkit.ErrExists
	}
	if err != nil {
		return nil, wrap("update", err)
	}
	if tag.RowsAffected() == 1 {
		rec.Version = r.Version
		return nil, nil
	}

	var evicted []*sessionkit.Record
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		enforce := r.Subject != "" && lim.Max > 0 && !r.Revoked()
		if enforce {
			if err := s.lockSubject(ctx, tx, r.Subject); err != nil {
				return err
			}
		}
		var (
			version int64
			revoked bool
			subject string
		)
		err := tx.QueryRow(ctx, `SELECT version, revoked, subject FROM `+s.sessions+` WHERE handle = $1 FOR UPDATE`,
			r.Handle).Scan(&version, &revoked, &subject)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return sessionkit.ErrNotFound
		case err != nil:
			return err
		case revoked:
			return sessionkit.ErrRevoked
		case uint64(version) != rec.Version:
			return sessionkit.ErrConflict
		}
		if enforce && subject != r.Subject {
			if evicted, err = s.enforce(ctx, tx, r.Subject, r.Handle, lim); err != nil {
				return err
			}
		}
		tag, err := tx.Exec(ctx, sql, args(true)...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return errors.New("row changed under lock")
		}
		return nil
	})
	s.dropEvicted(evicted)
	if err != nil {
		return nil, s.txErr("update", err)
	}
	rec.Version = r.Version
	return evicted, nil
}

// Touch moves activity forward without a new version. The trigger does not
// notify it; this instance updates its own cached copy.
func (s *Store) Touch(ctx context.Context, handle string, a sessionkit.Activity) error {
	var (
		updated bool
		revoked *bool
	)
	err := s.pool.QueryRow(ctx, `WITH t AS (
			UPDATE `+s.sessions+` SET last_seen = $2, idle_deadline = $3, purge_at = $4, last_ip = $5, last_ua = $6
			WHERE handle = $1 AND NOT revoked AND last_seen < $2 RETURNING 1)
		SELECT EXISTS (SELECT 1 FROM t), (SELECT revoked FROM `+s.sessions+` WHERE handle = $1)`,
		handle, nanos(a.LastSeenAt), nanos(a.IdleDeadline), nanos(a.PurgeAt), a.LastClient.IP, a.LastClient.UserAgent,
	).Scan(&updated, &revoked)
	switch {
	case err != nil:
		return wrap("touch", err)
	case updated:
		if s.cache != nil {
			s.cache.touch(handle, a)
		}
		return nil
	case revoked == nil:
		return sessionkit.ErrNotFound
	case *revoked:
		return sessionkit.ErrRevoked
	}
	return nil // older activity than stored: nothing to do
}

// revoke applies rv to r as Store.Revoke describes.
func revoke(r *sessionkit.Record, rv sessionkit.Revocation) {
	r.RevokedAt = rv.At
	r.RevokedReason = rv.Reason
	r.PurgeAt = rv.PurgeAt
	r.Data = nil
	r.Refresh = sessionkit.RefreshState{}
	r.Version++
}

// Revoke reads the record and writes it back revoked with a
// compare-and-swap, retrying if an Update slipped in between.
func (s *Store) Revoke(ctx context.Context, handle string, rv sessionkit.Revocation) (*sessionkit.Record, error) {
	if s.cache != nil {
		defer s.cache.invalidate(handle, sessionkit.TokenHash{})
	}
	for range 20 {
		r, err := s.GetByHandle(ctx, handle)
		if err != nil {
			return nil, err
		}
		if r.Revoked() {
			return nil, sessionkit.ErrRevoked
		}
		old := r.Version
		revoke(r, rv)
		b, err := r.MarshalBinary()
		if err != nil {
			return nil, wrap("revoke: encode", err)
		}
		// RETURNING the activity columns keeps a racing Touch's activity
		// in the returned record.
		var lastSeen, idle int64
		var lastIP, lastUA string
		err = s.pool.QueryRow(ctx, `UPDATE `+s.sessions+` SET revoked = true, version = $3, purge_at = $4, rec = $5
			WHERE handle = $1 AND version = $2 AND NOT revoked
			RETURNING last_seen, idle_deadline, last_ip, last_ua`,
			handle, int64(old), int64(r.Version), nanos(r.PurgeAt), b).Scan(&lastSeen, &idle, &lastIP, &lastUA)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, wrap("revoke", err)
		}
		r.LastSeenAt, r.IdleDeadline = fromNanos(lastSeen), fromNanos(idle)
		r.LastClient = sessionkit.Client{IP: lastIP, UserAgent: lastUA}
		return r, nil
	}
	return nil, wrap("revoke", errors.New("too many concurrent updates"))
}

// RevokeSubject revokes the subject's sessions in one transaction.
func (s *Store) RevokeSubject(ctx context.Context, subject, except string, rv sessionkit.Revocation) ([]*sessionkit.Record, error) {
	if subject == "" {
		return nil, nil
	}
	var out []*sessionkit.Record
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		rs, err := s.queryRecords(ctx, tx, `SELECT `+cols+` FROM `+s.sessions+`
			WHERE subject = $1 AND subject <> '' AND NOT revoked AND handle <> $2
			ORDER BY created_at, handle FOR UPDATE`, subject, except)
		if err != nil {
			return err
		}
		out = rs
		return s.revokeAll(ctx, tx, rs, rv)
	})
	s.dropEvicted(out)
	if err != nil {
		return nil, s.txErr("revoke subject", err)
	}
	return out, nil
}

// revokeAll revokes rs (locked by the caller) in one statement.
func (s *Store) revokeAll(ctx context.Context, tx pgx.Tx, rs []*sessionkit.Record, rv sessionkit.Revocation) error {
	if len(rs) == 0 {
		return nil
	}
	handles := make([]string, len(rs))
	versions := make([]int64, len(rs))
	purge := make([]int64, len(rs))
	recs := make([][]byte, len(rs))
	for i, r := range rs {
		revoke(r, rv)
		b, err := r.MarshalBinary()
		if err != nil {
			return err
		}
		handles[i], versions[i], purge[i], recs[i] = r.Handle, int64(r.Version), nanos(r.PurgeAt), b
	}
	_, err := tx.Exec(ctx, `UPDATE `+s.sessions+` AS s SET revoked = true, version = v.version, purge_at = v.purge_at, rec = v.rec
		FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bytea[]) AS v(handle, version, purge_at, rec)
		WHERE s.handle = v.handle`, handles, versions, purge, recs)
	return err
}

// enforce applies lim to subject inside tx, which holds the subject's lock,
// not counting the session except. It returns the evicted records.
func (s *Store) enforce(ctx context.Context, tx pgx.Tx, subject, except string, lim sessionkit.Limit) ([]*sessionkit.Record, error) {
	rs, err := s.queryRecords(ctx, tx, `SELECT `+cols+` FROM `+s.sessions+`
		WHERE subject = $1 AND subject <> '' AND NOT revoked AND handle <> $2
		ORDER BY created_at, handle FOR UPDATE`, subject, except)
	if err != nil {
		return nil, err
	}
	var live []*sessionkit.Record
	for _, r := range rs {
		if r.Live(lim.Now) {
			live = append(live, r)
		}
	}
	if len(live) < lim.Max {
		return nil, nil
	}
	if lim.Policy != sessionkit.LimitEvictOldest {
		return nil, sessionkit.ErrLimit
	}
	evict := live[:len(live)-lim.Max+1]
	if err := s.revokeAll(ctx, tx, evict, lim.Revocation); err != nil {
		return nil, err
	}
	return evict, nil
}

// lockSubject takes a transaction-scoped advisory lock on a subject. Row
// locks alone cannot stop two transactions from each inserting a new
// session after counting the same rows.
func (s *Store) lockSubject(ctx context.Context, tx pgx.Tx, subject string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`,
		"sessionkit.subject:"+s.schema+":"+subject)
	return err
}

func (s *Store) dropEvicted(rs []*sessionkit.Record) {
	if s.cache == nil {
		return
	}
	for _, r := range rs {
		s.cache.invalidate(r.Handle, r.TokenHash)
	}
}

// Delete removes a record whatever its state.
func (s *Store) Delete(ctx context.Context, handle string) error {
	if s.cache != nil {
		defer s.cache.invalidate(handle, sessionkit.TokenHash{})
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM `+s.sessions+` WHERE handle = $1`, handle)
	if err != nil {
		return wrap("delete", err)
	}
	if tag.RowsAffected() == 0 {
		return sessionkit.ErrNotFound
	}
	return nil
}

// ListSubject returns the subject's indexed sessions, oldest first.
func (s *Store) ListSubject(ctx context.Context, subject string) ([]*sessionkit.Record, error) {
	if subject == "" {
		return nil, nil
	}
	rs, err := s.queryRecords(ctx, nil, `SELECT `+cols+` FROM `+s.sessions+`
		WHERE subject = $1 AND subject <> '' AND NOT revoked ORDER BY created_at, handle`, subject)
	if err != nil {
		return nil, wrap("list subject", err)
	}
	return rs, nil
}

// DeleteExpired deletes one batch of at most max records due for purging,
// found through the purge_at index. SKIP LOCKED lets several instances
// purge at once without waiting on each other.
func (s *Store) DeleteExpired(ctx context.Context, now time.Time, max int) (int, error) {
	if max <= 0 {
		return 0, nil
	}
	rows, err := s.pool.Query(ctx, `DELETE FROM `+s.sessions+` WHERE handle IN (
		SELECT handle FROM `+s.sessions+` WHERE purge_at <= $1 ORDER BY purge_at LIMIT $2 FOR UPDATE SKIP LOCKED)
		RETURNING handle, token_hash`,
		nanos(now), max)
	if err != nil {
		return 0, wrap("delete expired", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var handle string
		var h []byte
		if err := rows.Scan(&handle, &h); err != nil {
			return n, wrap("delete expired", err)
		}
		if s.cache != nil {
			var th sessionkit.TokenHash
			copy(th[:], h)
			s.cache.invalidate(handle, th)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, wrap("delete expired", err)
	}
	return n, nil
}

// inTx runs f in a transaction, committing if it returns nil.
func (s *Store) inTx(ctx context.Context, f func(pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// txErr passes sentinels through, maps a unique violation to ErrExists and
// wraps everything else in ErrStore.
func (s *Store) txErr(op string, err error) error {
	for _, e := range []error{sessionkit.ErrNotFound, sessionkit.ErrRevoked, sessionkit.ErrConflict,
		sessionkit.ErrExists, sessionkit.ErrLimit} {
		if errors.Is(err, e) {
			return e
		}
	}
	if pgCode(err) == codeUniqueViolation {
		return sessionkit.ErrExists
	}
	return wrap(op, err)
}
