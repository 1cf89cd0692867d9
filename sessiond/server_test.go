package sessiond

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/store/memstore"
)

const testKey = "sk_test-key-0123456789"

// events records the events a Manager emits.
type events struct {
	mu sync.Mutex
	ev []sessionkit.Event
}

func (e *events) Emit(_ context.Context, ev sessionkit.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ev = append(e.ev, ev)
}

func (e *events) all() []sessionkit.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.ev)
}

type fixture struct {
	srv    *Server
	m      *sessionkit.Manager
	events *events
	h      http.Handler
}

func newFixture(t *testing.T, store sessionkit.Store, mod func(*Config, *sessionkit.Config)) *fixture {
	t.Helper()
	if store == nil {
		store = memstore.New(memstore.Options{})
	}
	t.Cleanup(func() { store.Close() })
	ev := &events{}
	mc := sessionkit.Config{Events: ev, MaxDataBytes: 1024}
	sc := Config{Logger: discardLogger()}
	if mod != nil {
		mod(&sc, &mc)
	}
	m, err := sessionkit.New(store, mc)
	if err != nil {
		t.Fatal(err)
	}
	keys := &Keys{}
	keys.AddKeys(testKey)
	sc.Manager, sc.Keys = m, keys
	srv, err := New(sc)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{srv: srv, m: m, events: ev, h: srv.Handler()}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("response body %q: %v", r.body, err)
	}
	return v
}

func (r response) code(t *testing.T) string {
	t.Helper()
	var e ErrorBody
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	return e.Error.Code
}

// do sends a request with the test API key.
func (f *fixture) do(t *testing.T, method, path, body string) response {
	t.Helper()
	return f.doWith(t, method, path, body, map[string]string{"Authorization": "Bearer " + testKey})
}

