package sessiond

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sessionkit/sessionkit"
)

// CLI is the sessiond command line. The binary's main builds one from its
// environment and calls Main.
type CLI struct {
	Getenv func(string) string
	Stdout io.Writer
	Stderr io.Writer
	// Extensions build further extensions once serve has its parts, for
	// packages that import this one (cmd/sessiond adds the admin console).
	Extensions []func(ServeParts) (Extension, error)
}

// ServeParts are the running service's parts that an extension built by
// CLI.Extensions may use.
type ServeParts struct {
	Manager    *sessionkit.Manager
	Keys       *Keys
	Monitoring *Monitoring
	Logger     *slog.Logger
}

const usageText = `usage: sessiond [command] [flags]

Commands:
  serve                                   run the HTTP service (the default)
  sessions list -subject S                list a subject's live sessions
  sessions show HANDLE                    show one session
  sessions revoke HANDLE                  revoke one session
  sessions revoke-all -subject S [-except HANDLE]
                                          revoke a subject's sessions
  apikey new                              print a new API key (once) and accept it
  apikey list                             list the ids of the accepted API keys
  migrate                                 create or update the PostgreSQL schema

The operator commands open the store directly. The bolt store is a file that
one process holds at a time: while the server runs, they fail after
-lock-timeout; use the HTTP API then.

API keys: ` + EnvAPIKey + ` (comma-separated), -api-key-file, and the hashes in
<data-dir>/` + HashFileName + `. With none, the first start generates a key into
<data-dir>/` + FirstKeyFileName + ` (mode 0600) and logs that path.

Flags (every flag can also be set by its environment variable):
`

// Main runs the command in args (without the program name) until ctx is
// done and returns the process exit code.
func (c CLI) Main(ctx context.Context, args []string) int {
	cmd, rest := "serve", args
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, rest = args[0], args[1:]
		if cmd == "sessions" || cmd == "apikey" {
			if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
				fmt.Fprintf(c.Stderr, "sessiond %s: missing subcommand\n", cmd)
				return 2
			}
			cmd, rest = cmd+" "+rest[0], rest[1:]
		}
	}
	var st Settings
	fs := flag.NewFlagSet("sessiond "+cmd, flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	st.register(fs)
	fs.Usage = func() {
		fmt.Fprint(c.Stderr, usageText)
		printFlags(c.Stderr, fs)
	}
	var subject, except string
	switch cmd {
	case "sessions list", "sessions revoke-all":
		fs.StringVar(&subject, "subject", "", "the subject whose sessions to act on")
		if cmd == "sessions revoke-all" {
			fs.StringVar(&except, "except", "", "handle of a session to keep")
		}
	case "serve", "sessions show", "sessions revoke", "apikey new", "apikey list", "migrate":
	case "help":
		fs.Usage()
		return 0
	default:
		fmt.Fprintf(c.Stderr, "sessiond: unknown command %q (sessiond -h lists them)\n", cmd)
		return 2
	}
	// Flags may come before and after the one positional argument.
	var pos []string
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if err := applyEnv(fs, c.Getenv); err != nil {
		fmt.Fprintf(c.Stderr, "sessiond: %v\n", err)
		return 2
	}
	wantPos := 0
	if cmd == "sessions show" || cmd == "sessions revoke" {
		wantPos = 1
	}
	if len(pos) != wantPos {
		fmt.Fprintf(c.Stderr, "sessiond %s: want %d argument(s), got %d\n", cmd, wantPos, len(pos))
		return 2
	}
	if (cmd == "sessions list" || cmd == "sessions revoke-all") && subject == "" {
		fmt.Fprintf(c.Stderr, "sessiond %s: -subject is required\n", cmd)
		return 2
	}
	var err error
	switch cmd {
	case "serve":
		err = c.serve(ctx, &st)
	case "apikey new":
		err = c.apikeyNew(&st)
	case "apikey list":
		err = c.apikeyList(&st)
	default:
		err = c.operate(ctx, &st, cmd, pos, subject, except)
	}
	if err != nil {
		fmt.Fprintf(c.Stderr, "sessiond: %v\n", err)
		return 1
	}
	return 0
}

