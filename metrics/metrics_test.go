package metrics_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/internal/testclock"
	"github.com/sessionkit/sessionkit/internal/testenv"
	"github.com/sessionkit/sessionkit/metrics"
	"github.com/sessionkit/sessionkit/store/memstore"
)

func setup(t *testing.T) (*sessionkit.Manager, *metrics.Collector, *prometheus.Registry, *testclock.Clock) {
	t.Helper()
	clk := testclock.New(time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC))
	col := metrics.New(metrics.Options{Now: clk.Now})
	reg := prometheus.NewRegistry()
	if err := col.Register(reg); err != nil {
		t.Fatal(err)
	}
	st := col.InstrumentStore(memstore.New(memstore.Options{Now: clk.Now}))
	m, err := sessionkit.New(st, sessionkit.Config{Events: col.Sink(), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return m, col, reg, clk
}

func TestEventsCounted(t *testing.T) {
	ctx := context.Background()
	m, col, reg, clk := setup(t)
	c := sessionkit.Client{IP: "192.0.2.1", UserAgent: "test"}
	tok, rec, err := m.Create(ctx, sessionkit.CreateParams{Subject: "alice", Client: c})
	if err != nil {
		t.Fatal(err)
	}
	_, rec2, err := m.Create(ctx, sessionkit.CreateParams{Client: c})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Validate(ctx, tok, c); err != nil {
		t.Fatal(err)
	}
	m.Validate(ctx, "garbage", c)
	m.Validate(ctx, strings.Repeat("A", 43), c)
	if got := col.ActiveSessions(); got != 2 {
		t.Errorf("active = %d, want 2", got)
	}
	if _, err := m.Revoke(ctx, rec.Handle, sessionkit.ReasonOperator); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Revoke(ctx, rec2.Handle, "app-specific"); err != nil {
		t.Fatal(err)
	}
	m.Validate(ctx, tok, c)
	if got := col.ActiveSessions(); got != 0 {
		t.Errorf("active after revocations = %d, want 0", got)
	}

	want := `
# HELP sessionkit_sessions_created_total Sessions created.
# TYPE sessionkit_sessions_created_total counter
sessionkit_sessions_created_total 2
# HELP sessionkit_rejections_total Requests whose token was rejected, by reason.
# TYPE sessionkit_rejections_total counter
sessionkit_rejections_total{reason="binding"} 0
sessionkit_rejections_total{reason="duplicate_cookie"} 0
sessionkit_rejections_total{reason="expired"} 0
sessionkit_rejections_total{reason="malformed"} 1
sessionkit_rejections_total{reason="other"} 0
sessionkit_rejections_total{reason="revoked"} 1
sessionkit_rejections_total{reason="session_limit"} 0
sessionkit_rejections_total{reason="unknown"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "sessionkit_sessions_created_total", "sessionkit_rejections_total"); err != nil {
		t.Error(err)
	}
	if v := gatherValue(t, reg, "sessionkit_sessions_revoked_total", "other"); v != 1 {
		t.Errorf("revoked{reason=other} = %v, want 1", v)
	}
	if v := gatherValue(t, reg, "sessionkit_sessions_revoked_total", "operator"); v != 1 {
		t.Errorf("revoked{reason=operator} = %v, want 1", v)
	}

	// Expiry by idle deadline: the gauge drops when the deadline passes,
	// even if nobody presents the token again.
	tok3, _, _ := m.Create(ctx, sessionkit.CreateParams{Client: c})
	if got := col.ActiveSessions(); got != 1 {
		t.Errorf("active = %d, want 1", got)
	}
	clk.Add(sessionkit.DefaultIdleTimeout + time.Second)
	if got := col.ActiveSessions(); got != 0 {
		t.Errorf("active after idle deadline = %d, want 0", got)
	}
	if _, err := m.Validate(ctx, tok3, c); !errors.Is(err, sessionkit.ErrExpired) {
		t.Fatalf("Validate after idle: %v", err)
	}
	if v := gatherValue(t, reg, "sessionkit_sessions_expired_total", "idle"); v != 1 {
		t.Errorf("expired{idle} = %v, want 1", v)
	}
	if n, err := testutil.GatherAndCount(reg, "sessionkit_store_operation_duration_seconds"); err != nil || n != 13 {
		t.Errorf("store op series = %d, %v; want 13", n, err)
	}
	pts := col.Series(time.Time{})
	var created, rejected uint64
	for _, p := range pts {
		created += p.Created
		rejected += p.Rejected
	}
	if created != 3 || rejected != 4 {
		t.Errorf("series totals created=%d rejected=%d, want 3, 4: %+v", created, rejected, pts)
	}
}

func gatherValue(t *testing.T, reg *prometheus.Registry, name, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("%s{reason=%q} not found", name, reason)
	return 0
}

// cacheStore adds CacheStats to a memstore.
type cacheStore struct{ *memstore.Store }

func (cacheStore) CacheStats() (uint64, uint64) { return 7, 3 }

func TestInstrumentStoreForwards(t *testing.T) {
	col := metrics.New(metrics.Options{})
	plain := col.InstrumentStore(memstore.New(memstore.Options{}))
	if _, ok := plain.(sessionkit.KVStore); !ok {
		t.Error("instrumented memstore lost KVStore")
	}
	if _, ok := plain.(metrics.CacheStatser); ok {
		t.Error("instrumented memstore gained CacheStats")
	}
	reg := prometheus.NewRegistry()
	col.MustRegister(reg)
	if n, _ := testutil.GatherAndCount(reg, "sessionkit_store_cache_hits_total"); n != 0 {
		t.Error("cache metrics reported without a cache")
	}
	cached := col.InstrumentStore(cacheStore{memstore.New(memstore.Options{})})
	cs, ok := cached.(metrics.CacheStatser)
	if !ok {
		t.Fatal("CacheStats not forwarded")
	}
	if h, m := cs.CacheStats(); h != 7 || m != 3 {
		t.Errorf("CacheStats = %d, %d", h, m)
	}
	want := `
# HELP sessionkit_store_cache_hits_total Near-cache hits of the session store.
# TYPE sessionkit_store_cache_hits_total counter
sessionkit_store_cache_hits_total 7
# HELP sessionkit_store_cache_misses_total Near-cache misses of the session store.
# TYPE sessionkit_store_cache_misses_total counter
sessionkit_store_cache_misses_total 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "sessionkit_store_cache_hits_total", "sessionkit_store_cache_misses_total"); err != nil {
		t.Error(err)
	}
	// Store failures are counted by operation; sentinel answers are not.
	ctx := context.Background()
	if _, err := plain.GetByHandle(ctx, "nope"); !errors.Is(err, sessionkit.ErrNotFound) {
		t.Fatal(err)
	}
	plain.Close()
	if _, err := plain.GetByHandle(ctx, "nope"); !errors.Is(err, sessionkit.ErrStore) {
		t.Fatalf("closed store: %v", err)
	}
	if v := testutil.ToFloat64(storeErrs(t, reg, "get_by_handle")); v != 1 {
		t.Errorf("store errors{get_by_handle} = %v, want 1", v)
	}
}

