package sessionkit

import (
	"encoding/json"
	"maps"
	"time"
)

// TokenHash is SHA-256 of a session token. Stores key sessions by it.
type TokenHash [32]byte

// Client describes the client that used a session: its IP address and
// User-Agent as seen by the server.
type Client struct {
	IP        string `json:"ip"`
	UserAgent string `json:"user_agent"`
}

// Activity is the part of a record that moves with use. Stores apply it with
// Touch and never move it backwards: a write carrying an older LastSeenAt than
// the stored one keeps the stored activity.
type Activity struct {
	LastSeenAt   time.Time
	IdleDeadline time.Time
	// PurgeAt is when the store may delete the record (see Record.PurgeAt).
	PurgeAt    time.Time
	LastClient Client
}

// RefreshState anchors a family of refresh tokens to the session (see package
// accesstoken). The zero value means no refresh token was issued.
type RefreshState struct {
	// Hash is SHA-256 of the current refresh token secret.
	Hash TokenHash
	// PrevHash is SHA-256 of the refresh token that Hash replaced.
	PrevHash TokenHash
	// RotatedAt is when PrevHash was retired; it bounds the grace window.
	RotatedAt time.Time
	// Successor is the current refresh token sealed under a key derived from
	// the previous one, so only a holder of the previous token can read it
	// during the grace window. It never holds a usable token in the clear.
	Successor []byte
	// Generation counts rotations.
	Generation uint32
	// Key authenticates every refresh token of the family, so a retired
	// token of any age is recognised as reuse. It cannot make a token
	// acceptable: only a secret hashing to Hash is.
	Key []byte
}

// Record is a stored session. It never holds the token, only its hash.
type Record struct {
	Handle    string
	TokenHash TokenHash
	Subject   string // empty for an anonymous session
	// AuthLevel marks how strongly the subject authenticated: 0 while
	// anonymous, at least 1 once the session has a subject; apps raise it
	// (with a renewal) on privilege escalation.
	AuthLevel int

	CreatedAt       time.Time
	AuthenticatedAt time.Time // zero while anonymous
	Activity

	AbsoluteDeadline time.Time
	Persistent       bool

	Client Client // at creation

	// Data holds application values, each as JSON.
	Data map[string]json.RawMessage

	// RevokedAt is set once the session was revoked or logged out. A revoked
	// record is kept until PurgeAt so that its token is reported as revoked
	// rather than unknown; no write may bring it back.
	RevokedAt     time.Time
	RevokedReason string

	Refresh RefreshState

	// Version increases by one with every successful Update.
	Version uint64
}

// Revoked reports whether the session was revoked or logged out.
func (r *Record) Revoked() bool { return !r.RevokedAt.IsZero() }

// Live reports whether the session may still be used at now: not revoked,
// and before both its idle and absolute deadlines.
func (r *Record) Live(now time.Time) bool {
	return !r.Revoked() && now.Before(r.IdleDeadline) && now.Before(r.AbsoluteDeadline)
}

// Deadline is the earlier of the idle and absolute deadlines.
func (r *Record) Deadline() time.Time {
	if r.IdleDeadline.Before(r.AbsoluteDeadline) {
		return r.IdleDeadline
	}
	return r.AbsoluteDeadline
}

// Clone returns a deep copy of r that the caller may modify.
func (r *Record) Clone() *Record {
	c := *r
	if r.Data != nil {
		c.Data = maps.Clone(r.Data)
	}
	if r.Refresh.Successor != nil {
		c.Refresh.Successor = append([]byte(nil), r.Refresh.Successor...)
	}
	if r.Refresh.Key != nil {
		c.Refresh.Key = append([]byte(nil), r.Refresh.Key...)
	}
	return &c
}
