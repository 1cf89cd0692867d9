package eventlog

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/redis/rueidis"

	"github.com/sessionkit/sessionkit"
)

// DefaultPerKeyMax bounds each per-handle, per-subject and per-type list of
// a Redis history.
const DefaultPerKeyMax = 500

// RedisOptions configure a Redis history.
type RedisOptions struct {
	Options
	// Prefix starts every key. Default "sessionkit:events:".
	Prefix string
	// PerKeyMax bounds the events kept per handle, subject and indexed
	// type. Default 500.
	PerKeyMax int
}

// Redis is a History in Redis. Layout:
//
//	<prefix>all         a stream of every event, trimmed with XADD MAXLEN ~
//	                    (MaxEvents) and XTRIM MINID ~ (Retention) in Prune
//	<prefix>h:<handle>  a list of the handle's events, newest first
//	<prefix>s:<subject> a list of the subject's events, newest first
//	<prefix>t:anomaly   a list of anomalies, newest first
//
// Each list is capped with LTRIM to PerKeyMax and expires Retention after its
// last write, so a quiet handle or subject costs nothing for long. MaxEvents
// bounds the stream; the lists are bounded separately (PerKeyMax each, for
// the handles and subjects active within the retention), so an event the
// stream dropped can still be found through its handle or subject. Every key
// is written on its own (no multi-key transaction), so the layout works
// unchanged on Redis Cluster; a crash between writes can leave an event in
// the stream but not in a list, which history tolerates.
type Redis struct {
	c      rueidis.Client
	own    bool
	opts   RedisOptions
	stream string
}

// indexedTypes get their own list: the types a console asks for without a
// handle or subject.
var indexedTypes = map[sessionkit.EventType]bool{sessionkit.EventAnomaly: true, sessionkit.EventRefreshReused: true}

// NewRedis returns a Redis history using c. Close does not close c.
func NewRedis(c rueidis.Client, o RedisOptions) *Redis {
	o.Options = o.Options.withDefaults()
	if o.Prefix == "" {
		o.Prefix = "sessionkit:events:"
	}
	if o.PerKeyMax <= 0 {
		o.PerKeyMax = DefaultPerKeyMax
	}
	return &Redis{c: c, opts: o, stream: o.Prefix + "all"}
}

// OpenRedis connects to the Redis server at url (redis://, rediss://) and
// returns a history that closes the connection on Close.
func OpenRedis(url string, o RedisOptions) (*Redis, error) {
	opt, err := rueidis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("%w: invalid Redis URL", ErrBackend)
	}
	opt.DisableCache = true
	c, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBackend, err)
	}
	r := NewRedis(c, o)
	r.own = true
	return r, nil
}

func (r *Redis) listKeys(e *Entry) []string {
	var keys []string
	if e.Handle != "" {
		keys = append(keys, r.opts.Prefix+"h:"+e.Handle)
	}
	if e.Subject != "" {
		keys = append(keys, r.opts.Prefix+"s:"+e.Subject)
	}
	if indexedTypes[e.Type] {
		keys = append(keys, r.opts.Prefix+"t:"+string(e.Type))
	}
	return keys
}

