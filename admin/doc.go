// Package admin is sessiond's operator console: a server-rendered web UI at
// /admin for finding a user's sessions, revoking them, reading a session's
// event timeline, following the live event stream, reviewing anomalies and
// watching charts of session activity.
//
// An operator signs in with a sessiond API key and receives an admin session
// of sessionkit's own: a __Host- cookie with SameSite=Strict, a 15 minute
// idle and 8 hour absolute lifetime, kept by a separate Manager over a
// separate Store, so admin sessions never show up among users' sessions and
// no user-facing operation (such as revoking a subject's sessions) can reach
// them. State-changing requests are also checked by
// http.CrossOriginProtection.
//
// Every page is rendered with html/template, so attacker-controlled values
// such as User-Agent strings are escaped; every asset is embedded; every
// response carries Cache-Control: no-store and a strict
// Content-Security-Policy. When a store or the event history cannot be
// reached the console answers with an error page and status 503.
//
// A Console is a sessiond.Extension:
//
//	console, err := admin.New(admin.Options{
//		Store:       adminStore,          // not the users' store
//		CheckAPIKey: keys.Check,          // (*sessiond.Keys).Check
//		History:     history,             // eventlog.History
//		Stream:      stream,              // *eventlog.Stream fed by the Manager's events
//		Series:      collector,           // *metrics.Collector, optional
//	})
//	srv, err := sessiond.New(sessiond.Config{..., Extensions: []sessiond.Extension{console}})
package admin
