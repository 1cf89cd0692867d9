package memstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/internal/benchcpu"
	"github.com/sessionkit/sessionkit/store/memstore"
	"github.com/sessionkit/sessionkit/storetest"
)

func newStore(t *testing.T, opts memstore.Options) *memstore.Store {
	s := memstore.New(opts)
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) sessionkit.Store { return newStore(t, memstore.Options{}) })
}

func TestKV(t *testing.T) {
	storetest.RunKV(t, func(t *testing.T) sessionkit.KVStore { return newStore(t, memstore.Options{}) })
}

func TestCapacity(t *testing.T) {
	ctx := t.Context()
	base := time.Now()
	s := newStore(t, memstore.Options{MaxSessions: 3, Now: func() time.Time { return base }})

	expired := storetest.NewRecord("user:a", base.Add(-3*time.Hour)) // PurgeAt 90m after, so due
	anonOld := storetest.NewRecord("", base.Add(-time.Minute))
	user := storetest.NewRecord("user:a", base)
	for _, r := range []*sessionkit.Record{expired, anonOld, user} {
		if _, err := s.Create(ctx, r, sessionkit.Limit{}); err != nil {
			t.Fatal(err)
		}
	}
	// Full: the expired record goes first.
	anonNew := storetest.NewRecord("", base)
	if _, err := s.Create(ctx, anonNew, sessionkit.Limit{}); err != nil {
		t.Fatalf("Create when full with an expired record: %v", err)
	}
	if _, err := s.GetByHandle(ctx, expired.Handle); !errors.Is(err, sessionkit.ErrNotFound) {
		t.Fatalf("expired record not purged: %v", err)
	}
	// Full with nothing expired: the oldest anonymous session goes.
	user2 := storetest.NewRecord("user:b", base)
	if _, err := s.Create(ctx, user2, sessionkit.Limit{}); err != nil {
		t.Fatalf("Create when full with anonymous sessions: %v", err)
	}
	if _, err := s.GetByHandle(ctx, anonOld.Handle); !errors.Is(err, sessionkit.ErrNotFound) {
		t.Fatalf("oldest anonymous session not evicted: %v", err)
	}
	if _, err := s.GetByHandle(ctx, anonNew.Handle); err != nil {
		t.Fatalf("newer anonymous session evicted: %v", err)
	}
	// A login moves the last anonymous session to a subject: then nothing
	// can be evicted.
	anonNew.Subject = "user:c"
	if _, err := s.Update(ctx, anonNew, sessionkit.Limit{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, storetest.NewRecord("", base), sessionkit.Limit{}); !errors.Is(err, sessionkit.ErrStoreFull) {
		t.Fatalf("Create when full of authenticated sessions: error = %v, want ErrStoreFull", err)
	}
	if s.Len() != 3 {
		t.Fatalf("Len = %d, want 3", s.Len())
	}
}

func TestClose(t *testing.T) {
	ctx := t.Context()
	s := memstore.New(memstore.Options{})
	rec := storetest.NewRecord("user:1", time.Now())
	if _, err := s.Create(ctx, rec, sessionkit.Limit{}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := s.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	checks := map[string]error{
		"Ping": s.Ping(ctx),
		"Get":  func() error { _, err := s.Get(ctx, rec.TokenHash); return err }(),
		"Create": func() error {
			_, err := s.Create(ctx, storetest.NewRecord("", time.Now()), sessionkit.Limit{})
			return err
		}(),
		"PutValue": func() error { _, err := s.PutValue(ctx, "k", nil, 0); return err }(),
	}
	for name, err := range checks {
		if !errors.Is(err, sessionkit.ErrStore) {
			t.Errorf("%s after Close: error = %v, want ErrStore", name, err)
		}
	}
}

func BenchmarkGet(b *testing.B) {
	s := memstore.New(memstore.Options{})
	defer s.Close()
	ctx := context.Background()
	now := time.Now()
	hashes := make([]sessionkit.TokenHash, 1000)
	for i := range hashes {
		r := storetest.NewRecord("user:bench", now)
		if i%2 == 0 {
			r.Subject = ""
		}
		if _, err := s.Create(ctx, r, sessionkit.Limit{}); err != nil {
			b.Fatal(err)
		}
		hashes[i] = r.TokenHash
	}
	b.ReportAllocs()
	b.ResetTimer()
	defer benchcpu.Report(b)()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := s.Get(ctx, hashes[i%len(hashes)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

func BenchmarkUpdate(b *testing.B) {
	s := memstore.New(memstore.Options{})
	defer s.Close()
	ctx := context.Background()
	r := storetest.NewRecord("user:bench", time.Now())
	if _, err := s.Create(ctx, r, sessionkit.Limit{}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	defer benchcpu.Report(b)()
	for b.Loop() {
		if _, err := s.Update(ctx, r, sessionkit.Limit{}); err != nil {
			b.Fatal(err)
		}
	}
}
