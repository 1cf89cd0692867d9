// Package pgstore is a sessionkit.Store and sessionkit.KVStore in
// PostgreSQL, built on pgx and pgxpool, with an optional in-process
// near-cache kept coherent through LISTEN/NOTIFY.
//
// # Schema
//
// All objects live in one PostgreSQL schema (Options.Schema, default
// "sessionkit"), so deployments or tests can share a database without
// seeing each other. Migrate creates them; New does not unless
// Options.AutoMigrate is set, and otherwise fails with ErrNotMigrated when
// the schema is missing or old, so that serving processes need no DDL
// rights. Migrations are numbered and recorded in schema_migrations in the
// same transaction as their DDL; a transaction-scoped advisory lock makes
// concurrent runs wait for each other, so Migrate is idempotent and safe to
// run from every instance at start-up.
//
// The sessions table keeps the whole record encoded with
// Record.MarshalBinary in a bytea column (rec), plus the columns queries
// need:
//
//	handle text PRIMARY KEY                the CAS target
//	token_hash bytea UNIQUE                Get; uniqueness of hashes
//	subject, created_at, revoked           the subject index
//	version bigint                         compare-and-swap
//	last_seen, idle_deadline, purge_at,
//	last_ip, last_ua                       activity (authoritative over rec)
//
// One encoded column rather than one column per field keeps the table in
// step with the record type without a migration for every new field, and
// reads decode one value. Activity has its own columns because Touch must
// change it without rewriting or even reading the record, and must move it
// forward only (WHERE last_seen < $new) without a version bump. Times are
// stored as Unix nanoseconds in bigint, the record codec's own unit, so
// columns and record agree exactly and ordering by created_at is exact.
//
// Indexes: the primary key on handle serves GetByHandle and every
// compare-and-swap (UPDATE ... WHERE handle = $1 AND version = $2 touches
// one row found by the key, so the version needs no index of its own); the
// unique index on token_hash serves Get; a partial index on (subject,
// created_at, handle) WHERE NOT revoked AND subject <> ” is exactly the
// subject index, oldest first, and stays small because revoked and
// anonymous sessions are not in it; an index on purge_at lets
// DeleteExpired take a bounded batch (ORDER BY purge_at LIMIT n, FOR UPDATE
// SKIP LOCKED) at a cost that grows with the batch, not the table.
//
// # Atomicity
//
// Update is one UPDATE guarded by handle, version, NOT revoked and the
// unchanged subject. When that matches nothing (a conflict, a revoked or
// missing record, or a new subject) a transaction locks the row to tell
// which, and for a new subject enforces the limit. Limits are enforced in a
// transaction holding a per-subject advisory lock (row locks alone cannot
// stop two transactions from each adding a session after counting the same
// rows); evictions and RevokeSubject revoke all their rows in one UPDATE.
// Revoke is a read followed by a compare-and-swap on the version, retried
// if an Update slipped in between. Every error that is not a sentinel wraps
// sessionkit.ErrStore.
//
// # Near-cache
//
// With NearCache.Enabled, Get serves records by token hash from memory for
// up to NearCache.TTL. A trigger on the sessions table sends
// NOTIFY "<schema>.sessions" with "<hex of the old token hash>:<handle>" for
// every UPDATE that changes the version, token hash, subject or revocation
// and for every DELETE, inside the writing transaction, so a change and its
// notification commit together; no token ever appears in it. A dedicated
// connection LISTENs and drops the named entries; the writing instance drops
// its own entry at once. Because the trigger is in the database, writes
// from any client, including an operator's SQL, invalidate caches.
//
// The cache serves nothing unless its listener is up: when the listening
// connection fails (or an idle heartbeat ping fails) the cache is flushed
// and disabled, reads go to the database, and the listener reconnects with
// backoff; it is flushed again and re-enabled only once LISTEN is back, so
// a change made while it was down is never served stale. A read that races
// an invalidation cannot re-insert the old value: fills are refused when an
// invalidation happened since the read began.
//
// Touch does not notify: activity changes on nearly every request and
// would otherwise empty every instance's cache constantly. The instance
// that touches updates its own entry; other instances may see activity up
// to TTL old. That lag only ever makes the cached idle deadline earlier
// than the stored one, so to keep the idle check exact an entry is served
// only while its idle deadline lies beyond the entry's expiry; a session
// within TTL of going idle is always read from the database. Options.Now
// must therefore be the clock the session manager uses.
//
// NOTIFY serializes committing transactions that notify on a global lock,
// which bounds write throughput on very busy databases; instances that do
// not enable the near-cache still pay for it because the trigger always
// fires.
package pgstore
