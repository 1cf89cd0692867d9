package redisstore_test

import (
	"context"
	"testing"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/internal/faultcheck"
	"github.com/sessionkit/sessionkit/internal/redistest"
	"github.com/sessionkit/sessionkit/store/redisstore"
)

// TestMiddlewareFailsClosedWhenRedisDies kills the Redis server under the
// session middleware: requests must get 503 without the handler running,
// never an anonymous or stale session, and the same store must recover by
// itself once the server is back.
func TestMiddlewareFailsClosedWhenRedisDies(t *testing.T) {
	if testing.Short() {
		t.Skip("starts private redis-server processes")
	}
	for _, tc := range []struct {
		name      string
		nearCache bool
		aof       bool // the restarted server has the session
	}{
		{"memory", false, false},
		{"memory/near-cache", true, false},
		{"aof", false, true},
		{"aof/near-cache", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var extra []string
			if tc.aof {
				// always: an acknowledged write is on disk before the kill.
				extra = []string{"--appendonly", "yes", "--appendfsync", "always"}
			}
			srv := redistest.Start(t, extra...)
			open := func() sessionkit.Store {
				st, err := redisstore.New(context.Background(), redisstore.Options{URL: srv.URL(), NearCache: tc.nearCache})
				if err != nil {
					t.Fatal(err)
				}
				return st
			}
			faultcheck.MiddlewareFailsClosed(t, open, srv.Kill, srv.Restart, tc.aof)
		})
	}
}
