package admin_test

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/admin"
	"github.com/sessionkit/sessionkit/eventlog"
	"github.com/sessionkit/sessionkit/store/memstore"
)

func TestNewValidatesOptions(t *testing.T) {
	check := func(string) (string, bool) { return "", false }
	tests := []struct {
		name string
		o    admin.Options
	}{
		{"no store", admin.Options{CheckAPIKey: check}},
		{"no key check", admin.Options{Store: memstore.New(memstore.Options{})}},
		{"invalid cookie name", admin.Options{Store: memstore.New(memstore.Options{}), CheckAPIKey: check, CookieName: "bad name"}},
		{"idle longer than absolute", admin.Options{Store: memstore.New(memstore.Options{}), CheckAPIKey: check, IdleTimeout: time.Hour, AbsoluteTimeout: time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := admin.New(tt.o); !errors.Is(err, admin.ErrConfig) {
				t.Fatalf("New: %v, want ErrConfig", err)
			}
		})
	}
}

func TestSignIn(t *testing.T) {
	tests := []struct {
		name       string
		key        string
		wantStatus int
	}{
		{"wrong key", "sk_wrong", http.StatusUnauthorized},
		{"empty key", "", http.StatusUnauthorized},
		{"key with surrounding space", " " + testKey + "\n", http.StatusSeeOther},
		{"right key", testKey, http.StatusSeeOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			w := e.do("POST", "/admin/login", url.Values{"key": {tt.key}})
			if w.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d", w.Code, tt.wantStatus)
			}
			c := adminCookie(w.Result())
			if tt.wantStatus != http.StatusSeeOther {
				if c != nil {
					t.Errorf("refused sign-in set a cookie: %v", c)
				}
				if !strings.Contains(w.Body.String(), "not accepted") {
					t.Errorf("no error message in:\n%s", w.Body)
				}
				if strings.Contains(w.Body.String(), tt.key) && tt.key != "" {
					t.Error("the refused key is echoed in the page")
				}
				return
			}
			if loc := w.Header().Get("Location"); loc != "/admin/" {
				t.Errorf("redirect to %q", loc)
			}
			if c == nil {
				t.Fatal("no admin cookie")
			}
			if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Domain != "" || c.MaxAge != 0 {
				t.Errorf("cookie attributes: %s", w.Header().Get("Set-Cookie"))
			}
			if !strings.HasPrefix(c.Name, "__Host-") {
				t.Errorf("cookie name %q lacks the __Host- prefix", c.Name)
			}
		})
	}
}

func TestAdminSessionIsSeparateAndShort(t *testing.T) {
	e := newEnv(t)
	e.signIn()
	ctx := context.Background()
	subject := admin.SubjectPrefix + e.keyID
	users, err := e.users.List(ctx, subject)
	if err != nil || len(users) != 0 {
		t.Fatalf("users' store lists %d sessions for the admin (err %v)", len(users), err)
	}
	recs, err := e.console.AdminManager().List(ctx, subject)
	if err != nil || len(recs) != 1 {
		t.Fatalf("admin store lists %d sessions (err %v), want 1", len(recs), err)
	}
	r := recs[0]
	if got := r.AbsoluteDeadline.Sub(r.CreatedAt); got != 8*time.Hour {
		t.Errorf("absolute lifetime %v, want 8h", got)
	}
	if got := r.IdleDeadline.Sub(r.LastSeenAt); got != 15*time.Minute {
		t.Errorf("idle lifetime %v, want 15m", got)
	}
	if w := e.do("GET", "/admin/", nil); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "key "+e.keyID) {
		t.Fatalf("overview after sign-in: %d", w.Code)
	}
}

