package sessionkit_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit"
)

// app is a tiny handler set over the middleware.
func testApp(t testing.TB, e *env) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/read", func(w http.ResponseWriter, r *http.Request) {
		s := sessionkit.FromContext(r.Context())
		fmt.Fprintf(w, "%s|%d", s.Subject(), s.GetInt("n"))
	})
	mux.HandleFunc("/put", func(w http.ResponseWriter, r *http.Request) {
		s := sessionkit.FromContext(r.Context())
		key := r.URL.Query().Get("key")
		if key == "" {
			key = "n"
		}
		if err := s.Put(key, s.GetInt(key)+1); err != nil {
			t.Error(err)
		}
	})
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		s := sessionkit.FromContext(r.Context())
		if err := s.Login(r.Context(), "alice", 1); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	mux.HandleFunc("/remember", func(w http.ResponseWriter, r *http.Request) {
		s := sessionkit.FromContext(r.Context())
		s.Login(r.Context(), "alice", 1)
		s.SetPersistent(true)
	})
	mux.HandleFunc("/logout", func(w http.ResponseWriter, r *http.Request) {
		sessionkit.FromContext(r.Context()).Logout(r.Context())
	})
	mux.HandleFunc("/late", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "body")
		if err := sessionkit.FromContext(r.Context()).Put("x", 1); err != sessionkit.ErrCommitted {
			t.Errorf("Put after the response started: %v", err)
		}
	})
	return e.mgr.LoadAndSave(mux)
}

type result struct {
	code   int
	body   string
	cookie *http.Cookie
	header http.Header
}

func do(h http.Handler, path string, mod func(*http.Request)) result {
	req := httptest.NewRequest("GET", "https://app.test"+path, nil)
	if mod != nil {
		mod(req)
	}
	rw := httptest.NewRecorder()
	h.ServeHTTP(rw, req)
	res := rw.Result()
	out := result{code: res.StatusCode, body: rw.Body.String(), header: res.Header}
	for _, c := range res.Cookies() {
		out.cookie = c
	}
	return out
}

func withCookie(v string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Add("Cookie", sessionkit.DefaultCookieName+"="+v) }
}

func TestMiddlewareCookieDefaults(t *testing.T) {
	e := newEnv(t, sessionkit.Config{})
	h := testApp(t, e)

	// Reading without a session writes nothing.
	if r := do(h, "/read", nil); r.cookie != nil || r.header.Get("Cache-Control") != "" {
		t.Fatalf("anonymous read set a cookie: %+v", r.cookie)
	}
	if n := len(e.ev.all()); n != 0 {
		t.Fatalf("anonymous read stored something: %d events", n)
	}

	r := do(h, "/put", nil)
	c := r.cookie
	if c == nil {
		t.Fatal("no cookie after the first write")
	}
	raw := r.header.Get("Set-Cookie")
	for _, want := range []string{"__Host-session=", "Path=/", "HttpOnly", "Secure", "SameSite=Lax"} {
		if !strings.Contains(raw, want) {
			t.Errorf("Set-Cookie %q lacks %q", raw, want)
		}
	}
	for _, bad := range []string{"Domain", "Max-Age", "Expires"} {
		if strings.Contains(raw, bad) {
			t.Errorf("Set-Cookie %q has %s", raw, bad)
		}
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Error("cookie response is cacheable")
	}

	// Using the session without changing it writes no cookie.
	if r := do(h, "/read", withCookie(c.Value)); r.cookie != nil || r.body != "|1" {
		t.Fatalf("read: %q cookie %v", r.body, r.cookie)
	}
	// A change keeps the token.
	if r := do(h, "/put", withCookie(c.Value)); r.cookie != nil {
		t.Fatal("data change rewrote the cookie")
	}

	// Login renews the token; the old one is dead at once.
	r = do(h, "/login", withCookie(c.Value))
	if r.cookie == nil || r.cookie.Value == c.Value {
		t.Fatal("login did not issue a new token")
	}
	if got := do(h, "/read", withCookie(c.Value)); got.body != "|0" || got.cookie == nil || got.cookie.MaxAge >= 0 {
		t.Fatalf("old token after login: %q, cookie %+v", got.body, got.cookie)
	}
	if got := do(h, "/read", withCookie(r.cookie.Value)); got.body != "alice|2" {
		t.Fatalf("new token: %q", got.body)
	}

	// Logout ends it and clears the cookie.
	out := do(h, "/logout", withCookie(r.cookie.Value))
	if out.cookie == nil || out.cookie.MaxAge >= 0 || out.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("logout cookie: %+v", out.cookie)
	}
	if got := do(h, "/read", withCookie(r.cookie.Value)); got.body != "|0" {
		t.Fatalf("token works after logout: %q", got.body)
	}
}

