package sessionkit_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit"
)

var ctx = context.Background()

func TestLifecycle(t *testing.T) {
	e := newEnv(t, sessionkit.Config{})
	client := sessionkit.Client{IP: "192.0.2.1", UserAgent: "test"}
	tok, rec, err := e.mgr.Create(ctx, sessionkit.CreateParams{Client: client,
		Data: map[string]json.RawMessage{"cart": json.RawMessage(`[1,2]`)}})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Subject != "" || rec.Version != 1 || rec.Handle == "" {
		t.Fatalf("created %+v", rec)
	}
	got, err := e.mgr.Validate(ctx, tok, client)
	if err != nil || got.Handle != rec.Handle {
		t.Fatalf("validate: %v %v", got, err)
	}

	e.clock.Add(time.Minute)
	newTok, renewed, err := e.mgr.Renew(ctx, tok, sessionkit.RenewParams{Subject: "alice", AuthLevel: 1, Client: client})
	if err != nil {
		t.Fatal(err)
	}
	if newTok == tok || renewed.Handle != rec.Handle || renewed.Subject != "alice" {
		t.Fatalf("renewed %+v", renewed)
	}
	if !renewed.AbsoluteDeadline.Equal(rec.AbsoluteDeadline) {
		t.Fatal("renewal moved the absolute deadline")
	}
	if string(renewed.Data["cart"]) != `[1,2]` {
		t.Fatal("login lost the anonymous session's data")
	}
	_, err = e.mgr.Validate(ctx, tok, client)
	mustErr(t, err, sessionkit.ErrNotFound)
	if _, err := e.mgr.Validate(ctx, newTok, client); err != nil {
		t.Fatal(err)
	}
	list, err := e.mgr.List(ctx, "alice")
	if err != nil || len(list) != 1 || list[0].Handle != rec.Handle {
		t.Fatalf("list = %v, %v", list, err)
	}

	// Logging in as someone else starts from empty data.
	other, bob, err := e.mgr.Renew(ctx, newTok, sessionkit.RenewParams{Subject: "bob"})
	if err != nil || len(bob.Data) != 0 {
		t.Fatalf("switch user: %+v %v", bob, err)
	}
	if err := e.mgr.Logout(ctx, other); err != nil {
		t.Fatal(err)
	}
	_, err = e.mgr.Validate(ctx, other, client)
	mustErr(t, err, sessionkit.ErrRevoked)
	mustErr(t, e.mgr.Logout(ctx, other), sessionkit.ErrRevoked)
	for typ, want := range map[sessionkit.EventType]int{
		sessionkit.EventCreated: 1, sessionkit.EventAuthenticated: 2, sessionkit.EventLoggedOut: 1,
	} {
		if n := e.ev.count(typ, ""); n != want {
			t.Errorf("%s events = %d, want %d", typ, n, want)
		}
	}
}

func TestExpiry(t *testing.T) {
	cfg := sessionkit.Config{IdleTimeout: 10 * time.Minute, AbsoluteTimeout: time.Hour, TouchInterval: time.Minute}
	tests := []struct {
		name  string
		steps []time.Duration // time between validations, each must succeed
		last  time.Duration   // then this, which must fail
		event sessionkit.EventType
	}{
		{"idle", nil, 10 * time.Minute, sessionkit.EventExpiredIdle},
		{"idle just before", []time.Duration{10*time.Minute - time.Second}, 10 * time.Minute, sessionkit.EventExpiredIdle},
		{"sliding keeps it alive until absolute", []time.Duration{9 * time.Minute, 9 * time.Minute, 9 * time.Minute, 9 * time.Minute, 9 * time.Minute, 9 * time.Minute}, 6 * time.Minute, sessionkit.EventExpiredAbs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, cfg)
			tok, _, err := e.mgr.Create(ctx, sessionkit.CreateParams{Subject: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			for i, d := range tt.steps {
				e.clock.Add(d)
				rec, err := e.mgr.Validate(ctx, tok, sessionkit.Client{})
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if rec.IdleDeadline.After(rec.AbsoluteDeadline) {
					t.Fatal("idle deadline past the absolute deadline")
				}
			}
			e.clock.Add(tt.last)
			_, err = e.mgr.Validate(ctx, tok, sessionkit.Client{})
			mustErr(t, err, sessionkit.ErrExpired)
			_, err = e.mgr.Validate(ctx, tok, sessionkit.Client{})
			mustErr(t, err, sessionkit.ErrExpired)
			if n := e.ev.count(tt.event, ""); n != 1 {
				t.Fatalf("%s events = %d, want exactly 1", tt.event, n)
			}
			if l, _ := e.mgr.List(ctx, "alice"); len(l) != 0 {
				t.Fatal("expired session still listed")
			}
			// After retention the record is gone for good.
			e.clock.Add(2 * time.Hour)
			if n, err := e.mgr.Sweep(ctx); err != nil || n != 1 {
				t.Fatalf("sweep = %d, %v", n, err)
			}
			_, err = e.mgr.Validate(ctx, tok, sessionkit.Client{})
			mustErr(t, err, sessionkit.ErrNotFound)
		})
	}
}

