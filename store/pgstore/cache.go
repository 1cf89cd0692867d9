package pgstore

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sessionkit/sessionkit"
)

// nearCache keeps records by token hash for a short TTL. It serves entries
// only while its LISTEN connection is up: the trigger on the sessions table
// notifies every change except Touch, and the listener drops the entries it
// names. Whenever the listener is down, the cache is empty and disabled.
//
// A read that misses takes the current epoch before asking the database and
// may store its result only if the epoch has not moved since. Every
// invalidation and every change of the listener state moves the epoch, so a
// read that raced a change can never store the value from before it.
type nearCache struct {
	cfg       *pgx.ConnConfig
	channel   string
	ttl       time.Duration
	max       int
	heartbeat time.Duration
	retry     time.Duration
	now       func() time.Time

	mu       sync.Mutex
	enabled  bool
	epoch    uint64
	byHash   map[sessionkit.TokenHash]*cacheEntry
	byHandle map[string]sessionkit.TokenHash

	hits, misses atomic.Uint64

	cancel context.CancelFunc
	done   chan struct{}
}

type cacheEntry struct {
	rec     *sessionkit.Record
	expires time.Time
}

func newNearCache(cfg *pgx.ConnConfig, channel string, o NearCacheOptions, now func() time.Time) *nearCache {
	c := &nearCache{
		cfg:       cfg,
		channel:   channel,
		ttl:       o.TTL,
		max:       o.MaxEntries,
		heartbeat: o.Heartbeat,
		retry:     o.RetryDelay,
		now:       now,
		byHash:    make(map[sessionkit.TokenHash]*cacheEntry),
		byHandle:  make(map[string]sessionkit.TokenHash),
		done:      make(chan struct{}),
	}
	if c.ttl <= 0 {
		c.ttl = 2 * time.Second
	}
	if c.max <= 0 {
		c.max = 10000
	}
	if c.heartbeat <= 0 {
		c.heartbeat = 5 * time.Second
	}
	if c.retry <= 0 {
		c.retry = 100 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go c.run(ctx)
	return c
}

// get returns a copy of the cached record for h. A live entry is served
// only if its idle deadline lies beyond the entry's expiry: activity is
// not announced (Touch does not notify), so a cached record may lag other
// instances' activity by up to the TTL, and such a lag must never make a
// session look idle-expired when it is not. Records near their idle
// deadline are read from the database instead.
func (c *nearCache) get(h sessionkit.TokenHash) (*sessionkit.Record, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byHash[h]
	if !c.enabled || !ok {
		c.misses.Add(1)
		return nil, false
	}
	if !c.now().Before(e.expires) {
		c.dropLocked(h)
		c.misses.Add(1)
		return nil, false
	}
	if !e.rec.Revoked() && !e.rec.IdleDeadline.After(e.expires) {
		c.misses.Add(1)
		return nil, false
	}
	c.hits.Add(1)
	return deepClone(e.rec), true
}

// begin returns the epoch a read must present to fill.
func (c *nearCache) begin() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epoch
}

// fill stores a copy of rec read from the database if nothing was
// invalidated since begin returned epoch.
func (c *nearCache) fill(epoch uint64, rec *sessionkit.Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enabled || epoch != c.epoch {
		return
	}
	if len(c.byHash) >= c.max {
		for h := range c.byHash { // evict an arbitrary entry
			c.dropLocked(h)
			break
		}
	}
	if old, ok := c.byHandle[rec.Handle]; ok {
		c.dropLocked(old)
	}
	c.byHash[rec.TokenHash] = &cacheEntry{rec: deepClone(rec), expires: c.now().Add(c.ttl)}
	c.byHandle[rec.Handle] = rec.TokenHash
}

func (c *nearCache) dropLocked(h sessionkit.TokenHash) {
	if e, ok := c.byHash[h]; ok {
		delete(c.byHash, h)
		if c.byHandle[e.rec.Handle] == h {
			delete(c.byHandle, e.rec.Handle)
		}
	}
}

// invalidate drops the entries for a handle and a token hash (either may
// be zero) and moves the epoch.
func (c *nearCache) invalidate(handle string, h sessionkit.TokenHash) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	if old, ok := c.byHandle[handle]; ok {
		c.dropLocked(old)
	}
	if h != (sessionkit.TokenHash{}) {
		c.dropLocked(h)
	}
}

// touch applies this instance's own activity to its cached entry, forward
// only, as the database does.
func (c *nearCache) touch(handle string, a sessionkit.Activity) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.byHandle[handle]
	if !ok {
		return
	}
	if e := c.byHash[h]; e != nil && e.rec.LastSeenAt.Before(a.LastSeenAt) && !e.rec.Revoked() {
		e.rec.Activity = a
	}
}

// setEnabled flushes the cache and switches it on or off.
func (c *nearCache) setEnabled(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	c.enabled = on
	clear(c.byHash)
	clear(c.byHandle)
}

// isEnabled reports whether the listener is up and the cache serving.
func (c *nearCache) isEnabled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.enabled
}

func (c *nearCache) close() {
	c.cancel()
	<-c.done
}

// run keeps a LISTEN connection open, reconnecting with backoff, until ctx
// is cancelled.
func (c *nearCache) run(ctx context.Context) {
	defer close(c.done)
	delay := c.retry
	for {
		err := c.listen(ctx)
		c.setEnabled(false)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errListening) { // was up for a while: retry quickly
			delay = c.retry
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// errListening marks a listener that failed after LISTEN had succeeded.
var errListening = errors.New("pgstore: listener connection lost")

// listen connects, LISTENs and applies notifications until the connection
// fails. The cache is enabled only once LISTEN is in place, after a flush,
// so nothing changed while the listener was down can be served.
func (c *nearCache) listen(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.ConnectConfig(cctx, c.cfg)
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn.Close(cctx)
		cancel()
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{c.channel}.Sanitize()); err != nil {
		return err
	}
	c.setEnabled(true)
	for {
		wctx, cancel := context.WithTimeout(ctx, c.heartbeat)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			c.apply(n.Payload)
			continue
		case ctx.Err() != nil:
			return ctx.Err()
		case !errors.Is(err, context.DeadlineExceeded):
			return errors.Join(errListening, err)
		}
		// Idle for a heartbeat: make sure the connection is still there.
		pctx, cancel := context.WithTimeout(ctx, c.heartbeat)
		err = conn.Ping(pctx)
		cancel()
		if err != nil {
			return errors.Join(errListening, err)
		}
	}
}

// apply handles a payload "<hex old token hash>:<handle>". A payload it
// cannot parse flushes the whole cache: failing safe costs only misses.
func (c *nearCache) apply(payload string) {
	hexHash, handle, ok := strings.Cut(payload, ":")
	var h sessionkit.TokenHash
	if !ok || len(hexHash) != 2*len(h) {
		c.setEnabled(true)
		return
	}
	if _, err := hex.Decode(h[:], []byte(hexHash)); err != nil {
		c.setEnabled(true)
		return
	}
	c.invalidate(handle, h)
}

// deepClone copies r including the bytes of its Data values, which
// Record.Clone shares: a caller changing a returned record in place must
// not change the cached one.
func deepClone(r *sessionkit.Record) *sessionkit.Record {
	c := r.Clone()
	for k, v := range c.Data {
		c.Data[k] = append(json.RawMessage(nil), v...)
	}
	return c
}