func TestPagesNeedAdminSession(t *testing.T) {
	e := newEnv(t)
	_, rec := e.userSession("alice", sessionkit.Client{IP: "198.51.100.1"})
	for _, path := range []string{"/admin/", "/admin/subject?subject=alice", "/admin/sessions/" + rec.Handle,
		"/admin/sessions/" + rec.Handle + "/revoke", "/admin/anomalies", "/admin/live", "/admin/subject/revoke?subject=alice"} {
		w := e.do("GET", path, nil)
		if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/admin/login" {
			t.Errorf("GET %s: %d to %q, want 303 to /admin/login", path, w.Code, w.Header().Get("Location"))
		}
	}
	posts := []struct {
		path string
		form url.Values
	}{
		{"/admin/sessions/" + rec.Handle + "/revoke", url.Values{"confirm": {"yes"}}},
		{"/admin/subject/revoke", url.Values{"subject": {"alice"}, "confirm": {"yes"}}},
	}
	for _, p := range posts {
		if w := e.do("POST", p.path, p.form); w.Code != http.StatusUnauthorized {
			t.Errorf("POST %s: %d, want 401", p.path, w.Code)
		}
	}
	if w := e.do("GET", "/admin/live/stream", nil); w.Code != http.StatusUnauthorized {
		t.Errorf("stream: %d, want 401", w.Code)
	}
	// A forged or stale cookie is no session either.
	e.cookie = admin.DefaultCookieName + "=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	if w := e.do("GET", "/admin/", nil); w.Code != http.StatusSeeOther {
		t.Errorf("forged cookie: %d, want 303", w.Code)
	}
	if live, _ := e.users.List(context.Background(), "alice"); len(live) != 1 {
		t.Errorf("alice has %d sessions, want 1: an unauthenticated request changed something", len(live))
	}
}

func TestCrossSitePostRefused(t *testing.T) {
	e := newEnv(t)
	e.signIn()
	_, rec := e.userSession("alice", sessionkit.Client{IP: "198.51.100.1"})
	revoke := "/admin/sessions/" + rec.Handle + "/revoke"
	tests := []struct {
		name string
		path string
		form url.Values
		hdr  func(*http.Request)
	}{
		{"Sec-Fetch-Site cross-site", revoke, url.Values{"confirm": {"yes"}}, func(r *http.Request) {
			r.Header.Set("Sec-Fetch-Site", "cross-site")
			r.Header.Set("Origin", "https://evil.example")
		}},
		{"Sec-Fetch-Site same-site", revoke, url.Values{"confirm": {"yes"}}, func(r *http.Request) {
			r.Header.Set("Sec-Fetch-Site", "same-site")
			r.Header.Set("Origin", "https://other.sessiond.test")
		}},
		{"foreign Origin only", revoke, url.Values{"confirm": {"yes"}}, func(r *http.Request) {
			r.Header.Del("Sec-Fetch-Site")
			r.Header.Set("Origin", "https://evil.example")
		}},
		{"revoke all", "/admin/subject/revoke", url.Values{"subject": {"alice"}, "confirm": {"yes"}}, func(r *http.Request) {
			r.Header.Set("Sec-Fetch-Site", "cross-site")
		}},
		{"login CSRF", "/admin/login", url.Values{"key": {testKey}}, func(r *http.Request) {
			r.Header.Set("Sec-Fetch-Site", "cross-site")
		}},
		{"logout", "/admin/logout", url.Values{}, func(r *http.Request) {
			r.Header.Set("Sec-Fetch-Site", "cross-site")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.do("POST", tt.path, tt.form, tt.hdr)
			if w.Code != http.StatusForbidden {
				t.Fatalf("status %d, want 403", w.Code)
			}
			if !strings.Contains(w.Body.String(), "another site") {
				t.Errorf("no explanation in the 403 page:\n%s", w.Body)
			}
			if w.Header().Get("Set-Cookie") != "" {
				t.Errorf("refused request set a cookie: %s", w.Header().Get("Set-Cookie"))
			}
			if live, _ := e.users.List(context.Background(), "alice"); len(live) != 1 {
				t.Fatalf("alice has %d sessions after a refused request, want 1", len(live))
			}
		})
	}
	// The admin session survived the cross-site logout attempt.
	if w := e.do("GET", "/admin/", nil); w.Code != http.StatusOK {
		t.Errorf("overview: %d after refused logout", w.Code)
	}
}

