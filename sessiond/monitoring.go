package sessiond

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/anomaly"
	"github.com/sessionkit/sessionkit/eventlog"
	"github.com/sessionkit/sessionkit/metrics"
)

// EnvWebhookSecret holds the webhook signing secret (whsec_...). Like API
// keys it has no flag, so it never appears in a process listing.
const EnvWebhookSecret = "SESSIOND_WEBHOOK_SECRET"

// EventsFileName is the bolt file of the event history in the data dir,
// separate from the session store's file.
const EventsFileName = "events.db"

// Metrics access modes for GET /metrics.
const (
	MetricsAPIKey = "api-key" // needs an API key, like /v1/ (the default)
	MetricsPublic = "public"  // open: for a scraper on a private network
	MetricsOff    = "off"
)

// MonitoringSettings are the command line settings of metrics, event
// history, webhooks and anomaly detection.
type MonitoringSettings struct {
	Metrics         string
	Events          string
	EventsRetention time.Duration
	EventsMax       int
	WebhookURLs     string
	WebhookTypes    string

	AnomalyBinding      string
	AnomalyTravel       string
	AnomalyGuessing     string
	AnomalyRefreshReuse string
	AnomalySurge        string
	AnomalyNewDevice    string
	GuessThreshold      int
	GuessWindow         time.Duration
	GuessBlock          time.Duration
}

func (s *MonitoringSettings) register(fs *flag.FlagSet) {
	fs.StringVar(&s.Metrics, "metrics", MetricsAPIKey, "GET /metrics: api-key (needs an API key), public, or off")
	fs.StringVar(&s.Events, "events", "", "event history: empty for the backend matching -store (bolt: <data-dir>/"+EventsFileName+"), memory:, bolt:PATH, redis://..., postgres://..., or off")
	fs.DurationVar(&s.EventsRetention, "events-retention", eventlog.DefaultRetention, "how long the event history keeps an event")
	fs.IntVar(&s.EventsMax, "events-max", eventlog.DefaultMaxEvents, "the most events the history keeps")
	fs.StringVar(&s.WebhookURLs, "webhook-url", "", "comma-separated URLs that receive events as Standard Webhooks, signed with "+EnvWebhookSecret)
	fs.StringVar(&s.WebhookTypes, "webhook-events", "", "comma-separated event types to send (default all), e.g. anomaly,revoked")
	fs.StringVar(&s.AnomalyBinding, "anomaly-binding", "alert", "on a session's network or User-Agent change: alert, step-up, revoke or off")
	fs.StringVar(&s.AnomalyTravel, "anomaly-travel", "alert", "on one session used from two networks within minutes: alert, step-up, revoke or off")
	fs.StringVar(&s.AnomalyGuessing, "anomaly-guessing", "alert", "on a burst of invalid tokens from one IP (answered 429): alert or off")
	fs.StringVar(&s.AnomalyRefreshReuse, "anomaly-refresh-reuse", "alert", "on a reused refresh token: alert, step-up, revoke or off")
	fs.StringVar(&s.AnomalySurge, "anomaly-surge", "alert", "on a subject's logins far above its usual rate: alert, step-up, revoke or off")
	fs.StringVar(&s.AnomalyNewDevice, "anomaly-new-device", "alert", "on a login from a device new to the subject: alert, step-up, revoke or off")
	fs.IntVar(&s.GuessThreshold, "guess-threshold", 20, "invalid tokens from one IP within -guess-window that block it")
	fs.DurationVar(&s.GuessWindow, "guess-window", time.Minute, "window of -guess-threshold")
	fs.DurationVar(&s.GuessBlock, "guess-block", 10*time.Minute, "how long a guessing IP's invalid tokens get 429")
}

// anomalyConfig builds the engine's configuration from the settings.
func (s *MonitoringSettings) anomalyConfig() (anomaly.Config, error) {
	var c anomaly.Config
	for _, a := range []struct {
		flag, val string
		dst       *anomaly.Action
	}{
		{"anomaly-binding", s.AnomalyBinding, &c.Binding},
		{"anomaly-travel", s.AnomalyTravel, &c.Travel},
		{"anomaly-guessing", s.AnomalyGuessing, &c.Guessing},
		{"anomaly-refresh-reuse", s.AnomalyRefreshReuse, &c.RefreshReuse},
		{"anomaly-surge", s.AnomalySurge, &c.Surge},
		{"anomaly-new-device", s.AnomalyNewDevice, &c.NewDevice},
	} {
		act, err := anomaly.ParseAction(a.val)
		if err != nil {
			return c, fmt.Errorf("-%s: %w", a.flag, err)
		}
		*a.dst = act
	}
	if c.Guessing != anomaly.Alert && c.Guessing != anomaly.Off {
		return c, errors.New("-anomaly-guessing: alert or off")
	}
	c.GuessingLimit = anomaly.LimiterOptions{Threshold: s.GuessThreshold, Window: s.GuessWindow, Block: s.GuessBlock}
	return c, nil
}

