package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/internal/testenv"
	"github.com/sessionkit/sessionkit/store/boltstore"
)

func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	store, err := boltstore.Open(filepath.Join(t.TempDir(), "s.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	mgr, err := sessionkit.New(store, sessionkit.Config{
		Events: sessionkit.EventSinkFunc(func(context.Context, sessionkit.Event) {}),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(newApp(mgr).routes())
	t.Cleanup(srv.Close)
	return srv
}

// client talks to srv as http://localhost, like a browser would, so the
// Secure cookie is sent back.
func client(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func localhost(srv *httptest.Server) string {
	return strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
}

func post(t *testing.T, c *http.Client, u string, form url.Values, origin string) *http.Response {
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res
}

func TestDemoLifecycle(t *testing.T) {
	srv := newServer(t)
	base := localhost(srv)
	c := client(t)

	res, err := c.Get(base + "/whoami")
	if err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("whoami before login: %v %v", res.StatusCode, err)
	}
	c.Get(base + "/")
	before := c.Jar.Cookies(mustURL(base))

	if res := post(t, c, base+"/login", url.Values{"user": {"alice"}}, "https://evil.example"); res.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin login: %d", res.StatusCode)
	}
	if res := post(t, c, base+"/login", url.Values{"user": {"alice"}}, base); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", res.StatusCode)
	}
	after := c.Jar.Cookies(mustURL(base))
	if len(before) != 1 || len(after) != 1 || before[0].Value == after[0].Value {
		t.Fatal("login did not renew the token")
	}
	res, _ = c.Get(base + "/whoami")
	var who struct {
		Subject string `json:"subject"`
		Handle  string `json:"handle"`
	}
	json.NewDecoder(res.Body).Decode(&who)
	if res.StatusCode != 200 || who.Subject != "alice" || who.Handle == "" {
		t.Fatalf("whoami: %d %+v", res.StatusCode, who)
	}

	// A second device of alice's, revoked from the first.
	other := client(t)
	post(t, other, base+"/login", url.Values{"user": {"alice"}}, base)
	res, _ = other.Get(base + "/whoami")
	var second struct{ Handle string }
	json.NewDecoder(res.Body).Decode(&second)
	if res := post(t, c, base+"/sessions/revoke", url.Values{"handle": {second.Handle}}, base); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke: %d", res.StatusCode)
	}
	if res, _ := other.Get(base + "/whoami"); res.StatusCode != http.StatusUnauthorized {
		t.Fatal("revoked device still signed in")
	}

	post(t, c, base+"/logout", nil, base)
	if res, _ := c.Get(base + "/whoami"); res.StatusCode != http.StatusUnauthorized {
		t.Fatal("still signed in after logout")
	}
}

func mustURL(s string) *url.URL {
	u, _ := url.Parse(s)
	return u
}

// TestDemoInBrowser signs in through the page in headless Chromium.
func TestDemoInBrowser(t *testing.T) {
	chromium := testenv.Program(t, "chromium")
	srv := newServer(t)
	base := localhost(srv)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1000, 900),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	bctx, cancel = context.WithTimeout(bctx, 60*time.Second)
	defer cancel()

	err := chromedp.Do(bctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.ID("user")),
		chromedp.SendKeys(chromedp.ID("user"), "alice"),
		chromedp.Submit(chromedp.ID("user")),
		chromedp.WaitVisible(chromedp.CSS(".badge.user")),
	)
	if err != nil {
		t.Fatal(err)
	}
	badge, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(".badge.user")))
	if err != nil {
		t.Fatal(err)
	}
	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx, chromedp.Navigate(base+"/whoami")); err != nil {
		t.Fatal(err)
	}
	subject, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(badge, "alice") || !strings.Contains(subject, `"subject":"alice"`) {
		t.Fatalf("badge %q, whoami %q", badge, subject)
	}
	dir := t.TempDir()
	if os.Getenv("SESSIONKIT_SCREENSHOTS") == "1" {
		dir = "../../docs/screenshots"
	}
	if err := os.WriteFile(filepath.Join(dir, "webapp.png"), shot, 0o644); err != nil {
		t.Fatal(err)
	}
}
