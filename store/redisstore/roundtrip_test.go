package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/internal/redistest"
	"github.com/sessionkit/sessionkit/internal/testenv"
	"github.com/sessionkit/sessionkit/storetest"
)

// countingClient counts the round trips a Store makes: one per Do, and
// one per DoMulti pipeline. It also keeps the commands sent with Do.
type countingClient struct {
	rueidis.Client
	n  atomic.Int64
	mu sync.Mutex
	do [][]string
}

func (c *countingClient) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	c.n.Add(1)
	c.mu.Lock()
	c.do = append(c.do, slices.Clone(cmd.Commands()))
	c.mu.Unlock()
	return c.Client.Do(ctx, cmd)
}

// sent returns the commands sent with Do since the last call.
func (c *countingClient) sent() [][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.do
	c.do = nil
	return out
}

func (c *countingClient) DoMulti(ctx context.Context, cmds ...rueidis.Completed) []rueidis.RedisResult {
	c.n.Add(1)
	return c.Client.DoMulti(ctx, cmds...)
}

func (c *countingClient) DoCache(ctx context.Context, cmd rueidis.Cacheable, ttl time.Duration) rueidis.RedisResult {
	c.n.Add(1)
	return c.Client.DoCache(ctx, cmd, ttl)
}

func (c *countingClient) DoMultiCache(ctx context.Context, cmds ...rueidis.CacheableTTL) []rueidis.RedisResult {
	c.n.Add(1)
	return c.Client.DoMultiCache(ctx, cmds...)
}

// Without the near cache on a single server, Get of a session and
// GetByHandle cost one round trip, for anonymous and subject sessions,
// found or not. Get of a token without a session costs two: no copy, then
// the pointer.
func TestReadsOneRoundTrip(t *testing.T) {
	url := testenv.RedisURL(t)
	co, err := clientOption(url)
	if err != nil {
		t.Fatal(err)
	}
	co.DisableCache = true
	raw, err := rueidis.NewClient(co)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if raw.Mode() == rueidis.ClientModeCluster {
		t.Skip("one round trip is for a single server")
	}
	cc := &countingClient{Client: raw}
	prefix := uniquePrefix()
	s, err := New(t.Context(), Options{Client: cc, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteKeys(t, url, prefix) })
	ctx := t.Context()
	now := time.Now()

	anon := storetest.NewRecord("", now)
	user := storetest.NewRecord("alice", now)
	renewed := storetest.NewRecord("bob", now)
	for _, r := range []*sessionkit.Record{anon, user, renewed} {
		if _, err := s.Create(ctx, r, sessionkit.Limit{}); err != nil {
			t.Fatal(err)
		}
	}
	oldHash := renewed.TokenHash
	renewed.TokenHash = storetest.NewRecord("", now).TokenHash
	if _, err := s.Update(ctx, renewed, sessionkit.Limit{}); err != nil {
		t.Fatal(err)
	}
	// The script is loaded on first use (NOSCRIPT, then EVAL_RO).
	s.GetByHandle(ctx, anon.Handle)

	tests := []struct {
		name    string
		read    func() (*sessionkit.Record, error)
		handle  string
		wantErr error
		trips   int64
	}{
		{"anonymous by token", func() (*sessionkit.Record, error) { return s.Get(ctx, anon.TokenHash) }, anon.Handle, nil, 1},
		{"subject by token", func() (*sessionkit.Record, error) { return s.Get(ctx, user.TokenHash) }, user.Handle, nil, 1},
		{"renewed by token", func() (*sessionkit.Record, error) { return s.Get(ctx, renewed.TokenHash) }, renewed.Handle, nil, 1},
		{"anonymous by handle", func() (*sessionkit.Record, error) { return s.GetByHandle(ctx, anon.Handle) }, anon.Handle, nil, 1},
		{"subject by handle", func() (*sessionkit.Record, error) { return s.GetByHandle(ctx, user.Handle) }, user.Handle, nil, 1},
		{"old token after renewal", func() (*sessionkit.Record, error) { return s.Get(ctx, oldHash) }, "", sessionkit.ErrNotFound, 2},
		{"unknown token", func() (*sessionkit.Record, error) { return s.Get(ctx, sessionkit.TokenHash{1}) }, "", sessionkit.ErrNotFound, 2},
		{"unknown handle", func() (*sessionkit.Record, error) { return s.GetByHandle(ctx, "nope") }, "", sessionkit.ErrNotFound, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := cc.n.Load()
			r, err := tt.read()
			if got := cc.n.Load() - before; got != tt.trips {
				t.Errorf("%d round trips, want %d", got, tt.trips)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && r.Handle != tt.handle {
				t.Errorf("handle = %q, want %q", r.Handle, tt.handle)
			}
		})
	}
}

