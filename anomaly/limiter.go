package anomaly

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/sessionkit/sessionkit"
)

// LimiterOptions configure a Limiter. The zero value takes the defaults.
type LimiterOptions struct {
	// Threshold rejected tokens from one IP within Window block the IP.
	// Defaults 20 and 1m.
	Threshold int
	Window    time.Duration
	// Block is how long the IP's rejected requests get 429. Default 10m.
	Block time.Duration
	// MaxIPs bounds the IPs tracked. Default 100,000.
	MaxIPs int
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Limiter counts rejected tokens per client IP and blocks IPs that guess.
// It is safe for concurrent use.
//
// A Limiter learns of rejections through Observe (an Engine calls it from
// Emit, synchronously, so the block starts with the request that crossed
// the threshold). Middleware turns the responses to rejected requests from a
// blocked IP into 429 Too Many Requests; requests whose token is valid are
// never refused.
type Limiter struct {
	opts LimiterOptions

	mu  sync.Mutex
	ips *lru[string, *ipState]
}

type ipState struct {
	windowStart  time.Time
	count        int
	blockedUntil time.Time
}

// NewLimiter returns a Limiter.
func NewLimiter(o LimiterOptions) *Limiter {
	if o.Threshold <= 0 {
		o.Threshold = 20
	}
	if o.Window <= 0 {
		o.Window = time.Minute
	}
	if o.Block <= 0 {
		o.Block = 10 * time.Minute
	}
	if o.MaxIPs <= 0 {
		o.MaxIPs = 100_000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Limiter{opts: o, ips: newLRU[string, *ipState](o.MaxIPs)}
}

// guessing reports whether a rejection with reason looks like a guessed
// token: one the server never issued.
func guessing(reason string) bool {
	return reason == sessionkit.ReasonUnknown || reason == sessionkit.ReasonMalformed
}

// Observe notes a rejected token from ip. It reports whether this rejection
// started a block, and the count in the window.
func (l *Limiter) Observe(ip string, now time.Time) (started bool, count int) {
	if ip == "" {
		return false, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	st, ok := l.ips.get(ip)
	if !ok {
		st = &ipState{windowStart: now}
		l.ips.put(ip, st)
	}
	if now.Sub(st.windowStart) >= l.opts.Window {
		st.windowStart, st.count = now, 0
	}
	st.count++
	if st.count >= l.opts.Threshold && !now.Before(st.blockedUntil) {
		st.blockedUntil = now.Add(l.opts.Block)
		return true, st.count
	}
	return false, st.count
}

// Blocked reports whether ip is blocked and for how much longer.
func (l *Limiter) Blocked(ip string) (bool, time.Duration) {
	if ip == "" {
		return false, 0
	}
	now := l.opts.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	st, ok := l.ips.get(ip)
	if !ok || !now.Before(st.blockedUntil) {
		return false, 0
	}
	return true, st.blockedUntil.Sub(now)
}

// probe is attached to a request's context by Middleware and marked by
// Mark when the request's token is rejected.
type probe struct {
	mu sync.Mutex
	ip string
}

type probeKey struct{}

// Mark records on ctx's request (if it passes through Middleware) that its
// token was rejected, for a client with ip. An Engine calls it from Emit.
func Mark(ctx context.Context, ip string) {
	if p, ok := ctx.Value(probeKey{}).(*probe); ok {
		p.mu.Lock()
		p.ip = ip
		if ip == "" {
			p.ip = "-"
		}
		p.mu.Unlock()
	}
}

func (p *probe) rejected() (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ip, p.ip != ""
}

// Middleware answers 429 to requests whose token was rejected (a rejection
// event was emitted with the request's context) while the client IP behind
// that rejection is blocked. The handler runs first, so a valid token is
// always served; only a rejected request's response is replaced. Place it
// outside the session middleware (Manager.LoadAndSave) or around an API
// handler that validates tokens. The events must reach the Limiter through
// an Engine in the Manager's Config.Events.
func (l *Limiter) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lw := &limitWriter{ResponseWriter: w, l: l}
		next.ServeHTTP(lw, r.WithContext(context.WithValue(r.Context(), probeKey{}, &lw.p)))
		lw.decide()
	})
}

// limitWriter decides at the first write whether the response is replaced.
type limitWriter struct {
	http.ResponseWriter
	l        *Limiter
	p        probe // one allocation with the writer
	decided  bool
	replaced bool
}

func (w *limitWriter) decide() {
	if w.decided {
		return
	}
	w.decided = true
	ip, rejected := w.p.rejected()
	if !rejected {
		return
	}
	blocked, wait := w.l.Blocked(ip)
	if !blocked {
		return
	}
	w.replaced = true
	h := w.ResponseWriter.Header()
	for k := range h {
		delete(h, k)
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
	w.ResponseWriter.WriteHeader(http.StatusTooManyRequests)
	b, _ := json.Marshal(map[string]map[string]string{"error": {"code": "too_many_requests", "message": "too many invalid session tokens from this client"}})
	w.ResponseWriter.Write(append(b, '\n'))
}

func (w *limitWriter) WriteHeader(code int) {
	w.decide()
	if !w.replaced {
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *limitWriter) Write(b []byte) (int, error) {
	w.decide()
	if w.replaced {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Flush starts the response if needed and flushes it.
func (w *limitWriter) Flush() {
	w.decide()
	http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *limitWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