// Append writes entries in one pipeline.
func (r *Redis) Append(ctx context.Context, entries []Entry) error {
	ttl := strconv.FormatInt(r.opts.Retention.Milliseconds(), 10)
	keep := strconv.Itoa(r.opts.PerKeyMax - 1)
	maxLen := strconv.Itoa(r.opts.MaxEvents)
	// "~" trims whole stream nodes (about 100 entries), cheap but useless
	// for a small cap.
	trim := "~"
	if r.opts.MaxEvents < 10_000 {
		trim = "="
	}
	cmds := make(rueidis.Commands, 0, len(entries)*4)
	for i := range entries {
		e := &entries[i]
		body, err := json.Marshal(e)
		if err != nil {
			return err
		}
		b := string(body)
		cmds = append(cmds, r.c.B().Arbitrary("XADD").Keys(r.stream).Args("MAXLEN", trim, maxLen, "*", "e", b).Build())
		for _, k := range r.listKeys(e) {
			cmds = append(cmds,
				r.c.B().Arbitrary("LPUSH").Keys(k).Args(b).Build(),
				r.c.B().Arbitrary("LTRIM").Keys(k).Args("0", keep).Build(),
				r.c.B().Arbitrary("PEXPIRE").Keys(k).Args(ttl).Build(),
			)
		}
	}
	for _, res := range r.c.DoMulti(ctx, cmds...) {
		if err := res.Error(); err != nil {
			return fmt.Errorf("%w: %v", ErrBackend, err)
		}
	}
	return nil
}

// Query reads the narrowest list q names, or the stream.
func (r *Redis) Query(ctx context.Context, q Query) ([]Entry, error) {
	cutoff := r.opts.Now().Add(-r.opts.Retention)
	if q.Since.Before(cutoff) {
		q.Since = cutoff
	}
	limit := q.limit()
	var key string
	switch {
	case q.Handle != "":
		key = r.opts.Prefix + "h:" + q.Handle
	case q.Subject != "":
		key = r.opts.Prefix + "s:" + q.Subject
	case indexedTypes[q.Type]:
		key = r.opts.Prefix + "t:" + string(q.Type)
	}
	var out []Entry
	add := func(body string) bool {
		var e Entry
		if json.Unmarshal([]byte(body), &e) == nil && q.match(&e) {
			out = append(out, e)
		}
		return len(out) < limit
	}
	if key != "" {
		bodies, err := r.c.Do(ctx, r.c.B().Arbitrary("LRANGE").Keys(key).Args("0", strconv.Itoa(r.opts.PerKeyMax-1)).ReadOnly()).AsStrSlice()
		if err != nil && !rueidis.IsRedisNil(err) {
			return nil, fmt.Errorf("%w: %v", ErrBackend, err)
		}
		for _, b := range bodies {
			if !add(b) {
				break
			}
		}
	} else {
		// Page backwards through the stream, scanning at most 50 pages.
		end := "+"
		for page := 0; page < 50 && len(out) < limit; page++ {
			xs, err := r.c.Do(ctx, r.c.B().Arbitrary("XREVRANGE").Keys(r.stream).Args(end, "-", "COUNT", "200").ReadOnly()).AsXRange()
			if err != nil && !rueidis.IsRedisNil(err) {
				return nil, fmt.Errorf("%w: %v", ErrBackend, err)
			}
			for _, x := range xs {
				if !add(x.FieldValues["e"]) {
					break
				}
			}
			if len(xs) < 200 {
				break
			}
			end = "(" + xs[len(xs)-1].ID
		}
	}
	reverse(out)
	return out, nil
}

// Prune trims the stream to the retention. Lists trim and expire by
// themselves; queries filter their older entries.
func (r *Redis) Prune(ctx context.Context) (int, error) {
	// Stream IDs carry the server's clock, so the cutoff does too.
	now, err := r.c.Do(ctx, r.c.B().Arbitrary("TIME").Build()).AsStrSlice()
	if err != nil || len(now) != 2 {
		return 0, fmt.Errorf("%w: TIME: %v", ErrBackend, err)
	}
	sec, _ := strconv.ParseInt(now[0], 10, 64)
	cutoff := sec*1000 - r.opts.Retention.Milliseconds()
	n, err := r.c.Do(ctx, r.c.B().Arbitrary("XTRIM").Keys(r.stream).Args("MINID", "~", strconv.FormatInt(cutoff, 10)).Build()).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrBackend, err)
	}
	return int(n), nil
}

// Close closes the connection if OpenRedis made it.
func (r *Redis) Close() error {
	if r.own {
		r.c.Close()
	}
	return nil
}
