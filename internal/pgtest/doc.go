// Package pgtest starts private PostgreSQL servers for tests that stop and
// restart them: each runs initdb in its own temporary directory and serves
// on a spare port, so a test never touches a shared server.
//
// Start needs the PostgreSQL server binaries (initdb and postgres, found
// under /usr/lib/postgresql/*/bin or in PATH); without them the test is
// skipped, or fails in CI. Run as root, the server runs as the postgres
// user, since PostgreSQL refuses to run as root.
package pgtest
