package sessiond

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/sessionkit/sessionkit"
)

// EnvPrefix starts the environment variable of every setting: the flag
// -idle-timeout is also SESSIOND_IDLE_TIMEOUT. A flag on the command line
// wins over the environment.
const EnvPrefix = "SESSIOND_"

// EnvAPIKey holds accepted API keys, comma-separated. Keys have no flag, so
// they never appear in a process listing.
const EnvAPIKey = "SESSIOND_API_KEY"

// Settings are the command line settings shared by every subcommand.
type Settings struct {
	Addr        string
	DataDir     string
	Store       string
	APIKeyFile  string
	CookieName  string
	LogFile     string
	LogLevel    string
	IdleTimeout time.Duration
	AbsTimeout  time.Duration
	Touch       time.Duration
	Retention   time.Duration
	BindIP      string
	BindUA      string
	MaxSessions int
	LimitPolicy string
	MaxBody     int64
	MaxData     int
	Shutdown    time.Duration
	Sweep       time.Duration
	LockTimeout time.Duration
	Namespace   string
	NearCache   bool
	NearTTL     time.Duration
	Monitoring  MonitoringSettings
	Tokens      TokenSettings
}

// register defines the settings' flags on fs.
func (s *Settings) register(fs *flag.FlagSet) {
	fs.StringVar(&s.Addr, "addr", DefaultAddr, "listen address of the HTTP API")
	fs.StringVar(&s.DataDir, "data-dir", "./sessiond-data", "directory for the embedded store and the API key files")
	fs.StringVar(&s.Store, "store", "", "store URL: empty for the bolt file in the data dir, bolt:PATH, memory:, redis://, rediss://, redis+cluster://, rediss+cluster://, postgres:// or postgresql://")
	fs.StringVar(&s.Namespace, "store-namespace", "", "Redis key prefix or PostgreSQL schema, to separate deployments sharing a server (default: the store's own)")
	fs.StringVar(&s.APIKeyFile, "api-key-file", "", "file of accepted API keys, one per line (the key, or sha256:HEX of it); adds to "+EnvAPIKey+" and <data-dir>/"+HashFileName)
	fs.StringVar(&s.CookieName, "cookie-name", sessionkit.DefaultCookieName, "session cookie read by forward auth (GET /v1/auth)")
	fs.StringVar(&s.LogFile, "log-file", "", "log file, one JSON record per line (default stderr)")
	fs.StringVar(&s.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.DurationVar(&s.IdleTimeout, "idle-timeout", sessionkit.DefaultIdleTimeout, "a session ends after this long without activity")
	fs.DurationVar(&s.AbsTimeout, "absolute-timeout", sessionkit.DefaultAbsoluteTimeout, "a session ends this long after creation, whatever its activity")
	fs.DurationVar(&s.Touch, "touch-interval", sessionkit.DefaultTouchInterval, "at most one activity write per session per interval; must be shorter than -idle-timeout")
	fs.DurationVar(&s.Retention, "retention", sessionkit.DefaultRetention, "ended sessions are kept this long, so their tokens are reported as expired or revoked")
	fs.StringVar(&s.BindIP, "bind-ip", "anomaly", "when a session's client network changes: ignore, anomaly (log an event) or reject (revoke)")
	fs.StringVar(&s.BindUA, "bind-ua", "anomaly", "when a session's User-Agent changes: ignore, anomaly or reject")
	fs.IntVar(&s.MaxSessions, "max-sessions", 0, "live sessions per subject (0: no limit)")
	fs.StringVar(&s.LimitPolicy, "limit-policy", "reject", "at -max-sessions: reject (409 session_limit) or evict-oldest")
	fs.Int64Var(&s.MaxBody, "max-body", 0, "request body limit in bytes (0: 64 KiB plus -max-data)")
	fs.IntVar(&s.MaxData, "max-data", sessionkit.DefaultMaxDataBytes, "session data limit in bytes")
	fs.DurationVar(&s.Shutdown, "shutdown-timeout", DefaultShutdownTimeout, "graceful shutdown waits this long for requests in flight")
	fs.DurationVar(&s.Sweep, "sweep-interval", DefaultSweepInterval, "how often ended sessions past retention are purged")
	fs.DurationVar(&s.LockTimeout, "lock-timeout", time.Second, "how long to wait for the bolt file lock, which a running server holds")
	fs.BoolVar(&s.NearCache, "near-cache", false, "with Redis or PostgreSQL: validate recently seen sessions from process memory, invalidated at once on any instance's change")
	fs.DurationVar(&s.NearTTL, "near-cache-ttl", 0, "longest life of a near-cache entry, bounding staleness if an invalidation is lost (0: the store's default, 2s)")
	s.Monitoring.register(fs)
	s.Tokens.Register(fs)
}

// envName is the environment variable of flag name.
func envName(name string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// applyEnv sets every flag that was not given on the command line from its
// environment variable.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %v", envName(f.Name), v, e)
			}
		}
	})
	return err
}

