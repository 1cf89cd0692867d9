package sessionkit_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/store/boltstore"
	"github.com/sessionkit/sessionkit/store/memstore"
)

// discardWriter is a ResponseWriter that costs nothing, so benchmarks
// measure the middleware rather than the recorder.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

func benchStores(b *testing.B) map[string]func() sessionkit.Store {
	return map[string]func() sessionkit.Store{
		"memory": func() sessionkit.Store { return memstore.New(memstore.Options{}) },
		"bolt": func() sessionkit.Store {
			s, err := boltstore.Open(filepath.Join(b.TempDir(), "s.db"), boltstore.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		},
	}
}

// BenchmarkMiddleware measures the per-request path: load-only reads one
// value; modify saves one value with a compare-and-swap write.
func BenchmarkMiddleware(b *testing.B) {
	handlers := map[string]http.HandlerFunc{
		"load": func(w http.ResponseWriter, r *http.Request) {
			_ = sessionkit.FromContext(r.Context()).GetInt("n")
		},
		"modify": func(w http.ResponseWriter, r *http.Request) {
			s := sessionkit.FromContext(r.Context())
			s.Put("n", s.GetInt("n")+1)
		},
	}
	for storeName, newStore := range benchStores(b) {
		for hname, h := range handlers {
			b.Run(storeName+"/"+hname, func(b *testing.B) {
				mgr, err := sessionkit.New(newStore(), sessionkit.Config{Events: sessionkit.EventSinkFunc(nil2)})
				if err != nil {
					b.Fatal(err)
				}
				tok, _, err := mgr.Create(ctx, sessionkit.CreateParams{Subject: "alice",
					Client: sessionkit.Client{IP: "192.0.2.1", UserAgent: "bench"}})
				if err != nil {
					b.Fatal(err)
				}
				handler := mgr.LoadAndSave(h)
				req := httptest.NewRequest("GET", "/", nil)
				req.RemoteAddr = "192.0.2.1:1234"
				req.Header.Set("User-Agent", "bench")
				req.Header.Set("Cookie", sessionkit.DefaultCookieName+"="+tok)
				w := &discardWriter{h: http.Header{}}
				b.ReportAllocs()
				for b.Loop() {
					handler.ServeHTTP(w, req)
				}
			})
		}
	}
}

func nil2(context.Context, sessionkit.Event) {}
