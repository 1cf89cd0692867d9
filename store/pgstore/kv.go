package pgstore

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/sessionkit/sessionkit"
)

// GetValue returns a value and its version, or ErrNotFound.
func (s *Store) GetValue(ctx context.Context, key string) ([]byte, uint64, error) {
	var (
		v       []byte
		version int64
	)
	err := s.pool.QueryRow(ctx, `SELECT value, version FROM `+s.kv+` WHERE key = $1`, key).Scan(&v, &version)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, sessionkit.ErrNotFound
	}
	if err != nil {
		return nil, 0, wrap("get value", err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, uint64(version), nil
}

// PutValue stores value if the key's version equals expect (0: the key must
// not exist) and returns the new version, or ErrConflict.
func (s *Store) PutValue(ctx context.Context, key string, value []byte, expect uint64) (uint64, error) {
	if value == nil {
		value = []byte{} // the column is NOT NULL; nil and empty are one value
	}
	var (
		version int64
		err     error
	)
	if expect == 0 {
		err = s.pool.QueryRow(ctx, `INSERT INTO `+s.kv+` (key, value, version) VALUES ($1, $2, 1)
			ON CONFLICT (key) DO NOTHING RETURNING version`, key, value).Scan(&version)
	} else {
		err = s.pool.QueryRow(ctx, `UPDATE `+s.kv+` SET value = $2, version = version + 1
			WHERE key = $1 AND version = $3 RETURNING version`, key, value, int64(expect)).Scan(&version)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, sessionkit.ErrConflict
	}
	if err != nil {
		return 0, wrap("put value", err)
	}
	return uint64(version), nil
}
