package redisstore

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/internal/redistest"
	"github.com/sessionkit/sessionkit/storetest"
)

// TestCluster runs the conformance suite on a private 3-master Redis
// Cluster, with and without the near cache.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	cl := redistest.StartCluster(t, 3)
	url := "redis+cluster://" + cl.Seeds()
	for _, near := range []bool{false, true} {
		t.Run("nearcache="+strconv.FormatBool(near), func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) sessionkit.Store {
				return newTestStore(t, url, Options{NearCache: near})
			})
		})
	}
	t.Run("kv", func(t *testing.T) {
		storetest.RunKV(t, func(t *testing.T) sessionkit.KVStore { return newTestStore(t, url, Options{}) })
	})
	// The keys of many subjects must really be spread over the masters.
	t.Run("spread", func(t *testing.T) {
		s := newTestStore(t, url, Options{})
		for i := range 30 {
			if _, err := s.Create(t.Context(), storetest.NewRecord("user:"+strconv.Itoa(i), time.Now()), sessionkit.Limit{}); err != nil {
				t.Fatal(err)
			}
		}
		for _, n := range cl.Nodes {
			keys, err := n.Do("DBSIZE")
			if err != nil {
				t.Fatal(err)
			}
			if keys == "0" {
				t.Errorf("node %s holds no keys", n.Addr())
			}
		}
	})
}

