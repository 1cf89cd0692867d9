// Package bench compares sessionkit's per-request cost with
// github.com/alexedwards/scs/v2 and github.com/gorilla/sessions on the same
// handler, in the same process and run. It is a module of its own so that
// the libraries it compares against never become dependencies of
// sessionkit.
//
// The benchmarks live in bench_test.go:
//
//   - BenchmarkRequest/{load,modify}/<library>-<store>: one HTTP request
//     through each library's middleware; load reads one value, modify
//     increments it and saves. Stores are in memory (gorilla: cookie and
//     filesystem) and Redis (sessionkit with and without its near cache).
//   - BenchmarkFloor: what no session library can beat: a handler that does
//     nothing, and one raw Redis GET with rueidis, the client sessionkit
//     uses.
//   - BenchmarkTouches: requests over a simulated hour on a fake clock,
//     counting the store writes that record activity.
//
// Redis benchmarks need SESSIONKIT_REDIS_URL (e.g.
// redis://127.0.0.1:6379/0) and skip without it. Every run uses a fresh
// key prefix and deletes its keys afterwards.
//
// The program in cmd/benchreport runs them all and writes RESULTS.md:
//
//	cd bench && SESSIONKIT_REDIS_URL=redis://127.0.0.1:6379/0 go run ./cmd/benchreport -count 8
package bench
