// Package faultcheck checks, for any store, that the session middleware
// fails closed while the store's server is down and recovers by itself when
// it is back. Store packages call it from their fault tests with their own
// private server.
package faultcheck

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit"
)

// MiddlewareFailsClosed serves an application through the middleware over
// the store that open returns, logs in, runs kill (which stops the store's
// server) and checks that requests get 503 without the handler running and
// never an anonymous or stale session; then it runs restart and waits for
// the same store to serve again. keeps says whether the restarted server
// still has the session. Finally it closes the store and checks that no
// goroutine was left behind.
func MiddlewareFailsClosed(t *testing.T, open func() sessionkit.Store, kill, restart func(), keeps bool) {
	t.Helper()
	before := runtime.NumGoroutine()
	st := open()
	m, err := sessionkit.New(st, sessionkit.Config{
		TouchInterval: time.Second,
		Events:        sessionkit.EventSinkFunc(func(context.Context, sessionkit.Event) {}),
	})
	if err != nil {
		t.Fatal(err)
	}
	app := newFaultApp(t, m)
	checkFailClosed(t, app, kill, restart, keeps)
	app.close()
	if err := st.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	waitGoroutines(t, before)
}

// faultApp is an application behind the session middleware, served over
// HTTP, that records whether its handlers ran.
type faultApp struct {
	t      *testing.T
	srv    *httptest.Server
	client *http.Client
	ran    atomic.Bool
}

func newFaultApp(t *testing.T, m *sessionkit.Manager) *faultApp {
	a := &faultApp{t: t}
	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		a.ran.Store(true)
		if err := sessionkit.FromContext(r.Context()).Login(r.Context(), "alice", 1); err != nil {
			http.Error(w, "login failed", http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		a.ran.Store(true)
		s := sessionkit.FromContext(r.Context())
		if !s.Exists() {
			io.WriteString(w, "-")
			return
		}
		io.WriteString(w, s.Subject())
	})
	mux.HandleFunc("/put", func(w http.ResponseWriter, r *http.Request) {
		a.ran.Store(true)
		sessionkit.FromContext(r.Context()).Put("n", 1)
	})
	a.srv = httptest.NewServer(m.LoadAndSave(mux))
	a.client = &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	return a
}

type faultReply struct {
	status int
	body   string
	cookie *http.Cookie // the session cookie set, if any
	ran    bool         // the handler ran
}

func (a *faultApp) get(path, token string) faultReply {
	a.t.Helper()
	a.ran.Store(false)
	rep, err := a.do(path, token)
	if err != nil {
		a.t.Fatalf("GET %s: %v", path, err)
	}
	rep.ran = a.ran.Load()
	return rep
}

