package eventlog_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/sessionkit/sessionkit/eventlog"
	"github.com/sessionkit/sessionkit/internal/testenv"
)

func unique() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// allBackends adds the server backends to the file and memory ones. They
// skip (fail in CI) without a server.
func allBackends() map[string]opener {
	m := backends()
	m["redis"] = func(t *testing.T, o eventlog.Options) eventlog.History {
		opt, err := rueidis.ParseURL(testenv.RedisURL(t))
		if err != nil {
			t.Fatal(err)
		}
		opt.DisableCache = true
		c, err := rueidis.NewClient(opt)
		if err != nil {
			t.Fatal(err)
		}
		prefix := "sessionkit-test:" + unique() + ":"
		t.Cleanup(func() {
			ctx := context.Background()
			keys, _ := c.Do(ctx, c.B().Arbitrary("KEYS").Args(prefix+"*").Build()).AsStrSlice()
			for _, k := range keys {
				c.Do(ctx, c.B().Arbitrary("DEL").Keys(k).Build())
			}
			c.Close()
		})
		return eventlog.NewRedis(c, eventlog.RedisOptions{Options: o, Prefix: prefix})
	}
	m["postgres"] = func(t *testing.T, o eventlog.Options) eventlog.History {
		ctx := context.Background()
		pool, err := pgxpool.New(ctx, testenv.PostgresURL(t))
		if err != nil {
			t.Fatal(err)
		}
		schema := "eventlog_test_" + unique()
		t.Cleanup(func() {
			pool.Exec(context.Background(), `DROP SCHEMA IF EXISTS "`+schema+`" CASCADE`)
			pool.Close()
		})
		h, err := eventlog.NewPostgres(ctx, pool, eventlog.PostgresOptions{Options: o, Schema: schema})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	return m
}
