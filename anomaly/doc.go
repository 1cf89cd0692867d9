// Package anomaly watches sessionkit events for signs of attack and reacts.
//
// An Engine is an EventSink. Each rule that fires raises an
// sessionkit.EventAnomaly event whose Reason is the rule's name and whose
// Detail holds the facts, and may act on the session: revoke it
// (Manager.Revoke) or lower its auth level (Manager.LowerAuthLevel) so the
// application asks for step-up authentication. The rules:
//
//   - binding: the core reports that a session's network or User-Agent
//     changed (reasons ip_change, user_agent_change); the engine applies
//     the configured action.
//   - impossible_travel: one session used from two coarse networks within a
//     short window.
//   - token_guessing: a burst of unknown or malformed tokens from one IP.
//     The Limiter then answers that IP's rejected requests with 429 for a
//     while; valid sessions from the IP keep working, because the token is
//     checked first and only rejections are refused.
//   - refresh_reuse: a retired refresh token was presented.
//   - login_surge: a subject's logins in an interval jump far above its
//     usual rate (an EWMA baseline).
//   - new_device: a subject logs in from a device (User-Agent family and
//     network) it has not used before.
//
// Emit does only in-memory bookkeeping; raising events and acting, which
// need the store, happen on the engine's worker, off the request path. The
// engine never reacts to events it caused itself (their Actor is Actor).
// Every map is bounded (LRU), so memory does not grow with traffic. State
// is per process and starts empty.
package anomaly
