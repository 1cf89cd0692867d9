package eventlog

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgresOptions configure a PostgreSQL history.
type PostgresOptions struct {
	Options
	// Schema holds the table. Default "public".
	Schema string
	// Table is the table name. Default "sessionkit_events".
	Table string
}

// Postgres is a History in a PostgreSQL table with indexes on (handle,
// time), (subject, time), (type, time) and time. Prune deletes in batches
// by the time index, so its cost follows what it removes.
type Postgres struct {
	pool  *pgxpool.Pool
	own   bool
	opts  PostgresOptions
	table string
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// NewPostgres returns a history using pool, creating its table and indexes
// if they do not exist. Close does not close pool.
func NewPostgres(ctx context.Context, pool *pgxpool.Pool, o PostgresOptions) (*Postgres, error) {
	o.Options = o.Options.withDefaults()
	if o.Schema == "" {
		o.Schema = "public"
	}
	if o.Table == "" {
		o.Table = "sessionkit_events"
	}
	p := &Postgres{pool: pool, opts: o, table: quoteIdent(o.Schema) + "." + quoteIdent(o.Table)}
	ix := func(name string) string { return quoteIdent(o.Table + "_" + name) }
	ddl := []string{
		`CREATE SCHEMA IF NOT EXISTS ` + quoteIdent(o.Schema),
		`CREATE TABLE IF NOT EXISTS ` + p.table + ` (
			seq bigserial PRIMARY KEY,
			id text NOT NULL,
			time timestamptz NOT NULL,
			type text NOT NULL,
			subject text NOT NULL DEFAULT '',
			handle text NOT NULL DEFAULT '',
			body jsonb NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS ` + ix("time") + ` ON ` + p.table + ` (time)`,
		`CREATE INDEX IF NOT EXISTS ` + ix("handle") + ` ON ` + p.table + ` (handle, time) WHERE handle <> ''`,
		`CREATE INDEX IF NOT EXISTS ` + ix("subject") + ` ON ` + p.table + ` (subject, time) WHERE subject <> ''`,
		`CREATE INDEX IF NOT EXISTS ` + ix("type") + ` ON ` + p.table + ` (type, time)`,
	}
	for _, q := range ddl {
		if _, err := pool.Exec(ctx, q); err != nil {
			return nil, fmt.Errorf("%w: creating the events table: %v", ErrBackend, err)
		}
	}
	return p, nil
}

// OpenPostgres connects to url and returns a history that closes the
// connection pool on Close.
func OpenPostgres(ctx context.Context, url string, o PostgresOptions) (*Postgres, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("%w: invalid PostgreSQL URL", ErrBackend)
	}
	p, err := NewPostgres(ctx, pool, o)
	if err != nil {
		pool.Close()
		return nil, err
	}
	p.own = true
	return p, nil
}

// Append inserts entries in one batch.
func (p *Postgres) Append(ctx context.Context, entries []Entry) error {
	b := &pgx.Batch{}
	for i := range entries {
		e := &entries[i]
		body, err := json.Marshal(e)
		if err != nil {
			return err
		}
		b.Queue(`INSERT INTO `+p.table+` (id, time, type, subject, handle, body) VALUES ($1, $2, $3, $4, $5, $6)`,
			e.ID, e.Time, string(e.Type), e.Subject, e.Handle, body)
	}
	if err := p.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("%w: %v", ErrBackend, err)
	}
	return nil
}

// Query uses the index the filter names.
func (p *Postgres) Query(ctx context.Context, q Query) ([]Entry, error) {
	cutoff := p.opts.Now().Add(-p.opts.Retention)
	if q.Since.Before(cutoff) {
		q.Since = cutoff
	}
	sql := `SELECT body FROM ` + p.table + ` WHERE time >= $1`
	args := []any{q.Since}
	for _, f := range []struct{ col, val string }{{"handle", q.Handle}, {"subject", q.Subject}, {"type", string(q.Type)}} {
		if f.val != "" {
			args = append(args, f.val)
			sql += fmt.Sprintf(" AND %s = $%d", f.col, len(args))
		}
	}
	sql += fmt.Sprintf(" ORDER BY time DESC, seq DESC LIMIT %d", q.limit())
	rows, err := p.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBackend, err)
	}
	var out []Entry
	for rows.Next() {
		var body []byte
		if err := rows.Scan(&body); err != nil {
			rows.Close()
			return nil, fmt.Errorf("%w: %v", ErrBackend, err)
		}
		var e Entry
		if json.Unmarshal(body, &e) == nil {
			out = append(out, e)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBackend, err)
	}
	reverse(out)
	return out, nil
}

// Prune deletes, in batches, events past the retention and the oldest
// beyond MaxEvents.
func (p *Postgres) Prune(ctx context.Context) (int, error) {
	cutoff := p.opts.Now().Add(-p.opts.Retention)
	total := 0
	for {
		tag, err := p.pool.Exec(ctx, `DELETE FROM `+p.table+` WHERE seq IN (SELECT seq FROM `+p.table+` WHERE time < $1 ORDER BY time LIMIT $2)`, cutoff, pruneBatch)
		if err != nil {
			return total, fmt.Errorf("%w: %v", ErrBackend, err)
		}
		total += int(tag.RowsAffected())
		if tag.RowsAffected() < pruneBatch {
			break
		}
	}
	// The cap: everything older than the MaxEvents-th newest event.
	for {
		tag, err := p.pool.Exec(ctx, `DELETE FROM `+p.table+` WHERE seq IN (
			SELECT seq FROM `+p.table+` WHERE seq < (SELECT seq FROM `+p.table+` ORDER BY seq DESC OFFSET $1 LIMIT 1)
			ORDER BY seq LIMIT $2)`, p.opts.MaxEvents-1, pruneBatch)
		if err != nil {
			return total, fmt.Errorf("%w: %v", ErrBackend, err)
		}
		total += int(tag.RowsAffected())
		if tag.RowsAffected() < pruneBatch {
			return total, nil
		}
	}
}

// Close closes the pool if OpenPostgres made it.
func (p *Postgres) Close() error {
	if p.own {
		p.pool.Close()
	}
	return nil
}
