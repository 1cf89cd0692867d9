package pgstore

import (
	"context"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/internal/testenv"
)

var benchModes = []struct {
	name string
	o    Options
}{
	{"NoCache", Options{}},
	{"NearCache", cacheOpts(time.Minute)},
}

func BenchmarkGet(b *testing.B) {
	url := testenv.PostgresURL(b)
	for _, m := range benchModes {
		b.Run(m.name, func(b *testing.B) {
			s := open(b, url, freshSchema(b, url), m.o)
			ctx := context.Background()
			recs := make([]*sessionkit.Record, 64)
			for i := range recs {
				recs[i] = newRecord("user", time.Now())
				if _, err := s.Create(ctx, recs[i], sessionkit.Limit{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := s.Get(ctx, recs[i%len(recs)].TokenHash); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkUpdate(b *testing.B) {
	url := testenv.PostgresURL(b)
	for _, m := range benchModes {
		b.Run(m.name, func(b *testing.B) {
			s := open(b, url, freshSchema(b, url), m.o)
			ctx := context.Background()
			rec := newRecord("user", time.Now())
			if _, err := s.Create(ctx, rec, sessionkit.Limit{}); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := s.Update(ctx, rec, sessionkit.Limit{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
