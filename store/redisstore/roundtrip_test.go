package redisstore

import (
	"context"
	"errors"
	"fmt"
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
// one per DoMulti pipeline.
type countingClient struct {
	rueidis.Client
	n atomic.Int64
}

func (c *countingClient) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	c.n.Add(1)
	return c.Client.Do(ctx, cmd)
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

// Without the near cache on a single server, Get and GetByHandle cost one
// round trip, for anonymous and subject sessions, found or not.
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
	s.Get(ctx, anon.TokenHash)

	tests := []struct {
		name    string
		read    func() (*sessionkit.Record, error)
		handle  string
		wantErr error
	}{
		{"anonymous by token", func() (*sessionkit.Record, error) { return s.Get(ctx, anon.TokenHash) }, anon.Handle, nil},
		{"subject by token", func() (*sessionkit.Record, error) { return s.Get(ctx, user.TokenHash) }, user.Handle, nil},
		{"renewed by token", func() (*sessionkit.Record, error) { return s.Get(ctx, renewed.TokenHash) }, renewed.Handle, nil},
		{"anonymous by handle", func() (*sessionkit.Record, error) { return s.GetByHandle(ctx, anon.Handle) }, anon.Handle, nil},
		{"subject by handle", func() (*sessionkit.Record, error) { return s.GetByHandle(ctx, user.Handle) }, user.Handle, nil},
		{"old token after renewal", func() (*sessionkit.Record, error) { return s.Get(ctx, oldHash) }, "", sessionkit.ErrNotFound},
		{"unknown token", func() (*sessionkit.Record, error) { return s.Get(ctx, sessionkit.TokenHash{1}) }, "", sessionkit.ErrNotFound},
		{"unknown handle", func() (*sessionkit.Record, error) { return s.GetByHandle(ctx, "nope") }, "", sessionkit.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := cc.n.Load()
			r, err := tt.read()
			if got := cc.n.Load() - before; got != 1 {
				t.Errorf("%d round trips, want 1", got)
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
