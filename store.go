package sessionkit

import (
	"context"
	"errors"
	"time"
)

// Errors returned by stores and by the Manager. Callers test them with
// errors.Is.
var (
	// ErrNotFound: no session for that token or handle.
	ErrNotFound = errors.New("sessionkit: session not found")
	// ErrRevoked: the session was revoked or logged out.
	ErrRevoked = errors.New("sessionkit: session revoked")
	// ErrExpired: the session passed its idle or absolute deadline.
	ErrExpired = errors.New("sessionkit: session expired")
	// ErrConflict: a compare-and-swap failed because the stored version
	// differs from the expected one.
	ErrConflict = errors.New("sessionkit: version conflict")
	// ErrExists: Create found a session with the same handle or token hash.
	ErrExists = errors.New("sessionkit: session already exists")
	// ErrLimit: the subject already has the maximum number of live sessions
	// and the policy is LimitReject.
	ErrLimit = errors.New("sessionkit: too many sessions for subject")
	// ErrStoreFull: a bounded store cannot take another session.
	ErrStoreFull = errors.New("sessionkit: store is full")
	// ErrMalformed: the token is not a well-formed session token.
	ErrMalformed = errors.New("sessionkit: malformed token")
	// ErrStore wraps every failure to reach or use the store. A caller that
	// sees it must fail closed.
	ErrStore = errors.New("sessionkit: store unavailable")
)

// LimitPolicy says what happens when a subject would exceed its maximum
// number of live sessions.
type LimitPolicy int

const (
	// LimitReject refuses the new session with ErrLimit.
	LimitReject LimitPolicy = iota
	// LimitEvictOldest revokes the subject's oldest live sessions (by
	// CreatedAt) to make room.
	LimitEvictOldest
)

// Limit caps the live sessions of one subject. Stores enforce it in the same
// atomic step that adds the session to the subject. Max <= 0 means no limit.
type Limit struct {
	Max    int
	Policy LimitPolicy
	// Now decides which of the subject's sessions are live (Record.Live).
	Now time.Time
	// Revocation is applied to evicted sessions.
	Revocation Revocation
}

// Revocation describes how a session ends.
type Revocation struct {
	At      time.Time
	Reason  string
	PurgeAt time.Time // when the store may delete the revoked record
}

// Store keeps session records. Implementations must be safe for concurrent use
// and make every method atomic: a reader never sees half of a change, and the
// subject index always agrees with the records.
//
// A record is in its subject's index exactly when Subject is not empty and
// it is not revoked. Records returned by a Store belong to the caller; a
// Store must not keep or modify records it was given after returning.
//
// Every error that is not one of the sentinel errors above must wrap
// ErrStore, so callers can fail closed.
//
// Package storetest holds the conformance suite every Store must pass.
type Store interface {
	// Create inserts a new record with Version 1 (rec.Version is set). It
	// returns ErrExists if the handle or token hash is taken. If rec.Subject
	// is not empty, lim is enforced atomically; the sessions it evicts are
	// returned, already revoked.
	Create(ctx context.Context, rec *Record, lim Limit) (evicted []*Record, err error)

	// Get returns the record for a token hash, including revoked and expired
	// records that were not purged yet, or ErrNotFound.
	Get(ctx context.Context, hash TokenHash) (*Record, error)

	// GetByHandle returns the record for a handle, or ErrNotFound.
	GetByHandle(ctx context.Context, handle string) (*Record, error)

	// Update replaces the record with the same handle if its stored version
	// equals rec.Version, and then sets rec.Version to the new version. It may
	// change the token hash (renewal: the old hash stops resolving in the
	// same atomic step) and the subject (the index moves, and lim is
	// enforced for the new subject). It returns ErrNotFound if there is no
	// such record, ErrRevoked if it is revoked, and ErrConflict if the
	// version differs. Activity never moves backwards (see Activity).
	Update(ctx context.Context, rec *Record, lim Limit) (evicted []*Record, err error)

	// Touch records activity without changing the version, moving it forward
	// only. It returns ErrNotFound or ErrRevoked like Update.
	Touch(ctx context.Context, handle string, a Activity) error

	// Revoke marks one session revoked: it sets RevokedAt, RevokedReason and
	// PurgeAt from rv, clears Data and Refresh, increments Version, removes
	// the session from its subject index and returns the revoked record. It
	// returns ErrNotFound for an unknown handle and ErrRevoked for a second
	// revocation.
	Revoke(ctx context.Context, handle string, rv Revocation) (*Record, error)

	// RevokeSubject revokes, as Revoke does, every session in subject's
	// index except the one with handle except (which may be empty), in one
	// atomic step, and returns the revoked records.
	RevokeSubject(ctx context.Context, subject, except string, rv Revocation) ([]*Record, error)

	// Delete removes a record at once, whatever its state.
	Delete(ctx context.Context, handle string) error

	// ListSubject returns the records in subject's index, oldest first. They
	// may include sessions past a deadline that were not purged yet.
	ListSubject(ctx context.Context, subject string) ([]*Record, error)

	// DeleteExpired removes up to max records whose PurgeAt is at or before
	// now and returns how many it removed. Its cost grows with the number
	// removed, not with the number stored.
	DeleteExpired(ctx context.Context, now time.Time, max int) (int, error)

	// Ping reports whether the store can be reached.
	Ping(ctx context.Context) error

	// Close releases the store's resources.
	Close() error
}

// KVStore is an optional Store extension for small shared values that every
// instance must agree on, such as signing keys. Values are replaced by
// compare-and-swap on their version: expect 0 means the key must not exist.
type KVStore interface {
	GetValue(ctx context.Context, key string) (value []byte, version uint64, err error)
	PutValue(ctx context.Context, key string, value []byte, expect uint64) (version uint64, err error)
}
