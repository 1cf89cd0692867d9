package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	scsredis "github.com/alexedwards/scs/redisstore"
	"github.com/alexedwards/scs/v2"
	scsmem "github.com/alexedwards/scs/v2/memstore"
	"github.com/boj/redistore"
	"github.com/gomodule/redigo/redis"
	"github.com/gorilla/sessions"
	"github.com/redis/rueidis"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/store/memstore"
	"github.com/sessionkit/sessionkit/store/redisstore"
)

// redisURL returns the shared Redis server, or skips the benchmark.
func redisURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("SESSIONKIT_REDIS_URL")
	if u == "" {
		tb.Skip("SESSIONKIT_REDIS_URL is not set (e.g. redis://127.0.0.1:6379/0): skipping Redis benchmark")
	}
	return u
}

// prefix returns a key prefix no other run uses, and deletes every key
// under it when tb ends.
func prefix(tb testing.TB, url string) string {
	tb.Helper()
	var b [6]byte
	rand.Read(b[:])
	p := "skbench" + hex.EncodeToString(b[:]) + ":"
	tb.Cleanup(func() { deleteKeys(tb, url, p) })
	return p
}

func deleteKeys(tb testing.TB, url, p string) {
	c := newRueidis(tb, url)
	defer c.Close()
	ctx := context.Background()
	for _, node := range c.Nodes() {
		var cursor uint64
		for {
			e, err := node.Do(ctx, node.B().Scan().Cursor(cursor).Match(p+"*").Count(1000).Build()).AsScanEntry()
			if err != nil {
				tb.Errorf("cleanup of %s*: %v", p, err)
				break
			}
			if len(e.Elements) > 0 {
				if err := node.Do(ctx, node.B().Del().Key(e.Elements...).Build()).Error(); err != nil {
					tb.Errorf("cleanup of %s*: %v", p, err)
				}
			}
			if cursor = e.Cursor; cursor == 0 {
				break
			}
		}
	}
}

// newRueidis connects the way redisstore does without its near cache.
func newRueidis(tb testing.TB, url string) rueidis.Client {
	tb.Helper()
	o, err := rueidis.ParseURL(url)
	if err != nil {
		tb.Fatal(err)
	}
	o.DisableCache = true
	o.DisableRetry = true
	c, err := rueidis.NewClient(o)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func newRedigoPool(tb testing.TB, url string) *redis.Pool {
	p := &redis.Pool{
		MaxIdle:     16,
		IdleTimeout: time.Minute,
		Dial:        func() (redis.Conn, error) { return redis.DialURL(url) },
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

// discardWriter is a ResponseWriter that costs nothing, so the benchmarks
// measure the libraries rather than a recorder.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

// counter is what the handlers share: the value of "n" the last request
// saw.
type counter struct{ seen atomic.Int64 }

// lib is one library with one store. handler returns its middleware around
// the load-only (modify false) or load+modify+save handler.
type lib struct {
	name  string
	redis bool
	// inCookie: the session data travels in the cookie, so a request that
	// replays one cookie always starts from the same value.
	inCookie bool
	// settle is how long to wait after creating the session before
	// measuring: a near cache bypasses keys its own instance wrote within
	// its TTL, to read its own writes.
	settle time.Duration
	setup  func(tb testing.TB, url, prefix string, c *counter) func(modify bool) http.Handler
}

var (
	// Keys for gorilla's securecookie: HMAC-SHA256 authentication, and
	// AES-256 encryption for the cookie store, whose cookie holds the data.
	hashKey  = []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	blockKey = []byte("0123456789abcdef0123456789abcdef")
)

func noEvents(context.Context, sessionkit.Event) {}

func sessionkitLib(name string, redisStore, near bool) lib {
	var settle time.Duration
	if near {
		settle = redisstore.DefaultNearCacheTTL + 100*time.Millisecond
	}
	return lib{name: name, redis: redisStore, settle: settle, setup: func(tb testing.TB, url, p string, c *counter) func(bool) http.Handler {
		var st sessionkit.Store
		if redisStore {
			s, err := redisstore.New(context.Background(), redisstore.Options{URL: url, Prefix: p, NearCache: near})
			if err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(func() { s.Close() })
			st = s
		} else {
			st = memstore.New(memstore.Options{})
		}
		mgr, err := sessionkit.New(st, sessionkit.Config{Events: sessionkit.EventSinkFunc(noEvents)})
		if err != nil {
			tb.Fatal(err)
		}
		return func(modify bool) http.Handler {
			return mgr.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				s := sessionkit.FromContext(r.Context())
				n := s.GetInt("n")
				if modify {
					n++
					s.Put("n", n)
				}
				c.seen.Store(int64(n))
			}))
		}
	}}
}