// TestFault kills a private server under a running store: every call fails
// with ErrStore (never a stale answer from the near cache), and the store
// recovers by itself once the server is back on the same port.
func TestFault(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	before := runtime.NumGoroutine()
	func() {
		srv := redistest.Start(t)
		s := newTestStore(t, srv.URL(), Options{NearCache: true})
		ctx := t.Context()
		rec := storetest.NewRecord("user:fault", time.Now())
		if _, err := s.Create(ctx, rec, sessionkit.Limit{}); err != nil {
			t.Fatal(err)
		}
		// Warm the near cache.
		for range 3 {
			if _, err := s.Get(ctx, rec.TokenHash); err != nil {
				t.Fatal(err)
			}
		}
		srv.Kill()
		for i := range 20 {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, gerr := s.Get(cctx, rec.TokenHash)
			_, herr := s.GetByHandle(cctx, rec.Handle)
			uerr := func() error {
				r := rec.Clone()
				_, err := s.Update(cctx, r, sessionkit.Limit{})
				return err
			}()
			terr := s.Touch(cctx, rec.Handle, rec.Activity)
			cancel()
			for _, err := range []error{gerr, herr, uerr, terr} {
				if !errors.Is(err, sessionkit.ErrStore) {
					t.Fatalf("call %d with the server down: error %v, want ErrStore", i, err)
				}
			}
		}
		srv.Restart() // empty: the server keeps no data in this test
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := s.Ping(ctx)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("store did not recover: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		// The session was lost with the server; the cache must not bring
		// it back.
		if _, err := s.Get(ctx, rec.TokenHash); !errors.Is(err, sessionkit.ErrNotFound) {
			t.Fatalf("Get after restart: %v, want ErrNotFound", err)
		}
		r2 := storetest.NewRecord("user:fault", time.Now())
		if _, err := s.Create(ctx, r2, sessionkit.Limit{}); err != nil {
			t.Fatalf("Create after restart: %v", err)
		}
		if got, err := s.Get(ctx, r2.TokenHash); err != nil || got.Handle != r2.Handle {
			t.Fatalf("Get after restart: %v", err)
		}
		s.Close()
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		after := runtime.NumGoroutine()
		if after <= before {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines: %d before, %d after Close\n%s", before, after, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAppendOnlyRestart checks that sessions survive a restart of a server
// with the append-only file on.
func TestAppendOnlyRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	s := newTestStore(t, srv.URL(), Options{})
	ctx := t.Context()
	anon := storetest.NewRecord("", time.Now())
	user := storetest.NewRecord("user:aof", time.Now())
	for _, r := range []*sessionkit.Record{anon, user} {
		if _, err := s.Create(ctx, r, sessionkit.Limit{}); err != nil {
			t.Fatal(err)
		}
	}
	srv.Stop()
	srv.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for s.Ping(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("store did not reconnect")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, r := range []*sessionkit.Record{anon, user} {
		got, err := s.Get(ctx, r.TokenHash)
		if err != nil {
			t.Fatalf("Get after restart: %v", err)
		}
		if got.Handle != r.Handle || got.Version != 1 {
			t.Fatalf("Get after restart: handle %s version %d", got.Handle, got.Version)
		}
	}
	l, err := s.ListSubject(ctx, "user:aof")
	if err != nil || len(l) != 1 {
		t.Fatalf("ListSubject after restart: %d records, %v", len(l), err)
	}
}

// TestRevocationLag measures how long a revocation on one instance takes to
// be seen by another instance that has the session in its near cache.
func TestRevocationLag(t *testing.T) {
	url := redisURLOrPrivate(t)
	prefix := uniquePrefix()
	a := newTestStore(t, url, Options{Prefix: prefix, NearCache: true})
	b := newTestStore(t, url, Options{Prefix: prefix, NearCache: true})
	ctx := t.Context()
	const trials = 200
	lags := make([]time.Duration, 0, trials)
	for range trials {
		rec := storetest.NewRecord("user:lag", time.Now())
		if _, err := a.Create(ctx, rec, sessionkit.Limit{}); err != nil {
			t.Fatal(err)
		}
		// B reads until it has the session cached.
		deadline := time.Now().Add(2 * time.Second)
		for {
			_, err := b.Get(ctx, rec.TokenHash)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("B never saw the session: %v", err)
			}
		}
		if _, err := b.Get(ctx, rec.TokenHash); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Revoke(ctx, rec.Handle, sessionkit.Revocation{At: time.Now(), Reason: sessionkit.ReasonLogout, PurgeAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for {
			got, err := b.Get(ctx, rec.TokenHash)
			if err != nil {
				t.Fatal(err)
			}
			if got.Revoked() {
				break
			}
			if time.Since(start) > 2*time.Second {
				t.Fatal("B did not see the revocation within 2s")
			}
		}
		lags = append(lags, time.Since(start))
	}
	slices.Sort(lags)
	t.Logf("revocation lag over %d trials: p50 %v, p90 %v, p99 %v, max %v",
		trials, lags[trials/2], lags[trials*9/10], lags[trials*99/100], lags[trials-1])
}

// TestMemoryUsage reports the Redis memory of one typical session.
func TestMemoryUsage(t *testing.T) {
	url := redisURLOrPrivate(t)
	s := newTestStore(t, url, Options{})
	ctx := t.Context()
	for _, subject := range []string{"", "user:memory@example.com"} {
		rec := storetest.NewRecord(subject, time.Now())
		if _, err := s.Create(ctx, rec, sessionkit.Limit{}); err != nil {
			t.Fatal(err)
		}
		tag := homeTag(rec.Subject, rec.Handle)
		ks := []string{s.k.rec(tag, rec.Handle), s.k.act(tag, rec.Handle), s.k.ptr(rec.TokenHash)}
		if subject != "" {
			ks = append(ks, s.k.rec(anonTag(rec.Handle), rec.Handle))
		}
		total := int64(0)
		for _, k := range ks {
			n, err := s.c.Do(ctx, s.c.B().MemoryUsage().Key(k).Samples(0).Build()).AsInt64()
			if err != nil {
				t.Fatalf("MEMORY USAGE %s: %v", k, err)
			}
			total += n
		}
		b, _ := rec.MarshalBinary()
		if total <= int64(len(b)) {
			t.Fatalf("memory %d bytes is less than the record (%d bytes)", total, len(b))
		}
		t.Logf("subject=%q: %d keys, %d bytes in Redis (record encoding %d bytes), plus one index and one expiry entry",
			subject, len(ks), total, len(b))
	}
}

// redisURLOrPrivate returns the shared test server, or starts a private one.
func redisURLOrPrivate(t *testing.T) string {
	if u := testenvRedis(); u != "" {
		return u
	}
	return redistest.Start(t).URL()
}
