// Package redisstore keeps sessions in Redis or Redis Cluster. It
// implements sessionkit.Store and sessionkit.KVStore on
// github.com/redis/rueidis and needs Redis 7.0 or later (PEXPIRETIME).
//
// # Key layout
//
// Keys are grouped in homes. A home is a set of keys that share one hash
// tag, so they live in one cluster slot and one Lua script can change them
// atomically. With the default prefix "sk:":
//
//	sk:{s:<subject id>}:r:<handle>  record of a subject's session (hash)
//	sk:{s:<subject id>}:a:<handle>  its activity (string)
//	sk:{s:<subject id>}:i           the subject index (sorted set by CreatedAt)
//	sk:{a:<handle>}:r:<handle>      record of an anonymous session, or the
//	                                locator stub of a subject's session
//	sk:{a:<handle>}:a:<handle>      activity of an anonymous session
//	sk:{t:<hex token hash>}         token pointer: handle and home
//	sk:{c:<hex token hash>}         copy of record and activity (single
//	                                server only, see Round trips)
//	sk:{x}:purge                    expiry set read by DeleteExpired
//	sk:{k:<hex key>}                a KVStore value
//
// The subject id is the first 128 bits of SHA-256(subject), so key names
// have a fixed size and carry no personal data. A record's home follows its
// subject: every session of one subject, and that subject's index, share a
// slot. That makes the operations that must be atomic single-slot scripts:
// create with the session limit, update (including renewal to a new token
// hash), touch, revoke, revoke-all and the limit's evictions.
//
// Lookups start from keys that do not depend on the subject: a token hash
// finds its pointer, a handle its locator stub. Both point to the home; the
// record there is the authority. A pointer is only trusted if the record it
// leads to carries that very token hash, so renewal makes the old hash stop
// resolving in the same atomic step that stores the new record, even though
// the old pointer lives in another slot and is removed a moment later.
// A pointer names the home the session had when its token was issued; if
// the stubs from there do not reach a record with that hash (possible
// after moves between subjects without a new token), Get follows the
// locator instead and applies the same check.
//
// # Round trips
//
// On a single Redis server (standalone or Sentinel), Get is one plain GET
// of the session's copy: every script that writes a live or revoked record
// or its activity (create, update, touch, revoke, revoke-all, the limit's
// evictions, the commit of a move, delete, purge) also stores, in the same
// call and with the activity's expiry, the record bytes followed by the
// activity under a key derived from the token hash alone
// ("<len(record)>:<record><activity>"). A renewal deletes the old hash's
// copy in the script that stores the new record, so the old token stops
// resolving in that step; a pending record gets its copy only when its
// move commits, which on a single server also makes it live in the same
// script. Get still checks that the record it decodes carries the token
// hash it asked for. Where there is no copy (an unknown token, or a
// session written before copies existed), Get takes the pointer path
// below, one more round trip. The copy costs one more key per session,
// about the size of the record.
//
// GetByHandle is one round trip too: a read-only script (EVALSHA_RO) reads
// the locator, computes the home's key names from it, follows forward
// stubs and returns record and activity together; Get uses the same
// script from the token pointer when there is no copy. Touch, Revoke and
// Delete find their record the same way. An Update that keeps token
// and subject (the common save of session data) is one script too: it
// goes straight to the subject's home, checks version and token hash
// there (anything else takes the general path) and extends the pointer,
// locator and expiry set in the same call. A script that uses keys it
// computes, or keys of several slots, is safe on a single server, where
// every key is local and the script runs atomically.
//
// Redis Cluster forbids both: the pointer (slot of the token hash) and the
// record (slot of the subject) live on different masters. There, Get is one
// GET of the pointer plus one pipelined read of record and activity,
// GetByHandle adds one hop through the locator, and an Update is its
// script plus one pipeline for the helper keys. Putting the pointer into
// the subject's slot would need the subject before the lookup, which a
// token does not carry, and a home keyed by the token would split a
// subject's sessions over many slots, losing the single-slot scripts that
// make limits, renewal and revoke-all atomic; so Cluster keeps the extra
// round trip, and keeps no copies, whose key a script could not compute
// there. With the near cache, reads of keys this instance did not
// write lately are served from memory in either mode, using the two-step
// reads so that each key is cached and invalidated on its own; keys it
// wrote itself are read fresh, with the script where the server allows it.
// The near cache does not read copies: every Touch rewrites the copy, which
// would invalidate the cached session on every instance, while it only
// invalidates the small activity key.
//
// # Changing the subject
//
// A subject change (login, or switching user) moves the record to another
// home, which no single script can do in Redis Cluster. The move is a small
// commit protocol that never shows a half-done state:
//
//  1. In the new home, one script enforces the limit and writes a pending
//     copy, listed in the new subject's index.
//  2. In the old home, one script compares the version and replaces the
//     record with a forward stub to the new home. This is the commit point.
//  3. The pending copy is marked live; the locator is pointed at the new
//     home.
//
// A reader that meets a pending copy checks the old home: if the stub
// points back, the move committed and the reader finishes step 3 itself;
// otherwise the old home still holds the session. Two moves of one
// session from the same version cannot both commit, so step 1 refuses
// (ErrConflict) where a pending copy of that version or a later one waits,
// or where the record already arrived; it replaces only an older pending
// copy, whose move can no longer commit. A failed step 2 removes
// the pending copy; one left by a crash expires after a few minutes. If a
// revoke-all of the new subject hits a pending copy, the copy is deleted,
// so the session can only end up gone, never live. One difference from a
// fully atomic store remains: if step 2 fails (the version changed, or the
// session was revoked meanwhile), sessions evicted for the limit in step 1
// stay revoked.
//
// # Expiry
//
// Records carry a native TTL: revoked records expire at PurgeAt; live
// records at PurgeAt plus Options.Slack, because Touch moves PurgeAt with
// the activity key only and rewrites the record key (which would invalidate
// every near cache) only when its TTL must grow. The subject index drops
// members whose record is gone inside every script that writes it, so it
// never grows without bound. DeleteExpired removes records whose PurgeAt
// has passed according to its now argument, using the expiry set; call it
// periodically so that set stays small.
//
// # Near cache
//
// With Options.NearCache, record, activity, pointer and stub reads use
// Redis server-assisted client-side caching (RESP3 tracking): Redis sends
// an invalidation when a key changes, so a revocation on one instance is
// seen by the others within about a millisecond. Entries live at most
// NearCacheTTL in case an invalidation is lost. Activity is a separate key,
// so Touch invalidates only the small activity value, not the record. An
// instance bypasses its cache for keys it wrote itself within the TTL, so it
// always reads its own writes. When the connection drops, its cache is
// dropped with it and reads fail with an error wrapping sessionkit.ErrStore
// until Redis is back; they never return a cached answer meanwhile.
//
// # Errors
//
// Every error that is not a sessionkit sentinel wraps sessionkit.ErrStore.
// Optimistic steps (limit decisions, revoke-all) re-read and retry when the
// subject's index changed between read and write.
package redisstore