func scsLib(name string, redisStore bool) lib {
	return lib{name: name, redis: redisStore, setup: func(tb testing.TB, url, p string, c *counter) func(bool) http.Handler {
		sm := scs.New()
		if redisStore {
			sm.Store = scsredis.NewWithPrefix(newRedigoPool(tb, url), p)
		} else {
			ms := scsmem.New()
			tb.Cleanup(ms.StopCleanup)
			sm.Store = ms
		}
		return func(modify bool) http.Handler {
			return sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := sm.GetInt(r.Context(), "n")
				if modify {
					n++
					sm.Put(r.Context(), "n", n)
				}
				c.seen.Store(int64(n))
			}))
		}
	}}
}

func gorillaLib(name string, newStore func(tb testing.TB, url, p string) sessions.Store, redisStore bool) lib {
	return lib{name: name, redis: redisStore, setup: func(tb testing.TB, url, p string, c *counter) func(bool) http.Handler {
		st := newStore(tb, url, p)
		return func(modify bool) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				s, err := st.Get(r, "session")
				if err != nil {
					http.Error(w, "session store failed", http.StatusServiceUnavailable)
					return
				}
				n, _ := s.Values["n"].(int)
				if modify {
					n++
					s.Values["n"] = n
					if err := s.Save(r, w); err != nil {
						http.Error(w, "session store failed", http.StatusServiceUnavailable)
						return
					}
				}
				c.seen.Store(int64(n))
			})
		}
	}}
}

func cookieLib(l lib) lib {
	l.inCookie = true
	return l
}

var libs = []lib{
	sessionkitLib("sessionkit-memory", false, false),
	scsLib("scs-memory", false),
	cookieLib(gorillaLib("gorilla-cookie", func(testing.TB, string, string) sessions.Store {
		return sessions.NewCookieStore(hashKey, blockKey)
	}, false)),
	gorillaLib("gorilla-filesystem", func(tb testing.TB, _, _ string) sessions.Store {
		return sessions.NewFilesystemStore(tb.TempDir(), hashKey)
	}, false),
	sessionkitLib("sessionkit-redis", true, false),
	sessionkitLib("sessionkit-redis-nearcache", true, true),
	scsLib("scs-redis", true),
	gorillaLib("gorilla-redis", func(tb testing.TB, url, p string) sessions.Store {
		st, err := redistore.NewRediStoreWithPool(newRedigoPool(tb, url), hashKey)
		if err != nil {
			tb.Fatal(err)
		}
		st.SetKeyPrefix(p)
		return st
	}, true),
}

// start sets a library up, creates a session with n = 1 through its own
// middleware and returns the request that carries it.
func start(tb testing.TB, l lib, c *counter) (func(bool) http.Handler, *http.Request) {
	tb.Helper()
	url := ""
	if l.redis {
		url = redisURL(tb)
	}
	p := ""
	if url != "" {
		p = prefix(tb, url)
	}
	handler := l.setup(tb, url, p, c)
	first := httptest.NewRequest("GET", "/", nil)
	first.RemoteAddr = "192.0.2.1:1234"
	first.Header.Set("User-Agent", "bench")
	rec := httptest.NewRecorder()
	handler(true).ServeHTTP(rec, first)
	cookies := rec.Result().Cookies()
	if rec.Code != http.StatusOK || len(cookies) != 1 {
		tb.Fatalf("%s: creating a session: status %d, %d cookies", l.name, rec.Code, len(cookies))
	}
	req := httptest.NewRequest("GET", "/", nil)
	req.RemoteAddr = first.RemoteAddr
	req.Header.Set("User-Agent", "bench")
	req.Header.Set("Cookie", cookies[0].Name+"="+cookies[0].Value)
	serve(handler(false), req)
	if got := c.seen.Load(); got != 1 {
		tb.Fatalf("%s: the session was not loaded: n = %d, want 1", l.name, got)
	}
	time.Sleep(l.settle)
	return handler, req
}