func TestTouchIsThrottled(t *testing.T) {
	e := newEnv(t, sessionkit.Config{TouchInterval: time.Minute})
	tok, _, _ := e.mgr.Create(ctx, sessionkit.CreateParams{Subject: "a"})
	for range 100 {
		e.clock.Add(time.Second)
		if _, err := e.mgr.Validate(ctx, tok, sessionkit.Client{}); err != nil {
			t.Fatal(err)
		}
	}
	// 100 seconds of requests, one per second: one touch per minute.
	if n := e.store.touches.Load(); n != 1 {
		t.Fatalf("touch writes = %d, want 1", n)
	}
}

func TestMalformedAndUnknownTokens(t *testing.T) {
	e := newEnv(t, sessionkit.Config{})
	real, _, _ := e.mgr.Create(ctx, sessionkit.CreateParams{})
	tests := map[string]struct {
		tok  string
		want error
	}{
		"empty":   {"", sessionkit.ErrMalformed},
		"garbage": {"../../etc/passwd", sessionkit.ErrMalformed},
		"unknown": {strings.Repeat("A", 43), sessionkit.ErrNotFound},
		"flipped": {flip(real), sessionkit.ErrNotFound},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := e.mgr.Validate(ctx, tt.tok, sessionkit.Client{})
			mustErr(t, err, tt.want)
		})
	}
}

func flip(tok string) string {
	b := []byte(tok)
	if b[0] == 'A' {
		b[0] = 'B'
	} else {
		b[0] = 'A'
	}
	return string(b)
}

func TestStoreErrorFailsClosed(t *testing.T) {
	e := newEnv(t, sessionkit.Config{})
	tok, _, _ := e.mgr.Create(ctx, sessionkit.CreateParams{Subject: "a"})
	e.store.down.Store(true)
	_, err := e.mgr.Validate(ctx, tok, sessionkit.Client{})
	mustErr(t, err, sessionkit.ErrStore)
	_, _, err = e.mgr.Renew(ctx, tok, sessionkit.RenewParams{AuthLevel: 2})
	mustErr(t, err, sessionkit.ErrStore)
	e.store.down.Store(false)
	if _, err := e.mgr.Validate(ctx, tok, sessionkit.Client{}); err != nil {
		t.Fatal("no recovery after the store came back:", err)
	}
}

