package admin_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/admin"
	"github.com/sessionkit/sessionkit/eventlog"
	"github.com/sessionkit/sessionkit/metrics"
	"github.com/sessionkit/sessionkit/sessiond"
	"github.com/sessionkit/sessionkit/store/memstore"
)

const testKey = "sk_test-admin-key"

// flakyStore fails every read and revocation with ErrStore while down is
// set, like a store that cannot be reached.
type flakyStore struct {
	sessionkit.Store
	down atomic.Bool
}

var errDown = fmt.Errorf("%w: connection refused", sessionkit.ErrStore)

func (s *flakyStore) Get(ctx context.Context, h sessionkit.TokenHash) (*sessionkit.Record, error) {
	if s.down.Load() {
		return nil, errDown
	}
	return s.Store.Get(ctx, h)
}

func (s *flakyStore) GetByHandle(ctx context.Context, h string) (*sessionkit.Record, error) {
	if s.down.Load() {
		return nil, errDown
	}
	return s.Store.GetByHandle(ctx, h)
}

func (s *flakyStore) ListSubject(ctx context.Context, subject string) ([]*sessionkit.Record, error) {
	if s.down.Load() {
		return nil, errDown
	}
	return s.Store.ListSubject(ctx, subject)
}

func (s *flakyStore) Revoke(ctx context.Context, h string, rv sessionkit.Revocation) (*sessionkit.Record, error) {
	if s.down.Load() {
		return nil, errDown
	}
	return s.Store.Revoke(ctx, h, rv)
}

// env is a sessiond server with the console mounted, wired like a
// deployment: the users' Manager reports events to a Recorder (history), a
// Stream (live page) and a metrics Collector (charts).
type env struct {
	t          *testing.T
	users      *sessionkit.Manager
	userStore  *flakyStore
	adminStore *flakyStore
	history    *eventlog.Memory
	recorder   *eventlog.Recorder
	stream     *eventlog.Stream
	console    *admin.Console
	handler    http.Handler
	keyID      string
	cookie     string // the admin session cookie, "name=value"
	userAgent  string
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, userAgent: "admin-test-browser/1.0"}
	e.history = eventlog.NewMemory(eventlog.Options{MaxEvents: 10_000})
	e.recorder = eventlog.NewRecorder(e.history, eventlog.RecorderOptions{})
	e.stream = eventlog.NewStream(eventlog.StreamOptions{Heartbeat: time.Second})
	collector := metrics.New(metrics.Options{})
	e.userStore = &flakyStore{Store: memstore.New(memstore.Options{})}
	users, err := sessionkit.New(e.userStore, sessionkit.Config{
		Events: sessionkit.MultiSink{e.recorder, e.stream, collector.Sink()},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.users = users
	keys := &sessiond.Keys{}
	keys.AddKeys(testKey)
	e.keyID = sessiond.HashKey(testKey).ID
	e.adminStore = &flakyStore{Store: memstore.New(memstore.Options{})}
	e.console, err = admin.New(admin.Options{
		Store:       e.adminStore,
		CheckAPIKey: keys.Check,
		History:     e.history,
		Stream:      e.stream,
		Series:      collector,
		Events:      sessionkit.EventSinkFunc(func(context.Context, sessionkit.Event) {}),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sessiond.New(sessiond.Config{Manager: users, Keys: keys, Logger: discard(), Extensions: []sessiond.Extension{e.console}})
	if err != nil {
		t.Fatal(err)
	}
	e.handler = srv.Handler()
	t.Cleanup(func() {
		e.stream.Close()
		e.recorder.Close()
		e.history.Close()
	})
	return e
}

// do sends a request with the admin cookie (if any) from the same origin,
// as a browser would, and returns the recorded response. hdr may adjust
// the request.
func (e *env) do(method, path string, form url.Values, hdr ...func(*http.Request)) *httptest.ResponseRecorder {
	e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, "https://sessiond.test"+path, body)
	r.RemoteAddr = "192.0.2.10:40000"
	r.Header.Set("User-Agent", e.userAgent)
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if method != http.MethodGet {
		r.Header.Set("Sec-Fetch-Site", "same-origin")
		r.Header.Set("Origin", "https://sessiond.test")
	}
	if e.cookie != "" {
		r.Header.Set("Cookie", e.cookie)
	}
	for _, h := range hdr {
		h(r)
	}
	w := httptest.NewRecorder()
	e.handler.ServeHTTP(w, r)
	return w
}

// signIn signs in with the test key and keeps the admin cookie.
func (e *env) signIn() {
	e.t.Helper()
	w := e.do("POST", "/admin/login", url.Values{"key": {testKey}})
	if w.Code != http.StatusSeeOther {
		e.t.Fatalf("sign-in: status %d, want 303; body:\n%s", w.Code, w.Body)
	}
	c := adminCookie(w.Result())
	if c == nil {
		e.t.Fatal("sign-in set no admin cookie")
	}
	e.cookie = c.Name + "=" + c.Value
}

func adminCookie(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == admin.DefaultCookieName {
			return c
		}
	}
	return nil
}

// userSession creates a session for subject from client.
func (e *env) userSession(subject string, c sessionkit.Client) (string, *sessionkit.Record) {
	e.t.Helper()
	tok, rec, err := e.users.Create(context.Background(), sessionkit.CreateParams{Subject: subject, AuthLevel: 1, Client: c})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok, rec
}

// flush waits until the recorder wrote every event to the history.
func (e *env) flush() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.recorder.Flush(ctx); err != nil {
		e.t.Fatal(err)
	}
}

func (s *flakyStore) RevokeSubject(ctx context.Context, subject, except string, rv sessionkit.Revocation) ([]*sessionkit.Record, error) {
	if s.down.Load() {
		return nil, errDown
	}
	return s.Store.RevokeSubject(ctx, subject, except, rv)
}
