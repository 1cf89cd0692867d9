package metrics_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/metrics"
	"github.com/sessionkit/sessionkit/store/memstore"
)

func Example() {
	col := metrics.New(metrics.Options{})
	reg := prometheus.NewRegistry()
	if err := col.Register(reg); err != nil {
		panic(err)
	}
	store := col.InstrumentStore(memstore.New(memstore.Options{}))
	m, err := sessionkit.New(store, sessionkit.Config{
		Events: sessionkit.MultiSink{col.Sink(), sessionkit.SlogSink{Logger: slog.Default()}},
	})
	if err != nil {
		panic(err)
	}
	// Serve the metrics, and time the session middleware as verification.
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	_ = col.Middleware(m.LoadAndSave(mux))

	m.Create(context.Background(), sessionkit.CreateParams{Subject: "alice"})
	fmt.Println("active sessions:", col.ActiveSessions())
	// Output: active sessions: 1
}