func TestBinding(t *testing.T) {
	home := sessionkit.Client{IP: "198.51.100.7", UserAgent: "Firefox"}
	tests := []struct {
		name    string
		binding sessionkit.Binding
		next    sessionkit.Client
		wantErr error
		anomaly string
	}{
		{"same network is fine", sessionkit.Binding{OnIPChange: sessionkit.BindReject}, sessionkit.Client{IP: "198.51.100.200", UserAgent: "Firefox"}, nil, ""},
		{"ip change raises anomaly", sessionkit.Binding{}, sessionkit.Client{IP: "203.0.113.5", UserAgent: "Firefox"}, nil, sessionkit.ReasonIPChange},
		{"ip change rejected", sessionkit.Binding{OnIPChange: sessionkit.BindReject}, sessionkit.Client{IP: "203.0.113.5", UserAgent: "Firefox"}, sessionkit.ErrRevoked, sessionkit.ReasonIPChange},
		{"ua change rejected", sessionkit.Binding{OnUserAgentChange: sessionkit.BindReject}, sessionkit.Client{IP: "198.51.100.7", UserAgent: "curl"}, sessionkit.ErrRevoked, sessionkit.ReasonUAChange},
		{"ignored", sessionkit.Binding{OnIPChange: sessionkit.BindIgnore, OnUserAgentChange: sessionkit.BindIgnore}, sessionkit.Client{IP: "203.0.113.5", UserAgent: "curl"}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, sessionkit.Config{Binding: tt.binding})
			tok, _, _ := e.mgr.Create(ctx, sessionkit.CreateParams{Subject: "a", Client: home})
			_, err := e.mgr.Validate(ctx, tok, tt.next)
			if !errors.Is(err, tt.wantErr) && !(err == nil && tt.wantErr == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.anomaly != "" && e.ev.count(sessionkit.EventAnomaly, tt.anomaly) != 1 {
				t.Fatalf("want one %s anomaly, events %+v", tt.anomaly, e.ev.all())
			}
			if tt.anomaly == "" && e.ev.count(sessionkit.EventAnomaly, "") != 0 {
				t.Fatal("unexpected anomaly")
			}
			if tt.wantErr != nil {
				_, err := e.mgr.Validate(ctx, tok, home)
				mustErr(t, err, sessionkit.ErrRevoked)
			}
			// One change is reported once, not on every request.
			if tt.wantErr == nil {
				e.mgr.Validate(ctx, tok, tt.next)
				if n := e.ev.count(sessionkit.EventAnomaly, ""); n > 1 {
					t.Fatalf("anomaly reported %d times", n)
				}
			}
		})
	}
}

func TestSubjectLimit(t *testing.T) {
	for _, policy := range []sessionkit.LimitPolicy{sessionkit.LimitReject, sessionkit.LimitEvictOldest} {
		t.Run(fmt.Sprint(policy), func(t *testing.T) {
			e := newEnv(t, sessionkit.Config{MaxSessionsPerSubject: 2, LimitPolicy: policy})
			var toks []string
			for range 2 {
				tok, _, err := e.mgr.Create(ctx, sessionkit.CreateParams{Subject: "a"})
				if err != nil {
					t.Fatal(err)
				}
				toks = append(toks, tok)
				e.clock.Add(time.Second)
			}
			// The third arrives as a login of an anonymous session.
			anon, _, _ := e.mgr.Create(ctx, sessionkit.CreateParams{})
			_, _, err := e.mgr.Renew(ctx, anon, sessionkit.RenewParams{Subject: "a"})
			if policy == sessionkit.LimitReject {
				mustErr(t, err, sessionkit.ErrLimit)
				if _, err := e.mgr.Validate(ctx, toks[0], sessionkit.Client{}); err != nil {
					t.Fatal("rejection changed an existing session")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.mgr.Validate(ctx, toks[0], sessionkit.Client{})
			mustErr(t, err, sessionkit.ErrRevoked)
			if l, _ := e.mgr.List(ctx, "a"); len(l) != 2 {
				t.Fatalf("live sessions = %d", len(l))
			}
		})
	}
}

func TestRevokeSubjectExcept(t *testing.T) {
	e := newEnv(t, sessionkit.Config{})
	var handles []string
	var toks []string
	for range 3 {
		tok, rec, _ := e.mgr.Create(ctx, sessionkit.CreateParams{Subject: "a"})
		handles, toks = append(handles, rec.Handle), append(toks, tok)
	}
	n, err := e.mgr.RevokeSubject(ctx, "a", handles[1], sessionkit.ReasonRevokeAll)
	if err != nil || n != 2 {
		t.Fatalf("revoked %d, %v", n, err)
	}
	for i, tok := range toks {
		_, err := e.mgr.Validate(ctx, tok, sessionkit.Client{})
		if (i == 1) != (err == nil) {
			t.Fatalf("session %d: %v", i, err)
		}
	}
}

func TestUpdateDataConflictAndNoResurrection(t *testing.T) {
	e := newEnv(t, sessionkit.Config{})
	tok, rec, _ := e.mgr.Create(ctx, sessionkit.CreateParams{Subject: "a"})
	up, err := e.mgr.UpdateData(ctx, rec.Handle, rec.Version, map[string]json.RawMessage{"k": json.RawMessage(`1`)})
	if err != nil || up.Version != 2 {
		t.Fatalf("update: %v %v", up, err)
	}
	_, err = e.mgr.UpdateData(ctx, rec.Handle, rec.Version, map[string]json.RawMessage{"k": json.RawMessage(`2`)})
	mustErr(t, err, sessionkit.ErrConflict)
	up, err = e.mgr.UpdateData(ctx, rec.Handle, up.Version, map[string]json.RawMessage{"k": nil})
	if err != nil || len(up.Data) != 0 {
		t.Fatalf("null did not remove the key: %v %v", up, err)
	}

	// Writers racing a logout: none may succeed after it, none brings it back.
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.mgr.UpdateData(ctx, rec.Handle, 0, map[string]json.RawMessage{fmt.Sprint(i): json.RawMessage(`1`)})
		}()
	}
	if err := e.mgr.Logout(ctx, tok); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	_, err = e.mgr.Validate(ctx, tok, sessionkit.Client{})
	mustErr(t, err, sessionkit.ErrRevoked)
	_, err = e.mgr.UpdateData(ctx, rec.Handle, 0, map[string]json.RawMessage{"x": json.RawMessage(`1`)})
	mustErr(t, err, sessionkit.ErrRevoked)
}