func (f *fixture) doWith(t *testing.T, method, path, body string, hdr map[string]string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// create makes a session through the API and returns its token and handle.
func (f *fixture) create(t *testing.T, body string) (token, handle string) {
	t.Helper()
	r := f.do(t, "POST", "/v1/sessions", body)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var out struct {
		Token   string
		Session Session
	}
	json.Unmarshal(r.body, &out)
	return out.Token, out.Session.Handle
}

func TestErrors(t *testing.T) {
	f := newFixture(t, nil, nil)
	tok, handle := f.create(t, `{"subject":"alice","data":{"k":1}}`)
	revTok, revHandle := f.create(t, `{"subject":"bob"}`)
	if r := f.do(t, "DELETE", "/v1/sessions/"+revHandle, ""); r.status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	unknown := strings.Repeat("A", sessionkit.TokenLen)
	big := `{"subject":"x","data":{"k":"` + strings.Repeat("a", 100<<10) + `"}}`
	tooMuchData := `{"subject":"x","data":{"k":"` + strings.Repeat("a", 2000) + `"}}`

	tests := []struct {
		name         string
		method, path string
		body         string
		hdr          map[string]string
		status       int
		code         string
	}{
		{"missing key", "POST", "/v1/sessions", `{}`, map[string]string{"Authorization": ""}, 401, CodeUnauthorized},
		{"wrong key", "POST", "/v1/sessions", `{}`, map[string]string{"Authorization": "Bearer sk_wrong"}, 401, CodeUnauthorized},
		{"basic auth", "GET", "/v1/sessions/" + handle, "", map[string]string{"Authorization": "Basic " + testKey}, 401, CodeUnauthorized},
		{"session token as key", "GET", "/v1/subjects/alice/sessions", "", map[string]string{"Authorization": "Bearer " + tok}, 401, CodeUnauthorized},
		{"missing key on list", "GET", "/v1/subjects/alice/sessions", "", map[string]string{"Authorization": ""}, 401, CodeUnauthorized},
		{"malformed json", "POST", "/v1/sessions", `{"subject":`, nil, 400, CodeInvalidJSON},
		{"syntax error", "POST", "/v1/sessions", `{"subject" "a"}`, nil, 400, CodeInvalidJSON},
		{"unknown field", "POST", "/v1/sessions", `{"subject":"a","admin":true}`, nil, 400, CodeInvalidJSON},
		{"wrong type", "POST", "/v1/sessions", `{"subject":5}`, nil, 400, CodeInvalidJSON},
		{"wrong type nested", "POST", "/v1/sessions/verify", `{"token":"x","client":{"ip":1}}`, nil, 400, CodeInvalidJSON},
		{"not an object", "POST", "/v1/sessions", `[1,2]`, nil, 400, CodeInvalidJSON},
		{"trailing data", "POST", "/v1/sessions", `{"subject":"a"} {"subject":"b"}`, nil, 400, CodeInvalidJSON},
		{"null body", "POST", "/v1/sessions", `null`, nil, 400, CodeInvalidJSON},
		{"string body", "POST", "/v1/sessions", `"x"`, nil, 400, CodeInvalidJSON},
		{"duplicate member", "POST", "/v1/sessions", `{"subject":"a","subject":"b"}`, nil, 400, CodeInvalidJSON},
		{"duplicate nested member", "POST", "/v1/sessions", `{"client":{"ip":"192.0.2.1","ip":"192.0.2.2"}}`, nil, 400, CodeInvalidJSON},
		{"trailing garbage", "POST", "/v1/sessions", `{"subject":"a"}x`, nil, 400, CodeInvalidJSON},
		{"empty body", "POST", "/v1/sessions/verify", ``, nil, 400, CodeInvalidJSON},
		{"oversized", "POST", "/v1/sessions", big, nil, 413, CodeBodyTooLarge},
		{"data too large", "POST", "/v1/sessions", tooMuchData, nil, 413, CodeDataTooLarge},
		{"negative auth level", "POST", "/v1/sessions", `{"auth_level":-1}`, nil, 400, CodeInvalidRequest},
		{"xml content type", "POST", "/v1/sessions", `{}`, map[string]string{"Content-Type": "application/xml"}, 415, CodeUnsupportedMediaType},
		{"multipart content type", "POST", "/v1/sessions", `{}`, map[string]string{"Content-Type": "multipart/form-data; boundary=x"}, 415, CodeUnsupportedMediaType},
		{"curl's default label, form body", "POST", "/v1/sessions/verify", `token=x`, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 400, CodeInvalidJSON},
		{"verify malformed token", "POST", "/v1/sessions/verify", `{"token":"short"}`, nil, 401, CodeInvalidToken},
		{"verify empty token", "POST", "/v1/sessions/verify", `{"token":""}`, nil, 401, CodeInvalidToken},
		{"verify unknown token", "POST", "/v1/sessions/verify", `{"token":"` + unknown + `"}`, nil, 401, CodeSessionNotFound},
		{"verify revoked", "POST", "/v1/sessions/verify", `{"token":"` + revTok + `"}`, nil, 401, CodeSessionRevoked},
		{"renew revoked", "POST", "/v1/sessions/renew", `{"token":"` + revTok + `"}`, nil, 401, CodeSessionRevoked},
		{"renew malformed", "POST", "/v1/sessions/renew", `{"token":"!"}`, nil, 401, CodeInvalidToken},
		{"logout unknown", "POST", "/v1/sessions/logout", `{"token":"` + unknown + `"}`, nil, 401, CodeSessionNotFound},
		{"logout revoked", "POST", "/v1/sessions/logout", `{"token":"` + revTok + `"}`, nil, 401, CodeSessionRevoked},
		{"get unknown", "GET", "/v1/sessions/nope", "", nil, 404, CodeSessionNotFound},
		{"patch unknown", "PATCH", "/v1/sessions/nope", `{"data":{}}`, nil, 404, CodeSessionNotFound},
		{"patch revoked", "PATCH", "/v1/sessions/" + revHandle, `{"data":{"a":1}}`, nil, 401, CodeSessionRevoked},
		{"patch without data", "PATCH", "/v1/sessions/" + handle, `{"version":1}`, nil, 400, CodeInvalidRequest},
		{"patch version conflict", "PATCH", "/v1/sessions/" + handle, `{"data":{"a":1},"version":99}`, nil, 409, CodeVersionConflict},
		{"patch version zero", "PATCH", "/v1/sessions/" + handle, `{"data":{"a":1},"version":0}`, nil, 409, CodeVersionConflict},
		{"patch negative version", "PATCH", "/v1/sessions/" + handle, `{"data":{"a":1},"version":-1}`, nil, 400, CodeInvalidJSON},
		{"patch data not object", "PATCH", "/v1/sessions/" + handle, `{"data":[1]}`, nil, 400, CodeInvalidJSON},
		{"patch data too large", "PATCH", "/v1/sessions/" + handle, `{"data":{"b":"` + strings.Repeat("b", 2000) + `"}}`, nil, 413, CodeDataTooLarge},
		{"delete unknown", "DELETE", "/v1/sessions/nope", "", nil, 404, CodeSessionNotFound},
		{"unknown route", "GET", "/v1/nothing", "", nil, 404, CodeNotFound},
		{"unknown root", "GET", "/", "", nil, 404, CodeNotFound},
		{"wrong method", "PUT", "/v1/sessions", `{}`, nil, 405, CodeMethodNotAllowed},
		{"wrong method healthz", "POST", "/healthz", "", nil, 405, CodeMethodNotAllowed},
		{"auth without cookie", "GET", "/v1/auth", "", nil, 401, CodeUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{"Authorization": "Bearer " + testKey}
			for k, v := range tt.hdr {
				hdr[k] = v
			}
			r := f.doWith(t, tt.method, tt.path, tt.body, hdr)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d (body %s)", r.status, tt.status, r.body)
			}
			if got := r.code(t); got != tt.code {
				t.Errorf("code %q, want %q", got, tt.code)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if cc := r.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
			if strings.Contains(string(r.body), tok) || strings.Contains(string(r.body), revTok) {
				t.Errorf("error body holds a token: %s", r.body)
			}
		})
	}
	// Bad input changed nothing.
	r := f.do(t, "GET", "/v1/sessions/"+handle, "")
	var got sessionResponse
	json.Unmarshal(r.body, &got)
	if got.Session.Version != 1 || string(got.Session.Data["k"]) != "1" || len(got.Session.Data) != 1 {
		t.Errorf("session changed by rejected requests: %s", r.body)
	}
}