// MonitoringOptions configure a Monitoring. The zero value gives metrics
// (behind the API key) and anomaly detection with default rules, without
// history or webhooks.
type MonitoringOptions struct {
	// MetricsAccess is MetricsAPIKey (default), MetricsPublic or MetricsOff.
	MetricsAccess string
	// Metrics configures the collector.
	Metrics metrics.Options
	// History, if set, keeps events for GET /v1/events. Monitoring closes it.
	History eventlog.History
	// Webhooks, if it has URLs, delivers events.
	Webhooks eventlog.WebhookOptions
	// Anomaly configures the engine; DisableAnomaly turns it off.
	Anomaly        anomaly.Config
	DisableAnomaly bool
	// Logger receives background errors. Default slog.Default.
	Logger *slog.Logger
}

// Monitoring is the service's observability: a Prometheus collector, event
// history, live stream, webhooks and the anomaly engine. It is an Extension
// (mount it through Config.Extensions) and a HandlerWrapper (it times
// verification and answers token guessers with 429). Use Sink in the
// Manager's Config.Events, InstrumentStore on its store, then Start.
type Monitoring struct {
	opts     MonitoringOptions
	log      *slog.Logger
	Metrics  *metrics.Collector
	Registry *prometheus.Registry
	History  eventlog.History // nil without history
	Recorder *eventlog.Recorder
	Stream   *eventlog.Stream
	Webhooks *eventlog.Webhooks // nil without webhook URLs
	Anomaly  *anomaly.Engine    // nil when disabled
}

// NewMonitoring builds the parts o asks for.
func NewMonitoring(o MonitoringOptions) (*Monitoring, error) {
	switch o.MetricsAccess {
	case "":
		o.MetricsAccess = MetricsAPIKey
	case MetricsAPIKey, MetricsPublic, MetricsOff:
	default:
		return nil, fmt.Errorf("sessiond: metrics access %q: want api-key, public or off", o.MetricsAccess)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	mo := &Monitoring{opts: o, log: o.Logger, Metrics: metrics.New(o.Metrics), Registry: prometheus.NewRegistry(), Stream: eventlog.NewStream(eventlog.StreamOptions{})}
	reg := mo.Registry
	reg.MustRegister(mo.Metrics, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ns := o.Metrics.Namespace
	if ns == "" {
		ns = metrics.DefaultNamespace
	}
	counter := func(name, help string, f func() uint64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help}, func() float64 { return float64(f()) }))
	}
	counter("event_stream_dropped_total", "Events live-stream subscribers missed because they were too slow.", mo.Stream.Dropped)
	if o.History != nil {
		mo.History = o.History
		mo.Recorder = eventlog.NewRecorder(o.History, eventlog.RecorderOptions{
			OnError: func(err error) { mo.log.Error("event history", "err", err.Error()) },
		})
		counter("event_history_written_total", "Events written to the history.", func() uint64 { return mo.Recorder.Stats().Written })
		counter("event_history_dropped_total", "Events not written to the history because its queue was full.", func() uint64 { return mo.Recorder.Stats().Dropped })
		counter("event_history_failed_total", "Events lost to history write errors.", func() uint64 { return mo.Recorder.Stats().Failed })
	}
	if len(o.Webhooks.URLs) > 0 {
		wh, err := eventlog.NewWebhooks(o.Webhooks)
		if err != nil {
			mo.Close()
			return nil, err
		}
		mo.Webhooks = wh
		counter("webhook_delivered_total", "Webhook messages delivered.", func() uint64 { return wh.Stats().Delivered })
		counter("webhook_failed_total", "Webhook messages abandoned after the last attempt.", func() uint64 { return wh.Stats().Failed })
		counter("webhook_dropped_total", "Webhook messages dropped because the queue was full.", func() uint64 { return wh.Stats().Dropped })
		counter("webhook_retries_total", "Webhook delivery retries.", func() uint64 { return wh.Stats().Retries })
	}
	if !o.DisableAnomaly {
		cfg := o.Anomaly
		if cfg.OnError == nil {
			cfg.OnError = func(err error) { mo.log.Error("anomaly action", "err", err.Error()) }
		}
		mo.Anomaly = anomaly.New(cfg)
		counter("anomaly_findings_dropped_total", "Anomaly findings dropped because the engine's queue was full.", func() uint64 { return mo.Anomaly.Stats().Dropped })
	}
	return mo, nil
}

