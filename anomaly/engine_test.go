package anomaly_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/anomaly"
	"github.com/sessionkit/sessionkit/internal/testclock"
	"github.com/sessionkit/sessionkit/store/memstore"
)

// recorder keeps every event.
type recorder struct {
	mu     sync.Mutex
	events []sessionkit.Event
}

func (r *recorder) Emit(_ context.Context, e sessionkit.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

// anomalies returns the anomaly events with reason.
func (r *recorder) find(typ sessionkit.EventType, reason string) []sessionkit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []sessionkit.Event
	for _, e := range r.events {
		if e.Type == typ && e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

func (r *recorder) wait(t *testing.T, typ sessionkit.EventType, reason string, n int) []sessionkit.Event {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if got := r.find(typ, reason); len(got) >= n {
			return got
		}
	}
	t.Fatalf("no %d %s/%s events; have %d", n, typ, reason, len(r.find(typ, reason)))
	return nil
}

type fixture struct {
	m   *sessionkit.Manager
	eng *anomaly.Engine
	rec *recorder
	clk *testclock.Clock
}

func newFixture(t *testing.T, cfg anomaly.Config, bind sessionkit.Binding) *fixture {
	t.Helper()
	clk := testclock.New(time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC))
	cfg.Now = clk.Now
	cfg.OnError = func(err error) { t.Error(err) }
	eng := anomaly.New(cfg)
	rec := &recorder{}
	m, err := sessionkit.New(memstore.New(memstore.Options{Now: clk.Now}), sessionkit.Config{
		Events: sessionkit.MultiSink{rec, eng}, Now: clk.Now, Binding: bind,
	})
	if err != nil {
		t.Fatal(err)
	}
	eng.Start(m)
	t.Cleanup(eng.Close)
	return &fixture{m, eng, rec, clk}
}