func TestWrongMethodAllowHeader(t *testing.T) {
	f := newFixture(t, nil, nil)
	r := f.do(t, "DELETE", "/v1/sessions/verify", "")
	// DELETE /v1/sessions/{handle} matches: an unknown handle.
	if r.status != http.StatusNotFound {
		t.Errorf("DELETE verify: %d %s", r.status, r.body)
	}
	r = f.do(t, "POST", "/openapi.json", "")
	if r.status != http.StatusMethodNotAllowed || !strings.Contains(r.header.Get("Allow"), "GET") {
		t.Errorf("POST /openapi.json: %d, Allow %q", r.status, r.header.Get("Allow"))
	}
}

func TestLifecycle(t *testing.T) {
	f := newFixture(t, nil, nil)
	r := f.do(t, "POST", "/v1/sessions", `{"subject":"","data":{"cart":[1,2]},"client":{"ip":"192.0.2.1","user_agent":"test/1"}}`)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var created tokenResponse
	json.Unmarshal(r.body, &created)
	s := created.Session
	if created.Token == "" || s.Handle == "" || s.Subject != "" || s.AuthenticatedAt != nil || s.Version != 1 || string(s.Data["cart"]) != "[1,2]" {
		t.Fatalf("create response: %s", r.body)
	}
	raw := r.json(t)["session"].(map[string]any)
	for _, k := range []string{"handle", "subject", "auth_level", "created_at", "authenticated_at", "last_seen_at", "idle_deadline", "absolute_deadline", "client", "data", "version"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("session object lacks %q", k)
		}
	}
	if len(raw) != 11 {
		t.Errorf("session object has %d fields: %v", len(raw), raw)
	}
	if raw["authenticated_at"] != nil {
		t.Errorf("authenticated_at %v, want null", raw["authenticated_at"])
	}
	if ts, _ := raw["created_at"].(string); !strings.HasSuffix(ts, "Z") {
		t.Errorf("created_at %q not in UTC", ts)
	} else if _, err := time.Parse(time.RFC3339, ts); err != nil {
		t.Error(err)
	}

	r = f.do(t, "POST", "/v1/sessions/verify", `{"token":"`+created.Token+`","client":{"ip":"192.0.2.1","user_agent":"test/1"}}`)
	if r.status != 200 || !strings.Contains(string(r.body), s.Handle) {
		t.Fatalf("verify: %d %s", r.status, r.body)
	}

	// Login: the anonymous session becomes alice's, with a new token.
	r = f.do(t, "POST", "/v1/sessions/renew", `{"token":"`+created.Token+`","subject":"alice","auth_level":2}`)
	var renewed tokenResponse
	json.Unmarshal(r.body, &renewed)
	if r.status != 200 || renewed.Token == created.Token || renewed.Session.Subject != "alice" || renewed.Session.AuthLevel != 2 || renewed.Session.AuthenticatedAt == nil {
		t.Fatalf("renew: %d %s", r.status, r.body)
	}
	if string(renewed.Session.Data["cart"]) != "[1,2]" {
		t.Errorf("login lost the anonymous data: %s", r.body)
	}
	if r := f.do(t, "POST", "/v1/sessions/verify", `{"token":"`+created.Token+`"}`); r.status != 401 {
		t.Errorf("old token after renew: %d %s", r.status, r.body)
	}

	// Patch with and without a version; a stale version conflicts.
	v := renewed.Session.Version
	r = f.do(t, "PATCH", "/v1/sessions/"+s.Handle, fmt.Sprintf(`{"data":{"theme":"dark","cart":null},"version":%d}`, v))
	var patched sessionResponse
	json.Unmarshal(r.body, &patched)
	if r.status != 200 || patched.Session.Version != v+1 || string(patched.Session.Data["theme"]) != `"dark"` || patched.Session.Data["cart"] != nil {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	if r := f.do(t, "PATCH", "/v1/sessions/"+s.Handle, fmt.Sprintf(`{"data":{"theme":"light"},"version":%d}`, v)); r.status != 409 || r.code(t) != CodeVersionConflict {
		t.Errorf("stale patch: %d %s", r.status, r.body)
	}
	if r := f.do(t, "PATCH", "/v1/sessions/"+s.Handle, `{"data":{"n":1}}`); r.status != 200 {
		t.Errorf("unconditional patch: %d %s", r.status, r.body)
	}

	// A second and a third session for alice; revoke all but the first.
	tok2, h2 := f.create(t, `{"subject":"alice"}`)
	tok3, _ := f.create(t, `{"subject":"alice"}`)
	r = f.do(t, "GET", "/v1/subjects/alice/sessions", "")
	var list listResponse
	json.Unmarshal(r.body, &list)
	if r.status != 200 || len(list.Sessions) != 3 || list.Sessions[0].Handle != s.Handle {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	r = f.do(t, "DELETE", "/v1/subjects/alice/sessions?except="+s.Handle, "")
	if r.status != 200 || r.json(t)["revoked"] != float64(2) {
		t.Fatalf("revoke all: %d %s", r.status, r.body)
	}
	for _, tok := range []string{tok2, tok3} {
		if r := f.do(t, "POST", "/v1/sessions/verify", `{"token":"`+tok+`"}`); r.status != 401 || r.code(t) != CodeSessionRevoked {
			t.Errorf("revoked session verifies: %d %s", r.status, r.body)
		}
	}
	if r := f.do(t, "GET", "/v1/sessions/"+h2, ""); r.status != 200 {
		t.Errorf("get revoked session: %d", r.status)
	}
	if r := f.do(t, "GET", "/v1/subjects/nobody/sessions", ""); r.status != 200 || string(r.body) != "{\"sessions\":[]}\n" {
		t.Errorf("empty list: %d %s", r.status, r.body)
	}

	// Logout; a second logout is rejected.
	if r := f.do(t, "POST", "/v1/sessions/logout", `{"token":"`+renewed.Token+`"}`); r.status != 204 || len(r.body) != 0 {
		t.Fatalf("logout: %d %s", r.status, r.body)
	}
	if r := f.do(t, "POST", "/v1/sessions/logout", `{"token":"`+renewed.Token+`"}`); r.status != 401 || r.code(t) != CodeSessionRevoked {
		t.Errorf("second logout: %d %s", r.status, r.body)
	}
	// Revoking an ended session again succeeds.
	if r := f.do(t, "DELETE", "/v1/sessions/"+s.Handle, ""); r.status != 204 {
		t.Errorf("delete after logout: %d %s", r.status, r.body)
	}
}

func TestActor(t *testing.T) {
	f := newFixture(t, nil, nil)
	f.create(t, `{"subject":"carol"}`)
	want := "apikey:" + HashKey(testKey).ID
	found := false
	for _, e := range f.events.all() {
		if e.Type == sessionkit.EventCreated {
			found = true
			if e.Actor != want {
				t.Errorf("created event actor %q, want %q", e.Actor, want)
			}
		}
	}
	if !found {
		t.Fatal("no created event")
	}
}

func TestSessionLimit(t *testing.T) {
	f := newFixture(t, nil, func(_ *Config, mc *sessionkit.Config) { mc.MaxSessionsPerSubject = 1 })
	f.create(t, `{"subject":"dave"}`)
	r := f.do(t, "POST", "/v1/sessions", `{"subject":"dave"}`)
	if r.status != http.StatusConflict || r.code(t) != CodeSessionLimit {
		t.Errorf("second session: %d %s", r.status, r.body)
	}
}

func TestExpired(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	f := newFixture(t, nil, func(_ *Config, mc *sessionkit.Config) {
		mc.Now, mc.IdleTimeout, mc.TouchInterval = clock, 10*time.Second, time.Second
	})
	tok, _ := f.create(t, `{"subject":"erin"}`)
	mu.Lock()
	now = now.Add(11 * time.Second)
	mu.Unlock()
	r := f.do(t, "POST", "/v1/sessions/verify", `{"token":"`+tok+`"}`)
	if r.status != 401 || r.code(t) != CodeSessionExpired {
		t.Errorf("idle session: %d %s", r.status, r.body)
	}
}

// failingStore fails every call as an unreachable store does.
type failingStore struct{ sessionkit.Store }

var errDown = fmt.Errorf("%w: connection refused", sessionkit.ErrStore)

func (failingStore) Create(context.Context, *sessionkit.Record, sessionkit.Limit) ([]*sessionkit.Record, error) {
	return nil, errDown
}
func (failingStore) Get(context.Context, sessionkit.TokenHash) (*sessionkit.Record, error) {
	return nil, errDown
}
func (failingStore) GetByHandle(context.Context, string) (*sessionkit.Record, error) {
	return nil, errDown
}
func (failingStore) ListSubject(context.Context, string) ([]*sessionkit.Record, error) {
	return nil, errDown
}
func (failingStore) Ping(context.Context) error { return errDown }

func TestStoreUnavailable(t *testing.T) {
	f := newFixture(t, failingStore{memstore.New(memstore.Options{})}, nil)
	tok := strings.Repeat("A", sessionkit.TokenLen)
	for _, tt := range []struct{ method, path, body string }{
		{"POST", "/v1/sessions", `{"subject":"a"}`},
		{"POST", "/v1/sessions/verify", `{"token":"` + tok + `"}`},
		{"POST", "/v1/sessions/renew", `{"token":"` + tok + `"}`},
		{"GET", "/v1/sessions/h", ``},
		{"GET", "/v1/subjects/a/sessions", ``},
		{"GET", "/readyz", ``},
	} {
		r := f.do(t, tt.method, tt.path, tt.body)
		if r.status != http.StatusServiceUnavailable || r.code(t) != CodeStoreUnavailable {
			t.Errorf("%s %s: %d %s", tt.method, tt.path, r.status, r.body)
		}
		if strings.Contains(string(r.body), "refused") {
			t.Errorf("%s %s: internal error text leaked: %s", tt.method, tt.path, r.body)
		}
	}
	r := f.doWith(t, "GET", "/v1/auth", "", map[string]string{"Cookie": "__Host-session=" + tok})
	if r.status != http.StatusServiceUnavailable {
		t.Errorf("forward auth on a failing store: %d, want 503 (fail closed)", r.status)
	}
	if r := f.do(t, "GET", "/healthz", ""); r.status != 200 {
		t.Errorf("healthz: %d", r.status)
	}
}

func TestHealth(t *testing.T) {
	f := newFixture(t, nil, nil)
	for _, path := range []string{"/healthz", "/readyz", "/openapi.json"} {
		r := f.doWith(t, "GET", path, "", nil)
		if r.status != 200 || r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: %d %v", path, r.status, r.header)
		}
	}
	if r := f.doWith(t, "GET", "/healthz", "", nil); string(r.body) != "{\"status\":\"ok\"}\n" {
		t.Errorf("healthz body %q", r.body)
	}
}

