package pgstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/internal/pgtest"
)

func TestFaultServerKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private PostgreSQL server")
	}
	pg := pgtest.Start(t)
	ctx := context.Background()
	before := runtime.NumGoroutine()

	o := Options{URL: pg.URL(), AutoMigrate: true, NearCache: NearCacheOptions{
		Enabled: true, TTL: time.Hour, Heartbeat: 500 * time.Millisecond, RetryDelay: 50 * time.Millisecond,
	}}
	a, err := New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "listener up", a.cache.isEnabled)
	o.NearCache = NearCacheOptions{}
	b, err := New(ctx, o) // a second instance without cache
	if err != nil {
		t.Fatal(err)
	}

	now := time.Now()
	rec := newRecord("user", now)
	rec.IdleDeadline = now.Add(3 * time.Hour)
	if _, err := a.Create(ctx, rec, sessionkit.Limit{}); err != nil {
		t.Fatal(err)
	}
	// Writes during the outage use another record: a failed write drops
	// its own cache entry, which would hide a cache that was not flushed.
	other := newRecord("other", now)
	if _, err := a.Create(ctx, other, sessionkit.Limit{}); err != nil {
		t.Fatal(err)
	}
	mustGet(t, a, rec.TokenHash)
	hits := a.cache.hits.Load()
	mustGet(t, a, rec.TokenHash)
	if a.cache.hits.Load() != hits+1 {
		t.Fatal("record not cached before the crash")
	}

	// Load running while the server dies: every failure must wrap ErrStore.
	stop := make(chan struct{})
	loadErr := make(chan error, 1)
	go func() {
		defer close(loadErr)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			var err error
			if i%2 == 0 {
				_, err = a.Get(ctx, rec.TokenHash)
			} else {
				err = a.Touch(ctx, other.Handle, sessionkit.Activity{LastSeenAt: now.Add(time.Duration(i) * time.Microsecond)})
			}
			if err != nil && !errors.Is(err, sessionkit.ErrStore) {
				loadErr <- err
				return
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	pg.Kill()
	waitFor(t, 5*time.Second, "near-cache disabled after the crash", func() bool { return !a.cache.isEnabled() })
	time.Sleep(50 * time.Millisecond)
	close(stop)
	if err := <-loadErr; err != nil {
		t.Errorf("operation during the crash: got %v, want success or an error wrapping ErrStore", err)
	}

	opCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rv := sessionkit.Revocation{At: now, Reason: sessionkit.ReasonOperator, PurgeAt: now.Add(time.Hour)}
	ops := map[string]func() error{
		"Get":         func() error { _, err := a.Get(opCtx, rec.TokenHash); return err },
		"GetByHandle": func() error { _, err := a.GetByHandle(opCtx, rec.Handle); return err },
		"Create": func() error {
			_, err := a.Create(opCtx, newRecord("user", now), sessionkit.Limit{Max: 3, Now: now})
			return err
		},
		"Update": func() error {
			r := other.Clone()
			_, err := a.Update(opCtx, r, sessionkit.Limit{})
			return err
		},
		"Touch": func() error {
			return a.Touch(opCtx, other.Handle, sessionkit.Activity{LastSeenAt: now.Add(time.Second)})
		},
		"Revoke":        func() error { _, err := a.Revoke(opCtx, other.Handle, rv); return err },
		"RevokeSubject": func() error { _, err := a.RevokeSubject(opCtx, "other", "", rv); return err },
		"Delete":        func() error { return a.Delete(opCtx, other.Handle) },
		"ListSubject":   func() error { _, err := a.ListSubject(opCtx, "other"); return err },
		"DeleteExpired": func() error { _, err := a.DeleteExpired(opCtx, now, 10); return err },
		"Ping":          func() error { return a.Ping(opCtx) },
		"GetValue":      func() error { _, _, err := a.GetValue(opCtx, "k"); return err },
		"PutValue":      func() error { _, err := a.PutValue(opCtx, "k", []byte("v"), 0); return err },
	}
	for name, op := range ops {
		if err := op(); !errors.Is(err, sessionkit.ErrStore) {
			t.Errorf("%s with the server down: got %v, want an error wrapping ErrStore", name, err)
		}
	}

	pg.Restart()
	waitFor(t, 15*time.Second, "store recovered", func() bool { return a.Ping(ctx) == nil && b.Ping(ctx) == nil })
	// Revoke through the other instance at once, before a's listener may
	// even be back: a must not serve its pre-crash copy.
	if _, err := b.Revoke(ctx, rec.Handle, rv); err != nil {
		t.Fatalf("Revoke after restart: %v", err)
	}
	if r := mustGet(t, a, rec.TokenHash); !r.Revoked() {
		t.Fatal("near-cache served its pre-crash copy of a session revoked after the restart")
	}
	waitFor(t, 15*time.Second, "listener back after restart", a.cache.isEnabled)
	mustGet(t, a, rec.TokenHash)
	hits = a.cache.hits.Load()
	if r := mustGet(t, a, rec.TokenHash); !r.Revoked() || a.cache.hits.Load() != hits+1 {
		t.Error("near-cache not serving again after recovery")
	}

	a.Close()
	b.Close()
	waitFor(t, 5*time.Second, fmt.Sprintf("goroutines back to %d after Close", before), func() bool {
		return runtime.NumGoroutine() <= before
	})
}