func storeErrs(t *testing.T, reg *prometheus.Registry, op string) prometheus.Collector {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "sessionkit_store_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == op {
				return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "x", Help: "x"}, func() float64 { return m.GetCounter().GetValue() })
			}
		}
	}
	t.Fatalf("no store_errors_total{op=%q}", op)
	return nil
}

// TestPromtool scrapes the exposition after real traffic and checks it with
// promtool, which enforces the naming and unit conventions.
func TestPromtool(t *testing.T) {
	promtool := testenv.Program(t, "promtool")
	ctx := context.Background()
	m, col, reg, _ := setup(t)
	c := sessionkit.Client{IP: "192.0.2.1", UserAgent: "test"}
	tok, rec, _ := m.Create(ctx, sessionkit.CreateParams{Subject: "bob", Client: c})
	m.Validate(ctx, tok, c)
	m.Validate(ctx, "x", c)
	m.Revoke(ctx, rec.Handle, sessionkit.ReasonOperator)
	col.ObserveVerify(300 * time.Microsecond)
	col.ObserveRevocationLag(2 * time.Second)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(body, []byte("sessionkit_verify_duration_seconds_count 1")) {
		t.Fatalf("exposition lacks verify histogram:\n%s", body)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestMiddlewareObservesVerify(t *testing.T) {
	col := metrics.New(metrics.Options{})
	reg := prometheus.NewRegistry()
	col.MustRegister(reg)
	h := col.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for range 3 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "sessionkit_verify_duration_seconds" {
			if n := mf.GetMetric()[0].GetHistogram().GetSampleCount(); n != 3 {
				t.Fatalf("verify count = %d, want 3", n)
			}
			return
		}
	}
	t.Fatal("verify histogram missing")
}

func TestActiveBounded(t *testing.T) {
	ctx := context.Background()
	clk := testclock.New(time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC))
	col := metrics.New(metrics.Options{Now: clk.Now, MaxTracked: 2})
	m, _ := sessionkit.New(col.InstrumentStore(memstore.New(memstore.Options{})), sessionkit.Config{Events: col.Sink(), Now: clk.Now})
	for range 5 {
		if _, _, err := m.Create(ctx, sessionkit.CreateParams{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := col.ActiveSessions(); got != 2 {
		t.Errorf("active = %d, want 2 (bounded)", got)
	}
	reg := prometheus.NewRegistry()
	col.MustRegister(reg)
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "sessionkit_sessions_untracked_total" {
			if v := mf.GetMetric()[0].GetCounter().GetValue(); v != 3 {
				t.Errorf("untracked = %v, want 3", v)
			}
		}
	}
}

// BenchmarkValidate compares Manager.Validate with full monitoring (metrics
// sink, instrumented store, slog to io.Discard) against no events and a bare
// store. The ratio of the two ns/op is the monitoring overhead.
func BenchmarkValidate(b *testing.B) {
	run := func(b *testing.B, instrumented bool) {
		ctx := context.Background()
		var st sessionkit.Store = memstore.New(memstore.Options{})
		var sink sessionkit.EventSink = sessionkit.EventSinkFunc(func(context.Context, sessionkit.Event) {})
		if instrumented {
			col := metrics.New(metrics.Options{})
			prometheus.NewRegistry().MustRegister(col)
			st = col.InstrumentStore(st)
			sink = sessionkit.MultiSink{col.Sink(), sessionkit.SlogSink{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}}
		}
		m, err := sessionkit.New(st, sessionkit.Config{Events: sink})
		if err != nil {
			b.Fatal(err)
		}
		c := sessionkit.Client{IP: "192.0.2.1", UserAgent: "bench"}
		tok, _, err := m.Create(ctx, sessionkit.CreateParams{Subject: "alice", Client: c})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if _, err := m.Validate(ctx, tok, c); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("plain", func(b *testing.B) { run(b, false) })
	b.Run("monitored", func(b *testing.B) { run(b, true) })
}

// BenchmarkValidateOverhead runs the plain and the monitored setup of
// BenchmarkValidate alternately in blocks, so both see the same machine
// load, and reports their ratio (monitored/plain) as "ratio".
func BenchmarkValidateOverhead(b *testing.B) {
	ctx := context.Background()
	c := sessionkit.Client{IP: "192.0.2.1", UserAgent: "bench"}
	setup := func(instrumented bool) (*sessionkit.Manager, string) {
		var st sessionkit.Store = memstore.New(memstore.Options{})
		var sink sessionkit.EventSink = sessionkit.EventSinkFunc(func(context.Context, sessionkit.Event) {})
		if instrumented {
			col := metrics.New(metrics.Options{})
			prometheus.NewRegistry().MustRegister(col)
			st = col.InstrumentStore(st)
			sink = sessionkit.MultiSink{col.Sink(), sessionkit.SlogSink{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}}
		}
		m, err := sessionkit.New(st, sessionkit.Config{Events: sink})
		if err != nil {
			b.Fatal(err)
		}
		tok, _, err := m.Create(ctx, sessionkit.CreateParams{Subject: "alice", Client: c})
		if err != nil {
			b.Fatal(err)
		}
		return m, tok
	}
	plainM, plainTok := setup(false)
	monM, monTok := setup(true)
	const block = 1000
	var plain, mon time.Duration
	run := func(m *sessionkit.Manager, tok string) time.Duration {
		start := time.Now()
		for range block {
			if _, err := m.Validate(ctx, tok, c); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i += block {
		// Alternate which goes first, so neither gains from the other
		// warming caches.
		if i/block%2 == 0 {
			plain += run(plainM, plainTok)
			mon += run(monM, monTok)
		} else {
			mon += run(monM, monTok)
			plain += run(plainM, plainTok)
		}
	}
	n := float64((b.N + block - 1) / block * block)
	b.ReportMetric(float64(plain.Nanoseconds())/n, "plain-ns/op")
	b.ReportMetric(float64(mon.Nanoseconds())/n, "monitored-ns/op")
	b.ReportMetric(float64(mon)/float64(plain), "ratio")
}

// Anomalies are counted by rule, including the anomaly engine's rules.
func TestAnomaliesCountedByRule(t *testing.T) {
	col := metrics.New(metrics.Options{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(col)
	for _, rule := range []string{"token_guessing", "refresh_reuse", "ip_change", "something_new"} {
		col.Sink().Emit(context.Background(), sessionkit.Event{Type: sessionkit.EventAnomaly, Reason: rule})
	}
	for rule, want := range map[string]float64{"token_guessing": 1, "refresh_reuse": 1, "ip_change": 1, "other": 1, "login_surge": 0} {
		if v := gatherValue(t, reg, "sessionkit_anomalies_total", rule); v != want {
			t.Errorf("anomalies_total{reason=%q} = %v, want %v", rule, v, want)
		}
	}
}