func TestRecoverAndExtension(t *testing.T) {
	ext := ExtensionFunc(func(mux *http.ServeMux, api APIContext) {
		mux.Handle("GET /v1/panic", api.RequireAPIKey(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			panic("boom at secret place")
		})))
		mux.Handle("POST /v1/echo", api.RequireAPIKey(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var v struct{ A int }
			if err := DecodeJSON(w, r, api.MaxBodyBytes, &v); err != nil {
				WriteErr(w, err, http.StatusNotFound)
				return
			}
			WriteJSON(w, 200, v)
		})))
	})
	f := newFixture(t, nil, func(c *Config, _ *sessionkit.Config) { c.Extensions = []Extension{ext} })
	r := f.do(t, "GET", "/v1/panic", "")
	if r.status != 500 || r.code(t) != CodeInternal || strings.Contains(string(r.body), "boom") || strings.Contains(string(r.body), "goroutine") {
		t.Errorf("panic: %d %s", r.status, r.body)
	}
	if r := f.doWith(t, "GET", "/v1/panic", "", nil); r.status != 401 {
		t.Errorf("extension without key: %d", r.status)
	}
	if r := f.do(t, "POST", "/v1/echo", `{"A":1,"B":2}`); r.status != 400 || r.code(t) != CodeInvalidJSON {
		t.Errorf("extension decode: %d %s", r.status, r.body)
	}
	if r := f.do(t, "POST", "/v1/echo", `{"A":7}`); r.status != 200 || string(r.body) != "{\"A\":7}\n" {
		t.Errorf("extension echo: %d %s", r.status, r.body)
	}
}