// printFlags documents fs's flags with their environment variables and
// defaults.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		def := f.DefValue
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(w, "  -%s\n    \t%s\n    \t(env %s, default %s)\n", f.Name, f.Usage, envName(f.Name), def)
	})
}

func parseBinding(s string) (sessionkit.BindingAction, error) {
	switch s {
	case "ignore":
		return sessionkit.BindIgnore, nil
	case "anomaly", "":
		return sessionkit.BindAnomaly, nil
	case "reject":
		return sessionkit.BindReject, nil
	}
	return 0, fmt.Errorf("binding policy %q: want ignore, anomaly or reject", s)
}

// ManagerConfig returns the core configuration the settings describe.
func (s *Settings) ManagerConfig(events sessionkit.EventSink) (sessionkit.Config, error) {
	ip, err := parseBinding(s.BindIP)
	if err != nil {
		return sessionkit.Config{}, fmt.Errorf("-bind-ip: %w", err)
	}
	ua, err := parseBinding(s.BindUA)
	if err != nil {
		return sessionkit.Config{}, fmt.Errorf("-bind-ua: %w", err)
	}
	var pol sessionkit.LimitPolicy
	switch s.LimitPolicy {
	case "reject", "":
		pol = sessionkit.LimitReject
	case "evict-oldest":
		pol = sessionkit.LimitEvictOldest
	default:
		return sessionkit.Config{}, fmt.Errorf("-limit-policy %q: want reject or evict-oldest", s.LimitPolicy)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"idle-timeout", s.IdleTimeout}, {"absolute-timeout", s.AbsTimeout}, {"touch-interval", s.Touch}, {"retention", s.Retention}} {
		if d.v < time.Second {
			return sessionkit.Config{}, fmt.Errorf("-%s %v: must be at least 1s", d.name, d.v)
		}
	}
	if s.MaxSessions < 0 || s.MaxData <= 0 || s.MaxBody < 0 {
		return sessionkit.Config{}, fmt.Errorf("-max-sessions, -max-data and -max-body must not be negative")
	}
	return sessionkit.Config{
		IdleTimeout:           s.IdleTimeout,
		AbsoluteTimeout:       s.AbsTimeout,
		TouchInterval:         s.Touch,
		Retention:             s.Retention,
		MaxSessionsPerSubject: s.MaxSessions,
		LimitPolicy:           pol,
		MaxDataBytes:          s.MaxData,
		Binding:               sessionkit.Binding{OnIPChange: ip, OnUserAgentChange: ua},
		Cookie:                sessionkit.CookieConfig{Name: s.CookieName},
		Events:                events,
	}, nil
}

// openLog returns the JSON logger of the settings and a function closing
// its file.
func (s *Settings) openLog(stderr io.Writer) (*slog.Logger, func() error, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(s.LogLevel)); err != nil {
		return nil, nil, fmt.Errorf("-log-level: %w", err)
	}
	w, closeFn := stderr, func() error { return nil }
	if s.LogFile != "" {
		f, err := os.OpenFile(s.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("-log-file: %w", err)
		}
		w, closeFn = f, f.Close
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})), closeFn, nil
}
