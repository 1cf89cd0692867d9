// Package boltstore keeps sessions in one local file with bbolt, an
// embedded copy-on-write B+tree database. It is the persistent default for a
// single server: sessions survive restarts, and a crash loses nothing that
// was committed, since every commit is fsynced (unless Options.NoSync).
//
// Only one process can open the file at a time; another one waits up to
// Options.Timeout for the lock and then fails with a clear error.
//
// # Layout
//
// Every change to a record and its index entries happens in one bbolt
// transaction, so readers never see them disagree. The buckets are:
//
//	records   handle -> Record.MarshalBinary()
//	hashes    token hash (32 bytes) -> handle
//	subjects  subject, 0x00, CreatedAt (8 bytes), handle -> empty
//	expiry    PurgeAt (8 bytes), handle -> empty
//	kv        key -> version (8 bytes), value   (for KVStore)
//	meta      "format" -> layout version
//
// Times in keys are Unix nanoseconds, big-endian, with the sign bit flipped
// so that byte order is time order. ListSubject and the session limit are a
// prefix scan of subjects, oldest first; a subject may therefore not contain
// a NUL byte. DeleteExpired walks expiry from its start and stops at the
// first key that is not due, so it reads only what it removes.
//
// Every error that is not one of the sessionkit sentinels wraps
// sessionkit.ErrStore, including a record that fails to decode.
package boltstore