func (c CLI) serve(ctx context.Context, st *Settings) error {
	// Refuse bad settings before anything is written to the data dir.
	if cfg, err := st.ManagerConfig(nil); err != nil {
		return err
	} else if err := cfg.Validate(); err != nil {
		return err
	}
	if !st.Tokens.Off {
		if err := st.Tokens.Validate(); err != nil {
			return err
		}
	}
	log, closeLog, err := st.openLog(c.Stderr)
	if err != nil {
		return err
	}
	defer closeLog()
	mon, err := OpenMonitoring(ctx, st, c.Getenv, log)
	if err != nil {
		return err
	}
	defer mon.Close()
	keys, generated, err := LoadKeys(st.DataDir, c.Getenv(EnvAPIKey), st.APIKeyFile)
	if err != nil {
		return err
	}
	if generated != "" {
		log.Warn("no API key configured: generated one; read it from the file and keep it secret", "path", generated)
	}
	store, err := c.openStore(ctx, st, false)
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("closing the store", "err", err.Error())
		}
	}()
	sinks := sessionkit.MultiSink{mon.Sink(), sessionkit.SlogSink{Logger: log}}
	extensions := []Extension{mon}
	var tokens *Tokens
	if !st.Tokens.Off {
		ts := st.Tokens
		if ts.Issuer == "" {
			ts.Issuer = "http://" + st.Addr
		}
		ts.DataDir = st.DataDir
		if tokens, err = NewTokens(ctx, ts, store, c.Getenv); err != nil {
			return fmt.Errorf("access tokens: %w", err)
		}
		sinks = append(sinks, tokens.Revocations)
		extensions = append(extensions, tokens)
		go tokens.Run(ctx, time.Minute, func(err error) { log.Error("token key ring", "err", err.Error()) })
	}
	cfg, err := st.ManagerConfig(sinks)
	if err != nil {
		return err
	}
	m, err := sessionkit.New(mon.InstrumentStore(store), cfg)
	if err != nil {
		return err
	}
	mon.Start(m)
	for _, build := range c.Extensions {
		ext, err := build(ServeParts{Manager: m, Keys: keys, Monitoring: mon, Logger: log})
		if err != nil {
			return err
		}
		extensions = append(extensions, ext)
	}
	var bearer BearerVerifier
	if tokens != nil {
		bearer = tokens
	}
	srv, err := New(Config{
		Manager:         m,
		Keys:            keys,
		Addr:            st.Addr,
		CookieName:      st.CookieName,
		MaxBodyBytes:    st.MaxBody,
		ShutdownTimeout: st.Shutdown,
		SweepInterval:   st.Sweep,
		Logger:          log,
		Extensions:      extensions,
		Bearer:          bearer,
	})
	if err != nil {
		return err
	}
	kind, _ := StoreKind(st.Store)
	log.Info("sessiond starting", "store", kind, "data_dir", st.DataDir, "api_keys", keys.Len())
	return srv.Run(ctx)
}

func (c CLI) openStore(ctx context.Context, st *Settings, migrate bool) (sessionkit.Store, error) {
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	store, err := OpenStore(octx, st.Store, StoreOptions{
		DataDir: st.DataDir, LockTimeout: st.LockTimeout, Migrate: migrate, Namespace: st.Namespace,
		NearCache: st.NearCache, NearCacheTTL: st.NearTTL,
	})
	if err != nil {
		return nil, fmt.Errorf("opening the store: %w", err)
	}
	return store, nil
}

func (c CLI) apikeyNew(st *Settings) error {
	key := NewKey()
	k := HashKey(key)
	if err := AppendKeyHash(st.DataDir, k); err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "%s\n", key)
	fmt.Fprintf(c.Stderr, "API key %s added to %s; it is shown only now. A running server picks it up on restart.\n", k.ID, st.DataDir)
	return nil
}

