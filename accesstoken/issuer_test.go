package accesstoken_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/accesstoken"
	"github.com/sessionkit/sessionkit/accesstoken/verify"
	"github.com/sessionkit/sessionkit/internal/testclock"
	"github.com/sessionkit/sessionkit/store/memstore"
)

// eventLog records events for assertions.
type eventLog struct {
	mu     sync.Mutex
	events []sessionkit.Event
}

func (l *eventLog) Emit(_ context.Context, e sessionkit.Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *eventLog) count(typ sessionkit.EventType) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.events {
		if e.Type == typ {
			n++
		}
	}
	return n
}

type env struct {
	clk    *testclock.Clock
	store  *memstore.Store
	m      *sessionkit.Manager
	ring   *accesstoken.KeyRing
	revs   *accesstoken.Revocations
	is     *accesstoken.Issuer
	events *eventLog
}

func newEnv(t testing.TB, alg string, mod func(*accesstoken.Config)) *env {
	t.Helper()
	e := &env{clk: testclock.New(time.Now().Truncate(time.Second)), events: &eventLog{}}
	e.store = memstore.New(memstore.Options{})
	t.Cleanup(func() { e.store.Close() })
	e.revs = accesstoken.NewRevocations(6*time.Minute, e.clk.Now)
	m, err := sessionkit.New(e.store, sessionkit.Config{
		Now:    e.clk.Now,
		Events: sessionkit.MultiSink{e.events, e.revs},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
	e.ring, err = accesstoken.NewKeyRing(context.Background(), accesstoken.KeyRingConfig{Algorithm: alg, Now: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	cfg := accesstoken.Config{Issuer: "https://sessions.test", Audience: "api", Audiences: []string{"other"}, Revocations: e.revs}
	if mod != nil {
		mod(&cfg)
	}
	e.is, err = accesstoken.NewIssuer(m, e.ring, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) login(t testing.TB, subject string) (string, *sessionkit.Record) {
	t.Helper()
	tok, rec, err := e.m.Create(context.Background(), sessionkit.CreateParams{Subject: subject, AuthLevel: 2})
	if err != nil {
		t.Fatal(err)
	}
	return tok, rec
}

func (e *env) verifier(t testing.TB) *verify.Verifier {
	t.Helper()
	v, err := e.is.Verifier("api")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestIssueAndVerify(t *testing.T) {
	for _, alg := range []string{accesstoken.EdDSA, accesstoken.ES256, accesstoken.RS256} {
		t.Run(alg, func(t *testing.T) {
			e := newEnv(t, alg, func(c *accesstoken.Config) {
				c.Claims = func(_ context.Context, rec *sessionkit.Record) (map[string]any, error) {
					return map[string]any{"tenant": "acme"}, nil
				}
			})
			tok, rec := e.login(t, "alice")
			p, err := e.is.Issue(t.Context(), tok, accesstoken.Params{Extra: map[string]any{"scope": "x"}})
			if !errors.Is(err, accesstoken.ErrReservedClaim) {
				t.Fatalf("Issue with reserved extra claim: err = %v, want ErrReservedClaim", err)
			}
			p, err = e.is.Issue(t.Context(), tok, accesstoken.Params{})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(p.AccessToken, tok) || strings.Contains(p.RefreshToken, tok) {
				t.Fatal("a token contains the session token")
			}
			c, err := e.verifier(t).Verify(t.Context(), p.AccessToken)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if c.Subject != "alice" || c.SessionID != rec.Handle || c.AuthLevel != 2 || string(c.Extra["tenant"]) != `"acme"` {
				t.Fatalf("claims = %+v", c)
			}
			if got := c.Expiry.Sub(c.IssuedAt); got != accesstoken.DefaultLifetime {
				t.Fatalf("lifetime %v, want %v", got, accesstoken.DefaultLifetime)
			}
			// The refresh token is not an access token.
			if _, err := e.verifier(t).Verify(t.Context(), p.RefreshToken); !errors.Is(err, verify.ErrMalformed) {
				t.Fatalf("Verify(refresh token) err = %v, want ErrMalformed", err)
			}
			// Another audience is verified only by its own verifier.
			p2, err := e.is.Issue(t.Context(), tok, accesstoken.Params{Audience: "other"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.verifier(t).Verify(t.Context(), p2.AccessToken); !errors.Is(err, verify.ErrAudience) {
				t.Fatalf("Verify(other audience) err = %v, want ErrAudience", err)
			}
			if _, err := e.is.Issue(t.Context(), tok, accesstoken.Params{Audience: "unlisted"}); !errors.Is(err, accesstoken.ErrAudience) {
				t.Fatalf("Issue(unlisted audience) err = %v", err)
			}
		})
	}
}

func TestIssueRefusesOversizedToken(t *testing.T) {
	e := newEnv(t, accesstoken.EdDSA, nil)
	tok, _ := e.login(t, "alice")
	_, err := e.is.Issue(t.Context(), tok, accesstoken.Params{Extra: map[string]any{"blob": strings.Repeat("x", 4000)}})
	if !errors.Is(err, accesstoken.ErrTokenTooLarge) {
		t.Fatalf("err = %v, want ErrTokenTooLarge", err)
	}
	// Just under the limit works.
	if _, err := e.is.Issue(t.Context(), tok, accesstoken.Params{Extra: map[string]any{"blob": strings.Repeat("x", 2000)}}); err != nil {
		t.Fatal(err)
	}
}

func TestIssueRejectsBadSessions(t *testing.T) {
	e := newEnv(t, accesstoken.EdDSA, nil)
	anon, _, err := e.m.Create(t.Context(), sessionkit.CreateParams{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.is.Issue(t.Context(), anon, accesstoken.Params{}); !errors.Is(err, accesstoken.ErrAnonymous) {
		t.Fatalf("anonymous: err = %v", err)
	}
	if _, err := e.is.Issue(t.Context(), "not-a-token", accesstoken.Params{}); !errors.Is(err, sessionkit.ErrMalformed) {
		t.Fatalf("malformed: err = %v", err)
	}
	tok, rec := e.login(t, "alice")
	if _, err := e.m.Revoke(t.Context(), rec.Handle, sessionkit.ReasonOperator); err != nil {
		t.Fatal(err)
	}
	if _, err := e.is.Issue(t.Context(), tok, accesstoken.Params{}); !errors.Is(err, sessionkit.ErrRevoked) {
		t.Fatalf("revoked: err = %v", err)
	}
}

func TestRefreshRotation(t *testing.T) {
	e := newEnv(t, accesstoken.EdDSA, func(c *accesstoken.Config) { c.RefreshGrace = time.Second })
	tok, rec := e.login(t, "alice")
	p0, err := e.is.Issue(t.Context(), tok, accesstoken.Params{})
	if err != nil {
		t.Fatal(err)
	}
	e.clk.Add(2 * time.Second)
	p1, err := e.is.Refresh(t.Context(), p0.RefreshToken, accesstoken.Params{})
	if err != nil {
		t.Fatal(err)
	}
	if p1.RefreshToken == p0.RefreshToken || p1.AccessToken == p0.AccessToken {
		t.Fatal("refresh returned the same tokens")
	}
	if _, err := e.verifier(t).Verify(t.Context(), p1.AccessToken); err != nil {
		t.Fatal(err)
	}
	stored, err := e.store.GetByHandle(t.Context(), rec.Handle)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Refresh.Generation != 2 || len(stored.Refresh.Successor) == 0 || stored.Refresh.RotatedAt.IsZero() {
		t.Fatalf("refresh state = %+v", stored.Refresh)
	}
	if strings.Contains(string(stored.Refresh.Successor), strings.SplitN(p1.RefreshToken, ".", 2)[1]) {
		t.Fatal("the successor is stored in the clear")
	}
	if !stored.IdleDeadline.After(rec.IdleDeadline) {
		t.Fatal("refresh did not slide the idle deadline")
	}
	// Within the grace window the previous token yields the same successor.
	p1b, err := e.is.Refresh(t.Context(), p0.RefreshToken, accesstoken.Params{})
	if err != nil {
		t.Fatal(err)
	}
	if p1b.RefreshToken != p1.RefreshToken {
		t.Fatal("grace refresh returned a different successor")
	}
	// Forged secrets for a known handle are invalid, not reuse.
	handle := strings.SplitN(p1.RefreshToken, ".", 2)[0]
	forged := handle + "." + strings.Repeat("A", 42) + "A"
	if _, err := e.is.Refresh(t.Context(), forged, accesstoken.Params{}); !errors.Is(err, accesstoken.ErrInvalidRefresh) {
		t.Fatalf("forged: err = %v", err)
	}
	for _, bad := range []string{"", "x", p1.AccessToken, handle + ".", strings.Repeat("a", 200)} {
		if _, err := e.is.Refresh(t.Context(), bad, accesstoken.Params{}); !errors.Is(err, accesstoken.ErrInvalidRefresh) {
			t.Fatalf("Refresh(%.20q): err = %v", bad, err)
		}
	}
	// After the grace window the previous token is reuse: the session ends.
	e.clk.Add(2 * time.Second)
	if _, err := e.is.Refresh(t.Context(), p0.RefreshToken, accesstoken.Params{}); !errors.Is(err, accesstoken.ErrRefreshReused) {
		t.Fatalf("reuse: err = %v, want ErrRefreshReused", err)
	}
	if e.events.count(sessionkit.EventRefreshReused) != 1 {
		t.Fatal("no refresh_reused event")
	}
	got, _ := e.store.GetByHandle(t.Context(), rec.Handle)
	if !got.Revoked() || got.RevokedReason != sessionkit.ReasonRefreshReuse {
		t.Fatalf("session after reuse: revoked=%v reason=%q", got.Revoked(), got.RevokedReason)
	}
	// Everything of that session is dead now: the current refresh token,
	// the session token and (through the revocation list) the access token.
	if _, err := e.is.Refresh(t.Context(), p1.RefreshToken, accesstoken.Params{}); !errors.Is(err, sessionkit.ErrRevoked) {
		t.Fatalf("successor after reuse: err = %v", err)
	}
	if _, err := e.m.Validate(t.Context(), tok, sessionkit.Client{}); !errors.Is(err, sessionkit.ErrRevoked) {
		t.Fatalf("session token after reuse: err = %v", err)
	}
	if _, err := e.verifier(t).Verify(t.Context(), p1.AccessToken); !errors.Is(err, verify.ErrRevoked) {
		t.Fatalf("access token after reuse: err = %v", err)
	}
}

// An attacker who stole a refresh token and rotated it twice must not keep
// the session when the victim presents the stolen (now long retired) token.
func TestRefreshReuseOfOlderToken(t *testing.T) {
	for _, inGrace := range []bool{false, true} {
		t.Run(fmt.Sprintf("in grace window %v", inGrace), func(t *testing.T) {
			e := newEnv(t, accesstoken.EdDSA, func(c *accesstoken.Config) { c.RefreshGrace = time.Minute })
			tok, rec := e.login(t, "victim")
			p1, err := e.is.Issue(t.Context(), tok, accesstoken.Params{})
			if err != nil {
				t.Fatal(err)
			}
			p2, err := e.is.Refresh(t.Context(), p1.RefreshToken, accesstoken.Params{})
			if err != nil {
				t.Fatal(err)
			}
			p3, err := e.is.Refresh(t.Context(), p2.RefreshToken, accesstoken.Params{})
			if err != nil {
				t.Fatal(err)
			}
			if !inGrace {
				e.clk.Add(2 * time.Minute)
			}
			// Two rotations back is never the honest client's retry.
			if _, err := e.is.Refresh(t.Context(), p1.RefreshToken, accesstoken.Params{}); !errors.Is(err, accesstoken.ErrRefreshReused) {
				t.Fatalf("older token: err = %v, want ErrRefreshReused", err)
			}
			if _, err := e.is.Refresh(t.Context(), p3.RefreshToken, accesstoken.Params{}); !errors.Is(err, sessionkit.ErrRevoked) {
				t.Fatalf("the attacker's current token still works: %v", err)
			}
			if got, _ := e.store.GetByHandle(t.Context(), rec.Handle); !got.Revoked() {
				t.Fatal("session not revoked")
			}
		})
	}
	// A token of an earlier family (before Issue started a new one) or a
	// forged one is invalid, not reuse: nobody can revoke a session by
	// knowing its handle.
	e := newEnv(t, accesstoken.EdDSA, nil)
	tok, rec := e.login(t, "carol")
	old, _ := e.is.Issue(t.Context(), tok, accesstoken.Params{})
	if _, err := e.is.Issue(t.Context(), tok, accesstoken.Params{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.is.Refresh(t.Context(), old.RefreshToken, accesstoken.Params{}); !errors.Is(err, accesstoken.ErrInvalidRefresh) {
		t.Fatalf("earlier family: err = %v", err)
	}
	if got, _ := e.store.GetByHandle(t.Context(), rec.Handle); got.Revoked() {
		t.Fatal("a token of an earlier family revoked the session")
	}
}

func TestConcurrentRefreshOneSuccessor(t *testing.T) {
	e := newEnv(t, accesstoken.EdDSA, func(c *accesstoken.Config) { c.RefreshGrace = time.Second })
	tok, rec := e.login(t, "alice")
	p0, err := e.is.Issue(t.Context(), tok, accesstoken.Params{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	results := make([]*accesstoken.Pair, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = e.is.Refresh(context.Background(), p0.RefreshToken, accesstoken.Params{})
		}()
	}
	close(start)
	wg.Wait()
	successors := map[string]bool{}
	jtis := map[string]bool{}
	v := e.verifier(t)
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("refresh %d: %v", i, errs[i])
		}
		successors[results[i].RefreshToken] = true
		c, err := v.Verify(t.Context(), results[i].AccessToken)
		if err != nil {
			t.Fatalf("access token %d: %v", i, err)
		}
		jtis[c.ID] = true
	}
	if len(successors) != 1 {
		t.Fatalf("%d live successors, want exactly 1", len(successors))
	}
	if len(jtis) != n {
		t.Fatalf("%d distinct access tokens, want %d", len(jtis), n)
	}
	stored, _ := e.store.GetByHandle(t.Context(), rec.Handle)
	if stored.Revoked() || stored.Refresh.Generation != 2 {
		t.Fatalf("after concurrent refresh: revoked=%v generation=%d", stored.Revoked(), stored.Refresh.Generation)
	}
	var succ string
	for s := range successors {
		succ = s
	}
	e.clk.Add(1500 * time.Millisecond)
	p2, err := e.is.Refresh(t.Context(), succ, accesstoken.Params{})
	if err != nil {
		t.Fatalf("successor: %v", err)
	}
	e.clk.Add(1500 * time.Millisecond)
	if _, err := e.is.Refresh(t.Context(), succ, accesstoken.Params{}); !errors.Is(err, accesstoken.ErrRefreshReused) {
		t.Fatalf("old token after the grace window: err = %v, want ErrRefreshReused", err)
	}
	if _, err := e.is.Refresh(t.Context(), p2.RefreshToken, accesstoken.Params{}); err == nil {
		t.Fatal("the session survived reuse")
	}
}

func TestRefreshRaceWithRevoke(t *testing.T) {
	e := newEnv(t, accesstoken.EdDSA, nil)
	for range 20 {
		tok, rec := e.login(t, "alice")
		p, err := e.is.Issue(t.Context(), tok, accesstoken.Params{})
		if err != nil {
			t.Fatal(err)
		}
		var ok atomic.Bool
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); e.m.Revoke(context.Background(), rec.Handle, sessionkit.ReasonOperator) }()
		go func() {
			defer wg.Done()
			if _, err := e.is.Refresh(context.Background(), p.RefreshToken, accesstoken.Params{}); err == nil {
				ok.Store(true)
			}
		}()
		wg.Wait()
		got, _ := e.store.GetByHandle(t.Context(), rec.Handle)
		if !got.Revoked() {
			t.Fatal("a refresh resurrected a revoked session")
		}
		if _, err := e.is.Refresh(t.Context(), p.RefreshToken, accesstoken.Params{}); err == nil {
			t.Fatal("refresh after revoke succeeded")
		}
	}
}
