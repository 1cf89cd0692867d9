package bench

import (
	"context"
	"net/http/httptest"
	"testing"
)

// TestRedisMemoryPerSession stores one session holding the same
// value through sessionkit and through scs, then adds up Redis's MEMORY
// USAGE of every key each wrote. It reports the figures; it asserts only
// that both wrote something, since the sizes depend on the Redis version.
func TestRedisMemoryPerSession(t *testing.T) {
	url := redisURL(t)
	for _, l := range []lib{sessionkitLib("sessionkit-redis", true, false), scsLib("scs-redis", true)} {
		t.Run(l.name, func(t *testing.T) {
			p := prefix(t, url)
			var c counter
			handler := l.setup(t, url, p, &c)
			req := httptest.NewRequest("GET", "/", nil)
			req.RemoteAddr = "192.0.2.1:1234"
			req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) bench")
			rec := httptest.NewRecorder()
			handler(true).ServeHTTP(rec, req)
			if len(rec.Result().Cookies()) != 1 {
				t.Fatal("no session was created")
			}
			bytes, keys := memoryUsage(t, url, p)
			if keys == 0 || bytes == 0 {
				t.Fatalf("no keys under %s", p)
			}
			t.Logf("%s: %d keys, %d bytes (MEMORY USAGE) for one session", l.name, keys, bytes)
		})
	}
}

func memoryUsage(t *testing.T, url, p string) (bytes int64, keys int) {
	c := newRueidis(t, url)
	defer c.Close()
	ctx := context.Background()
	for _, node := range c.Nodes() {
		var cursor uint64
		for {
			e, err := node.Do(ctx, node.B().Scan().Cursor(cursor).Match(p+"*").Count(1000).Build()).AsScanEntry()
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range e.Elements {
				n, err := node.Do(ctx, node.B().MemoryUsage().Key(k).Build()).AsInt64()
				if err != nil {
					t.Fatal(err)
				}
				bytes += n
				keys++
				t.Logf("  %s: %d bytes", k[len(p):], n)
			}
			if cursor = e.Cursor; cursor == 0 {
				break
			}
		}
	}
	return bytes, keys
}