func TestDataLimit(t *testing.T) {
	e := newEnv(t, sessionkit.Config{MaxDataBytes: 100})
	big := json.RawMessage(`"` + strings.Repeat("x", 200) + `"`)
	_, _, err := e.mgr.Create(ctx, sessionkit.CreateParams{Data: map[string]json.RawMessage{"k": big}})
	mustErr(t, err, sessionkit.ErrDataTooLarge)
}

func TestConfigRejectsInsecureCombinations(t *testing.T) {
	tests := map[string]sessionkit.Config{
		"host prefix with domain":      {Cookie: sessionkit.CookieConfig{Domain: "example.com"}},
		"host prefix with path":        {Cookie: sessionkit.CookieConfig{Path: "/app"}},
		"host prefix without secure":   {Cookie: sessionkit.CookieConfig{InsecureNoSecure: true}},
		"samesite none without secure": {Cookie: sessionkit.CookieConfig{Name: "sid", SameSite: 4, InsecureNoSecure: true}},
		"idle over absolute":           {IdleTimeout: 2 * time.Hour, AbsoluteTimeout: time.Hour},
		"touch over idle":              {IdleTimeout: time.Minute, TouchInterval: time.Minute},
		"bad cookie name":              {Cookie: sessionkit.CookieConfig{Name: "a b"}},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := sessionkit.New(newEnv(t, sessionkit.Config{}).store, cfg)
			mustErr(t, err, sessionkit.ErrConfig)
		})
	}
	// The explicit opt-out works with a name that allows it.
	if _, err := sessionkit.New(newEnv(t, sessionkit.Config{}).store, sessionkit.Config{
		Cookie: sessionkit.CookieConfig{Name: "dev_session", InsecureNoSecure: true}}); err != nil {
		t.Fatal(err)
	}
}

func TestValidateWithoutClientKeepsLastClient(t *testing.T) {
	e := newEnv(t, sessionkit.Config{TouchInterval: time.Second})
	home := sessionkit.Client{IP: "198.51.100.7", UserAgent: "Firefox"}
	tok, _, _ := e.mgr.Create(ctx, sessionkit.CreateParams{Subject: "a", Client: home})
	e.clock.Add(time.Minute)
	rec, err := e.mgr.Validate(ctx, tok, sessionkit.Client{})
	if err != nil || rec.LastClient != home {
		t.Fatalf("last client = %+v, %v", rec.LastClient, err)
	}
}

func TestInvalidSubjectChangesNothing(t *testing.T) {
	e := newEnv(t, sessionkit.Config{})
	anon, _, _ := e.mgr.Create(ctx, sessionkit.CreateParams{})
	for name, subject := range map[string]string{
		"nul":       "a\x00b",
		"newline":   "alice\nadmin",
		"too long":  strings.Repeat("x", sessionkit.MaxSubjectLen+1),
		"bad utf-8": "\xff",
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := e.mgr.Create(ctx, sessionkit.CreateParams{Subject: subject})
			mustErr(t, err, sessionkit.ErrInvalid)
			_, _, err = e.mgr.Renew(ctx, anon, sessionkit.RenewParams{Subject: subject})
			mustErr(t, err, sessionkit.ErrInvalid)
			if _, err := e.mgr.Validate(ctx, anon, sessionkit.Client{}); err != nil {
				t.Fatal("a rejected renewal changed the session:", err)
			}
		})
	}
}