var (
	ctx    = context.Background()
	home   = sessionkit.Client{IP: "198.51.100.7", UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0"}
	away   = sessionkit.Client{IP: "203.0.113.9", UserAgent: home.UserAgent}
	phone  = sessionkit.Client{IP: "198.51.100.8", UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 Mobile/15E148 Safari/604.1"}
	levelX = 2
)

func TestBindingAction(t *testing.T) {
	tests := []struct {
		name   string
		action anomaly.Action
		check  func(t *testing.T, f *fixture, tok, handle string)
	}{
		{"revoke", anomaly.Revoke, func(t *testing.T, f *fixture, tok, handle string) {
			f.rec.wait(t, sessionkit.EventRevoked, "anomaly", 1)
			if _, err := f.m.Validate(ctx, tok, away); !errors.Is(err, sessionkit.ErrRevoked) {
				t.Errorf("Validate after revoke: %v", err)
			}
		}},
		{"step-up", anomaly.StepUp, func(t *testing.T, f *fixture, tok, handle string) {
			f.rec.wait(t, sessionkit.EventUpdated, "auth_level_lowered", 1)
			rec, err := f.m.Validate(ctx, tok, away)
			if err != nil || rec.AuthLevel != 0 {
				t.Errorf("after step-up: level %v, %v", rec, err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, anomaly.Config{Binding: tt.action, Travel: anomaly.Off}, sessionkit.Binding{})
			tok, rec, err := f.m.Create(ctx, sessionkit.CreateParams{Subject: "alice", AuthLevel: levelX, Client: home})
			if err != nil {
				t.Fatal(err)
			}
			// The core reports the anomaly and serves the request, unless
			// the engine's worker already revoked the session.
			if _, err := f.m.Validate(ctx, tok, away); err != nil && !errors.Is(err, sessionkit.ErrRevoked) {
				t.Fatal(err)
			}
			f.rec.wait(t, sessionkit.EventAnomaly, sessionkit.ReasonIPChange, 1)
			tt.check(t, f, tok, rec.Handle)
			// The engine's own events carry its actor and are not acted on.
			for _, e := range f.rec.find(sessionkit.EventRevoked, "anomaly") {
				if e.Actor != anomaly.Actor {
					t.Errorf("revocation actor %q", e.Actor)
				}
			}
		})
	}
}

func TestImpossibleTravel(t *testing.T) {
	f := newFixture(t, anomaly.Config{Travel: anomaly.Revoke}, sessionkit.Binding{})
	tok, rec, _ := f.m.Create(ctx, sessionkit.CreateParams{Subject: "alice", Client: home})
	// Past the window, a move is a move, not travel.
	f.clk.Add(12 * time.Minute)
	if _, err := f.m.Validate(ctx, tok, away); err != nil {
		t.Fatal(err)
	}
	f.rec.wait(t, sessionkit.EventAnomaly, sessionkit.ReasonIPChange, 1)
	if got := f.rec.find(sessionkit.EventAnomaly, anomaly.RuleImpossibleTravel); len(got) != 0 {
		t.Fatalf("travel raised for a slow move: %+v", got)
	}
	// Back home two minutes later: two networks within the window.
	f.clk.Add(2 * time.Minute)
	if _, err := f.m.Validate(ctx, tok, home); err != nil && !errors.Is(err, sessionkit.ErrRevoked) {
		t.Fatal(err) // revoked only if the worker was faster than the touch
	}
	ev := f.rec.wait(t, sessionkit.EventAnomaly, anomaly.RuleImpossibleTravel, 1)[0]
	if ev.Handle != rec.Handle || ev.Detail["from"] != away.IP || ev.Detail["to"] != home.IP || ev.Detail["action"] != "revoke" {
		t.Errorf("travel event %+v", ev)
	}
	f.rec.wait(t, sessionkit.EventRevoked, "anomaly", 1)
	if _, err := f.m.Validate(ctx, tok, home); !errors.Is(err, sessionkit.ErrRevoked) {
		t.Errorf("Validate after travel: %v", err)
	}
}

func TestTokenGuessing(t *testing.T) {
	f := newFixture(t, anomaly.Config{GuessingLimit: anomaly.LimiterOptions{Threshold: 5, Window: time.Minute, Block: 10 * time.Minute}}, sessionkit.Binding{})
	lim := f.eng.Limiter()
	attacker := sessionkit.Client{IP: "192.0.2.66", UserAgent: "curl/8"}
	// A valid session from the same IP.
	good, _, _ := f.m.Create(ctx, sessionkit.CreateParams{Subject: "alice", Client: attacker})

	// The app: the session middleware, then 401 without a session.
	app := f.m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !sessionkit.FromContext(r.Context()).Exists() {
			http.Error(w, "login required", http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "hello")
	}))
	cfg := f.m.Config()
	cfg.ClientInfo = func(*http.Request) sessionkit.Client { return attacker }
	h := lim.Middleware(app)
	do := func(token string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = attacker.IP + ":1234"
		r.Header.Set("User-Agent", attacker.UserAgent)
		r.AddCookie(&http.Cookie{Name: cfg.Cookie.Name, Value: token})
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	for i := range 4 {
		if w := do(fmt.Sprintf("guess%d", i)); w.Code != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i, w.Code)
		}
	}
	// The fifth guess crosses the threshold and gets 429 at once.
	w := do("guess-final-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Fatalf("after threshold: %d %q", w.Code, w.Body.String())
	}
	ev := f.rec.wait(t, sessionkit.EventAnomaly, anomaly.RuleTokenGuessing, 1)[0]
	if ev.Detail["ip"] != attacker.IP || ev.Detail["count"] != "5" {
		t.Errorf("guessing event %+v", ev)
	}
	// A valid session from the blocked IP still works.
	if w := do(good); w.Code != http.StatusOK || w.Body.String() != "hello" {
		t.Errorf("valid session from blocked IP: %d %q", w.Code, w.Body.String())
	}
	// Another IP is unaffected.
	if blocked, _ := lim.Blocked("192.0.2.67"); blocked {
		t.Error("other IP blocked")
	}
	// The block lifts.
	f.clk.Add(11 * time.Minute)
	if w := do("guess-again"); w.Code != http.StatusUnauthorized {
		t.Errorf("after block: %d", w.Code)
	}
	if n := len(f.rec.find(sessionkit.EventAnomaly, anomaly.RuleTokenGuessing)); n != 1 {
		t.Errorf("%d guessing alerts, want 1", n)
	}
}

func TestRefreshReuse(t *testing.T) {
	f := newFixture(t, anomaly.Config{RefreshReuse: anomaly.Revoke}, sessionkit.Binding{})
	tok, rec, _ := f.m.Create(ctx, sessionkit.CreateParams{Subject: "alice", Client: home})
	// The token package reports reuse through Manager.Emit.
	f.m.Emit(ctx, sessionkit.Event{Type: sessionkit.EventRefreshReused, Handle: rec.Handle, Subject: "alice", Client: away, Detail: map[string]string{"generation": "3"}})
	ev := f.rec.wait(t, sessionkit.EventAnomaly, anomaly.RuleRefreshReuse, 1)[0]
	if ev.Handle != rec.Handle || ev.Detail["generation"] != "3" || ev.Actor != anomaly.Actor {
		t.Errorf("reuse event %+v", ev)
	}
	f.rec.wait(t, sessionkit.EventRevoked, "anomaly", 1)
	if _, err := f.m.Validate(ctx, tok, home); !errors.Is(err, sessionkit.ErrRevoked) {
		t.Errorf("Validate: %v", err)
	}
}

