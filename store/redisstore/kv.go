package redisstore

import (
	"context"
	"strconv"

	"github.com/redis/rueidis"
	"github.com/sessionkit/sessionkit"
)

// GetValue returns a shared value and its version, or ErrNotFound.
func (s *Store) GetValue(ctx context.Context, key string) ([]byte, uint64, error) {
	vals, err := s.c.Do(ctx, s.c.B().Hmget().Key(s.k.kv(key)).Field("v", "b").Build()).ToArray()
	if err != nil {
		return nil, 0, storeErr("get value", err)
	}
	if len(vals) != 2 {
		return nil, 0, errorf("get value", "bad reply")
	}
	v, err := vals[0].ToString()
	if rueidis.IsRedisNil(err) {
		return nil, 0, sessionkit.ErrNotFound
	}
	if err != nil {
		return nil, 0, storeErr("get value", err)
	}
	ver, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return nil, 0, storeErr("get value", err)
	}
	b, err := vals[1].AsBytes()
	if err != nil && !rueidis.IsRedisNil(err) {
		return nil, 0, storeErr("get value", err)
	}
	if b == nil {
		b = []byte{}
	}
	return b, ver, nil
}

// PutValue replaces a shared value if its version equals expect (0: the
// key must not exist) and returns the new version.
func (s *Store) PutValue(ctx context.Context, key string, value []byte, expect uint64) (uint64, error) {
	next := expect + 1
	code, err := luaPutValue.Exec(ctx, s.c, []string{s.k.kv(key)},
		[]string{strconv.FormatUint(expect, 10), strconv.FormatUint(next, 10), string(value)}).ToString()
	if err != nil {
		return 0, storeErr("put value", err)
	}
	if code != "OK" {
		return 0, sessionkit.ErrConflict
	}
	return next, nil
}