// On a single server, an update that keeps token and subject is one round
// trip, helper keys included, and leaves them as the general path would.
func TestUpdateOneRoundTrip(t *testing.T) {
	url := testenv.RedisURL(t)
	co, err := clientOption(url)
	if err != nil {
		t.Fatal(err)
	}
	co.DisableCache = true
	raw, err := rueidis.NewClient(co)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if raw.Mode() == rueidis.ClientModeCluster {
		t.Skip("one round trip is for a single server")
	}
	cc := &countingClient{Client: raw}
	prefix := uniquePrefix()
	s, err := New(t.Context(), Options{Client: cc, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteKeys(t, url, prefix) })
	ctx := t.Context()
	for _, subject := range []string{"", "carol"} {
		rec := storetest.NewRecord(subject, time.Now())
		if _, err := s.Create(ctx, rec, sessionkit.Limit{}); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			rec.LastSeenAt = rec.LastSeenAt.Add(time.Minute)
			rec.PurgeAt = rec.PurgeAt.Add(time.Hour)
			before := cc.n.Load()
			if _, err := s.Update(ctx, rec, sessionkit.Limit{}); err != nil {
				t.Fatal(err)
			}
			// The first call may load the script (NOSCRIPT, then EVAL).
			if got := cc.n.Load() - before; i > 0 && got != 1 {
				t.Errorf("subject %q: update took %d round trips, want 1", subject, got)
			}
		}
		tag := homeTag(subject, rec.Handle)
		// Helper keys live at least until PurgeAt (-1: no expiry at all).
		wantMS := rec.PurgeAt.UnixMilli()
		keys := []string{s.k.ptr(rec.TokenHash)}
		if subject != "" {
			keys = append(keys, s.k.rec(anonTag(rec.Handle), rec.Handle))
		}
		for _, k := range keys {
			got, err := raw.Do(ctx, raw.B().Pexpiretime().Key(k).Build()).AsInt64()
			if err != nil || (got != -1 && got < wantMS) {
				t.Errorf("subject %q: %s expires at %d (%v), want at least %d", subject, k, got, err, wantMS)
			}
		}
		score, err := raw.Do(ctx, raw.B().Zscore().Key(s.k.expiry()).Member(ref{rec.Handle, tag}.String()).Build()).AsFloat64()
		if err != nil || int64(score) != rec.PurgeAt.UnixMicro() {
			t.Errorf("subject %q: expiry score %v (%v), want %d", subject, int64(score), err, rec.PurgeAt.UnixMicro())
		}
	}
}

func TestScriptRefused(t *testing.T) {
	for msg, want := range map[string]bool{
		"ERR Script attempted to access a non local key in a cluster node script": true,
		"CROSSSLOT Keys in request don't hash to the same slot":                   true,
		"BUSY Redis is busy running a script":                                     false,
		"LOADING Redis is loading the dataset in memory":                          false,
	} {
		if got := scriptRefused(msg); got != want {
			t.Errorf("scriptRefused(%q) = %v, want %v", msg, got, want)
		}
	}
}

// TestScriptsFlushed checks that every path loads its scripts again after
// the server forgot them (a restart or failover does that): the pipelined
// EVALSHA of the helper keys falls back to EVAL.
func TestScriptsFlushed(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	srv := redistest.Start(t)
	s := newTestStore(t, srv.URL(), Options{})
	ctx := t.Context()
	rec := storetest.NewRecord("user:flush", time.Now())
	if _, err := s.Create(ctx, rec, sessionkit.Limit{}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		do   func() error
	}{
		{"update", func() error {
			_, err := s.Update(ctx, rec, sessionkit.Limit{})
			return err
		}},
		{"renew", func() error {
			rec.TokenHash = storetest.NewRecord("", time.Now()).TokenHash
			_, err := s.Update(ctx, rec, sessionkit.Limit{})
			return err
		}},
		{"touch", func() error {
			a := rec.Activity
			a.LastSeenAt = a.LastSeenAt.Add(time.Minute)
			a.PurgeAt = a.PurgeAt.Add(time.Minute)
			return s.Touch(ctx, rec.Handle, a)
		}},
		{"get", func() error {
			r, err := s.Get(ctx, rec.TokenHash)
			if err == nil && r.Version != rec.Version {
				return fmt.Errorf("version %d, want %d", r.Version, rec.Version)
			}
			return err
		}},
	}
	for _, st := range steps {
		if _, err := srv.Do("SCRIPT", "FLUSH"); err != nil {
			t.Fatal(err)
		}
		if err := st.do(); err != nil {
			t.Fatalf("%s after SCRIPT FLUSH: %v", st.name, err)
		}
	}
}

