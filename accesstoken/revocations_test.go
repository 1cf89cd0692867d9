package accesstoken_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/accesstoken"
	"github.com/sessionkit/sessionkit/accesstoken/verify"
	"github.com/sessionkit/sessionkit/internal/testclock"
)

// TestRevocationReachesSecondVerifier revokes sessions on the issuer and
// measures how long a second verifier, fed only by the revocation stream,
// takes to reject their access tokens.
func TestRevocationReachesSecondVerifier(t *testing.T) {
	e := newEnv(t, accesstoken.EdDSA, nil)
	srv := httptest.NewServer(e.revs)
	defer srv.Close()

	set := &verify.RevocationSet{Now: e.clk.Now}
	feed := &verify.RevocationFeed{URL: srv.URL, Set: set, RetryDelay: 50 * time.Millisecond}
	// An entry made before the verifier connected arrives in the snapshot.
	tok0, rec0 := e.login(t, "early")
	early, err := e.is.Issue(t.Context(), tok0, accesstoken.Params{})
	if err != nil {
		t.Fatal(err)
	}
	e.m.Revoke(t.Context(), rec0.Handle, sessionkit.ReasonOperator)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go feed.Run(ctx)
	select {
	case <-feed.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("the revocation stream never became ready")
	}
	remote, err := verify.New(verify.Config{
		Issuer: "https://sessions.test", Audience: "api", Keys: e.ring,
		Revocations: set, Now: e.clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Verify(t.Context(), early.AccessToken); !errors.Is(err, verify.ErrRevoked) {
		t.Fatalf("snapshot entry: err = %v, want ErrRevoked", err)
	}

	const trials = 200
	lags := make([]time.Duration, 0, trials)
	for i := range trials {
		tok, rec := e.login(t, "alice")
		p, err := e.is.Issue(t.Context(), tok, accesstoken.Params{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := remote.Verify(t.Context(), p.AccessToken); err != nil {
			t.Fatalf("trial %d: live token rejected: %v", i, err)
		}
		start := time.Now()
		if _, err := e.m.Revoke(t.Context(), rec.Handle, sessionkit.ReasonOperator); err != nil {
			t.Fatal(err)
		}
		for {
			_, err := remote.Verify(t.Context(), p.AccessToken)
			if errors.Is(err, verify.ErrRevoked) {
				break
			}
			if time.Since(start) > 5*time.Second {
				t.Fatalf("trial %d: revocation did not arrive within 5s", i)
			}
			time.Sleep(20 * time.Microsecond)
		}
		lags = append(lags, time.Since(start))
	}
	slices.Sort(lags)
	p50, p99, max := lags[len(lags)/2], lags[len(lags)*99/100], lags[len(lags)-1]
	t.Logf("revocation lag (revoke -> second verifier rejects) over %d trials: p50 %v, p99 %v, max %v", trials, p50, p99, max)
	if p99 > time.Second {
		t.Errorf("p99 lag %v over 1s", p99)
	}

	// A subject-wide revocation voids tokens issued up to it.
	tok, _ := e.login(t, "carol")
	p, _ := e.is.Issue(t.Context(), tok, accesstoken.Params{})
	e.revs.RevokeSubject("carol")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := remote.Verify(t.Context(), p.AccessToken); errors.Is(err, verify.ErrRevoked) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("subject revocation did not arrive")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRevocationEntriesExpire(t *testing.T) {
	clk := testclock.New(time.Now())
	revs := accesstoken.NewRevocations(time.Minute, clk.Now)
	revs.Emit(t.Context(), sessionkit.Event{Type: sessionkit.EventLoggedOut, Handle: "h1"})
	revs.Emit(t.Context(), sessionkit.Event{Type: sessionkit.EventRejected, Handle: "h2"})
	if err := revs.Check(&verify.Claims{SessionID: "h1"}); !errors.Is(err, verify.ErrRevoked) {
		t.Fatalf("logged-out sid: err = %v", err)
	}
	if err := revs.Check(&verify.Claims{SessionID: "h2"}); err != nil {
		t.Fatalf("a rejection revoked a session: %v", err)
	}
	snapshot := func() string {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		ctx, cancel := context.WithCancel(req.Context())
		cancel() // the handler writes the snapshot and returns
		revs.ServeHTTP(rec, req.WithContext(ctx))
		return rec.Body.String()
	}
	if body := snapshot(); !strings.Contains(body, `"sid":"h1"`) || !strings.Contains(body, "event: ready") {
		t.Fatalf("stream before expiry: %q", body)
	}
	clk.Add(2 * time.Minute)
	if err := revs.Check(&verify.Claims{SessionID: "h1"}); err != nil {
		t.Fatalf("expired entry still matches: %v", err)
	}
	if body := snapshot(); strings.Contains(body, "h1") || !strings.Contains(body, "event: ready") {
		t.Fatalf("stream after expiry: %q", body)
	}
}
