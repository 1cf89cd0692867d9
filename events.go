package sessionkit

import (
	"context"
	"log/slog"
	"time"
)

// EventType names a step in a session's life.
type EventType string

// The event types. Rejections and anomalies carry a Reason.
const (
	EventCreated       EventType = "created"
	EventAuthenticated EventType = "authenticated" // renewed into a subject (login)
	EventRenewed       EventType = "renewed"       // new token, same subject (e.g. privilege change)
	EventTouched       EventType = "touched"
	EventUpdated       EventType = "updated"
	EventExpiredIdle   EventType = "expired_idle"
	EventExpiredAbs    EventType = "expired_absolute"
	EventRevoked       EventType = "revoked"
	EventLoggedOut     EventType = "logged_out"
	EventRejected      EventType = "rejected"
	EventAnomaly       EventType = "anomaly"
	EventRefreshed     EventType = "refreshed"
	EventRefreshReused EventType = "refresh_reused"
)

// Rejection and revocation reasons.
const (
	ReasonUnknown         = "unknown"
	ReasonExpired         = "expired"
	ReasonRevoked         = "revoked"
	ReasonMalformed       = "malformed"
	ReasonDuplicateCookie = "duplicate_cookie"
	ReasonBinding         = "binding"
	ReasonLogout          = "logout"
	ReasonOperator        = "operator"
	ReasonLimit           = "session_limit"
	ReasonRevokeAll       = "revoke_all"
	ReasonIPChange        = "ip_change"
	ReasonUAChange        = "user_agent_change"
	ReasonRefreshReuse    = "refresh_token_reuse"
)

// Event is one step in a session's life. It names a session by its handle,
// never by its token.
type Event struct {
	Type    EventType `json:"type"`
	Time    time.Time `json:"time"`
	Handle  string    `json:"handle,omitempty"`
	Subject string    `json:"subject,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Client  Client    `json:"client"`
	// Actor identifies who caused the event when it was not the session's own
	// client, e.g. an API key id or "operator".
	Actor string `json:"actor,omitempty"`
	// Detail adds rule-specific facts, e.g. the previous IP of an anomaly.
	Detail map[string]string `json:"detail,omitempty"`
}

// EventSink receives events. Emit must not block for long: it runs on the
// request path.
type EventSink interface {
	Emit(ctx context.Context, e Event)
}

// EventSinkFunc adapts a function to EventSink.
type EventSinkFunc func(ctx context.Context, e Event)

// Emit calls f.
func (f EventSinkFunc) Emit(ctx context.Context, e Event) { f(ctx, e) }

// MultiSink delivers every event to each sink in order.
type MultiSink []EventSink

// Emit delivers e to every sink.
func (m MultiSink) Emit(ctx context.Context, e Event) {
	for _, s := range m {
		s.Emit(ctx, e)
	}
}

// SlogSink writes each event as one structured log record. slog's handlers
// quote and escape values, so a hostile User-Agent cannot split a line.
type SlogSink struct {
	Logger *slog.Logger
}

// Emit logs e at Info, or at Warn for rejections and anomalies.
func (s SlogSink) Emit(ctx context.Context, e Event) {
	l := s.Logger
	if l == nil {
		l = slog.Default()
	}
	level := slog.LevelInfo
	if e.Type == EventRejected || e.Type == EventAnomaly || e.Type == EventRefreshReused {
		level = slog.LevelWarn
	}
	if !l.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 9)
	attrs = append(attrs, slog.String("event", string(e.Type)))
	if e.Handle != "" {
		attrs = append(attrs, slog.String("handle", e.Handle))
	}
	if e.Subject != "" {
		attrs = append(attrs, slog.String("subject", e.Subject))
	}
	if e.Reason != "" {
		attrs = append(attrs, slog.String("reason", e.Reason))
	}
	if e.Client.IP != "" {
		attrs = append(attrs, slog.String("client_ip", e.Client.IP))
	}
	if e.Client.UserAgent != "" {
		attrs = append(attrs, slog.String("user_agent", e.Client.UserAgent))
	}
	if e.Actor != "" {
		attrs = append(attrs, slog.String("actor", e.Actor))
	}
	for k, v := range e.Detail {
		attrs = append(attrs, slog.String(k, v))
	}
	l.LogAttrs(ctx, level, "session "+string(e.Type), attrs...)
}
