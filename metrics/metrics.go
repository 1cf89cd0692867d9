package metrics

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sessionkit/sessionkit"
)

// Defaults for Options.
const (
	DefaultNamespace  = "sessionkit"
	DefaultMaxTracked = 1 << 20
	DefaultSeriesSpan = 24 * time.Hour
)

// Options configures a Collector. The zero value is ready to use.
type Options struct {
	// Namespace prefixes every metric name. Default "sessionkit".
	Namespace string
	// AbsoluteTimeout is the session lifetime assumed for sessions whose
	// deadline the Collector does not see (no instrumented store). Default
	// sessionkit.DefaultAbsoluteTimeout.
	AbsoluteTimeout time.Duration
	// MaxTracked bounds the sessions tracked for the active gauge. Default
	// 1<<20 (about 100 MB at most).
	MaxTracked int
	// SeriesSpan is how much per-minute history Series keeps. Default 24h.
	SeriesSpan time.Duration
	// TimingSample times one in TimingSample of the store reads and
	// touches that every validation makes (all other operations are always
	// timed): reading the clock twice costs more than the rest of the
	// instrumentation together. Their operation counts are exact. Default
	// 8; 1 times every operation.
	TimingSample int
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Reasons with their own label value. Any other reason (an application's
// own revocation reason, say) is reported as "other", which keeps the number
// of series bounded.
// The reasons each counter is labelled with; anything else counts as
// "other", so the label sets stay bounded whatever an event carries.
var (
	revokedReasons = []string{
		sessionkit.ReasonLogout, sessionkit.ReasonOperator, sessionkit.ReasonLimit,
		sessionkit.ReasonRevokeAll, sessionkit.ReasonBinding, sessionkit.ReasonRefreshReuse,
		"anomaly", "other",
	}
	rejectedReasons = []string{
		sessionkit.ReasonUnknown, sessionkit.ReasonExpired, sessionkit.ReasonRevoked,
		sessionkit.ReasonMalformed, sessionkit.ReasonDuplicateCookie, sessionkit.ReasonBinding,
		sessionkit.ReasonLimit, "other",
	}
	// anomalyReasons are the core's binding changes and the anomaly
	// engine's rule names.
	anomalyReasons = []string{
		sessionkit.ReasonIPChange, sessionkit.ReasonUAChange, "impossible_travel", "token_guessing",
		"refresh_reuse", "login_surge", "new_device", "other",
	}
)

// reasonCounters is a counter vector curried for every known reason, so the
// event path does no label hashing or allocation.
type reasonCounters struct {
	vec *prometheus.CounterVec
	by  map[string]prometheus.Counter
}

func newReasonCounters(vec *prometheus.CounterVec, reasons []string) reasonCounters {
	rc := reasonCounters{vec: vec, by: make(map[string]prometheus.Counter, len(reasons))}
	for _, r := range reasons {
		rc.by[r] = vec.WithLabelValues(r)
	}
	return rc
}

func (rc reasonCounters) inc(reason string) {
	c, ok := rc.by[reason]
	if !ok {
		c = rc.by["other"]
	}
	c.Inc()
}

// Collector holds sessionkit's metrics. It implements prometheus.Collector.
// It is safe for concurrent use.
type Collector struct {
	opts Options

	created, authenticated, renewed, refreshed, refreshReuse, untracked prometheus.Counter
	revoked, expired, rejected, anomalies                               reasonCounters

	verify, revocationLag prometheus.Histogram
	storeOps              *prometheus.HistogramVec
	storeErrs             *prometheus.CounterVec
	storeCountDesc        *prometheus.Desc
	sample                uint32
	ops                   [numOps]opMetrics

	activeDesc, cacheHitsDesc, cacheMissesDesc *prometheus.Desc

	collectors []prometheus.Collector

	active       tracker
	storeTracked atomic.Bool // an instrumented store feeds active
	series       *series
	cacheMu      sync.Mutex
	caches       []CacheStatser
}

// New returns a Collector. Register it, or use it as a prometheus.Collector.
func New(o Options) *Collector {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.AbsoluteTimeout <= 0 {
		o.AbsoluteTimeout = sessionkit.DefaultAbsoluteTimeout
	}
	if o.MaxTracked <= 0 {
		o.MaxTracked = DefaultMaxTracked
	}
	if o.SeriesSpan <= 0 {
		o.SeriesSpan = DefaultSeriesSpan
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.TimingSample <= 0 {
		o.TimingSample = 8
	}
	ns := o.Namespace
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help})
	}
	reasonVec := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help}, []string{"reason"})
	}
	c := &Collector{opts: o, sample: uint32(o.TimingSample)}
	c.created = counter("sessions_created_total", "Sessions created.")
	c.authenticated = counter("sessions_authenticated_total", "Sessions that became a subject's (logins).")
	c.renewed = counter("sessions_renewed_total", "Sessions given a new token for the same subject.")
	c.refreshed = counter("refresh_tokens_rotated_total", "Refresh-token rotations.")
	c.refreshReuse = counter("refresh_token_reuse_total", "Reuses of a retired refresh token.")
	c.untracked = counter("sessions_untracked_total", "Sessions not tracked by the active gauge because the tracking limit was reached.")
	c.revoked = newReasonCounters(reasonVec("sessions_revoked_total", "Sessions revoked or logged out, by reason."), revokedReasons)
	c.expired = newReasonCounters(reasonVec("sessions_expired_total", "Sessions that passed a deadline, by reason (idle or absolute)."), []string{"idle", "absolute", "other"})
	c.rejected = newReasonCounters(reasonVec("rejections_total", "Requests whose token was rejected, by reason."), rejectedReasons)
	c.anomalies = newReasonCounters(reasonVec("anomalies_total", "Anomalies detected, by rule."), anomalyReasons)
	c.verify = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: ns, Name: "verify_duration_seconds",
		Help:    "Time to verify a session token (service verify endpoint and middleware load).",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	})
	c.revocationLag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: ns, Name: "revocation_propagation_seconds",
		Help:    "Time from a revocation until a verifier stopped accepting the session or token.",
		Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
	})
	c.storeOps = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: ns, Name: "store_operation_duration_seconds",
		Help:    "Latency of session store operations, by operation (reads and touches sampled, see Options.TimingSample).",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	}, []string{"op"})
	c.storeErrs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "store_errors_total",
		Help: "Session store operations that failed (errors wrapping ErrStore), by operation.",
	}, []string{"op"})
	c.storeCountDesc = prometheus.NewDesc(ns+"_store_operations_total", "Session store operations, by operation.", []string{"op"}, nil)
	for i := range c.ops {
		name := opNames[i]
		c.ops[i] = opMetrics{
			dur: c.storeOps.WithLabelValues(name), errs: c.storeErrs.WithLabelValues(name),
			sampled: hotOps[op(i)] && o.TimingSample > 1,
		}
	}
	c.activeDesc = prometheus.NewDesc(ns+"_sessions_active", "Live sessions as seen by this process since it started (see package documentation).", nil, nil)
	c.cacheHitsDesc = prometheus.NewDesc(ns+"_store_cache_hits_total", "Near-cache hits of the session store.", nil, nil)
	c.cacheMissesDesc = prometheus.NewDesc(ns+"_store_cache_misses_total", "Near-cache misses of the session store.", nil, nil)
	c.collectors = []prometheus.Collector{
		c.created, c.authenticated, c.renewed, c.refreshed, c.refreshReuse, c.untracked,
		c.revoked.vec, c.expired.vec, c.rejected.vec, c.anomalies.vec,
		c.verify, c.revocationLag, c.storeOps, c.storeErrs,
	}
	c.active.init(o.MaxTracked, c.untracked)
	c.series = newSeries(int(o.SeriesSpan / time.Minute))
	return c
}

