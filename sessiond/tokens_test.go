package sessiond_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/sessiond"
	"github.com/sessionkit/sessionkit/store/memstore"
)

const testAPIKey = "test-api-key-0123456789"

type tokenServer struct {
	url string
	m   *sessionkit.Manager
}

func newTokenServer(t *testing.T, ts sessiond.TokenSettings) *tokenServer {
	t.Helper()
	store := memstore.New(memstore.Options{})
	t.Cleanup(func() { store.Close() })
	tokens, err := sessiond.NewTokens(t.Context(), ts, store, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	m, err := sessionkit.New(store, sessionkit.Config{Events: tokens.Revocations})
	if err != nil {
		t.Fatal(err)
	}
	keys := &sessiond.Keys{}
	keys.AddKeys(testAPIKey)
	srv, err := sessiond.New(sessiond.Config{
		Manager: m, Keys: keys, Bearer: tokens, Extensions: []sessiond.Extension{tokens},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &tokenServer{url: hs.URL, m: m}
}

func defaultTokenSettings() sessiond.TokenSettings {
	return sessiond.TokenSettings{
		Issuer: "https://sessiond.test", Audience: "api", Lifetime: 5 * time.Minute, Grace: time.Second,
		Alg: "EdDSA", Rotation: 24 * time.Hour, PrePublish: 10 * time.Minute,
	}
}

func (s *tokenServer) do(t *testing.T, method, path, key, ctype, body string, hdr map[string]string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &out)
	return resp, out
}

func tokErrCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func TestTokenEndpoints(t *testing.T) {
	s := newTokenServer(t, defaultTokenSettings())
	tok, rec, err := s.m.Create(context.Background(), sessionkit.CreateParams{Subject: "alice", AuthLevel: 2})
	if err != nil {
		t.Fatal(err)
	}
	const js = "application/json"
	// The API key is required.
	if resp, _ := s.do(t, "POST", "/v1/tokens", "", js, `{"token":"`+tok+`"}`, nil); resp.StatusCode != 401 {
		t.Fatalf("without API key: %d", resp.StatusCode)
	}
	resp, pair := s.do(t, "POST", "/v1/tokens", testAPIKey, js, `{"token":"`+tok+`"}`, nil)
	if resp.StatusCode != 200 || pair["token_type"] != "Bearer" || pair["expires_in"].(float64) != 300 {
		t.Fatalf("POST /v1/tokens: %d %v", resp.StatusCode, pair)
	}
	at, rt := pair["access_token"].(string), pair["refresh_token"].(string)
	if resp, body := s.do(t, "POST", "/v1/tokens", testAPIKey, js, `{"token":"nope"}`, nil); resp.StatusCode != 401 || tokErrCode(body) != "invalid_token" {
		t.Fatalf("bad session token: %d %v", resp.StatusCode, body)
	}
	if resp, body := s.do(t, "POST", "/v1/tokens", testAPIKey, js, `{"token":"x","extra":1}`, nil); resp.StatusCode != 400 {
		t.Fatalf("unknown field: %d %v", resp.StatusCode, body)
	}

	// JWKS needs no key and may be cached.
	resp, jwks := s.do(t, "GET", "/.well-known/jwks.json", "", "", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Cache-Control"), "max-age") || len(jwks["keys"].([]any)) != 1 {
		t.Fatalf("JWKS: %d %v", resp.StatusCode, jwks)
	}
	k := jwks["keys"].([]any)[0].(map[string]any)
	if k["use"] != "sig" || k["alg"] != "EdDSA" || k["kid"] == "" || k["d"] != nil {
		t.Fatalf("JWK = %v", k)
	}

	// Introspection: form and JSON.
	resp, in := s.do(t, "POST", "/v1/tokens/introspect", testAPIKey, "application/x-www-form-urlencoded", "token="+url.QueryEscape(at), nil)
	if resp.StatusCode != 200 || in["active"] != true || in["sub"] != "alice" || in["sid"] != rec.Handle || in["auth_level"].(float64) != 2 {
		t.Fatalf("introspect: %d %v", resp.StatusCode, in)
	}
	for name, body := range map[string]string{
		"refresh token": `{"token":"` + rt + `"}`,
		"garbage":       `{"token":"a.b.c"}`,
		"wrong aud":     `{"token":"` + at + `","audience":"other"}`,
		"bad JSON":      `{"token":`,
		"session token": `{"token":"` + tok + `"}`,
	} {
		resp, in := s.do(t, "POST", "/v1/tokens/introspect", testAPIKey, js, body, nil)
		if resp.StatusCode != 200 || in["active"] != false || len(in) != 1 {
			t.Fatalf("introspect %s: %d %v", name, resp.StatusCode, in)
		}
	}
	big := `{"token":"` + strings.Repeat("a", 200<<10) + `"}`
	if resp, _ := s.do(t, "POST", "/v1/tokens/introspect", testAPIKey, js, big, nil); resp.StatusCode != 413 {
		t.Fatalf("oversized introspection: %d", resp.StatusCode)
	}

	// Forward auth accepts the access token, never the session token.
	resp, _ = s.do(t, "GET", "/v1/auth", "", "", "", map[string]string{"Authorization": "Bearer " + at})
	if resp.StatusCode != 200 || resp.Header.Get("X-Session-Subject") != "alice" || resp.Header.Get("X-Session-Handle") != rec.Handle {
		t.Fatalf("GET /v1/auth with access token: %d %v", resp.StatusCode, resp.Header)
	}
	if resp, _ := s.do(t, "GET", "/v1/auth", "", "", "", map[string]string{"Authorization": "Bearer " + tok}); resp.StatusCode != 401 {
		t.Fatalf("GET /v1/auth with session token as Bearer: %d", resp.StatusCode)
	}

	// Refresh, then reuse after the grace window.
	resp, p2 := s.do(t, "POST", "/v1/tokens/refresh", testAPIKey, js, `{"refresh_token":"`+rt+`"}`, nil)
	if resp.StatusCode != 200 || p2["refresh_token"] == rt {
		t.Fatalf("refresh: %d %v", resp.StatusCode, p2)
	}
	time.Sleep(1100 * time.Millisecond)
	resp, body := s.do(t, "POST", "/v1/tokens/refresh", testAPIKey, js, `{"refresh_token":"`+rt+`"}`, nil)
	if resp.StatusCode != 401 || tokErrCode(body) != sessiond.CodeRefreshTokenReused {
		t.Fatalf("reuse: %d %v", resp.StatusCode, body)
	}
	// The session is revoked: its access tokens stop working everywhere.
	if resp, _ := s.do(t, "GET", "/v1/auth", "", "", "", map[string]string{"Authorization": "Bearer " + at}); resp.StatusCode != 401 {
		t.Fatalf("GET /v1/auth after reuse: %d", resp.StatusCode)
	}
	if _, in := s.do(t, "POST", "/v1/tokens/introspect", testAPIKey, js, `{"token":"`+at+`"}`, nil); in["active"] != false {
		t.Fatalf("introspect after reuse: %v", in)
	}
	if resp, body := s.do(t, "POST", "/v1/tokens/refresh", testAPIKey, js, `{"refresh_token":"`+p2["refresh_token"].(string)+`"}`, nil); resp.StatusCode != 401 || tokErrCode(body) != "invalid_token" {
		t.Fatalf("successor after reuse: %d %v", resp.StatusCode, body)
	}
}

func TestNewTokensRejectsShortDurations(t *testing.T) {
	ts := defaultTokenSettings()
	ts.Lifetime = 500 * time.Millisecond
	if _, err := sessiond.NewTokens(t.Context(), ts, memstore.New(memstore.Options{}), nil); err == nil {
		t.Fatal("a lifetime under 1s was accepted")
	}
	ts = defaultTokenSettings()
	ts.Lifetime = time.Second
	if _, err := sessiond.NewTokens(t.Context(), ts, memstore.New(memstore.Options{}), nil); err != nil {
		t.Fatalf("1s lifetime: %v", err)
	}
}

func TestTokenOpenAPIPathsMatchRoutes(t *testing.T) {
	var paths map[string]map[string]any
	if err := json.Unmarshal([]byte(sessiond.TokenOpenAPIPaths), &paths); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"/v1/tokens": "post", "/v1/tokens/refresh": "post", "/v1/tokens/introspect": "post",
		"/v1/tokens/revocations": "get", "/.well-known/jwks.json": "get",
	}
	if len(paths) != len(want) {
		t.Fatalf("documented %d paths, want %d", len(paths), len(want))
	}
	for p, m := range want {
		if _, ok := paths[p][m]; !ok {
			t.Errorf("%s %s not documented", m, p)
		}
	}
}
