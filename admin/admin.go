package admin

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/eventlog"
	"github.com/sessionkit/sessionkit/metrics"
	"github.com/sessionkit/sessionkit/sessiond"
)

// Defaults for Options.
const (
	DefaultCookieName      = "__Host-sessiond-admin"
	DefaultIdleTimeout     = 15 * time.Minute
	DefaultAbsoluteTimeout = 8 * time.Hour
)

// Prefix is the path under which the console is served.
const Prefix = "/admin/"

// SubjectPrefix starts the subject of every admin session, followed by the
// id of the API key used to sign in (e.g. "apikey:1a2b3c4d"). Admin sessions
// live in their own store, so the prefix only makes them recognisable in
// logs and events.
const SubjectPrefix = "apikey:"

// ErrConfig reports invalid Options.
var ErrConfig = errors.New("admin: invalid options")

// EventSource answers queries on the event history. eventlog.History
// satisfies it.
type EventSource interface {
	Query(ctx context.Context, q eventlog.Query) ([]eventlog.Entry, error)
}

// SeriesSource returns per-minute session counts. *metrics.Collector
// satisfies it.
type SeriesSource interface {
	Series(since time.Time) []metrics.Point
}

// Options configure a Console. Store and CheckAPIKey are required; every
// other zero field takes its documented default or disables the pages that
// need it.
type Options struct {
	// Store keeps the admin sessions. It must not be the users' store:
	// keeping admin sessions apart means they never appear in a subject's
	// list and no user-facing operation can revoke or read them.
	Store sessionkit.Store
	// CheckAPIKey verifies the key an operator signs in with and returns its
	// id, e.g. (*sessiond.Keys).Check. The id, never the key, names the
	// operator in sessions and events.
	CheckAPIKey func(key string) (id string, ok bool)

	// Users is the Manager of the users' sessions. Default: the Manager of
	// the sessiond.APIContext passed to Mount.
	Users *sessionkit.Manager
	// History answers timelines, anomalies and, without Series, the charts
	// of created and rejected sessions. Nil hides those pages' data.
	History EventSource
	// Stream serves new events as Server-Sent Events, with the query
	// parameter type filtering them, e.g. *eventlog.Stream. Nil disables
	// the live page.
	Stream http.Handler
	// Series feeds the charts, e.g. *metrics.Collector. Without it the
	// charts are computed from History and the active-sessions chart is
	// left out.
	Series SeriesSource

	// CookieName of the admin session. Default "__Host-sessiond-admin".
	CookieName string
	// IdleTimeout and AbsoluteTimeout of admin sessions. Defaults 15m and
	// 8h.
	IdleTimeout, AbsoluteTimeout time.Duration
	// ClientInfo extracts the operator's IP and User-Agent. Default
	// sessionkit.RemoteClient; behind a proxy supply one that trusts only
	// the proxy's header. An admin session used from another network or
	// browser is revoked.
	ClientInfo func(*http.Request) sessionkit.Client
	// Events receives the admin sessions' own lifecycle events. Keep them
	// out of the users' history. Default: logged with Logger.
	Events sessionkit.EventSink
	// Logger receives the console's log records (refused sign-ins,
	// revocations, internal errors). Default: the APIContext's logger, or
	// slog.Default.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Console is the admin web console. It is a sessiond.Extension, and an
// http.Handler once mounted (or when Options.Users is set).
type Console struct {
	opts    Options
	admin   *sessionkit.Manager
	users   *sessionkit.Manager
	log     *slog.Logger
	pages   *pages
	handler http.Handler
}

var _ sessiond.Extension = (*Console)(nil)

//go:embed templates static
var assets embed.FS

// New returns a Console. It fails for missing or invalid Options.
func New(o Options) (*Console, error) {
	if o.Store == nil {
		return nil, fmt.Errorf("%w: Store is required (a store for admin sessions only)", ErrConfig)
	}
	if o.CheckAPIKey == nil {
		return nil, fmt.Errorf("%w: CheckAPIKey is required", ErrConfig)
	}
	if o.CookieName == "" {
		o.CookieName = DefaultCookieName
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.AbsoluteTimeout == 0 {
		o.AbsoluteTimeout = DefaultAbsoluteTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Console{opts: o, users: o.Users, log: o.Logger}
	events := o.Events
	if events == nil {
		events = sessionkit.EventSinkFunc(func(ctx context.Context, e sessionkit.Event) {
			sessionkit.SlogSink{Logger: c.logger().With("component", "admin")}.Emit(ctx, e)
		})
	}
	touch := time.Minute
	if o.IdleTimeout <= touch {
		touch = o.IdleTimeout / 2
	}
	m, err := sessionkit.New(o.Store, sessionkit.Config{
		IdleTimeout:     o.IdleTimeout,
		AbsoluteTimeout: o.AbsoluteTimeout,
		TouchInterval:   touch,
		// A stolen admin cookie used from elsewhere ends the session.
		Binding:    sessionkit.Binding{OnIPChange: sessionkit.BindReject, OnUserAgentChange: sessionkit.BindReject},
		Cookie:     sessionkit.CookieConfig{Name: o.CookieName, SameSite: http.SameSiteStrictMode},
		Events:     events,
		Now:        o.Now,
		ClientInfo: o.ClientInfo,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			c.fail(w, r, err)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	c.admin = m
	p, err := parsePages()
	if err != nil {
		return nil, err
	}
	c.pages = p
	c.handler = c.routes()
	return c, nil
}

// Mount serves the console under /admin/ on mux. It takes the users'
// Manager and the logger from api unless Options set them.
func (c *Console) Mount(mux *http.ServeMux, api sessiond.APIContext) {
	if c.users == nil {
		c.users = api.Manager
	}
	if c.log == nil {
		c.log = api.Logger
	}
	mux.Handle(Prefix, c)
	mux.Handle("GET /admin", http.RedirectHandler(Prefix, http.StatusSeeOther))
}

// AdminManager returns the Manager of the admin sessions.
func (c *Console) AdminManager() *sessionkit.Manager { return c.admin }

// ServeHTTP serves the console's pages.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.handler.ServeHTTP(w, r) }

func (c *Console) logger() *slog.Logger {
	if c.log != nil {
		return c.log
	}
	return slog.Default()
}

// routes builds the handler chain: security headers and panic recovery
// first, then the cross-origin check (before any store access), then the
// admin session.
func (c *Console) routes() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "static")
	mux.Handle("GET /admin/static/", http.StripPrefix("/admin/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /admin/login", c.loginForm)
	mux.HandleFunc("POST /admin/login", c.login)
	mux.HandleFunc("POST /admin/logout", c.logout)
	mux.Handle("GET /admin/{$}", c.signedIn(c.overview))
	mux.Handle("GET /admin/subject", c.signedIn(c.subject))
	mux.Handle("GET /admin/subject/revoke", c.signedIn(c.confirmRevokeSubject))
	mux.Handle("POST /admin/subject/revoke", c.signedIn(c.revokeSubject))
	mux.Handle("GET /admin/sessions/{handle}", c.signedIn(c.session))
	mux.Handle("GET /admin/sessions/{handle}/revoke", c.signedIn(c.confirmRevoke))
	mux.Handle("POST /admin/sessions/{handle}/revoke", c.signedIn(c.revoke))
	mux.Handle("GET /admin/anomalies", c.signedIn(c.anomalies))
	mux.Handle("GET /admin/live", c.signedIn(c.live))
	mux.Handle("GET /admin/live/stream", c.signedIn(c.stream))
	mux.HandleFunc("/admin/", func(w http.ResponseWriter, r *http.Request) {
		c.errorPage(w, r, http.StatusNotFound, "Page not found", "There is no console page at this address.")
	})

	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.logger().WarnContext(r.Context(), "admin: cross-origin request refused", "method", r.Method, "path", r.URL.Path, "origin", r.Header.Get("Origin"))
		c.errorPage(w, r, http.StatusForbidden, "Request refused", "This request came from another site. Use the console's own forms.")
	}))
	var h http.Handler = mux
	h = c.admin.LoadAndSave(h)
	h = cop.Handler(h)
	h = c.recoverer(h)
	return securityHeaders(h)
}

// contentSecurityPolicy allows only the console's own scripts, styles and
// connections; inline SVG is markup, not a resource, so it needs no source.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// recoverer answers a panic with an error page; the log gets the value,
// the client no stack trace.
func (c *Console) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil || v == http.ErrAbortHandler {
				if v != nil {
					panic(v)
				}
				return
			}
			c.logger().ErrorContext(r.Context(), "admin: handler panic", "path", r.URL.Path, "panic", fmt.Sprint(v))
			c.errorPage(w, r, http.StatusInternalServerError, "Internal error", "The console failed to build this page. The error was logged.")
		}()
		next.ServeHTTP(w, r)
	})
}