// Register registers c with r.
func (c *Collector) Register(r prometheus.Registerer) error { return r.Register(c) }

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.collectors {
		m.Describe(ch)
	}
	ch <- c.storeCountDesc
	ch <- c.activeDesc
	ch <- c.cacheHitsDesc
	ch <- c.cacheMissesDesc
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.collectors {
		m.Collect(ch)
	}
	for i := range c.ops {
		ch <- prometheus.MustNewConstMetric(c.storeCountDesc, prometheus.CounterValue, float64(c.ops[i].count.Load()), opNames[i])
	}
	ch <- prometheus.MustNewConstMetric(c.activeDesc, prometheus.GaugeValue, float64(c.ActiveSessions()))
	if hits, misses, ok := c.cacheStats(); ok {
		ch <- prometheus.MustNewConstMetric(c.cacheHitsDesc, prometheus.CounterValue, float64(hits))
		ch <- prometheus.MustNewConstMetric(c.cacheMissesDesc, prometheus.CounterValue, float64(misses))
	}
}

// ActiveSessions returns the active-session gauge (see package
// documentation), first retiring the sessions whose deadline passed.
func (c *Collector) ActiveSessions() int64 {
	c.active.expire(c.opts.Now())
	return c.active.count.Load()
}

// CacheStatser is implemented by stores with a near cache. The counts are
// cumulative since the store was opened.
type CacheStatser interface {
	CacheStats() (hits, misses uint64)
}

