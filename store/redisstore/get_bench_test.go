package redisstore

import (
	"testing"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/internal/testenv"
	"github.com/sessionkit/sessionkit/storetest"
)

// BenchmarkGet compares the read paths of Get on a single server: the
// one-round-trip script, the two-step path Cluster uses, and a raw GET of
// the pointer as the floor.
func BenchmarkGet(b *testing.B) {
	url := testenv.RedisURL(b)
	s := newTestStore(b, url, Options{})
	ctx := b.Context()
	rec := storetest.NewRecord("bench-user", time.Now())
	if _, err := s.Create(ctx, rec, sessionkit.Limit{}); err != nil {
		b.Fatal(err)
	}
	get := func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Get(ctx, rec.TokenHash); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("script", func(b *testing.B) {
		if !s.single.Load() {
			b.Skip("not a single server")
		}
		get(b)
	})
	b.Run("two-step", func(b *testing.B) {
		one := s.single.Load()
		s.single.Store(false)
		defer s.single.Store(one)
		get(b)
	})
	b.Run("raw-get", func(b *testing.B) {
		pk := s.k.ptr(rec.TokenHash)
		for b.Loop() {
			if err := s.c.Do(ctx, s.c.B().Get().Key(pk).Build()).Error(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
