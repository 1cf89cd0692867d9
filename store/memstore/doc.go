// Package memstore keeps sessions in memory, for tests, development and
// single-instance deployments that can afford to lose every session on
// restart.
//
// A Store is bounded (Options.MaxSessions, default DefaultMaxSessions
// records, revoked ones included). When it is full, Create first purges the
// records whose PurgeAt has passed, then deletes the oldest anonymous
// session, and only if there is none returns sessionkit.ErrStoreFull. So an
// unauthenticated client creating sessions in a loop can push out other
// anonymous sessions but never a logged-in user's.
//
// Lookups by token hash take a read lock, one map lookup and a copy of the
// record: every record handed out belongs to the caller. DeleteExpired walks
// a min-heap on PurgeAt, so its cost grows with the number of records it
// removes. The store starts no goroutines; the Manager runs the sweeps.
package memstore
