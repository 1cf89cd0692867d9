package pgstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// migrations are applied in order; migration i brings the schema to
// version i+1. A released migration is never edited: changes are new
// entries. In each statement {schema} is replaced by the quoted schema name.
var migrations = []string{
	// 1: sessions, kv, and the trigger that announces changes to near-caches.
	`
CREATE TABLE {schema}.sessions (
	handle        text    PRIMARY KEY,
	token_hash    bytea   NOT NULL UNIQUE,
	subject       text    NOT NULL,
	created_at    bigint  NOT NULL,
	revoked       boolean NOT NULL,
	version       bigint  NOT NULL,
	last_seen     bigint  NOT NULL,
	idle_deadline bigint  NOT NULL,
	purge_at      bigint  NOT NULL,
	last_ip       text    NOT NULL,
	last_ua       text    NOT NULL,
	rec           bytea   NOT NULL
);
CREATE INDEX sessions_subject_idx ON {schema}.sessions (subject, created_at, handle)
	WHERE NOT revoked AND subject <> '';
CREATE INDEX sessions_purge_idx ON {schema}.sessions (purge_at);

CREATE TABLE {schema}.kv (
	key     text   PRIMARY KEY,
	value   bytea  NOT NULL,
	version bigint NOT NULL
);

CREATE FUNCTION {schema}.sessions_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	-- Touch changes activity only, without a new version: no notification,
	-- so activity does not churn other instances' caches.
	IF TG_OP = 'UPDATE' AND NEW.version = OLD.version AND NEW.token_hash = OLD.token_hash
		AND NEW.revoked = OLD.revoked AND NEW.subject = OLD.subject THEN
		RETURN NULL;
	END IF;
	PERFORM pg_notify(TG_TABLE_SCHEMA || '.sessions',
		encode(OLD.token_hash, 'hex') || ':' || left(OLD.handle, 256));
	RETURN NULL;
END
$$;
CREATE TRIGGER sessions_notify AFTER UPDATE OR DELETE ON {schema}.sessions
	FOR EACH ROW EXECUTE FUNCTION {schema}.sessions_notify();
`,
}

// Migrate creates or upgrades the schema. It is idempotent and safe to run
// from several processes at once: a transaction-scoped advisory lock
// serializes runs, and each applied version is recorded in
// schema_migrations in the same transaction as its DDL.
func (s *Store) Migrate(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return wrap("migrate", err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('sessionkit.migrate:' || $1, 0))`, s.schema); err != nil {
		return wrap("migrate: lock", err)
	}
	qs := pgx.Identifier{s.schema}.Sanitize()
	if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+qs); err != nil {
		return wrap("migrate: create schema", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.migrations+` (
		version    integer     PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return wrap("migrate: create schema_migrations", err)
	}
	var cur int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+s.migrations).Scan(&cur); err != nil {
		return wrap("migrate: read version", err)
	}
	for v := cur; v < len(migrations); v++ {
		if _, err := tx.Exec(ctx, strings.ReplaceAll(migrations[v], "{schema}", qs)); err != nil {
			return wrap(fmt.Sprintf("migrate: version %d", v+1), err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+s.migrations+` (version) VALUES ($1)`, v+1); err != nil {
			return wrap("migrate: record version", err)
		}
	}
	return wrap("migrate: commit", tx.Commit(ctx))
}

// schemaVersion returns the applied schema version, 0 when the schema or
// its migrations table does not exist.
func (s *Store) schemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+s.migrations).Scan(&v)
	switch pgCode(err) {
	case "":
	case codeUndefinedTable, codeInvalidSchema:
		return 0, nil
	}
	if err != nil {
		return 0, wrap("read schema version", err)
	}
	return v, nil
}
