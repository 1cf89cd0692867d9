package sessiond

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/sessionkit/sessionkit"
)

// Defaults for Config.
const (
	DefaultAddr            = "127.0.0.1:8080"
	DefaultMaxBodyBytes    = 64 << 10
	DefaultShutdownTimeout = 10 * time.Second
	DefaultSweepInterval   = time.Minute
)

// Config configures a Server. Manager and Keys are required; every other
// zero field takes its documented default.
type Config struct {
	// Manager runs every session operation.
	Manager *sessionkit.Manager
	// Keys are the API keys accepted on /v1/ (except GET /v1/auth). An
	// empty set rejects every call: the API is never open.
	Keys *Keys

	// Addr is the listening address of Run. Default 127.0.0.1:8080.
	Addr string
	// CookieName is the session cookie read by forward auth. Default: the
	// Manager's cookie name (__Host-session unless configured).
	CookieName string
	// MaxBodyBytes bounds a request body. Default 64 KiB plus the
	// Manager's MaxDataBytes, so the largest allowed data always fits.
	MaxBodyBytes int64
	// ShutdownTimeout bounds the graceful shutdown of Run. Default 10s.
	ShutdownTimeout time.Duration
	// SweepInterval is how often Run purges records past retention
	// (default 1m; negative disables the sweeper).
	SweepInterval time.Duration
	// Logger receives the service's own log records. Default slog.Default.
	Logger *slog.Logger

	// Bearer, if set, lets GET /v1/auth accept `Authorization: Bearer` with
	// an access token. A session token is never accepted from that header.
	Bearer BearerVerifier
	// Extensions mount further routes (token endpoints, metrics, admin).
	Extensions []Extension
}

// BearerVerifier checks a bearer access token presented to forward auth and
// returns the identity it carries. It must return an error for anything
// that is not a currently valid access token; errors wrapping
// sessionkit.ErrStore make forward auth answer 503 rather than 401.
type BearerVerifier interface {
	VerifyBearer(ctx context.Context, token string, c sessionkit.Client) (Identity, error)
}

// Identity is what forward auth passes on to the upstream.
type Identity struct {
	Subject   string
	Handle    string
	AuthLevel int
}

// Extension adds routes to the server's mux. Mount runs once, from New.
type Extension interface {
	Mount(mux *http.ServeMux, api APIContext)
}

// HandlerWrapper is implemented by extensions that also wrap the server's
// handler, e.g. to time requests or answer some of them themselves. New
// applies them in the order of Config.Extensions, the last outermost.
type HandlerWrapper interface {
	WrapHandler(next http.Handler) http.Handler
}

// ExtensionFunc adapts a function to Extension.
type ExtensionFunc func(mux *http.ServeMux, api APIContext)

// Mount calls f.
func (f ExtensionFunc) Mount(mux *http.ServeMux, api APIContext) { f(mux, api) }

// APIContext is what an extension needs to serve routes like the server's
// own: the Manager, the API key check and the body limit. Write errors with
// WriteError or WriteErr and decode bodies with DecodeJSON.
type APIContext struct {
	Manager *sessionkit.Manager
	Logger  *slog.Logger
	// MaxBodyBytes is the limit to pass to DecodeJSON.
	MaxBodyBytes int64
	// RequireAPIKey answers 401 unless the request carries an accepted API
	// key, and runs next with the key's id as the event actor
	// ("apikey:<id>", see sessionkit.WithActor).
	RequireAPIKey func(next http.Handler) http.Handler
}

// Server is the session service. Create it with New.
type Server struct {
	cfg     Config
	m       *sessionkit.Manager
	log     *slog.Logger
	mux     *http.ServeMux
	handler http.Handler
	routes  []string // patterns registered by the server itself
	doc     []byte   // the OpenAPI document served, extensions included
}

