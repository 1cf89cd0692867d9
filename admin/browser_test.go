package admin_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/admin"
	"github.com/sessionkit/sessionkit/eventlog"
	"github.com/sessionkit/sessionkit/internal/testenv"
	"github.com/sessionkit/sessionkit/metrics"
	"github.com/sessionkit/sessionkit/sessiond"
	"github.com/sessionkit/sessionkit/store/memstore"
)

// shiftClock is the real clock moved by an offset, so a test can seed
// history in the past and then look at it in the present.
type shiftClock struct{ offset atomic.Int64 }

func (c *shiftClock) Now() time.Time        { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *shiftClock) Set(off time.Duration) { c.offset.Store(int64(off)) }

// screenshotDir is docs/screenshots when SESSIONKIT_SCREENSHOTS=1, so the
// documentation's pictures are regenerated on purpose only.
func screenshotDir(t *testing.T) string {
	if os.Getenv("SESSIONKIT_SCREENSHOTS") == "1" {
		dir := filepath.Join("..", "docs", "screenshots")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.TempDir()
}

// TestBrowser drives the console in headless Chromium against an
// in-process sessiond: sign in, find a subject's two sessions, revoke one,
// and watch an anomaly arrive on the live stream and the anomalies page.
func TestBrowser(t *testing.T) {
	chromium := testenv.Program(t, "chromium")
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	shots := screenshotDir(t)

	clock := &shiftClock{}
	history := eventlog.NewMemory(eventlog.Options{})
	recorder := eventlog.NewRecorder(history, eventlog.RecorderOptions{})
	stream := eventlog.NewStream(eventlog.StreamOptions{Heartbeat: 5 * time.Second})
	collector := metrics.New(metrics.Options{Now: clock.Now})
	users, err := sessionkit.New(collector.InstrumentStore(memstore.New(memstore.Options{Now: clock.Now})), sessionkit.Config{
		Now:    clock.Now,
		Events: sessionkit.MultiSink{recorder, stream, collector.Sink()},
	})
	if err != nil {
		t.Fatal(err)
	}
	keys := &sessiond.Keys{}
	keys.AddKeys(testKey)
	console, err := admin.New(admin.Options{
		Store:       memstore.New(memstore.Options{}),
		CheckAPIKey: keys.Check,
		History:     history,
		Stream:      stream,
		Series:      collector,
		Logger:      discard(),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sessiond.New(sessiond.Config{Manager: users, Keys: keys, Logger: discard(), Extensions: []sessiond.Extension{console}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	defer stream.Close()
	defer recorder.Close()
	u, _ := url.Parse(ts.URL)
	// http://localhost is a secure context, so __Host- cookies work; an IP
	// address is not.
	base := "http://localhost:" + u.Port()

	ctx := context.Background()
	seedActivity(t, ctx, users, clock)
	phone := "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
	laptop := "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
	clock.Set(-9 * time.Minute)
	_, onPhone, err := users.Create(ctx, sessionkit.CreateParams{Subject: "alice@example.com", AuthLevel: 1, Client: sessionkit.Client{IP: "198.51.100.23", UserAgent: phone}})
	if err != nil {
		t.Fatal(err)
	}
	clock.Set(-4 * time.Minute)
	laptopTok, onLaptop, err := users.Create(ctx, sessionkit.CreateParams{Subject: "alice@example.com", AuthLevel: 2, Client: sessionkit.Client{IP: "203.0.113.40", UserAgent: laptop}})
	if err != nil {
		t.Fatal(err)
	}
	clock.Set(0)
	if _, err := users.Validate(ctx, laptopTok, sessionkit.Client{IP: "203.0.113.40", UserAgent: laptop}); err != nil {
		t.Fatal(err)
	}

	alloc, cancel := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	defer cancel()
	bctx, cancel := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	defer cancel()
	bctx, cancel = context.WithTimeout(bctx, 2*time.Minute)
	defer cancel()

	step := func(name string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, actions...); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	count := func(sel string) int {
		t.Helper()
		n, err := chromedp.Run(bctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	desktop := chromedp.EmulateViewport(1280, 900)

	// Sign in: a page needing the session sends the browser to the form.
	step("open console", desktop, chromedp.Navigate(base+"/admin/subject?subject=x"), chromedp.WaitVisible(chromedp.CSS("#key")))
	if loc, _ := chromedp.Run(bctx, chromedp.Location()); !strings.HasSuffix(loc, "/admin/login") {
		t.Fatalf("not sent to sign-in: %s", loc)
	}
	shot("signin.png")
	step("wrong key", chromedp.SendKeys(chromedp.CSS("#key"), "sk_wrong"), chromedp.Submit(chromedp.CSS("#key")), chromedp.WaitVisible(chromedp.CSS(".alert")))
	step("sign in", chromedp.SetValue(chromedp.CSS("#key"), testKey), chromedp.Submit(chromedp.CSS("#key")),
		chromedp.WaitVisible(chromedp.CSS("#subject")), chromedp.WaitVisible(chromedp.CSS(".chart svg")))
	shot("overview.png")

	// Find alice's two sessions.
	step("search", chromedp.SetValue(chromedp.CSS("#subject"), "alice@example.com"), chromedp.Submit(chromedp.CSS("#subject")),
		chromedp.WaitVisible(chromedp.CSS(".session")))
	if n := count(".session"); n != 2 {
		t.Fatalf("subject page lists %d sessions, want 2", n)
	}
	if body := text("main"); !strings.Contains(body, "198.51.100.23") || !strings.Contains(body, "iPhone") {
		t.Errorf("device metadata missing from the subject page:\n%s", body)
	}
	shot("subject.png")

	// Revoke the phone's session through the confirmation page.
	step("revoke", chromedp.Click(chromedp.CSS(fmt.Sprintf(`[id="s-%s"] button`, onPhone.Handle))),
		chromedp.WaitVisible(chromedp.CSS(".confirm button.danger")))
	shot("confirm.png")
	step("confirm", chromedp.Click(chromedp.CSS(".confirm button.danger")), chromedp.WaitVisible(chromedp.CSS(".flash")))
	if n := count(".session"); n != 1 {
		t.Fatalf("after revoking, %d sessions listed, want 1", n)
	}
	if n := count(fmt.Sprintf(`[id="s-%s"]`, onPhone.Handle)); n != 0 {
		t.Fatal("the revoked session is still listed")
	}
	if live, _ := users.List(ctx, "alice@example.com"); len(live) != 1 || live[0].Handle != onLaptop.Handle {
		t.Fatalf("store after revoke: %v", live)
	}

	// Follow the live stream, then use the laptop session from another
	// network: the core's binding check reports an anomaly.
	step("live", chromedp.Navigate(base+"/admin/live"),
		chromedp.Poll[chromedp.Void](`document.getElementById('stream-status').dataset.state === 'open'`, chromedp.WithPollingTimeout(20*time.Second)))
	if _, err := users.Validate(ctx, laptopTok, sessionkit.Client{IP: "192.0.2.200", UserAgent: laptop}); err != nil {
		t.Fatal(err)
	}
	step("anomaly on the stream", chromedp.Poll[chromedp.Void](`document.querySelector('#live-events li.warn') !== null`, chromedp.WithPollingTimeout(20*time.Second)))
	if s := text("#live-events li.warn"); !strings.Contains(s, "ip_change") || !strings.Contains(s, onLaptop.Handle) {
		t.Errorf("live anomaly reads %q", s)
	}
	shot("live.png")

	flushCtx, cancelFlush := context.WithTimeout(ctx, 5*time.Second)
	defer cancelFlush()
	if err := recorder.Flush(flushCtx); err != nil {
		t.Fatal(err)
	}
	step("anomalies", chromedp.Navigate(base+"/admin/anomalies"), chromedp.WaitVisible(chromedp.CSS(".events li.warn")))
	if s := text("main"); !strings.Contains(s, onLaptop.Handle) || !strings.Contains(s, "192.0.2.200") {
		t.Errorf("anomalies page lacks the anomaly:\n%s", s)
	}
	shot("anomalies.png")

	step("timeline", chromedp.Click(chromedp.CSS(fmt.Sprintf(`.events a[href="/admin/sessions/%s"]`, onLaptop.Handle))),
		chromedp.WaitVisible(chromedp.CSS("#timeline-title")))
	if s := text("main"); !strings.Contains(s, "authenticated") || !strings.Contains(s, "anomaly") {
		t.Errorf("timeline lacks events:\n%s", s)
	}
	shot("timeline.png")

	// A phone-width view.
	step("phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Navigate(base+"/admin/subject?subject=alice%40example.com"), chromedp.WaitVisible(chromedp.CSS(".session")))
	if w, _ := chromedp.Run(bctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); w > 390 {
		t.Errorf("phone view scrolls sideways: %dpx wide", w)
	}
	shot("subject-phone.png")
	step("phone overview", chromedp.Navigate(base+"/admin/"), chromedp.WaitVisible(chromedp.CSS(".chart svg")))
	shot("overview-phone.png")

	// Sign out.
	step("sign out", chromedp.Click(chromedp.CSS(".signout button")), chromedp.WaitVisible(chromedp.CSS("#key")))
	step("signed out", chromedp.Navigate(base+"/admin/"), chromedp.WaitVisible(chromedp.CSS("#key")))
}

// seedActivity creates an hour of background sessions, logouts and
// rejections so the charts have something to show.
func seedActivity(t *testing.T, ctx context.Context, m *sessionkit.Manager, clock *shiftClock) {
	t.Helper()
	var toks []string
	for i := range 48 {
		clock.Set(-time.Duration(58-i) * time.Minute)
		for j := range 1 + (i*7)%4 {
			tok, _, err := m.Create(ctx, sessionkit.CreateParams{Subject: fmt.Sprintf("user%d", (i*5+j)%23), Client: sessionkit.Client{IP: fmt.Sprintf("198.51.100.%d", 10+i), UserAgent: "seed"}})
			if err != nil {
				t.Fatal(err)
			}
			toks = append(toks, tok)
		}
		if i%3 == 0 {
			m.Validate(ctx, "bogus-token", sessionkit.Client{IP: "203.0.113.99"})
		}
		if i%4 == 1 && len(toks) > 2 {
			m.Logout(ctx, toks[len(toks)-3])
		}
	}
	clock.Set(0)
}
