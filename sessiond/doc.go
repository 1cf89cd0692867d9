// Package sessiond is the session service: an HTTP JSON API over a
// sessionkit.Manager for applications that are not written in Go, a forward
// auth endpoint for reverse proxies (nginx auth_request, Traefik ForwardAuth,
// Caddy forward_auth), and the command line of the sessiond binary.
//
// Server is built from a plain Config and serves the routes described in
// openapi.json (GET /openapi.json). Every /v1/ route except GET /v1/auth
// needs an API key (Authorization: Bearer <key>); keys are kept only as
// SHA-256 hashes and compared in constant time. Other packages add routes
// through Config.Extensions and write errors with WriteError and decode
// bodies with DecodeJSON, so every endpoint answers alike.
//
// The service never implements session logic itself: creation, validation,
// renewal, expiry and revocation are the Manager's.
package sessiond
