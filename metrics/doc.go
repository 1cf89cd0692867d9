// Package metrics exports sessionkit's activity as Prometheus metrics.
//
// A Collector is a prometheus.Collector that the application registers on
// its own registry (Register). It learns about sessions from two sources:
//
//   - Sink, an EventSink to add to sessionkit.Config.Events, counts
//     lifecycle events: created, authenticated, renewed, revoked and expired
//     sessions, rejections by reason, anomalies and refresh-token reuse.
//   - InstrumentStore wraps a Store and times every operation by op, counts
//     failures (errors wrapping sessionkit.ErrStore; sentinel outcomes such
//     as ErrNotFound are answers, not failures) and reads near-cache
//     statistics from stores that implement CacheStatser.
//
// ObserveVerify (or Middleware) records verification latency and
// ObserveRevocationLag how long a revocation took to reach a verifier.
//
// # Active sessions
//
// sessionkit_sessions_active is maintained from what this process sees, so a
// scrape never scans the store. A session counts from its creation until an
// event ends it (revoked, logged out, expired) or its deadline passes. The
// deadline is the one the instrumented store last wrote (Create, Update,
// Touch); without an instrumented store it is creation time plus
// Options.AbsoluteTimeout. The gauge therefore starts at zero when the
// process starts and does not include sessions created before, and each
// instance of a service counts the sessions it created: sum the gauge across
// instances for a fleet-wide estimate. Tracking is bounded by
// Options.MaxTracked; sessions beyond it are counted in
// sessionkit_sessions_untracked_total instead.
//
// Series keeps per-minute counts of created and rejected sessions and the
// active gauge for a bounded window, for dashboards that do not query
// Prometheus.
package metrics
