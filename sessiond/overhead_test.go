package sessiond

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/eventlog"
	"github.com/sessionkit/sessionkit/store/memstore"
)

// BenchmarkVerifyOverhead measures POST /v1/sessions/verify with metrics,
// event history, the anomaly engine and JSON logs on, against the same
// server with events discarded and nothing instrumented, alternating blocks
// of requests in one run so load changes hit both alike. The ratio metric
// is monitored/plain.
func BenchmarkVerifyOverhead(b *testing.B) {
	setup := func(monitored bool) (http.Handler, string) {
		var store sessionkit.Store = memstore.New(memstore.Options{})
		var sink sessionkit.EventSink = sessionkit.EventSinkFunc(func(context.Context, sessionkit.Event) {})
		var exts []Extension
		if monitored {
			mon, err := NewMonitoring(MonitoringOptions{Logger: discardLogger(), History: eventlog.NewMemory(eventlog.Options{})})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { mon.Close() })
			store = mon.InstrumentStore(store)
			sink = sessionkit.MultiSink{mon.Sink(), sessionkit.SlogSink{Logger: discardLogger()}}
			exts = []Extension{mon}
		}
		m, err := sessionkit.New(store, sessionkit.Config{Events: sink})
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range exts {
			e.(*Monitoring).Start(m)
		}
		keys := &Keys{}
		keys.AddKeys(testKey)
		srv, err := New(Config{Manager: m, Keys: keys, Logger: discardLogger(), Extensions: exts})
		if err != nil {
			b.Fatal(err)
		}
		tok, _, err := m.Create(context.Background(), sessionkit.CreateParams{Subject: "alice",
			Client: sessionkit.Client{IP: "192.0.2.1", UserAgent: "bench"}})
		if err != nil {
			b.Fatal(err)
		}
		return srv.Handler(), `{"token":"` + tok + `","client":{"ip":"192.0.2.1","user_agent":"bench"}}`
	}
	plainH, plainBody := setup(false)
	monH, monBody := setup(true)
	run := func(h http.Handler, body string) time.Duration {
		start := time.Now()
		for range 200 {
			req := httptest.NewRequest("POST", "/v1/sessions/verify", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+testKey)
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("verify: %d %s", rec.Code, rec.Body)
			}
		}
		return time.Since(start)
	}
	var plain, mon time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i += 200 {
		if i/200%2 == 0 {
			plain += run(plainH, plainBody)
			mon += run(monH, monBody)
		} else {
			mon += run(monH, monBody)
			plain += run(plainH, plainBody)
		}
	}
	n := float64((b.N + 199) / 200 * 200)
	b.ReportMetric(float64(plain.Nanoseconds())/n, "plain-ns/op")
	b.ReportMetric(float64(mon.Nanoseconds())/n, "monitored-ns/op")
	b.ReportMetric(float64(mon)/float64(plain), "ratio")
}