// serve runs one request on a copy of req (gorilla keeps per-request state
// in the request) and a fresh header map.
func serve(h http.Handler, req *http.Request) {
	r := *req
	h.ServeHTTP(&discardWriter{h: make(http.Header, 2)}, &r)
}

// BenchmarkRequest measures one request through each library's middleware,
// one request at a time, so Redis stores show their latency.
func BenchmarkRequest(b *testing.B) {
	for _, op := range []string{"load", "modify"} {
		for _, l := range libs {
			b.Run(op+"/"+l.name, func(b *testing.B) {
				var c counter
				handler, req := start(b, l, &c)
				h := handler(op == "modify")
				b.ReportAllocs()
				for b.Loop() {
					serve(h, req)
				}
				b.StopTimer()
				want := int64(1)
				if op == "modify" && l.inCookie {
					want = 2
				} else if op == "modify" {
					want = int64(b.N) + 1
				}
				if got := c.seen.Load(); got != want {
					b.Fatalf("n = %d after the run, want %d", got, want)
				}
			})
		}
	}
}

// BenchmarkFloor measures what no session library can go below: the same
// request to a handler doing no session work, one raw rueidis GET of a
// value the size of a session record, and both together.
func BenchmarkFloor(b *testing.B) {
	req := httptest.NewRequest("GET", "/", nil)
	req.RemoteAddr = "192.0.2.1:1234"
	req.Header.Set("User-Agent", "bench")
	req.Header.Set("Cookie", "session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	var sink atomic.Int64
	b.Run("bare-handler", func(b *testing.B) {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { sink.Add(1) })
		b.ReportAllocs()
		for b.Loop() {
			serve(h, req)
		}
	})
	get := func(b *testing.B) (func(context.Context) int, context.Context) {
		url := redisURL(b)
		c := newRueidis(b, url)
		b.Cleanup(c.Close)
		key := prefix(b, url) + "raw"
		value := make([]byte, 256)
		rand.Read(value)
		ctx := context.Background()
		if err := c.Do(ctx, c.B().Set().Key(key).Value(rueidis.BinaryString(value)).Build()).Error(); err != nil {
			b.Fatal(err)
		}
		return func(ctx context.Context) int {
			v, err := c.Do(ctx, c.B().Get().Key(key).Build()).AsBytes()
			if err != nil {
				b.Fatal(err)
			}
			return len(v)
		}, ctx
	}
	b.Run("redis-get", func(b *testing.B) {
		do, ctx := get(b)
		b.ReportAllocs()
		for b.Loop() {
			sink.Add(int64(do(ctx)))
		}
	})
	b.Run("handler-redis-get", func(b *testing.B) {
		do, _ := get(b)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { sink.Add(int64(do(r.Context()))) })
		b.ReportAllocs()
		for b.Loop() {
			serve(h, req)
		}
	})
}

// fakeClock is a clock tests move by hand.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// writeCounter counts the writes a Store receives per session, and the
// shortest time between two writes of one session.
type writeCounter struct {
	sessionkit.Store
	clock  *fakeClock
	mu     sync.Mutex
	writes int
	last   map[string]time.Time
	minGap time.Duration
}

func (w *writeCounter) count(handle string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.clock.Now()
	w.writes++
	if t, ok := w.last[handle]; ok && (w.minGap == 0 || now.Sub(t) < w.minGap) {
		w.minGap = now.Sub(t)
	}
	w.last[handle] = now
}

func (w *writeCounter) Update(ctx context.Context, rec *sessionkit.Record, lim sessionkit.Limit) ([]*sessionkit.Record, error) {
	w.count(rec.Handle)
	return w.Store.Update(ctx, rec, lim)
}

func (w *writeCounter) Touch(ctx context.Context, handle string, a sessionkit.Activity) error {
	w.count(handle)
	return w.Store.Touch(ctx, handle, a)
}

// touchRun is the outcome of one simulation.
type touchRun struct {
	requests, writes int
	minGap           time.Duration
}

