package pgstore

import (
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit"
)

// FuzzNotifyPayload feeds arbitrary payloads to the notification parser: it
// must never panic, and whatever it cannot parse must empty the cache
// rather than leave a possibly stale entry.
func FuzzNotifyPayload(f *testing.F) {
	f.Add(strings.Repeat("ab", 32) + ":handle")
	f.Add(strings.Repeat("ab", 32))
	f.Add(strings.Repeat("zz", 32) + ":h")
	f.Add(strings.Repeat("ab", 40) + ":h")
	f.Add(":")
	f.Add("")
	f.Fuzz(func(t *testing.T, payload string) {
		c := &nearCache{
			ttl: time.Hour, max: 10, now: time.Now, enabled: true,
			byHash:   make(map[sessionkit.TokenHash]*cacheEntry),
			byHandle: make(map[string]sessionkit.TokenHash),
			cancel:   func() {},
		}
		rec := newRecord("", time.Now())
		rec.IdleDeadline = time.Now().Add(2 * time.Hour)
		c.fill(c.begin(), rec)
		epoch := c.begin()
		c.apply(payload)
		if c.begin() == epoch {
			t.Fatalf("payload %q did not move the epoch", payload)
		}
		if _, ok := c.get(rec.TokenHash); ok {
			hexHash, _, _ := strings.Cut(payload, ":")
			if len(hexHash) != 64 {
				t.Fatalf("unparseable payload %q left the cache in place", payload)
			}
		}
	})
}

// TestNearCacheRefusesRacingFill checks the epoch rule: a read that began
// before an invalidation cannot store what it read.
func TestNearCacheRefusesRacingFill(t *testing.T) {
	c := &nearCache{
		ttl: time.Hour, max: 10, now: time.Now, enabled: true,
		byHash:   make(map[sessionkit.TokenHash]*cacheEntry),
		byHandle: make(map[string]sessionkit.TokenHash),
	}
	rec := newRecord("", time.Now())
	rec.IdleDeadline = time.Now().Add(2 * time.Hour)
	epoch := c.begin()
	c.invalidate(rec.Handle, rec.TokenHash) // a change committed meanwhile
	c.fill(epoch, rec)
	if _, ok := c.get(rec.TokenHash); ok {
		t.Fatal("a fill that raced an invalidation was stored")
	}
	c.fill(c.begin(), rec)
	if _, ok := c.get(rec.TokenHash); !ok {
		t.Fatal("a fill with the current epoch was not stored")
	}
	// A cached record may be changed by its reader without changing the cache.
	r, _ := c.get(rec.TokenHash)
	for k := range r.Data {
		r.Data[k][0] = '!'
	}
	r2, _ := c.get(rec.TokenHash)
	for k, v := range r2.Data {
		if string(v) != string(rec.Data[k]) {
			t.Fatalf("cached Data[%q] changed through a returned record: %s", k, v)
		}
	}
	// Disabled (listener down): nothing is served and nothing stored.
	c.setEnabled(false)
	c.fill(c.begin(), rec)
	if _, ok := c.get(rec.TokenHash); ok {
		t.Fatal("a disabled cache served an entry")
	}
}