func TestLoginSurge(t *testing.T) {
	f := newFixture(t, anomaly.Config{SurgeInterval: time.Hour, SurgeMinCount: 10, SurgeMultiplier: 5, NewDevice: anomaly.Off}, sessionkit.Binding{})
	// A usual level: two logins an hour for ten hours.
	for range 10 {
		for range 2 {
			if _, _, err := f.m.Create(ctx, sessionkit.CreateParams{Subject: "alice", Client: home}); err != nil {
				t.Fatal(err)
			}
		}
		f.clk.Add(time.Hour)
	}
	if got := f.rec.find(sessionkit.EventAnomaly, anomaly.RuleLoginSurge); len(got) != 0 {
		t.Fatalf("surge at the usual level: %+v", got)
	}
	// Then 12 in one hour: the tenth is at the minimum and above 5 x 1.94.
	for range 12 {
		f.m.Create(ctx, sessionkit.CreateParams{Subject: "alice", Client: home})
	}
	ev := f.rec.wait(t, sessionkit.EventAnomaly, anomaly.RuleLoginSurge, 1)[0]
	if ev.Subject != "alice" || ev.Detail["logins"] != "10" {
		t.Errorf("surge event %+v", ev)
	}
	time.Sleep(20 * time.Millisecond)
	if n := len(f.rec.find(sessionkit.EventAnomaly, anomaly.RuleLoginSurge)); n != 1 {
		t.Errorf("%d surge alerts in one interval, want 1", n)
	}
}

func TestNewDevice(t *testing.T) {
	f := newFixture(t, anomaly.Config{NewDevice: anomaly.StepUp}, sessionkit.Binding{})
	f.m.Create(ctx, sessionkit.CreateParams{Subject: "alice", Client: home, AuthLevel: levelX})
	// Same family and network, other version and host: known.
	same := sessionkit.Client{IP: "198.51.100.200", UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0"}
	f.m.Create(ctx, sessionkit.CreateParams{Subject: "alice", Client: same, AuthLevel: levelX})
	tok, rec, _ := f.m.Create(ctx, sessionkit.CreateParams{Subject: "alice", Client: phone, AuthLevel: levelX})
	evs := f.rec.wait(t, sessionkit.EventAnomaly, anomaly.RuleNewDevice, 1)
	if len(evs) != 1 || evs[0].Handle != rec.Handle || evs[0].Detail["device"] != "safari/ios@198.51.100.0/24" {
		t.Fatalf("new device events %+v", evs)
	}
	f.rec.wait(t, sessionkit.EventUpdated, "auth_level_lowered", 1)
	got, err := f.m.Validate(ctx, tok, phone)
	if err != nil || got.AuthLevel != 0 {
		t.Errorf("after step-up: %+v %v", got, err)
	}
	// The phone is known now.
	f.m.Create(ctx, sessionkit.CreateParams{Subject: "alice", Client: phone})
	time.Sleep(20 * time.Millisecond)
	if n := len(f.rec.find(sessionkit.EventAnomaly, anomaly.RuleNewDevice)); n != 1 {
		t.Errorf("%d new-device alerts, want 1", n)
	}
	// Another subject's first login raises nothing.
	f.m.Create(ctx, sessionkit.CreateParams{Subject: "bob", Client: phone})
	time.Sleep(20 * time.Millisecond)
	if n := len(f.rec.find(sessionkit.EventAnomaly, anomaly.RuleNewDevice)); n != 1 {
		t.Errorf("first login of a subject alerted")
	}
}

func TestEngineIgnoresItself(t *testing.T) {
	eng := anomaly.New(anomaly.Config{RefreshReuse: anomaly.Revoke})
	defer eng.Close()
	// Not started: nothing can act, and its own events are skipped.
	eng.Emit(ctx, sessionkit.Event{Type: sessionkit.EventRefreshReused, Actor: anomaly.Actor, Handle: "h"})
	if st := eng.Stats(); st.Dropped != 0 {
		t.Errorf("own event evaluated: %+v", st)
	}
}

func FuzzUAFamily(f *testing.F) {
	f.Add(home.UserAgent)
	f.Add(phone.UserAgent)
	f.Add("")
	f.Fuzz(func(t *testing.T, ua string) {
		fam := anomaly.UAFamily(ua)
		if len(fam) == 0 || len(fam) > 32 {
			t.Fatalf("family %q", fam)
		}
	})
}