func TestRevoke(t *testing.T) {
	e := newEnv(t)
	e.signIn()
	ctx := context.Background()
	_, a := e.userSession("alice", sessionkit.Client{IP: "198.51.100.1", UserAgent: "Phone"})
	_, b := e.userSession("alice", sessionkit.Client{IP: "198.51.100.2", UserAgent: "Laptop"})
	_, other := e.userSession("bob", sessionkit.Client{IP: "203.0.113.9"})

	w := e.do("GET", "/admin/subject?subject=alice", nil)
	if w.Code != http.StatusOK {
		t.Fatalf("subject page: %d", w.Code)
	}
	for _, h := range []string{a.Handle, b.Handle} {
		if !strings.Contains(w.Body.String(), h) {
			t.Errorf("subject page lacks session %s", h)
		}
	}
	if strings.Contains(w.Body.String(), other.Handle) {
		t.Error("subject page shows another subject's session")
	}

	// The confirmation page, then the POST without confirm, change nothing.
	if w := e.do("GET", "/admin/sessions/"+a.Handle+"/revoke", nil); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `name="confirm" value="yes"`) {
		t.Fatalf("confirmation page: %d", w.Code)
	}
	if w := e.do("POST", "/admin/sessions/"+a.Handle+"/revoke", url.Values{}); w.Code != http.StatusSeeOther || !strings.HasSuffix(w.Header().Get("Location"), "/revoke") {
		t.Fatalf("unconfirmed revoke: %d to %q", w.Code, w.Header().Get("Location"))
	}
	if live, _ := e.users.List(ctx, "alice"); len(live) != 2 {
		t.Fatalf("unconfirmed revoke ended a session")
	}

	w = e.do("POST", "/admin/sessions/"+a.Handle+"/revoke", url.Values{"confirm": {"yes"}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/admin/subject?subject=alice" {
		t.Fatalf("revoke: %d to %q", w.Code, w.Header().Get("Location"))
	}
	live, _ := e.users.List(ctx, "alice")
	if len(live) != 1 || live[0].Handle != b.Handle {
		t.Fatalf("after revoke alice has %v", live)
	}
	w = e.do("GET", "/admin/subject?subject=alice", nil)
	if body := w.Body.String(); !strings.Contains(body, "was revoked") || strings.Contains(body, `id="s-`+a.Handle) {
		t.Errorf("subject page after revoke: flash or list wrong:\n%s", body)
	}
	// The flash is shown once.
	if w := e.do("GET", "/admin/subject?subject=alice", nil); strings.Contains(w.Body.String(), "was revoked") {
		t.Error("flash shown twice")
	}
	// Revoking again reports it calmly.
	if w := e.do("POST", "/admin/sessions/"+a.Handle+"/revoke", url.Values{"confirm": {"yes"}}); w.Code != http.StatusSeeOther {
		t.Errorf("second revoke: %d", w.Code)
	}

	// The event names the operator.
	e.flush()
	es, _ := e.history.Query(ctx, eventlog.Query{Handle: a.Handle, Type: sessionkit.EventRevoked})
	if len(es) != 1 || es[0].Actor != "admin:apikey:"+e.keyID || es[0].Reason != sessionkit.ReasonOperator {
		t.Fatalf("revocation events %+v", es)
	}

	// Revoke all.
	if w := e.do("GET", "/admin/subject/revoke?subject=alice", nil); !strings.Contains(w.Body.String(), "<strong>1</strong> live session of") {
		t.Errorf("revoke-all confirmation does not count the sessions:\n%s", w.Body)
	}
	w = e.do("POST", "/admin/subject/revoke", url.Values{"subject": {"alice"}, "confirm": {"yes"}})
	if w.Code != http.StatusSeeOther {
		t.Fatalf("revoke all: %d", w.Code)
	}
	if live, _ := e.users.List(ctx, "alice"); len(live) != 0 {
		t.Fatalf("after revoke all alice has %d sessions", len(live))
	}
	if live, _ := e.users.List(ctx, "bob"); len(live) != 1 {
		t.Fatal("revoke all touched another subject")
	}
}

const hostileUA = `</span><script>alert(1)</script>"'><img src=x onerror=alert(2)>`

