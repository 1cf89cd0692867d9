package pgstore

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessionkit/sessionkit"
)

// ErrNotMigrated is returned by New when the schema does not exist or is
// older than this package needs and Options.AutoMigrate is false. It wraps
// sessionkit.ErrStore.
var ErrNotMigrated = fmt.Errorf("%w: pgstore: database schema missing or out of date: run the migration (`sessiond migrate`, or Store.Migrate) or set Options.AutoMigrate", sessionkit.ErrStore)

// DefaultSchema is the PostgreSQL schema used when Options.Schema is empty.
const DefaultSchema = "sessionkit"

// Options configure a Store. The zero value, with URL set, is a valid
// configuration.
type Options struct {
	// URL is a postgres:// or postgresql:// connection string. It is ignored
	// when Pool is set.
	URL string

	// Pool, if set, is used for every query instead of a pool built from
	// URL. The Store does not close it. The near-cache listener opens its
	// own connection with the pool's connection settings.
	Pool *pgxpool.Pool

	// Schema is the PostgreSQL schema holding the tables (default
	// DefaultSchema). It must be a lower-case identifier of at most 48
	// bytes. Separate schemas isolate independent deployments or tests.
	Schema string

	// AutoMigrate makes New run Migrate. By default the schema is created
	// by an explicit step, so that a process serving requests needs no DDL
	// privileges.
	AutoMigrate bool

	// NearCache configures the in-process cache of records.
	NearCache NearCacheOptions

	// Now is the clock used to age near-cache entries; it must be the clock
	// the session manager uses. Default time.Now.
	Now func() time.Time
}

// NearCacheOptions configure the near-cache: an in-process cache of records
// by token hash, invalidated through LISTEN/NOTIFY (see the package
// documentation).
type NearCacheOptions struct {
	// Enabled turns the near-cache on.
	Enabled bool
	// TTL bounds how long an entry is served (default 2s). It also bounds
	// how stale the activity of a cached record can be (see Touch).
	TTL time.Duration
	// MaxEntries bounds the cache size (default 10000).
	MaxEntries int
	// Heartbeat is how often an idle listener checks its connection
	// (default 5s), so a silently dead connection disables the cache.
	Heartbeat time.Duration
	// RetryDelay is the first wait before the listener reconnects; it
	// doubles up to 5s (default 100ms).
	RetryDelay time.Duration
}

var schemaRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,47}$`)

// Store is a sessionkit.Store and sessionkit.KVStore in PostgreSQL.
type Store struct {
	pool    *pgxpool.Pool
	ownPool bool
	schema  string
	now     func() time.Time

	// Quoted, schema-qualified names.
	sessions, kv, migrations string
	channel                  string // NOTIFY channel (unquoted)

	cache *nearCache // nil when disabled
}

var (
	_ sessionkit.Store   = (*Store)(nil)
	_ sessionkit.KVStore = (*Store)(nil)
)

// New connects to PostgreSQL, checks (or with AutoMigrate, creates) the
// schema, and starts the near-cache listener if enabled. It returns
// ErrNotMigrated when the schema is missing and AutoMigrate is false.
func New(ctx context.Context, o Options) (*Store, error) {
	schema := o.Schema
	if schema == "" {
		schema = DefaultSchema
	}
	if !schemaRE.MatchString(schema) {
		return nil, fmt.Errorf("pgstore: invalid schema name %q: want a lower-case identifier of at most 48 bytes", schema)
	}
	s := &Store{
		pool:       o.Pool,
		schema:     schema,
		now:        o.Now,
		sessions:   pgx.Identifier{schema, "sessions"}.Sanitize(),
		kv:         pgx.Identifier{schema, "kv"}.Sanitize(),
		migrations: pgx.Identifier{schema, "schema_migrations"}.Sanitize(),
		channel:    schema + ".sessions",
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.pool == nil {
		if !strings.HasPrefix(o.URL, "postgres://") && !strings.HasPrefix(o.URL, "postgresql://") {
			return nil, errors.New("pgstore: Options.URL must be a postgres:// or postgresql:// URL")
		}
		cfg, err := pgxpool.ParseConfig(o.URL)
		if err != nil {
			// The parse error may quote the URL, password included.
			return nil, errors.New("pgstore: cannot parse Options.URL")
		}
		s.pool, err = pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			return nil, wrap("connect", err)
		}
		s.ownPool = true
	}
	if err := s.checkSchema(ctx, o.AutoMigrate); err != nil {
		s.closePool()
		return nil, err
	}
	if o.NearCache.Enabled {
		s.cache = newNearCache(s.pool.Config().ConnConfig.Copy(), s.channel, o.NearCache, s.now)
	}
	return s, nil
}

func (s *Store) checkSchema(ctx context.Context, auto bool) error {
	v, err := s.schemaVersion(ctx)
	if err != nil {
		return err
	}
	if v >= len(migrations) {
		return nil
	}
	if !auto {
		return ErrNotMigrated
	}
	return s.Migrate(ctx)
}

// Ping reports whether the database can be reached.
func (s *Store) Ping(ctx context.Context) error {
	return wrap("ping", s.pool.Ping(ctx))
}

// Close stops the near-cache listener and, if the Store created its pool,
// closes the pool. It waits for the listener goroutine to end.
func (s *Store) Close() error {
	if s.cache != nil {
		s.cache.close()
	}
	s.closePool()
	return nil
}

func (s *Store) closePool() {
	if s.ownPool {
		s.pool.Close()
	}
}

// wrap turns a database error into one wrapping sessionkit.ErrStore. The
// operation name says what failed; neither tokens nor URLs reach the message.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("pgstore: %s: %w: %w", op, sessionkit.ErrStore, err)
}

// pgCode returns the SQLSTATE of a PostgreSQL error, or "".
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

const (
	codeUniqueViolation = "23505"
	codeUndefinedTable  = "42P01"
	codeInvalidSchema   = "3F000"
)

// nanos encodes a time as Unix nanoseconds, the zero time as 0, like the
// record codec, so columns and the encoded record agree exactly.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
