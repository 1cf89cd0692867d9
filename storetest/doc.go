// Package storetest is the conformance suite for sessionkit.Store and
// sessionkit.KVStore implementations.
//
// A store's tests call Run (and RunKV if it implements KVStore) with a
// function that returns a fresh, empty store and registers its own cleanup
// with t.Cleanup:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) sessionkit.Store {
//			s := memstore.New(memstore.Options{})
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// The suite checks the contract written on sessionkit.Store: round trips of
// every field, uniqueness, compare-and-swap on Version, monotonic activity,
// revocation without resurrection, the subject index and session limits,
// purging, and the same properties under concurrent use (run it with -race).
//
// Conventions the suite relies on, beyond the Store documentation:
//
//   - Times round-trip exactly at microsecond precision (the suite truncates
//     its clock to microseconds) and are compared with time.Time.Equal.
//   - Data values round-trip byte for byte.
//   - Every time the suite uses is near the real clock, with deadlines and
//     PurgeAt in the future, so a store that also expires keys natively (by
//     TTL at PurgeAt) does not lose records during a test; DeleteExpired is
//     called with a "now" in the future.
//   - Delete, like the other methods, returns ErrNotFound for an unknown
//     handle.
//   - An Update that gives a record the token hash of another record returns
//     ErrExists and changes nothing.
//   - A failed Update leaves rec.Version as it was.
//   - Neither the caller's record nor a returned one shares memory with
//     the store, down to the bytes of Data values.
//   - ListSubject("") is empty: anonymous sessions have no index.
//   - KVStore.PutValue returns ErrConflict when expect does not match the
//     stored version, including a non-zero expect for a missing key.
package storetest
