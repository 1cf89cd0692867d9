// Package verify checks sessionkit access tokens strictly. Services that
// accept the JWTs issued by package accesstoken (or by sessiond's
// POST /v1/tokens) import it; it has no dependency on a session store.
//
// A Verifier trusts keys from a static key set or from one configured JWKS
// URL, never from the token itself: headers that carry or point to keys
// (jwk, jku, x5u, x5c) are rejected. Before go-jose parses a token, Verify
// bounds its length, checks that every part is canonical base64url, and
// walks the header and payload JSON to reject duplicate or case-variant
// keys, so two parsers can never read one token two ways. The signature is
// then verified by go-jose with an explicit algorithm allow-list, and the
// claims are checked here: exp is required, nbf and iat may not lie in the
// future beyond a leeway of at most 60 seconds, iss and aud must match, and
// typ must be "at+jwt" (RFC 9068).
//
// Revocation before exp is keyed on the session id (the sid claim), the
// token id (jti) and a per-subject not-before time, never on token bytes.
// A RevocationSet holds them; a RevocationFeed keeps one up to date from a
// server's revocation stream (sessiond's GET /v1/tokens/revocations).
//
// Middleware verifies an `Authorization: Bearer` token and puts the claims
// in the request context (see FromContext).
package verify