// OpenMonitoring builds the Monitoring the command line settings describe.
// The history backend follows the session store unless -events names one.
func OpenMonitoring(ctx context.Context, st *Settings, getenv func(string) string, log *slog.Logger) (*Monitoring, error) {
	ms := &st.Monitoring
	acfg, err := ms.anomalyConfig()
	if err != nil {
		return nil, err
	}
	o := MonitoringOptions{MetricsAccess: ms.Metrics, Anomaly: acfg, Logger: log}
	o.Metrics.AbsoluteTimeout = st.AbsTimeout
	if ms.WebhookURLs != "" {
		o.Webhooks = eventlog.WebhookOptions{URLs: splitList(ms.WebhookURLs), Secret: getenv(EnvWebhookSecret)}
		for _, t := range splitList(ms.WebhookTypes) {
			o.Webhooks.Types = append(o.Webhooks.Types, sessionkit.EventType(t))
		}
		if _, err := eventlog.ParseSecret(o.Webhooks.Secret); err != nil {
			return nil, fmt.Errorf("-webhook-url needs %s: %w", EnvWebhookSecret, err)
		}
	}
	h, err := openHistory(ctx, st)
	if err != nil {
		return nil, err
	}
	o.History = h
	mo, err := NewMonitoring(o)
	if err != nil && h != nil {
		h.Close()
	}
	return mo, err
}

func splitList(s string) []string {
	var out []string
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// openHistory opens the event history backend: -events, or the one
// matching -store.
func openHistory(ctx context.Context, st *Settings) (eventlog.History, error) {
	ms := &st.Monitoring
	o := eventlog.Options{Retention: ms.EventsRetention, MaxEvents: ms.EventsMax}
	url := ms.Events
	if url == "off" {
		return nil, nil
	}
	if url == "" {
		url = st.Store
		if kind, _ := StoreKind(url); kind == "bolt" {
			url = "bolt:" + filepath.Join(st.DataDir, EventsFileName)
		}
	}
	kind, err := StoreKind(url)
	if err != nil {
		return nil, fmt.Errorf("-events: %w", err)
	}
	switch kind {
	case "memory":
		return eventlog.NewMemory(o), nil
	case "bolt":
		path := strings.TrimPrefix(url, "bolt:")
		if path == "" {
			path = filepath.Join(st.DataDir, EventsFileName)
		}
		if path == BoltPath(st.Store, st.DataDir) {
			return nil, errors.New("-events: the history needs its own bolt file, not the session store's")
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("-events: %w", err)
		}
		return eventlog.OpenBolt(path, o)
	case "redis":
		prefix := "sessionkit:events:"
		if st.Namespace != "" {
			prefix = st.Namespace + ":events:"
		}
		return eventlog.OpenRedis(url, eventlog.RedisOptions{Options: o, Prefix: prefix})
	case "postgres":
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return eventlog.OpenPostgres(octx, url, eventlog.PostgresOptions{Options: o, Schema: st.Namespace})
	}
	return nil, fmt.Errorf("-events: unsupported backend %q", kind)
}

// Sink returns the EventSink to put in the Manager's Config.Events. The
// anomaly engine comes first: it marks rejected requests for the 429
// limiter synchronously.
func (mo *Monitoring) Sink() sessionkit.EventSink {
	sinks := sessionkit.MultiSink{}
	if mo.Anomaly != nil {
		sinks = append(sinks, mo.Anomaly)
	}
	sinks = append(sinks, mo.Metrics.Sink(), mo.Stream)
	if mo.Recorder != nil {
		sinks = append(sinks, mo.Recorder)
	}
	if mo.Webhooks != nil {
		sinks = append(sinks, mo.Webhooks)
	}
	return sinks
}

// InstrumentStore times st's operations (see metrics.Collector).
func (mo *Monitoring) InstrumentStore(st sessionkit.Store) sessionkit.Store {
	return mo.Metrics.InstrumentStore(st)
}

// Start lets the anomaly engine act through m.
func (mo *Monitoring) Start(m *sessionkit.Manager) {
	if mo.Anomaly != nil {
		mo.Anomaly.Start(m)
	}
}

// Close stops the background work, writing the queued history first, and
// closes the history.
func (mo *Monitoring) Close() error {
	if mo.Anomaly != nil {
		mo.Anomaly.Close()
	}
	mo.Stream.Close()
	if mo.Webhooks != nil {
		mo.Webhooks.Close()
	}
	var err error
	if mo.Recorder != nil {
		mo.Recorder.Close()
		err = mo.History.Close()
	}
	return err
}

// Mount adds GET /metrics, GET /v1/events, GET /v1/events/stream and GET
// /v1/metrics/series.
func (mo *Monitoring) Mount(mux *http.ServeMux, api APIContext) {
	prom := promhttp.HandlerFor(mo.Registry, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(mo.log.Handler(), slog.LevelError)})
	switch mo.opts.MetricsAccess {
	case MetricsAPIKey:
		mux.Handle("GET /metrics", api.RequireAPIKey(prom))
	case MetricsPublic:
		mux.Handle("GET /metrics", prom)
	}
	if mo.History != nil {
		mux.Handle("GET /v1/events", api.RequireAPIKey(http.HandlerFunc(mo.events)))
	}
	mux.Handle("GET /v1/events/stream", api.RequireAPIKey(mo.Stream))
	mux.Handle("GET /v1/metrics/series", api.RequireAPIKey(http.HandlerFunc(mo.series)))
}