// TestOpenAPIRoutes checks that the document and the mux agree.
func TestOpenAPIRoutes(t *testing.T) {
	f := newFixture(t, nil, nil)
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Errorf("openapi %q", doc.OpenAPI)
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			if method == "parameters" || method == "summary" || method == "description" {
				continue
			}
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	registered := f.srv.Routes()
	slices.Sort(documented)
	slices.Sort(registered)
	if !slices.Equal(documented, registered) {
		t.Errorf("routes and document differ:\nregistered %q\ndocumented %q", registered, documented)
	}
	// Every error code the package defines is in the error schema.
	for _, code := range []string{CodeInvalidJSON, CodeInvalidRequest, CodeBodyTooLarge, CodeUnsupportedMediaType, CodeUnauthorized,
		CodeSessionNotFound, CodeSessionExpired, CodeSessionRevoked, CodeInvalidToken, CodeVersionConflict, CodeDataTooLarge,
		CodeSessionLimit, CodeStoreFull, CodeStoreUnavailable, CodeNotFound, CodeMethodNotAllowed, CodeInternal, CodeRefreshTokenReused, "too_many_requests"} {
		if !strings.Contains(string(OpenAPI()), `"`+code+`"`) {
			t.Errorf("error code %q not documented", code)
		}
	}
}

func TestNewRequiresManager(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("New without a Manager succeeded")
	}
}

// Type errors name JSON types, never the server's Go types.
func TestDecodeErrorsSpeakJSON(t *testing.T) {
	for body, want := range map[string]string{
		`{"data":[1]}`:       "data: expected an object, got array",
		`{"subject":5}`:      "subject: expected a string, got number",
		`{"client":"x"}`:     "client: expected an object, got string",
		`{"persistent":"y"}`: "persistent: expected a boolean, got string",
	} {
		req := httptest.NewRequest("POST", "/", strings.NewReader(body))
		var v struct {
			Subject    string                     `json:"subject"`
			Data       map[string]json.RawMessage `json:"data"`
			Client     struct{ IP string }        `json:"client"`
			Persistent bool                       `json:"persistent"`
		}
		err := DecodeJSON(httptest.NewRecorder(), req, 0, &v)
		var re *RequestError
		if !errors.As(err, &re) || re.Message != want {
			t.Errorf("%s: %v, want message %q", body, err, want)
		}
	}
}