func (c *Collector) cacheStats() (hits, misses uint64, ok bool) {
	c.cacheMu.Lock()
	defer c.cacheMu.Unlock()
	for _, s := range c.caches {
		h, m := s.CacheStats()
		hits, misses, ok = hits+h, misses+m, true
	}
	return hits, misses, ok
}

// ObserveVerify records the time one token verification took.
func (c *Collector) ObserveVerify(d time.Duration) { c.verify.Observe(d.Seconds()) }

// ObserveRevocationLag records how long after a revocation a verifier
// learned of it.
func (c *Collector) ObserveRevocationLag(d time.Duration) { c.revocationLag.Observe(d.Seconds()) }

// Middleware times next as verification: wrap the handler (or the session
// middleware, e.g. Manager.LoadAndSave) whose latency is verify latency.
func (c *Collector) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		next.ServeHTTP(w, r)
		c.ObserveVerify(time.Since(start))
	})
}

// Sink returns the EventSink that feeds c. Its Emit does not block and, for
// the events of the validation path, does not allocate.
func (c *Collector) Sink() sessionkit.EventSink { return sink{c} }

type sink struct{ c *Collector }

func (s sink) Emit(_ context.Context, e sessionkit.Event) { s.c.observe(e) }

func (c *Collector) observe(e sessionkit.Event) {
	t := e.Time
	if t.IsZero() {
		t = c.opts.Now()
	}
	switch e.Type {
	case sessionkit.EventCreated:
		c.created.Inc()
		if !c.storeTracked.Load() {
			// No instrumented store reports the deadline: estimate it.
			c.active.add(e.Handle, t.Add(c.opts.AbsoluteTimeout), false, t)
		}
		c.series.add(t, 1, 0, c.active.count.Load())
	case sessionkit.EventAuthenticated:
		c.authenticated.Inc()
	case sessionkit.EventRenewed:
		c.renewed.Inc()
	case sessionkit.EventRefreshed:
		c.refreshed.Inc()
	case sessionkit.EventRefreshReused:
		c.refreshReuse.Inc()
	case sessionkit.EventRevoked:
		c.revoked.inc(e.Reason)
		c.ended(e.Handle, t)
	case sessionkit.EventLoggedOut:
		c.revoked.inc(sessionkit.ReasonLogout)
		c.ended(e.Handle, t)
	case sessionkit.EventExpiredIdle:
		c.expired.inc("idle")
		c.ended(e.Handle, t)
	case sessionkit.EventExpiredAbs:
		c.expired.inc("absolute")
		c.ended(e.Handle, t)
	case sessionkit.EventRejected:
		c.rejected.inc(e.Reason)
		c.series.add(t, 0, 1, c.active.count.Load())
	case sessionkit.EventAnomaly:
		c.anomalies.inc(e.Reason)
	}
}

func (c *Collector) ended(handle string, t time.Time) {
	c.active.remove(handle, t)
	c.series.add(t, 0, 0, c.active.count.Load())
}

// Point is one minute of Series.
type Point struct {
	Time     time.Time `json:"time"` // start of the minute
	Created  uint64    `json:"created"`
	Rejected uint64    `json:"rejected"`
	// Active is the active-session gauge at the last event of the minute.
	Active int64 `json:"active"`
}

// Series returns the per-minute points since since, oldest first. Minutes
// without events are omitted.
func (c *Collector) Series(since time.Time) []Point { return c.series.since(since) }

var _ prometheus.Collector = (*Collector)(nil)

// MustRegister registers c with r and panics on failure, like
// prometheus.MustRegister.
func (c *Collector) MustRegister(r prometheus.Registerer) { r.MustRegister(c) }
