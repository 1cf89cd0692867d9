// Package accesstoken adds client-side sessions to sessionkit: short-lived
// JWT access tokens that services verify locally (see package verify), and
// opaque refresh tokens that renew them through the server-side session, so
// that ending the session stops renewal.
//
// An access token is a JWT with header typ "at+jwt" (RFC 9068), signed with
// Ed25519 by default (ES256 and RS256 are available; HS256 only for a single
// service sharing a secret). Its claims are iss, sub, aud, exp, iat, nbf,
// jti, sid (the handle of the server-side session) and auth_level (the
// session's authentication level, as in the sessiond API), plus claims the
// application adds; those may not override the reserved ones, and a token
// that would exceed Config.MaxTokenBytes (4 KiB, a cookie's limit) is
// refused when issued.
//
// A refresh token is "<handle>.<secret>": the handle finds the session, and
// SHA-256 of the 32-byte secret is compared in constant time with
// Record.Refresh.Hash. The token itself is never stored. Each refresh
// rotates it in one compare-and-swap update of the session record. A
// retired token presented again after the grace window is reuse: the whole
// session is revoked (reason sessionkit.ReasonRefreshReuse) and
// EventRefreshReused is emitted. Within the grace window the immediately
// previous token yields the successor it already produced, which the record
// keeps sealed (AES-256-GCM) under a key derived with HKDF from the previous
// secret, so concurrent refreshes by one honest client share one successor
// and never fork the family.
//
// Signing keys live in a KeyRing: generated, pre-published in the JWKS
// before they sign, rotated on a schedule or on demand, kept in the JWKS
// until every token they signed has expired, and persisted encrypted in the
// store's sessionkit.KVStore so every instance agrees; or loaded from an
// operator's file (PEM or JWK set).
//
// Revocations feeds on the Manager's events: every ended session's handle
// (the sid claim) is held as long as an access token can live, checked by
// local verification and streamed to remote verifiers.
package accesstoken
