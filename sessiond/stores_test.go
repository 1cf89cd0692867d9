package sessiond

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/internal/testenv"
)

func TestStoreKind(t *testing.T) {
	tests := []struct{ url, kind string }{
		{"", "bolt"}, {"bolt:/tmp/x.db", "bolt"}, {"memory:", "memory"},
		{"redis://127.0.0.1:6379/0", "redis"}, {"rediss://h:6380", "redis"}, {"redis+cluster://a:1,b:2", "redis"},
		{"postgres://u@h/db", "postgres"}, {"postgresql://u@h/db", "postgres"},
		{"mysql://x", ""}, {"http://x", ""}, {"/tmp/file.db", ""},
	}
	for _, tt := range tests {
		kind, err := StoreKind(tt.url)
		if kind != tt.kind || (err != nil) != (tt.kind == "") {
			t.Errorf("StoreKind(%q) = %q, %v; want %q", tt.url, kind, err, tt.kind)
		}
	}
	if p := BoltPath("bolt:/x/y.db", "/d"); p != "/x/y.db" {
		t.Errorf("BoltPath = %q", p)
	}
	if p := BoltPath("", "/d"); p != "/d/"+BoltFileName {
		t.Errorf("BoltPath = %q", p)
	}
}

func namespace() string {
	b := make([]byte, 4)
	rand.Read(b)
	return "sessiond_test_" + hex.EncodeToString(b)
}

// roundTrip runs a session through a store opened by OpenStore.
func roundTrip(t *testing.T, st sessionkit.Store) {
	t.Helper()
	ctx := context.Background()
	if err := st.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, st, nil)
	tok, handle := f.create(t, `{"subject":"store-test"}`)
	if r := f.do(t, "POST", "/v1/sessions/verify", `{"token":"`+tok+`"}`); r.status != 200 {
		t.Fatalf("verify: %d %s", r.status, r.body)
	}
	if r := f.do(t, "DELETE", "/v1/sessions/"+handle, ""); r.status != 204 {
		t.Fatalf("revoke: %d", r.status)
	}
	st.Delete(ctx, handle)
}

func TestOpenStores(t *testing.T) {
	ctx := context.Background()
	t.Run("bolt", func(t *testing.T) {
		dir := t.TempDir()
		st, err := OpenStore(ctx, "", StoreOptions{DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := OpenStore(ctx, "", StoreOptions{DataDir: dir, LockTimeout: 100e6}); err == nil {
			t.Error("second open of a locked bolt file succeeded")
		}
		roundTrip(t, st)
	})
	t.Run("memory", func(t *testing.T) {
		st, err := OpenStore(ctx, "memory:", StoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, st)
	})
	for _, near := range []bool{false, true} {
		t.Run(fmt.Sprintf("redis/near-cache=%v", near), func(t *testing.T) {
			url := testenv.RedisURL(t)
			st, err := OpenStore(ctx, url, StoreOptions{Namespace: namespace(), NearCache: near})
			if err != nil {
				t.Fatal(err)
			}
			roundTrip(t, st)
		})
	}
	t.Run("postgres", func(t *testing.T) {
		url := testenv.PostgresURL(t)
		schema := namespace()
		if _, err := OpenStore(ctx, url, StoreOptions{Namespace: schema}); err == nil {
			t.Fatal("unmigrated schema accepted")
		}
		t.Cleanup(func() {
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close(ctx)
			if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
				t.Error(err)
			}
		})
		st, err := OpenStore(ctx, url, StoreOptions{Namespace: schema, Migrate: true, NearCache: true})
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, st)
	})
}