func TestHostileValuesEscaped(t *testing.T) {
	e := newEnv(t)
	e.signIn()
	_, rec := e.userSession("eve<b>", sessionkit.Client{IP: "198.51.100.7", UserAgent: hostileUA})
	// An anomaly carries the hostile value in Detail too.
	e.users.Emit(context.Background(), sessionkit.Event{Type: sessionkit.EventAnomaly, Handle: rec.Handle, Subject: "eve<b>",
		Reason: sessionkit.ReasonUAChange, Client: sessionkit.Client{UserAgent: hostileUA}, Detail: map[string]string{"to": hostileUA}})
	e.flush()
	for _, path := range []string{"/admin/subject?subject=" + url.QueryEscape("eve<b>"), "/admin/sessions/" + rec.Handle,
		"/admin/sessions/" + rec.Handle + "/revoke", "/admin/anomalies", "/admin/"} {
		w := e.do("GET", path, nil)
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s: %d", path, w.Code)
		}
		body := w.Body.String()
		for _, bad := range []string{"<script>alert", "<img src=x", "eve<b>"} {
			if strings.Contains(body, bad) {
				t.Errorf("GET %s: unescaped %q in the page", path, bad)
			}
		}
		if !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") && !strings.Contains(body, "eve&lt;b&gt;") {
			t.Errorf("GET %s: the hostile value is not shown escaped", path)
		}
	}
}

func TestStoreUnavailable(t *testing.T) {
	e := newEnv(t)
	e.signIn()
	_, rec := e.userSession("alice", sessionkit.Client{IP: "198.51.100.1"})

	e.userStore.down.Store(true)
	for _, req := range []struct{ method, path string }{
		{"GET", "/admin/subject?subject=alice"},
		{"GET", "/admin/sessions/" + rec.Handle},
		{"GET", "/admin/sessions/" + rec.Handle + "/revoke"},
		{"POST", "/admin/sessions/" + rec.Handle + "/revoke"},
		{"POST", "/admin/subject/revoke"},
	} {
		form := url.Values{"confirm": {"yes"}, "subject": {"alice"}}
		w := e.do(req.method, req.path, form)
		if w.Code != http.StatusServiceUnavailable {
			t.Errorf("%s %s: %d, want 503", req.method, req.path, w.Code)
			continue
		}
		checkErrorPage(t, w, "session store cannot be reached")
	}
	e.userStore.down.Store(false)

	// The admin store down: the session cannot be checked, so fail closed.
	e.adminStore.down.Store(true)
	w := e.do("GET", "/admin/", nil)
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("admin store down: %d, want 503", w.Code)
	}
	checkErrorPage(t, w, "cannot be reached")
	e.adminStore.down.Store(false)

	// The history closed.
	e.history.Close()
	w = e.do("GET", "/admin/anomalies", nil)
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("history down: %d, want 503", w.Code)
	}
	checkErrorPage(t, w, "event history cannot be reached")
}

func checkErrorPage(t *testing.T, w *httptest.ResponseRecorder, want string) {
	t.Helper()
	body := w.Body.String()
	if !strings.Contains(w.Header().Get("Content-Type"), "text/html") || !strings.Contains(body, "</html>") {
		t.Errorf("error answer is not a full page: %q", body)
	}
	if !strings.Contains(body, want) {
		t.Errorf("error page lacks %q:\n%s", want, body)
	}
	for _, leak := range []string{"goroutine", "connection refused", "sessionkit:"} {
		if strings.Contains(body, leak) {
			t.Errorf("error page leaks %q", leak)
		}
	}
	if w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("error page Cache-Control %q", w.Header().Get("Cache-Control"))
	}
}

func TestHeadersOnEveryResponse(t *testing.T) {
	e := newEnv(t)
	anon := []string{"/admin/login", "/admin/static/admin.css", "/admin/static/live.js", "/admin/nope", "/admin/"}
	for _, p := range anon {
		checkHeaders(t, e.do("GET", p, nil), p)
	}
	e.signIn()
	_, rec := e.userSession("alice", sessionkit.Client{IP: "198.51.100.1"})
	for _, p := range []string{"/admin/", "/admin/?range=24h", "/admin/subject?subject=alice", "/admin/sessions/" + rec.Handle, "/admin/anomalies?window=7d", "/admin/live", "/admin/sessions/unknown"} {
		checkHeaders(t, e.do("GET", p, nil), p)
	}
	if w := e.do("GET", "/admin/nope", nil); w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "Page not found") {
		t.Errorf("unknown page: %d", w.Code)
	}
	if w := e.do("GET", "/admin/sessions/bad%3Chandle", nil); w.Code != http.StatusNotFound {
		t.Errorf("malformed handle: %d", w.Code)
	}
}

