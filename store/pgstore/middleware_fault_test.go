package pgstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/internal/faultcheck"
	"github.com/sessionkit/sessionkit/internal/pgtest"
	"github.com/sessionkit/sessionkit/store/pgstore"
)

// TestMiddlewareFailsClosedWhenPostgresDies crashes the PostgreSQL server
// under the session middleware: requests must get 503 without the handler
// running, never an anonymous or stale session, and the same store must
// recover by itself once the server is back, with the session intact.
func TestMiddlewareFailsClosedWhenPostgresDies(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private PostgreSQL server")
	}
	pg := pgtest.Start(t)
	for _, tc := range []struct {
		name      string
		nearCache bool
	}{
		{"plain", false},
		{"near-cache", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			open := func() sessionkit.Store {
				o := pgstore.Options{URL: pg.URL(), AutoMigrate: true, Schema: "mwfault"}
				if tc.nearCache {
					o.NearCache = pgstore.NearCacheOptions{Enabled: true, Heartbeat: 500 * time.Millisecond, RetryDelay: 50 * time.Millisecond}
				}
				st, err := pgstore.New(context.Background(), o)
				if err != nil {
					t.Fatal(err)
				}
				return st
			}
			faultcheck.MiddlewareFailsClosed(t, open, pg.Kill, pg.Restart, true)
		})
	}
}