// WrapHandler times verification (POST /v1/sessions/verify and GET
// /v1/auth) and lets the token-guessing limiter answer 429.
func (mo *Monitoring) WrapHandler(next http.Handler) http.Handler {
	h := next
	if mo.Anomaly != nil {
		h = mo.Anomaly.Limiter().Middleware(h)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		verify := (r.Method == http.MethodPost && r.URL.Path == "/v1/sessions/verify") ||
			(r.Method == http.MethodGet && r.URL.Path == "/v1/auth")
		if !verify {
			// Only the paths that validate tokens need the limiter's probe.
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		h.ServeHTTP(w, r)
		mo.Metrics.ObserveVerify(time.Since(start))
	})
}

// EventsResponse is the body of GET /v1/events.
type EventsResponse struct {
	Events []eventlog.Entry `json:"events"`
}

// events serves the history: ?subject=, ?handle=, ?type=, ?since= (RFC
// 3339) and ?limit= (1 to 1000, default 100), oldest first.
func (mo *Monitoring) events(w http.ResponseWriter, r *http.Request) {
	q, err := parseEventQuery(r)
	if err != nil {
		WriteError(w, http.StatusBadRequest, CodeInvalidRequest, err.Error())
		return
	}
	es, err := mo.History.Query(r.Context(), q)
	if err != nil {
		mo.log.Error("event history query", "err", err.Error())
		WriteError(w, http.StatusServiceUnavailable, CodeStoreUnavailable, "the event history is unavailable")
		return
	}
	if es == nil {
		es = []eventlog.Entry{}
	}
	WriteJSON(w, http.StatusOK, EventsResponse{Events: es})
}

func parseEventQuery(r *http.Request) (eventlog.Query, error) {
	v := r.URL.Query()
	q := eventlog.Query{Subject: v.Get("subject"), Handle: v.Get("handle"), Type: sessionkit.EventType(v.Get("type"))}
	for _, s := range []string{q.Subject, q.Handle, string(q.Type)} {
		if len(s) > 512 {
			return q, errors.New("a filter value is longer than 512 bytes")
		}
	}
	if s := v.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return q, errors.New("since must be an RFC 3339 time")
		}
		q.Since = t
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > eventlog.MaxQueryLimit {
			return q, fmt.Errorf("limit must be between 1 and %d", eventlog.MaxQueryLimit)
		}
		q.Limit = n
	}
	return q, nil
}

// SeriesResponse is the body of GET /v1/metrics/series.
type SeriesResponse struct {
	Points []metrics.Point `json:"points"`
}

// series serves per-minute created/rejected/active points: ?since= (RFC
// 3339, default the last hour).
func (mo *Monitoring) series(w http.ResponseWriter, r *http.Request) {
	since := time.Now().Add(-time.Hour)
	if s := r.URL.Query().Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			WriteError(w, http.StatusBadRequest, CodeInvalidRequest, "since must be an RFC 3339 time")
			return
		}
		since = t
	}
	pts := mo.Metrics.Series(since)
	if pts == nil {
		pts = []metrics.Point{}
	}
	WriteJSON(w, http.StatusOK, SeriesResponse{Points: pts})
}