func checkHeaders(t *testing.T, w *httptest.ResponseRecorder, path string) {
	t.Helper()
	h := w.Header()
	if h.Get("Cache-Control") != "no-store" {
		t.Errorf("%s: Cache-Control %q", path, h.Get("Cache-Control"))
	}
	if !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("%s: CSP %q", path, h.Get("Content-Security-Policy"))
	}
	if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" {
		t.Errorf("%s: missing nosniff or frame headers", path)
	}
}

func TestLogout(t *testing.T) {
	e := newEnv(t)
	e.signIn()
	old := e.cookie
	w := e.do("POST", "/admin/logout", url.Values{})
	if w.Code != http.StatusSeeOther {
		t.Fatalf("logout: %d", w.Code)
	}
	if c := adminCookie(w.Result()); c == nil || c.MaxAge >= 0 {
		t.Errorf("logout did not clear the cookie: %s", w.Header().Get("Set-Cookie"))
	}
	e.cookie = old
	if w := e.do("GET", "/admin/", nil); w.Code != http.StatusSeeOther {
		t.Errorf("old cookie after logout: %d, want 303 to sign-in", w.Code)
	}
}

func TestTimelineAndCharts(t *testing.T) {
	e := newEnv(t)
	e.signIn()
	ctx := context.Background()
	tok, rec := e.userSession("carol", sessionkit.Client{IP: "198.51.100.1", UserAgent: "UA"})
	if _, err := e.users.Validate(ctx, tok, sessionkit.Client{IP: "203.0.113.50", UserAgent: "UA"}); err != nil {
		t.Fatal(err)
	}
	e.users.Validate(ctx, "not-a-token", sessionkit.Client{IP: "203.0.113.51"})
	e.flush()

	w := e.do("GET", "/admin/sessions/"+rec.Handle, nil)
	body := w.Body.String()
	for _, want := range []string{"created", "authenticated", "anomaly", "ip_change", "203.0.113.50"} {
		if !strings.Contains(body, want) {
			t.Errorf("timeline lacks %q", want)
		}
	}
	if i, j := strings.Index(body, ">created<"), strings.Index(body, ">anomaly<"); i < 0 || j < i {
		t.Errorf("timeline not oldest first (created at %d, anomaly at %d)", i, j)
	}

	w = e.do("GET", "/admin/", nil)
	body = w.Body.String()
	for _, want := range []string{`role="img"`, "Sessions created", "Active sessions", "Requests rejected", "1 in total"} {
		if !strings.Contains(body, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	if n := strings.Count(body, `<rect class="b"`); n < 3 {
		t.Errorf("overview draws %d bars, want one each for created, active and rejected", n)
	}
	if !strings.Contains(body, "ip_change") {
		t.Error("overview lacks the recent anomaly")
	}
}

func TestLiveStreamDelivers(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewServer(e.handler)
	defer srv.Close()
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	post := func(path string, form url.Values) *http.Response {
		req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := post("/admin/login", url.Values{"key": {testKey}})
	c := adminCookie(resp)
	if c == nil {
		t.Fatalf("sign-in: %d, no cookie", resp.StatusCode)
	}
	tok, rec := e.userSession("dave", sessionkit.Client{IP: "198.51.100.1", UserAgent: "UA"})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/admin/live/stream?type=anomaly", nil)
	req.Header.Set("Cookie", c.Name+"="+c.Value)
	sresp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer sresp.Body.Close()
	if sresp.StatusCode != http.StatusOK || sresp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", sresp.StatusCode, sresp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(sresp.Body)
	sc.Scan() // ": stream open"
	// Not an anomaly: filtered out. Then one from another network.
	e.users.Validate(ctx, tok, sessionkit.Client{IP: "198.51.100.1", UserAgent: "UA"})
	if _, err := e.users.Validate(ctx, tok, sessionkit.Client{IP: "203.0.113.50", UserAgent: "UA"}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "event: ") || strings.HasPrefix(line, "data: ") {
			got = append(got, line)
		}
		if strings.HasPrefix(line, "data: ") {
			break
		}
	}
	if len(got) != 2 || got[0] != "event: anomaly" || !strings.Contains(got[1], rec.Handle) || !strings.Contains(got[1], "ip_change") {
		t.Fatalf("stream sent %q", got)
	}
}