// do sends one request; unlike get it is safe for concurrent use, and
// leaves ran unset.
func (a *faultApp) do(path, token string) (faultReply, error) {
	req, _ := http.NewRequest("GET", a.srv.URL+path, nil)
	if token != "" {
		req.Header.Set("Cookie", sessionkit.DefaultCookieName+"="+token)
	}
	res, err := a.client.Do(req)
	if err != nil {
		return faultReply{}, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	rep := faultReply{status: res.StatusCode, body: string(b)}
	for _, c := range res.Cookies() {
		if c.Name == sessionkit.DefaultCookieName {
			rep.cookie = c
		}
	}
	return rep, nil
}

// loadDuring sends requests carrying tok from a few goroutines while crash
// runs, and fails the test for any reply other than the session's subject
// or the middleware's 503: above all a request served as anonymous, or a
// cleared cookie, because a store error was taken for "no such session".
func (a *faultApp) loadDuring(tok string, crash func()) {
	a.t.Helper()
	stop := make(chan struct{})
	bad := make(chan string, 8)
	var served, refused atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, err := a.do("/whoami", tok)
				switch {
				case err != nil:
					bad <- err.Error()
				case r.cookie != nil:
					bad <- fmt.Sprintf("status %d: session cookie changed: %v", r.status, r.cookie)
				case r.status == 200 && r.body == "alice":
					served.Add(1)
					continue
				case r.status == http.StatusServiceUnavailable && r.body == "session store unavailable\n":
					refused.Add(1)
					continue
				default:
					bad <- fmt.Sprintf("status %d body %q", r.status, r.body)
				}
				return
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	crash()
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	close(bad)
	for msg := range bad {
		a.t.Errorf("request during the crash: %s; want 200 for the session or 503", msg)
	}
	if refused.Load() == 0 {
		a.t.Errorf("no request during the crash got 503 (%d served)", served.Load())
	}
	a.t.Logf("during the crash: %d requests served, %d refused with 503", served.Load(), refused.Load())
}

// close stops the server and drops the client's connections, so that
// neither leaves goroutines behind.
func (a *faultApp) close() {
	a.srv.Close()
	a.client.CloseIdleConnections()
}

// waitGoroutines waits up to 2s for the goroutine count to fall back to at
// most before+slack; the runtime and net/http may keep a few briefly.
func waitGoroutines(t *testing.T, before int) {
	t.Helper()
	const slack = 2
	deadline := time.Now().Add(2 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before+slack {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines: %d before the store, %d after Close\n%s", before, n, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkFailClosed logs in, runs kill and checks that every request fails
// closed, then runs restart and waits for the same manager to serve again.
// keeps says whether the restarted server still has the session.
func checkFailClosed(t *testing.T, app *faultApp, kill, restart func(), keeps bool) {
	t.Helper()
	r := app.get("/login", "")
	if r.status != 200 || r.cookie == nil || r.cookie.Value == "" {
		t.Fatalf("login: %d %q cookie %v", r.status, r.body, r.cookie)
	}
	tok := r.cookie.Value
	// Twice: the second read is the one a near-cache would answer.
	for range 2 {
		if r := app.get("/whoami", tok); r.status != 200 || r.body != "alice" {
			t.Fatalf("whoami before the crash: %d %q", r.status, r.body)
		}
	}

	app.loadDuring(tok, kill)
	for i := range 3 {
		r := app.get("/whoami", tok)
		if r.status != http.StatusServiceUnavailable || r.ran {
			t.Fatalf("request %d with a session cookie, store down: status %d body %q, handler ran %v; want 503 without the handler", i, r.status, r.body, r.ran)
		}
		if r.cookie != nil {
			t.Errorf("store down: the response touched the session cookie: %v", r.cookie)
		}
	}
	r = app.get("/put", "")
	if r.status != http.StatusServiceUnavailable {
		t.Errorf("new session, store down: status %d body %q, want 503", r.status, r.body)
	}
	if r.cookie != nil && r.cookie.Value != "" {
		t.Errorf("new session, store down: a session cookie was issued")
	}
	r = app.get("/login", "")
	if r.status == 200 || (r.cookie != nil && r.cookie.Value != "") {
		t.Errorf("login, store down: status %d cookie %v, want a failure without a session", r.status, r.cookie)
	}

	restart()
	start, failed := time.Now(), 0
	for {
		r = app.get("/whoami", tok)
		if r.status != http.StatusServiceUnavailable {
			break
		}
		failed++
		if r.ran {
			t.Fatal("handler ran on a 503")
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("no recovery 10s after the restart: %d %q", r.status, r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("recovered %v after the server accepted connections again (%d requests got 503 meanwhile)", time.Since(start).Round(time.Millisecond), failed)
	want := "-"
	if keeps {
		want = "alice"
	}
	if r.status != 200 || r.body != want {
		t.Fatalf("old cookie after the restart: %d %q, want 200 %q", r.status, r.body, want)
	}
	if !keeps && (r.cookie == nil || r.cookie.MaxAge >= 0) {
		t.Errorf("unknown token after the restart: cookie not cleared: %v", r.cookie)
	}
	// Again: a near-cache must not have kept the lost session either.
	if r := app.get("/whoami", tok); r.status != 200 || r.body != want {
		t.Fatalf("old cookie after the restart, again: %d %q, want 200 %q", r.status, r.body, want)
	}
	if r := app.get("/put", ""); r.status != 200 || r.cookie == nil || r.cookie.Value == "" {
		t.Errorf("new session after the restart: %d %q cookie %v", r.status, r.body, r.cookie)
	}
	if r := app.get("/login", ""); r.status != 200 || r.cookie == nil {
		t.Errorf("login after the restart: %d %q", r.status, r.body)
	} else if r := app.get("/whoami", r.cookie.Value); r.body != "alice" {
		t.Errorf("new login after the restart not served: %d %q", r.status, r.body)
	}
}
