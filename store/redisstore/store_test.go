package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/internal/testenv"
	"github.com/sessionkit/sessionkit/storetest"
)

func uniquePrefix() string {
	var b [6]byte
	rand.Read(b[:])
	return "skt" + hex.EncodeToString(b[:]) + ":"
}

// newTestStore opens a store on url with a fresh prefix and removes every
// key under that prefix when the test ends.
func newTestStore(t testing.TB, url string, o Options) *Store {
	t.Helper()
	o.URL = url
	if o.Prefix == "" {
		o.Prefix = uniquePrefix()
	}
	s, err := New(t.Context(), o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		s.Close()
		deleteKeys(t, url, o.Prefix)
	})
	return s
}

// deleteKeys removes the keys of one test from every master.
func deleteKeys(t testing.TB, url, prefix string) {
	co, err := clientOption(url)
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	co.DisableCache = true
	c, err := rueidis.NewClient(co)
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	defer c.Close()
	ctx := context.Background()
	for _, node := range c.Nodes() {
		var cursor uint64
		for {
			e, err := node.Do(ctx, node.B().Scan().Cursor(cursor).Match(prefix+"*").Count(1000).Build()).AsScanEntry()
			if err != nil {
				break // a replica or a stopped node
			}
			for _, k := range e.Elements {
				node.Do(ctx, node.B().Del().Key(k).Build())
			}
			if cursor = e.Cursor; cursor == 0 {
				break
			}
		}
	}
}

func TestConformance(t *testing.T) {
	url := testenv.RedisURL(t)
	for _, near := range []bool{false, true} {
		name := "plain"
		if near {
			name = "nearcache"
		}
		t.Run(name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) sessionkit.Store {
				return newTestStore(t, url, Options{NearCache: near})
			})
		})
	}
}

func TestConformanceKV(t *testing.T) {
	url := testenv.RedisURL(t)
	storetest.RunKV(t, func(t *testing.T) sessionkit.KVStore {
		return newTestStore(t, url, Options{})
	})
}

// Keys a session leaves behind after Delete must all be gone.
func TestDeleteLeavesNoKeys(t *testing.T) {
	url := testenv.RedisURL(t)
	s := newTestStore(t, url, Options{})
	ctx := t.Context()
	now := time.Now()
	for _, subject := range []string{"", "alice"} {
		r := storetest.NewRecord(subject, now)
		if _, err := s.Create(ctx, r, sessionkit.Limit{}); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, r.Handle); err != nil {
			t.Fatal(err)
		}
	}
	// The expiry set is shared by the store; nothing else may remain.
	n := countKeys(t, s, s.k.prefix+"*")
	if n != 0 {
		t.Fatalf("%d keys left after Delete", n)
	}
}

func countKeys(t *testing.T, s *Store, pattern string) int {
	t.Helper()
	n := 0
	for _, node := range s.c.Nodes() {
		var cursor uint64
		for {
			e, err := node.Do(t.Context(), node.B().Scan().Cursor(cursor).Match(pattern).Count(1000).Build()).AsScanEntry()
			if err != nil {
				t.Fatal(err)
			}
			n += len(e.Elements)
			if cursor = e.Cursor; cursor == 0 {
				break
			}
		}
	}
	return n
}

func testenvRedis() string { return os.Getenv(testenv.RedisEnv) }