// operator returns the signed-in operator's key id, or "".
func operator(r *http.Request) string {
	s := sessionkit.FromContext(r.Context())
	if s == nil {
		return ""
	}
	id, ok := strings.CutPrefix(s.Subject(), SubjectPrefix)
	if !ok {
		return ""
	}
	return id
}

// signedIn runs h for a signed-in operator, with the operator named as the
// actor of the events it causes. Others are sent to the sign-in page (or
// refused, for requests a redirect would lose).
func (c *Console) signedIn(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := operator(r)
		if id == "" {
			if r.Method == http.MethodGet && r.URL.Path != "/admin/live/stream" {
				http.Redirect(w, r, "/admin/login", http.StatusSeeOther)
				return
			}
			c.errorPage(w, r, http.StatusUnauthorized, "Sign-in required", "Your console session ended. Sign in again.")
			return
		}
		ctx := sessionkit.WithActor(r.Context(), "admin:"+SubjectPrefix+id)
		h(w, r.WithContext(ctx))
	})
}

// fail answers a request that failed because a store or the history could
// not be asked.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, err error) {
	c.logger().ErrorContext(r.Context(), "admin: backend unavailable", "path", r.URL.Path, "err", err)
	what := "The session store"
	if errors.Is(err, eventlog.ErrBackend) || errors.Is(err, eventlog.ErrClosed) {
		what = "The event history"
	}
	c.errorPage(w, r, http.StatusServiceUnavailable, "Service unavailable",
		what+" cannot be reached right now, so this page cannot be shown. Nothing was changed. Try again in a moment.")
}
