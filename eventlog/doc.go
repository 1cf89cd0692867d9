// Package eventlog keeps, streams and delivers sessionkit events.
//
//   - A History keeps events for a retention period and up to a maximum
//     count, and answers "what happened to this session" (by handle), "what
//     happened to this user" (by subject) and "what went wrong lately" (by
//     type, e.g. anomalies). Backends: NewMemory (a ring buffer), OpenBolt
//     (its own bbolt file), NewRedis and NewPostgres.
//   - A Recorder is the EventSink that appends to a History through a
//     bounded queue: Emit never blocks a request, and events that do not fit
//     are dropped and counted.
//   - A Stream is an EventSink and an http.Handler that serves new events as
//     Server-Sent Events, with a bounded buffer per subscriber.
//   - Webhooks is an EventSink that posts events, signed per the Standard
//     Webhooks scheme, from background workers with bounded retries.
//
// Events never hold a session token (see sessionkit.Event), so everything
// here may be stored and sent as is.
package eventlog
