// Package testenv finds the servers and programs that integration tests
// need. Where one is missing a test skips with a clear message, except in CI
// (CI=true), where a skipped integration test would hide a broken setup, so
// it fails instead.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Env variables naming test servers.
const (
	RedisEnv    = "SESSIONKIT_REDIS_URL"    // e.g. redis://127.0.0.1:6379/0
	PostgresEnv = "SESSIONKIT_POSTGRES_URL" // e.g. postgres://postgres@127.0.0.1:5432/test
)

// InCI reports whether the tests run in CI.
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing skips the test, or fails it in CI, explaining what is missing.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("required in CI: "+format, args...)
	}
	t.Skipf(format, args...)
}

// Var returns the value of an environment variable, or skips (fails in CI)
// when it is not set.
func Var(t testing.TB, name, what string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		Missing(t, "%s not set: set it to the URL of a %s to run this test", name, what)
	}
	return v
}

// RedisURL returns the Redis server to test against.
func RedisURL(t testing.TB) string { return Var(t, RedisEnv, "Redis server") }

// PostgresURL returns the PostgreSQL database to test against.
func PostgresURL(t testing.TB) string { return Var(t, PostgresEnv, "PostgreSQL database") }

// Program returns the path of an executable, or skips (fails in CI) when it
// is not installed.
func Program(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, "%s not found in PATH: install it to run this test", name)
	}
	return p
}
