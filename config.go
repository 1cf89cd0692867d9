package sessionkit

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Default values for Config. They follow common guidance for web sessions:
// short idle periods, a working day as the absolute cap.
const (
	DefaultIdleTimeout     = 15 * time.Minute
	DefaultAbsoluteTimeout = 8 * time.Hour
	DefaultTouchInterval   = time.Minute
	DefaultRetention       = time.Hour
	DefaultMaxDataBytes    = 64 << 10
	DefaultCookieName      = "__Host-session"
)

// BindingAction says what happens when a session is used from a different
// network or User-Agent than it was last seen with.
type BindingAction int

const (
	// BindAnomaly emits an anomaly event and goes on serving the session.
	BindAnomaly BindingAction = iota
	// BindIgnore does nothing.
	BindIgnore
	// BindReject revokes the session and rejects the request.
	BindReject
)

// Binding is the hijacking defence: how a session reacts when its client
// changes. IP addresses are compared by network prefix, since mobile clients
// move within their provider's network all the time.
type Binding struct {
	OnIPChange        BindingAction
	OnUserAgentChange BindingAction
	IPv4Prefix        int // bits compared for IPv4; default 24
	IPv6Prefix        int // bits compared for IPv6; default 64
}

// CookieConfig describes the session cookie. The zero value is the safe
// default: `__Host-session`, HttpOnly, Secure, SameSite=Lax, Path=/, no
// Domain, and no Max-Age (a browser-session cookie).
type CookieConfig struct {
	Name     string        // default "__Host-session"
	SameSite http.SameSite // default Lax; None needs Secure
	// Persistent makes the cookie outlive the browser session. Its Max-Age
	// never exceeds the session's absolute deadline.
	Persistent bool
	// Path and Domain widen the cookie's scope. Both need a name without the
	// __Host- prefix, which forbids them.
	Path   string
	Domain string

	// InsecureNoSecure drops the Secure attribute, for development over plain
	// HTTP on a host other than localhost. It requires a name without the
	// __Host- or __Secure- prefix. Browsers treat http://localhost as secure,
	// so local development does not need it.
	InsecureNoSecure bool
	// InsecureScriptAccess drops HttpOnly, letting page scripts read the
	// token; an XSS bug then leaks every session.
	InsecureScriptAccess bool
}

// Config configures a Manager. The zero value is ready to use; every zero
// field takes its documented default.
type Config struct {
	IdleTimeout     time.Duration // default 15m
	AbsoluteTimeout time.Duration // default 8h
	// TouchInterval throttles the store write that records activity: at
	// most one per session per interval. Default 1m. The idle deadline
	// therefore lags real activity by at most this much.
	TouchInterval time.Duration
	// Retention keeps an ended (expired, revoked, logged out) session's
	// record this long, so its token is reported as expired or revoked
	// rather than unknown. Default 1h.
	Retention time.Duration

	// MaxSessionsPerSubject caps a subject's live sessions (0: no cap).
	MaxSessionsPerSubject int
	LimitPolicy           LimitPolicy

	// MaxDataBytes bounds the encoded application data of one session.
	MaxDataBytes int

	Binding Binding
	Cookie  CookieConfig

	// AllowBearer also accepts the token from an `Authorization: Bearer`
	// header, for API clients. The URL is never a source.
	AllowBearer bool

	// Events receives every lifecycle event. Default: SlogSink on
	// slog.Default().
	Events EventSink

	// Now is the only clock sessionkit reads. Default time.Now.
	Now func() time.Time

	// ClientInfo extracts the client's IP and User-Agent from a request.
	// The default uses RemoteAddr; behind a proxy, supply one that trusts
	// only your proxy's forwarding header.
	ClientInfo func(*http.Request) Client

	// ErrorHandler answers a request that cannot be served because the
	// store failed. Default: 503 with a plain message. The request is never
	// served as authenticated or as a fresh anonymous session.
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)
}

// ErrConfig reports an invalid or insecure configuration.
var ErrConfig = errors.New("sessionkit: invalid configuration")

// Validate reports what New would refuse in c, so a program can check its
// settings before it acts on them.
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

func (c Config) withDefaults() (Config, error) {
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.AbsoluteTimeout == 0 {
		c.AbsoluteTimeout = DefaultAbsoluteTimeout
	}
	if c.TouchInterval == 0 {
		c.TouchInterval = DefaultTouchInterval
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.MaxDataBytes == 0 {
		c.MaxDataBytes = DefaultMaxDataBytes
	}
	if c.Binding.IPv4Prefix == 0 {
		c.Binding.IPv4Prefix = 24
	}
	if c.Binding.IPv6Prefix == 0 {
		c.Binding.IPv6Prefix = 64
	}
	if c.Events == nil {
		c.Events = SlogSink{Logger: slog.Default()}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.ClientInfo == nil {
		c.ClientInfo = RemoteClient
	}
	if c.ErrorHandler == nil {
		c.ErrorHandler = defaultErrorHandler
	}
	switch {
	case c.IdleTimeout < 0 || c.AbsoluteTimeout < 0 || c.TouchInterval < 0 || c.Retention < 0:
		return c, fmt.Errorf("%w: durations must be positive", ErrConfig)
	case c.IdleTimeout > c.AbsoluteTimeout:
		return c, fmt.Errorf("%w: idle timeout %v exceeds absolute timeout %v", ErrConfig, c.IdleTimeout, c.AbsoluteTimeout)
	case c.TouchInterval >= c.IdleTimeout:
		return c, fmt.Errorf("%w: touch interval %v must be shorter than the idle timeout %v", ErrConfig, c.TouchInterval, c.IdleTimeout)
	case c.Binding.IPv4Prefix < 0 || c.Binding.IPv4Prefix > 32 || c.Binding.IPv6Prefix < 0 || c.Binding.IPv6Prefix > 128:
		return c, fmt.Errorf("%w: binding prefix out of range", ErrConfig)
	}
	cc, err := c.Cookie.withDefaults()
	c.Cookie = cc
	return c, err
}

func (c CookieConfig) withDefaults() (CookieConfig, error) {
	if c.Name == "" {
		c.Name = DefaultCookieName
	}
	if c.SameSite == 0 || c.SameSite == http.SameSiteDefaultMode {
		c.SameSite = http.SameSiteLaxMode
	}
	if c.Path == "" {
		c.Path = "/"
	}
	if !validCookieName(c.Name) {
		return c, fmt.Errorf("%w: cookie name %q is not a valid token", ErrConfig, c.Name)
	}
	host := strings.HasPrefix(c.Name, "__Host-")
	secure := strings.HasPrefix(c.Name, "__Secure-")
	switch {
	case host && (c.Path != "/" || c.Domain != ""):
		return c, fmt.Errorf("%w: a __Host- cookie must have Path=/ and no Domain; choose another name to widen its scope", ErrConfig)
	case (host || secure) && c.InsecureNoSecure:
		return c, fmt.Errorf("%w: a %s cookie must be Secure; choose another name with InsecureNoSecure", ErrConfig, c.Name[:strings.Index(c.Name[2:], "-")+3])
	case c.SameSite == http.SameSiteNoneMode && c.InsecureNoSecure:
		return c, fmt.Errorf("%w: SameSite=None needs Secure", ErrConfig)
	}
	return c, nil
}

func validCookieName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}

func defaultErrorHandler(w http.ResponseWriter, r *http.Request, err error) {
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, "session store unavailable", http.StatusServiceUnavailable)
}
