package pgstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/internal/testenv"
	"github.com/sessionkit/sessionkit/storetest"
)

// freshSchema returns the name of a schema no other test uses and drops it,
// with everything in it, when the test ends.
func freshSchema(t testing.TB, url string) string {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	name := "pgstore_test_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("drop schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	return name
}

// open returns a store on schema (migrated), closed when the test ends. With
// a near-cache it waits for the listener, so the cache is really in use.
func open(t testing.TB, url, schema string, o Options) *Store {
	t.Helper()
	o.URL, o.Schema, o.AutoMigrate = url, schema, true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := New(ctx, o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if s.cache != nil {
		waitFor(t, 10*time.Second, "near-cache listener up", s.cache.isEnabled)
	}
	return s
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func cacheOpts(ttl time.Duration) Options {
	return Options{NearCache: NearCacheOptions{Enabled: true, TTL: ttl}}
}

func TestConformance(t *testing.T) {
	url := testenv.PostgresURL(t)
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"NoCache", Options{}},
		{"NearCache", cacheOpts(time.Minute)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) sessionkit.Store {
				return open(t, url, freshSchema(t, url), tc.o)
			})
		})
		t.Run(tc.name+"/KV", func(t *testing.T) {
			storetest.RunKV(t, func(t *testing.T) sessionkit.KVStore {
				return open(t, url, freshSchema(t, url), tc.o)
			})
		})
	}
}

func newRecord(subject string, now time.Time) *sessionkit.Record {
	return storetest.NewRecord(subject, now)
}

func TestMissingSchema(t *testing.T) {
	url := testenv.PostgresURL(t)
	schema := freshSchema(t, url)
	ctx := context.Background()
	s, err := New(ctx, Options{URL: url, Schema: schema})
	if err == nil {
		s.Close()
		t.Fatal("New on a missing schema succeeded")
	}
	if !errors.Is(err, ErrNotMigrated) || !errors.Is(err, sessionkit.ErrStore) {
		t.Errorf("New: got %v, want ErrNotMigrated wrapping ErrStore", err)
	}
	if !strings.Contains(err.Error(), "migrat") {
		t.Errorf("error %q does not tell the operator to migrate", err)
	}
	// Nothing was created behind the operator's back.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Error("New without AutoMigrate created the schema")
	}
}

func TestBadOptions(t *testing.T) {
	ctx := context.Background()
	for _, o := range []Options{
		{URL: "mysql://localhost/x"},
		{URL: ""},
		{URL: "postgres://localhost/x", Schema: "Bad-Name"},
		{URL: "postgres://localhost/x", Schema: strings.Repeat("a", 49)},
	} {
		if s, err := New(ctx, o); err == nil {
			s.Close()
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}

func TestMigrateIdempotentAndConcurrent(t *testing.T) {
	url := testenv.PostgresURL(t)
	schema := freshSchema(t, url)
	ctx := context.Background()

	// Concurrent first runs, each from its own store and pool.
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := New(ctx, Options{URL: url, Schema: schema, AutoMigrate: true})
			if err != nil {
				errs <- err
				return
			}
			s.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent New with AutoMigrate: %v", err)
	}

	s := open(t, url, schema, Options{})
	for range 3 {
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate again: %v", err)
		}
	}
	var n, max int
	if err := s.pool.QueryRow(ctx, `SELECT count(*), max(version) FROM `+s.migrations).Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	if n != len(migrations) || max != len(migrations) {
		t.Errorf("schema_migrations has %d rows up to version %d, want %d", n, max, len(migrations))
	}
	// The migrated store works, and a store without AutoMigrate accepts it.
	s2, err := New(ctx, Options{URL: url, Schema: schema})
	if err != nil {
		t.Fatalf("New after Migrate: %v", err)
	}
	defer s2.Close()
	rec := newRecord("", time.Now())
	if _, err := s2.Create(ctx, rec, sessionkit.Limit{}); err != nil {
		t.Fatal(err)
	}
}

