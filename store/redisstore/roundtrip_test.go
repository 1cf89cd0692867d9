package redisstore

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/sessionkit/sessionkit"
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