func (c CLI) apikeyList(st *Settings) error {
	sources := []struct {
		name string
		load func(*Keys) error
	}{
		{EnvAPIKey, func(k *Keys) error { k.AddKeys(c.Getenv(EnvAPIKey)); return nil }},
		{"-api-key-file", func(k *Keys) error {
			if st.APIKeyFile == "" {
				return nil
			}
			return k.LoadKeyFile(st.APIKeyFile)
		}},
		{st.DataDir + "/" + HashFileName, func(k *Keys) error {
			err := k.LoadKeyFile(st.DataDir + "/" + HashFileName)
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}},
	}
	tw := tabwriter.NewWriter(c.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSOURCE")
	for _, src := range sources {
		var k Keys
		if err := src.load(&k); err != nil {
			return err
		}
		for _, key := range k.List() {
			fmt.Fprintf(tw, "%s\t%s\n", key.ID, src.name)
		}
	}
	return tw.Flush()
}

// operate runs the commands that work on the store.
func (c CLI) operate(ctx context.Context, st *Settings, cmd string, pos []string, subject, except string) error {
	kind, err := StoreKind(st.Store)
	if err != nil {
		return err
	}
	if kind == "memory" {
		return errors.New("the memory store lives inside the server process: use the HTTP API")
	}
	if cmd == "migrate" && kind != "postgres" {
		fmt.Fprintf(c.Stdout, "nothing to migrate: the %s store needs no schema\n", kind)
		return nil
	}
	store, err := c.openStore(ctx, st, cmd == "migrate")
	if err != nil {
		return err
	}
	defer store.Close()
	if cmd == "migrate" {
		fmt.Fprintln(c.Stdout, "schema up to date")
		return nil
	}
	// Operator commands change sessions as the operator, not as a client.
	log := slog.New(slog.NewJSONHandler(c.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg, err := st.ManagerConfig(sessionkit.SlogSink{Logger: log})
	if err != nil {
		return err
	}
	m, err := sessionkit.New(store, cfg)
	if err != nil {
		return err
	}
	ctx = sessionkit.WithActor(ctx, "operator")
	switch cmd {
	case "sessions list":
		recs, err := m.List(ctx, subject)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(c.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "HANDLE\tSUBJECT\tCREATED\tLAST SEEN\tIP\tUSER AGENT\tIDLE DEADLINE\tABSOLUTE DEADLINE")
		for _, r := range recs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Handle, oneLine(r.Subject),
				stamp(r.CreatedAt), stamp(r.LastSeenAt), oneLine(r.LastClient.IP), oneLine(truncate(r.LastClient.UserAgent, 40)),
				stamp(r.IdleDeadline), stamp(r.AbsoluteDeadline))
		}
		return tw.Flush()
	case "sessions show":
		r, err := m.Get(ctx, pos[0])
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(c.Stdout, 0, 4, 2, ' ', 0)
		state := "live"
		switch {
		case r.Revoked():
			state = "ended: " + r.RevokedReason + " at " + stamp(r.RevokedAt)
		case !r.Live(m.Now()):
			state = "expired"
		}
		for _, kv := range [][2]string{
			{"handle", r.Handle}, {"subject", oneLine(r.Subject)}, {"state", state},
			{"auth level", fmt.Sprint(r.AuthLevel)}, {"created", stamp(r.CreatedAt)},
			{"authenticated", stamp(r.AuthenticatedAt)}, {"last seen", stamp(r.LastSeenAt)},
			{"client ip", oneLine(r.LastClient.IP)}, {"user agent", oneLine(r.LastClient.UserAgent)},
			{"idle deadline", stamp(r.IdleDeadline)}, {"absolute deadline", stamp(r.AbsoluteDeadline)},
			{"persistent", fmt.Sprint(r.Persistent)}, {"data keys", fmt.Sprint(len(r.Data))},
			{"version", fmt.Sprint(r.Version)},
		} {
			fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
		}
		return tw.Flush()
	case "sessions revoke":
		if _, err := m.Revoke(ctx, pos[0], sessionkit.ReasonOperator); err != nil {
			return err
		}
		fmt.Fprintf(c.Stdout, "revoked %s\n", pos[0])
		return nil
	case "sessions revoke-all":
		n, err := m.RevokeSubject(ctx, subject, except, sessionkit.ReasonRevokeAll)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.Stdout, "revoked %d session(s) of %s\n", n, oneLine(subject))
		return nil
	}
	return fmt.Errorf("unknown command %q", cmd)
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// oneLine keeps a client-supplied value from breaking the table.
func oneLine(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