// On a single server without the near cache, Get of a session is one
// plain GET of its copy, and the copy follows every write: a renewal
// removes the old hash's copy in the same script that stores the record.
func TestGetIsOneGET(t *testing.T) {
	url := testenv.RedisURL(t)
	co, err := clientOption(url)
	if err != nil {
		t.Fatal(err)
	}
	co.DisableCache = true
	raw, err := rueidis.NewClient(co)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if raw.Mode() == rueidis.ClientModeCluster {
		t.Skip("copies are kept on a single server only")
	}
	cc := &countingClient{Client: raw}
	prefix := uniquePrefix()
	s, err := New(t.Context(), Options{Client: cc, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteKeys(t, url, prefix) })
	ctx := t.Context()
	now := time.Now()

	exists := func(hash sessionkit.TokenHash) bool {
		t.Helper()
		n, err := raw.Do(ctx, raw.B().Exists().Key(s.k.copy(hash)).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	// wantGet checks that Get(hash) returns want with one plain GET.
	wantGet := func(step string, hash sessionkit.TokenHash, want *sessionkit.Record) {
		t.Helper()
		cc.sent()
		before := cc.n.Load()
		got, err := s.Get(ctx, hash)
		if err != nil {
			t.Fatalf("%s: Get: %v", step, err)
		}
		if n := cc.n.Load() - before; n != 1 {
			t.Errorf("%s: %d round trips, want 1", step, n)
		}
		if sent := cc.sent(); len(sent) != 1 || !slices.Equal(sent[0], []string{"GET", s.k.copy(hash)}) {
			t.Errorf("%s: sent %q, want one GET of the copy", step, sent)
		}
		if got.Handle != want.Handle || got.Version != want.Version || got.Revoked() != want.Revoked() ||
			!got.LastSeenAt.Equal(want.LastSeenAt) || string(got.Data["n"]) != string(want.Data["n"]) {
			t.Errorf("%s: got handle %q version %d revoked %v seen %v, want %q %d %v %v", step,
				got.Handle, got.Version, got.Revoked(), got.LastSeenAt, want.Handle, want.Version, want.Revoked(), want.LastSeenAt)
		}
	}

	for _, subject := range []string{"", "dave"} {
		rec := storetest.NewRecord(subject, now)
		if _, err := s.Create(ctx, rec, sessionkit.Limit{}); err != nil {
			t.Fatal(err)
		}
		wantGet("create", rec.TokenHash, rec)

		rec.Data = map[string]json.RawMessage{"n": json.RawMessage(`1`)}
		if _, err := s.Update(ctx, rec, sessionkit.Limit{}); err != nil {
			t.Fatal(err)
		}
		wantGet("update", rec.TokenHash, rec)

		a := rec.Activity
		a.LastSeenAt = a.LastSeenAt.Add(time.Minute)
		if err := s.Touch(ctx, rec.Handle, a); err != nil {
			t.Fatal(err)
		}
		rec.Activity = a
		wantGet("touch", rec.TokenHash, rec)

		old := rec.TokenHash
		rec.TokenHash = storetest.NewRecord("", now).TokenHash
		if _, err := s.Update(ctx, rec, sessionkit.Limit{}); err != nil {
			t.Fatal(err)
		}
		if exists(old) {
			t.Errorf("subject %q: the old hash's copy outlived the renewal", subject)
		}
		if _, err := s.Get(ctx, old); !errors.Is(err, sessionkit.ErrNotFound) {
			t.Errorf("subject %q: Get(old hash) = %v, want ErrNotFound", subject, err)
		}
		wantGet("renew", rec.TokenHash, rec)

		// A subject change with a new token moves the copy with the record.
		old = rec.TokenHash
		rec.Subject = subject + "-other"
		rec.TokenHash = storetest.NewRecord("", now).TokenHash
		if _, err := s.Update(ctx, rec, sessionkit.Limit{}); err != nil {
			t.Fatal(err)
		}
		if exists(old) {
			t.Errorf("subject %q: the old hash's copy outlived the move", subject)
		}
		wantGet("move", rec.TokenHash, rec)

		out, err := s.Revoke(ctx, rec.Handle, sessionkit.Revocation{At: now, PurgeAt: now.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		wantGet("revoke", rec.TokenHash, out)

		if err := s.Delete(ctx, rec.Handle); err != nil {
			t.Fatal(err)
		}
		if exists(rec.TokenHash) {
			t.Errorf("subject %q: copy left after Delete", subject)
		}
	}
}