// TestTwoInstanceRevoke revokes on A and measures how long B's near-cache,
// with a TTL far beyond the bound, keeps serving the live copy.
func TestTwoInstanceRevoke(t *testing.T) {
	url := testenv.PostgresURL(t)
	schema := freshSchema(t, url)
	a := open(t, url, schema, cacheOpts(time.Hour))
	b := open(t, url, schema, cacheOpts(time.Hour))
	ctx := context.Background()

	trials := 200
	if testing.Short() {
		trials = 20
	}
	lags := make([]time.Duration, 0, trials)
	for i := range trials {
		now := time.Now()
		rec := newRecord("user", now)
		rec.IdleDeadline = now.Add(time.Hour * 2)
		if _, err := a.Create(ctx, rec, sessionkit.Limit{}); err != nil {
			t.Fatal(err)
		}
		for range 2 { // the second Get is served from B's cache
			if r, err := b.Get(ctx, rec.TokenHash); err != nil || r.Revoked() {
				t.Fatalf("trial %d: B.Get before revoke: %v, %v", i, r, err)
			}
		}
		hits := b.cache.hits.Load()
		if _, err := b.Get(ctx, rec.TokenHash); err != nil || b.cache.hits.Load() != hits+1 {
			t.Fatalf("trial %d: B did not serve from its near-cache (err %v)", i, err)
		}
		if _, err := a.Revoke(ctx, rec.Handle, sessionkit.Revocation{At: now, Reason: sessionkit.ReasonLogout, PurgeAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for {
			r, err := b.Get(ctx, rec.TokenHash)
			if err != nil {
				t.Fatal(err)
			}
			if r.Revoked() {
				break
			}
			if time.Since(start) > 5*time.Second {
				t.Fatalf("trial %d: B still serves the revoked session after 5s", i)
			}
			time.Sleep(50 * time.Microsecond)
		}
		lags = append(lags, time.Since(start))
	}
	p50, p99 := percentile(lags, 0.50), percentile(lags, 0.99)
	t.Logf("revoke on A seen by B's near-cache over %d trials: p50 %v, p99 %v, max %v", trials, p50, p99, percentile(lags, 1))
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	i := int(p*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

// TestTouchKeepsOtherCaches checks that activity does not invalidate other
// instances' entries, and that a cached copy near its idle deadline is not
// served (it could miss another instance's Touch).
func TestTouchKeepsOtherCaches(t *testing.T) {
	url := testenv.PostgresURL(t)
	schema := freshSchema(t, url)
	a := open(t, url, schema, cacheOpts(time.Hour))
	b := open(t, url, schema, cacheOpts(time.Hour))
	ctx := context.Background()

	now := time.Now()
	rec := newRecord("", now)
	rec.IdleDeadline = now.Add(3 * time.Hour) // beyond the entry's expiry
	rec.AbsoluteDeadline = now.Add(24 * time.Hour)
	if _, err := a.Create(ctx, rec, sessionkit.Limit{}); err != nil {
		t.Fatal(err)
	}
	mustGet(t, b, rec.TokenHash)
	mustGet(t, a, rec.TokenHash)
	act := sessionkit.Activity{LastSeenAt: now.Add(time.Minute), IdleDeadline: now.Add(4 * time.Hour), PurgeAt: now.Add(5 * time.Hour)}
	if err := a.Touch(ctx, rec.Handle, act); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // a notification, if one were sent, arrives
	hits := b.cache.hits.Load()
	if r := mustGet(t, b, rec.TokenHash); !r.LastSeenAt.Equal(rec.LastSeenAt) || b.cache.hits.Load() != hits+1 {
		t.Errorf("Touch on A invalidated B's entry (hit %v, LastSeenAt %v)", b.cache.hits.Load() == hits+1, r.LastSeenAt)
	}
	if r := mustGet(t, a, rec.TokenHash); !r.LastSeenAt.Equal(act.LastSeenAt) || !r.IdleDeadline.Equal(act.IdleDeadline) {
		t.Errorf("A's own entry lacks its Touch: %v %v", r.LastSeenAt, r.IdleDeadline)
	}

	// A record going idle before its cache entry expires is always read
	// from the database, so a Touch elsewhere is seen at once.
	soon := newRecord("", now)
	soon.IdleDeadline = now.Add(time.Minute)
	if _, err := a.Create(ctx, soon, sessionkit.Limit{}); err != nil {
		t.Fatal(err)
	}
	mustGet(t, b, soon.TokenHash)
	if err := a.Touch(ctx, soon.Handle, sessionkit.Activity{LastSeenAt: now.Add(time.Second), IdleDeadline: now.Add(2 * time.Minute), PurgeAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if r := mustGet(t, b, soon.TokenHash); !r.IdleDeadline.Equal(now.Add(2 * time.Minute)) {
		t.Errorf("B served a stale idle deadline %v", r.IdleDeadline)
	}
}

func mustGet(t testing.TB, s *Store, h sessionkit.TokenHash) *sessionkit.Record {
	t.Helper()
	r, err := s.Get(context.Background(), h)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return r
}

// TestListenerDown kills the listener's backend: the cache must stop
// serving before anything can change unseen, and come back by itself.
func TestListenerDown(t *testing.T) {
	url := testenv.PostgresURL(t)
	schema := freshSchema(t, url)
	o := cacheOpts(time.Hour)
	o.NearCache.RetryDelay = 500 * time.Millisecond
	a := open(t, url, schema, o)
	b := open(t, url, schema, Options{})
	ctx := context.Background()

	now := time.Now()
	rec := newRecord("", now)
	rec.IdleDeadline = now.Add(3 * time.Hour)
	if _, err := b.Create(ctx, rec, sessionkit.Limit{}); err != nil {
		t.Fatal(err)
	}
	mustGet(t, a, rec.TokenHash)
	hits := a.cache.hits.Load()
	mustGet(t, a, rec.TokenHash)
	if a.cache.hits.Load() != hits+1 {
		t.Fatal("entry not cached")
	}

	channel := a.channel
	var n int
	if err := b.pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(l.pid))
		FROM pg_stat_activity l WHERE l.query = $1`, "LISTEN "+pgx.Identifier{channel}.Sanitize()).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("terminated %d listener backends, want 1", n)
	}
	waitFor(t, 5*time.Second, "cache disabled", func() bool { return !a.cache.isEnabled() })
	if _, err := b.Revoke(ctx, rec.Handle, sessionkit.Revocation{At: now, Reason: "operator", PurgeAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if r := mustGet(t, a, rec.TokenHash); !r.Revoked() {
		t.Fatal("near-cache served a stale live session while its listener was down")
	}
	waitFor(t, 10*time.Second, "listener back", a.cache.isEnabled)
	mustGet(t, a, rec.TokenHash)
	hits = a.cache.hits.Load()
	if r := mustGet(t, a, rec.TokenHash); !r.Revoked() || a.cache.hits.Load() != hits+1 {
		t.Errorf("cache not serving again after the listener came back")
	}
}

// TestTwoInstanceChanges checks that every kind of change made on A reaches
// B's near-cache: update, renewal (new token hash), revocation of a
// subject, deletion and purge.
func TestTwoInstanceChanges(t *testing.T) {
	url := testenv.PostgresURL(t)
	schema := freshSchema(t, url)
	a := open(t, url, schema, cacheOpts(time.Hour))
	b := open(t, url, schema, cacheOpts(time.Hour))
	ctx := context.Background()
	now := time.Now()
	rv := sessionkit.Revocation{At: now, Reason: sessionkit.ReasonRevokeAll, PurgeAt: now.Add(time.Hour)}

	for _, tc := range []struct {
		name   string
		change func(rec *sessionkit.Record) error
		seen   func(rec *sessionkit.Record, got *sessionkit.Record, err error) bool
	}{
		{"update", func(rec *sessionkit.Record) error {
			rec.AuthLevel = 7
			_, err := a.Update(ctx, rec, sessionkit.Limit{})
			return err
		}, func(_, got *sessionkit.Record, err error) bool { return err == nil && got.AuthLevel == 7 }},
		{"renew", func(rec *sessionkit.Record) error {
			rec.TokenHash = newRecord("", now).TokenHash
			_, err := a.Update(ctx, rec, sessionkit.Limit{})
			return err
		}, func(_, _ *sessionkit.Record, err error) bool { return errors.Is(err, sessionkit.ErrNotFound) }},
		{"revoke subject", func(rec *sessionkit.Record) error {
			_, err := a.RevokeSubject(ctx, rec.Subject, "", rv)
			return err
		}, func(_, got *sessionkit.Record, err error) bool { return err == nil && got.Revoked() }},
		{"delete", func(rec *sessionkit.Record) error {
			return a.Delete(ctx, rec.Handle)
		}, func(_, _ *sessionkit.Record, err error) bool { return errors.Is(err, sessionkit.ErrNotFound) }},
		{"purge", func(rec *sessionkit.Record) error {
			_, err := a.DeleteExpired(ctx, now.Add(100*time.Hour), 1000)
			return err
		}, func(_, _ *sessionkit.Record, err error) bool { return errors.Is(err, sessionkit.ErrNotFound) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecord("subject-"+tc.name, now)
			rec.IdleDeadline = now.Add(2 * time.Hour)
			if _, err := a.Create(ctx, rec, sessionkit.Limit{}); err != nil {
				t.Fatal(err)
			}
			old := rec.TokenHash
			mustGet(t, b, old)
			hits := b.cache.hits.Load()
			mustGet(t, b, old)
			if b.cache.hits.Load() != hits+1 {
				t.Fatal("not cached on B")
			}
			if err := tc.change(rec); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "B to see the change", func() bool {
				got, err := b.Get(ctx, old)
				return tc.seen(rec, got, err)
			})
		})
	}
}