func TestMiddlewareNeverAdoptsTokens(t *testing.T) {
	e := newEnv(t, sessionkit.Config{})
	h := testApp(t, e)
	planted := strings.Repeat("Q", 43)
	r := do(h, "/put", withCookie(planted))
	if r.cookie == nil || r.cookie.Value == planted || r.cookie.Value == "" {
		t.Fatalf("planted token adopted: %+v", r.cookie)
	}
	if e.ev.count(sessionkit.EventRejected, sessionkit.ReasonUnknown) != 1 {
		t.Fatal("no rejection event")
	}
	// A token from the URL or a header is ignored.
	good := r.cookie.Value
	for name, mod := range map[string]func(*http.Request){
		"query":  func(r *http.Request) { r.URL.RawQuery = "__Host-session=" + good + "&session=" + good },
		"bearer": func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+good) },
	} {
		if got := do(h, "/read", mod); got.body != "|0" {
			t.Errorf("%s token accepted: %q", name, got.body)
		}
	}
	// Two session cookies count as none.
	dup := do(h, "/read", func(r *http.Request) {
		r.Header.Add("Cookie", "__Host-session="+good+"; __Host-session="+planted)
	})
	if dup.body != "|0" || e.ev.count(sessionkit.EventRejected, sessionkit.ReasonDuplicateCookie) != 1 {
		t.Fatalf("duplicate cookies: %q", dup.body)
	}
}

func TestMiddlewareBearerOptIn(t *testing.T) {
	e := newEnv(t, sessionkit.Config{AllowBearer: true})
	h := testApp(t, e)
	tok := do(h, "/put", nil).cookie.Value
	if got := do(h, "/read", func(r *http.Request) { r.Header.Set("Authorization", "bearer "+tok) }); got.body != "|1" {
		t.Fatalf("bearer: %q", got.body)
	}
}

func TestMiddlewarePersistentCookie(t *testing.T) {
	e := newEnv(t, sessionkit.Config{AbsoluteTimeout: time.Hour, IdleTimeout: 30 * time.Minute})
	h := testApp(t, e)
	r := do(h, "/remember", nil)
	if r.cookie == nil || r.cookie.MaxAge <= 0 || r.cookie.MaxAge > 3600 {
		t.Fatalf("persistent cookie: %+v", r.cookie)
	}
	e.clock.Add(20 * time.Minute)
	r2 := do(h, "/login", withCookie(r.cookie.Value))
	if r2.cookie == nil || r2.cookie.MaxAge > 2400 {
		t.Fatalf("renewed persistent cookie outlives the absolute deadline: %+v", r2.cookie)
	}
}

func TestMiddlewareFailsClosed(t *testing.T) {
	e := newEnv(t, sessionkit.Config{})
	h := testApp(t, e)
	tok := do(h, "/login", nil).cookie.Value
	e.store.down.Store(true)
	for _, path := range []string{"/read", "/put"} {
		r := do(h, path, withCookie(tok))
		if r.code != http.StatusServiceUnavailable || strings.Contains(r.body, "alice") {
			t.Fatalf("%s with the store down: %d %q", path, r.code, r.body)
		}
		if r.cookie != nil {
			t.Fatal("store outage changed the cookie")
		}
	}
	// A new anonymous session cannot be saved either: 503, not a silent loss.
	if r := do(h, "/put", nil); r.code != http.StatusServiceUnavailable {
		t.Fatalf("save with the store down: %d", r.code)
	}
	e.store.down.Store(false)
	if r := do(h, "/read", withCookie(tok)); r.body != "alice|0" {
		t.Fatalf("after recovery: %q", r.body)
	}
}

func TestMiddlewareLateChangeIsRefused(t *testing.T) {
	e := newEnv(t, sessionkit.Config{})
	if r := do(testApp(t, e), "/late", nil); r.body != "body" {
		t.Fatal(r.body)
	}
}

func TestMiddlewareConcurrentRequestsLoseNothing(t *testing.T) {
	e := newEnv(t, sessionkit.Config{})
	h := testApp(t, e)
	tok := do(h, "/login", nil).cookie.Value
	const n = 50
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := do(h, fmt.Sprintf("/put?key=k%d", i), withCookie(tok)); r.code != 200 {
				t.Errorf("request %d: %d", i, r.code)
			}
		}()
	}
	wg.Wait()
	rec, err := e.mgr.Validate(ctx, tok, sessionkit.Client{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if string(rec.Data[fmt.Sprintf("k%d", i)]) != "1" {
			t.Fatalf("lost update of k%d; data %v", i, rec.Data)
		}
	}
	if e.store.updates.Load() < n {
		t.Fatalf("updates = %d", e.store.updates.Load())
	}
}

func TestTokenNeverLogged(t *testing.T) {
	var buf bytes.Buffer
	e := newEnv(t, sessionkit.Config{
		Events:  sessionkit.SlogSink{Logger: slog.New(slog.NewJSONHandler(&buf, nil))},
		Binding: sessionkit.Binding{OnUserAgentChange: sessionkit.BindReject},
	})
	h := testApp(t, e)
	var tokens []string
	first := do(h, "/put", nil).cookie.Value
	second := do(h, "/login", withCookie(first)).cookie.Value
	tokens = append(tokens, first, second)
	do(h, "/read", func(r *http.Request) {
		withCookie(second)(r)
		r.Header.Set("User-Agent", "evil\nforged=line")
	})
	do(h, "/read", withCookie(first))
	if buf.Len() == 0 {
		t.Fatal("no log output")
	}
	for _, tok := range tokens {
		if strings.Contains(buf.String(), tok) {
			t.Fatal("a token reached the log")
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if !strings.HasPrefix(line, "{") {
			t.Fatalf("log line split by a header value: %q", line)
		}
	}
}