// New builds a Server and mounts its routes and extensions.
func New(cfg Config) (*Server, error) {
	if cfg.Manager == nil {
		return nil, errors.New("sessiond: Config.Manager is required")
	}
	if cfg.Keys == nil {
		cfg.Keys = &Keys{}
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.CookieName == "" {
		cfg.CookieName = cfg.Manager.Config().Cookie.Name
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes + int64(cfg.Manager.Config().MaxDataBytes)
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = DefaultSweepInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, m: cfg.Manager, log: cfg.Logger, mux: http.NewServeMux()}
	s.mountRoutes()
	api := s.API()
	for _, e := range cfg.Extensions {
		e.Mount(s.mux, api)
	}
	doc, err := mergeOpenAPI(openAPIDoc, cfg.Extensions)
	if err != nil {
		return nil, err
	}
	s.doc = doc
	s.handler = s.recoverer(s.dispatch)
	for _, e := range cfg.Extensions {
		if w, ok := e.(HandlerWrapper); ok {
			s.handler = w.WrapHandler(s.handler)
		}
	}
	return s, nil
}

// API returns the context handed to extensions.
func (s *Server) API() APIContext {
	return APIContext{
		Manager:       s.m,
		Logger:        s.log,
		MaxBodyBytes:  s.cfg.MaxBodyBytes,
		RequireAPIKey: s.requireKey,
	}
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Routes returns the patterns of the server's own routes, e.g.
// "POST /v1/sessions". Extensions' routes are not included.
func (s *Server) Routes() []string { return append([]string(nil), s.routes...) }

func (s *Server) handle(pattern string, h http.HandlerFunc) {
	s.routes = append(s.routes, pattern)
	s.mux.Handle(pattern, h)
}

// dispatch serves r with the mux, turning the mux's plain-text 404 and 405
// answers into JSON errors.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	h, pattern := s.mux.Handler(r)
	if pattern != "" {
		// ServeHTTP, not h: only the mux sets the path values.
		s.mux.ServeHTTP(w, r)
		return
	}
	// No route: let the mux decide between 404, 405 (with Allow) and a
	// redirect, and replace only the body of its errors.
	rec := &statusRecorder{header: http.Header{}}
	h.ServeHTTP(rec, r)
	switch rec.status {
	case http.StatusNotFound:
		WriteError(w, http.StatusNotFound, CodeNotFound, "no such route")
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", rec.header.Get("Allow"))
		WriteError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "method not allowed on this route")
	default:
		h.ServeHTTP(w, r)
	}
}

// statusRecorder captures the status a handler chooses and drops its body.
type statusRecorder struct {
	header http.Header
	status int
}

func (r *statusRecorder) Header() http.Header { return r.header }
func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return len(b), nil
}
func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

// recoverer turns a panic into a JSON 500 without a stack trace in the
// response; the log gets the panic value and the route.
func (s *Server) recoverer(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.ErrorContext(r.Context(), "handler panic", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
			WriteError(w, http.StatusInternalServerError, CodeInternal, "internal error")
		}()
		next(w, r)
	})
}

// requireKey checks the API key and sets the event actor.
func (s *Server) requireKey(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, ok := bearer(r)
		id := ""
		if ok {
			id, ok = s.cfg.Keys.Check(key)
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sessiond"`)
			WriteError(w, http.StatusUnauthorized, CodeUnauthorized, "a valid API key is required (Authorization: Bearer <key>)")
			return
		}
		ctx := sessionkit.WithActor(r.Context(), "apikey:"+id)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// bearer returns the credential of an `Authorization: Bearer` header.
func bearer(r *http.Request) (string, bool) {
	auth := r.Header.Get("Authorization")
	if len(auth) < 7 || !strings.EqualFold(auth[:7], "bearer ") {
		return "", false
	}
	tok := strings.TrimSpace(auth[7:])
	return tok, tok != ""
}

// Run listens on Config.Addr and serves until ctx is done, then shuts down
// gracefully. It does not close the store: its owner does, after Run.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx is done, then stops accepting connections
// and waits up to Config.ShutdownTimeout for requests in flight. It runs the
// store sweeper meanwhile.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	sweepCtx, stopSweep := context.WithCancel(ctx)
	defer stopSweep()
	if s.cfg.SweepInterval > 0 {
		go s.m.RunSweeper(sweepCtx, s.cfg.SweepInterval)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("sessiond listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.log.Info("sessiond shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc
	if err != nil {
		return fmt.Errorf("sessiond: shutdown: %w", err)
	}
	return nil
}
