package sessiond

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/sessionkit/sessionkit"
)

// stubBearer accepts exactly one access token.
type stubBearer struct{ token string }

func (b stubBearer) VerifyBearer(_ context.Context, tok string, _ sessionkit.Client) (Identity, error) {
	if tok != b.token {
		return Identity{}, errors.New("invalid access token")
	}
	return Identity{Subject: "api-client", Handle: "h-api", AuthLevel: 1}, nil
}

func TestForwardAuth(t *testing.T) {
	f := newFixture(t, nil, func(c *Config, _ *sessionkit.Config) { c.Bearer = stubBearer{"jwt-ok"} })
	tok, handle := f.create(t, `{"subject":"alice","auth_level":2,"client":{"ip":"198.51.100.7","user_agent":"browser/1"}}`)
	revTok, revHandle := f.create(t, `{"subject":"alice"}`)
	f.do(t, "DELETE", "/v1/sessions/"+revHandle, "")
	ck := "__Host-session="

	tests := []struct {
		name    string
		hdr     map[string]string
		status  int
		subject string
	}{
		{"valid cookie", map[string]string{"Cookie": ck + tok}, 200, "alice"},
		{"valid among other cookies", map[string]string{"Cookie": "a=b; " + ck + tok + "; c=d"}, 200, "alice"},
		{"quoted cookie", map[string]string{"Cookie": ck + `"` + tok + `"`}, 200, "alice"},
		{"no cookie", nil, 401, ""},
		{"other cookie", map[string]string{"Cookie": "session=" + tok}, 401, ""},
		{"duplicate cookie", map[string]string{"Cookie": ck + tok + "; " + ck + tok}, 401, ""},
		{"malformed cookie", map[string]string{"Cookie": ck + "garbage"}, 401, ""},
		{"revoked cookie", map[string]string{"Cookie": ck + revTok}, 401, ""},
		{"session token as bearer", map[string]string{"Authorization": "Bearer " + tok}, 401, ""},
		{"api key as bearer", map[string]string{"Authorization": "Bearer " + testKey}, 401, ""},
		{"access token", map[string]string{"Authorization": "Bearer jwt-ok"}, 200, "api-client"},
		{"bad access token", map[string]string{"Authorization": "Bearer jwt-bad"}, 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{"Authorization": "", "X-Forwarded-For": "198.51.100.7, 10.0.0.1", "User-Agent": "browser/1"}
			for k, v := range tt.hdr {
				hdr[k] = v
			}
			r := f.doWith(t, "GET", "/v1/auth", "", hdr)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if got := r.header.Get(HeaderSubject); got != tt.subject {
				t.Errorf("subject header %q, want %q", got, tt.subject)
			}
			if tt.status == 200 && tt.subject == "alice" {
				if r.header.Get(HeaderHandle) != handle || r.header.Get(HeaderAuthLevel) != "2" {
					t.Errorf("identity headers %v", r.header)
				}
			}
			if r.header.Get("Cache-Control") != "no-store" {
				t.Error("no Cache-Control: no-store")
			}
		})
	}
	// A session token in the URL is never read.
	r := f.doWith(t, "GET", "/v1/auth?token="+tok+"&"+ck+tok, "", nil)
	if r.status != 401 {
		t.Errorf("token in URL: %d", r.status)
	}
	// Without a verifier, a bearer header is never accepted.
	g := newFixture(t, nil, nil)
	if r := g.doWith(t, "GET", "/v1/auth", "", map[string]string{"Authorization": "Bearer jwt-ok"}); r.status != 401 {
		t.Errorf("bearer without verifier: %d", r.status)
	}
	// The duplicate cookie was reported.
	dup := false
	for _, e := range f.events.all() {
		dup = dup || (e.Type == sessionkit.EventRejected && e.Reason == sessionkit.ReasonDuplicateCookie)
	}
	if !dup {
		t.Error("no duplicate cookie event")
	}
}

func TestForwardAuthCookieName(t *testing.T) {
	f := newFixture(t, nil, func(c *Config, _ *sessionkit.Config) { c.CookieName = "sid" })
	tok, _ := f.create(t, `{"subject":"zed"}`)
	if r := f.doWith(t, "GET", "/v1/auth", "", map[string]string{"Cookie": "sid=" + tok}); r.status != 200 || r.header.Get(HeaderSubject) != "zed" {
		t.Errorf("custom cookie: %d %v", r.status, r.header)
	}
	if r := f.doWith(t, "GET", "/v1/auth", "", map[string]string{"Cookie": "__Host-session=" + tok}); r.status != 401 {
		t.Errorf("default cookie name accepted: %d", r.status)
	}
}

func TestForwardAuthBinding(t *testing.T) {
	f := newFixture(t, nil, func(_ *Config, mc *sessionkit.Config) { mc.Binding.OnIPChange = sessionkit.BindReject })
	tok, _ := f.create(t, `{"subject":"ann","client":{"ip":"192.0.2.10","user_agent":"ua"}}`)
	cookie := map[string]string{"Cookie": "__Host-session=" + tok, "User-Agent": "ua"}
	with := func(k, v string) map[string]string {
		m := map[string]string{k: v}
		for a, b := range cookie {
			m[a] = b
		}
		return m
	}
	if r := f.doWith(t, "GET", "/v1/auth", "", with("X-Real-IP", "192.0.2.20")); r.status != 200 {
		t.Fatalf("same network via X-Real-IP: %d %s", r.status, r.body)
	}
	if r := f.doWith(t, "GET", "/v1/auth", "", with("X-Forwarded-For", "203.0.113.5")); r.status != 401 {
		t.Fatalf("other network: %d %s", r.status, r.body)
	}
	if r := f.doWith(t, "GET", "/v1/auth", "", with("X-Real-IP", "192.0.2.20")); r.status != 401 {
		t.Errorf("session survived a rejected binding: %d", r.status)
	}
}

func TestForwardedClient(t *testing.T) {
	tests := []struct {
		xff, xri, remote, want string
	}{
		{"203.0.113.1, 10.0.0.1", "198.51.100.1", "127.0.0.1:1", "203.0.113.1"},
		{"", "198.51.100.1", "127.0.0.1:1", "198.51.100.1"},
		{"", "", "127.0.0.1:1234", "127.0.0.1"},
		{"not-an-ip", "", "[::1]:80", "::1"},
		{"::ffff:192.0.2.1", "", "", "192.0.2.1"},
		{"2001:db8::1", "", "", "2001:db8::1"},
		{"1.2.3.4\r\nX: y", "", "", ""},
	}
	for _, tt := range tests {
		r, _ := http.NewRequest("GET", "/", nil)
		r.RemoteAddr = tt.remote
		if tt.xff != "" {
			r.Header["X-Forwarded-For"] = []string{tt.xff}
		}
		if tt.xri != "" {
			r.Header.Set("X-Real-IP", tt.xri)
		}
		r.Header.Set("User-Agent", strings.Repeat("u", 1000))
		c := ForwardedClient(r)
		if c.IP != tt.want {
			t.Errorf("%+v: ip %q, want %q", tt, c.IP, tt.want)
		}
		if len(c.UserAgent) != maxUserAgent {
			t.Errorf("user agent not bounded: %d", len(c.UserAgent))
		}
	}
}