// simulateTouches serves requests load-only requests, spread evenly over
// period and over sessions sessions, with a fake clock, and counts the
// store writes that record activity.
func simulateTouches(tb testing.TB, st sessionkit.Store, sessions, requests int, period, interval time.Duration) touchRun {
	tb.Helper()
	clock := &fakeClock{}
	clock.ns.Store(time.Now().UnixNano())
	wc := &writeCounter{Store: st, clock: clock, last: make(map[string]time.Time)}
	mgr, err := sessionkit.New(wc, sessionkit.Config{Now: clock.Now, TouchInterval: interval, Events: sessionkit.EventSinkFunc(noEvents)})
	if err != nil {
		tb.Fatal(err)
	}
	var seen atomic.Bool
	h := mgr.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(sessionkit.FromContext(r.Context()).Exists())
	}))
	reqs := make([]*http.Request, sessions)
	for i := range reqs {
		tok, _, err := mgr.Create(context.Background(), sessionkit.CreateParams{Subject: "touch-user",
			Client: sessionkit.Client{IP: "192.0.2.1", UserAgent: "bench"}})
		if err != nil {
			tb.Fatal(err)
		}
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "192.0.2.1:1234"
		r.Header.Set("User-Agent", "bench")
		r.Header.Set("Cookie", sessionkit.DefaultCookieName+"="+tok)
		reqs[i] = r
	}
	step := period / time.Duration(requests)
	for i := range requests {
		clock.Advance(step)
		serve(h, reqs[i%sessions])
		if !seen.Load() {
			tb.Fatalf("request %d: session not found", i)
		}
	}
	return touchRun{requests: requests, writes: wc.writes, minGap: wc.minGap}
}

// touchBound is the most writes that keep to one per session per
// interval.
func touchBound(sessions int, period, interval time.Duration) int {
	return sessions * (int(period/interval) + 1)
}

// TestTouchWrites checks, on the memory store, that sessions in steady use
// cost at most one activity write per touch interval.
func TestTouchWrites(t *testing.T) {
	const sessions, requests = 10, 6000
	period, interval := time.Hour, time.Minute
	run := simulateTouches(t, memstore.New(memstore.Options{}), sessions, requests, period, interval)
	if max := touchBound(sessions, period, interval); run.writes > max {
		t.Errorf("%d writes for %d requests, want at most %d", run.writes, run.requests, max)
	}
	if run.writes < sessions*int(period/interval)/2 {
		t.Errorf("%d writes: activity is not being recorded", run.writes)
	}
	if run.minGap < interval {
		t.Errorf("two writes of one session %v apart, want at least %v", run.minGap, interval)
	}
	t.Logf("%d requests, %d writes, shortest gap %v", run.requests, run.writes, run.minGap)
}

// BenchmarkTouches runs the touch simulation: 10 sessions, 6000 requests
// over a simulated hour, touch interval one minute. It reports the writes
// per run; one op is one whole simulation.
func BenchmarkTouches(b *testing.B) {
	const sessions, requests = 10, 6000
	period, interval := time.Hour, time.Minute
	stores := []struct {
		name  string
		redis bool
	}{{"sessionkit-memory", false}, {"sessionkit-redis", true}}
	for _, s := range stores {
		b.Run(s.name, func(b *testing.B) {
			var run touchRun
			for b.Loop() {
				var st sessionkit.Store = memstore.New(memstore.Options{})
				if s.redis {
					url := redisURL(b)
					rs, err := redisstore.New(context.Background(), redisstore.Options{URL: url, Prefix: prefix(b, url)})
					if err != nil {
						b.Fatal(err)
					}
					st = rs
				}
				run = simulateTouches(b, st, sessions, requests, period, interval)
				st.Close()
			}
			if max := touchBound(sessions, period, interval); run.writes > max || run.minGap < interval {
				b.Fatalf("%d writes (at most %d), shortest gap %v", run.writes, max, run.minGap)
			}
			b.ReportMetric(float64(run.requests), "requests/run")
			b.ReportMetric(float64(run.writes), "writes/run")
			b.ReportMetric(run.minGap.Seconds(), "min-gap-s")
		})
	}
}
