package redisstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/sessionkit/sessionkit"
)

// Store is a sessionkit.Store and sessionkit.KVStore on Redis or Redis
// Cluster. It is safe for concurrent use.
type Store struct {
	c      rueidis.Client
	owned  bool
	k      keys
	o      Options
	recent *recent // nil without near cache
	// single: one server holds every key (not Cluster), so a script may
	// use keys it computes and keys of any slot. Reads then follow
	// pointers and stubs inside one script, and an update maintains the
	// helper keys in the same script (see doc.go).
	single atomic.Bool
}

var (
	_ sessionkit.Store   = (*Store)(nil)
	_ sessionkit.KVStore = (*Store)(nil)
)

const (
	maxHops     = 6  // forward stubs followed before giving up
	maxAttempts = 64 // optimistic retries of one operation
	pendingTTL  = 5 * time.Minute
)

func storeErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sessionkit.ErrStore) {
		return err
	}
	return fmt.Errorf("redisstore: %s: %w: %w", op, sessionkit.ErrStore, err)
}

func errorf(op, format string, args ...any) error {
	return fmt.Errorf("redisstore: %s: %w: %s", op, sessionkit.ErrStore, fmt.Sprintf(format, args...))
}

// home is what one home holds for a handle.
type home struct {
	tag     string
	state   string // "" (none), L, X, P or F
	version string
	bytes   string // record, or the target tag of a stub
	src     string // source tag of a pending record
	act     string // activity value, "" if none
}

// record decodes a home's record, with its activity merged in.
func (h home) record(op string) (*sessionkit.Record, error) {
	var r sessionkit.Record
	if err := r.UnmarshalBinary([]byte(h.bytes)); err != nil {
		return nil, storeErr(op, err)
	}
	if h.act != "" && h.state != "X" {
		a, err := decodeActivity(h.act)
		if err != nil {
			return nil, storeErr(op, err)
		}
		r.Activity = a
	}
	return &r, nil
}

// readHome reads a handle's record and activity in one round trip. With the
// near cache it is served from memory unless this instance wrote the key
// within the cache TTL.
func (s *Store) readHome(ctx context.Context, tag, handle string, fresh bool) (home, error) {
	rk, ak := s.k.rec(tag, handle), s.k.act(tag, handle)
	var res []rueidis.RedisResult
	if s.recent != nil && !fresh && !s.recent.has(rk) {
		ttl := s.o.NearCacheTTL
		res = s.c.DoMultiCache(ctx,
			rueidis.CT(s.c.B().Hgetall().Key(rk).Cache(), ttl),
			rueidis.CT(s.c.B().Get().Key(ak).Cache(), ttl))
	} else {
		res = s.c.DoMulti(ctx, s.c.B().Hgetall().Key(rk).Build(), s.c.B().Get().Key(ak).Build())
	}
	m, err := res[0].AsStrMap()
	if err != nil {
		return home{}, storeErr("read", err)
	}
	h := home{tag: tag, state: m["s"], version: m["v"], bytes: m["b"], src: m["o"]}
	if h.act, err = res[1].ToString(); err != nil && !rueidis.IsRedisNil(err) {
		return home{}, storeErr("read", err)
	}
	return h, nil
}

// locate follows a handle from tag to its current home and returns the home
// and its record (state L or X).
func (s *Store) locate(ctx context.Context, tag, handle string) (home, *sessionkit.Record, error) {
	var h home
	var err error
	if lk := s.k.rec(tag, handle); s.scriptRead(lk) {
		var ok bool
		h, ok, err = s.follow(ctx, lk, handle, tag)
		if err != nil {
			return home{}, nil, err
		}
		if ok {
			return s.resolve(ctx, h, handle)
		}
	}
	if h, err = s.readHome(ctx, tag, handle, false); err != nil {
		return home{}, nil, err
	}
	return s.resolve(ctx, h, handle)
}

// scriptRead reports whether a read starting at key uses luaFollow: on a
// single server, unless the near cache may serve key.
func (s *Store) scriptRead(key string) bool {
	return s.single.Load() && (s.recent == nil || s.recent.has(key))
}

// follow runs luaFollow from the locator key of handle in home tag. ok is
// false if Redis refused the script, after which the caller reads hop by
// hop.
func (s *Store) follow(ctx context.Context, key, handle, tag string) (h home, ok bool, err error) {
	h, _, ok, err = s.followRef(ctx, key, handle, tag)
	return h, ok, err
}

// followRef is follow for a token pointer key too (handle and tag ""); it
// then also returns the pointer's value.
func (s *Store) followRef(ctx context.Context, key, handle, tag string) (home, ref, bool, error) {
	vals, err := luaFollow.Exec(ctx, s.c, []string{key}, []string{s.k.prefix, strconv.Itoa(maxHops), handle, tag}).AsStrSlice()
	if err != nil {
		if rerr, isRedis := rueidis.IsRedisErr(err); isRedis && scriptRefused(rerr.Error()) {
			// A server that only serves some slots (a cluster node behind
			// a single-node client): keep to reads of declared keys.
			s.single.Store(false)
			return home{}, ref{}, false, nil
		}
		return home{}, ref{}, false, storeErr("read", err)
	}
	if len(vals) == 0 {
		return home{}, ref{}, true, sessionkit.ErrNotFound
	}
	var rf ref
	if handle == "" {
		if rf, err = parseRef(vals[0]); err != nil {
			return home{}, ref{}, true, storeErr("read", err)
		}
	}
	if len(vals) != 7 {
		return home{}, ref{}, true, errorf("read", "bad reply length %d", len(vals))
	}
	return home{tag: vals[1], state: vals[2], version: vals[3], bytes: vals[4], src: vals[5], act: vals[6]}, rf, true, nil
}

// scriptRefused recognises the errors of a server that does not let a
// script read keys it was not given.
func scriptRefused(msg string) bool {
	return strings.Contains(msg, "non local key") || strings.Contains(msg, "CROSSSLOT") ||
		strings.Contains(msg, "undeclared")
}

// resolve continues from a home already read until it reaches the record.
func (s *Store) resolve(ctx context.Context, h home, handle string) (home, *sessionkit.Record, error) {
	for hop := 1; ; hop++ {
		var tag string
		fresh := false
		switch h.state {
		case "":
			return home{}, nil, sessionkit.ErrNotFound
		case "F":
			tag = h.bytes
		case "L", "X":
			r, err := h.record("read")
			return h, r, err
		case "P":
			src, err := s.readHome(ctx, h.src, handle, true)
			if err != nil {
				return home{}, nil, err
			}
			if src.state == "F" && src.bytes == h.tag && src.version == h.version {
				// The move committed; finish it for the mover.
				s.recent.mark(s.k.rec(h.tag, handle))
				if err := luaFinalize.Exec(ctx, s.c, []string{s.k.rec(h.tag, handle), s.k.act(h.tag, handle)},
					[]string{h.version, s.slackMS(), s.cpre()}).Error(); err != nil {
					return home{}, nil, storeErr("read", err)
				}
				s.recent.mark(s.k.rec(h.tag, handle))
				h.state = "L"
				r, err := h.record("read")
				return h, r, err
			}
			// Not committed (yet): the source still holds the session.
			tag, fresh = h.src, true
		default:
			return home{}, nil, errorf("read", "unknown record state %q", h.state)
		}
		if hop >= maxHops {
			return home{}, nil, errorf("read", "too many forward stubs for a handle")
		}
		var err error
		if h, err = s.readHome(ctx, tag, handle, fresh); err != nil {
			return home{}, nil, err
		}
	}
}

// Get returns the record for a token hash.
func (s *Store) Get(ctx context.Context, hash sessionkit.TokenHash) (*sessionkit.Record, error) {
	if s.single.Load() && s.recent == nil {
		if r, err := s.viaCopy(ctx, hash); r != nil || err != nil {
			return r, err
		}
	}
	r, handle, err := s.viaPointer(ctx, hash)
	// The record is the authority: a pointer left behind by a renewal no
	// longer matches it.
	if err == nil && r.TokenHash == hash {
		return r, nil
	}
	if handle == "" || (err != nil && !errors.Is(err, sessionkit.ErrNotFound)) {
		return nil, cmp.Or(err, sessionkit.ErrNotFound)
	}
	// The pointer names the home the session had when the token was
	// issued; after moves between subjects without a new token, the
	// forward stubs from there may no longer lead to the record (a move
	// undone after its pending copy was revoked leaves no stub behind).
	// The locator always does.
	if _, r, err = s.locate(ctx, anonTag(handle), handle); err != nil {
		return nil, err
	}
	if r.TokenHash != hash {
		return nil, sessionkit.ErrNotFound
	}
	return r, nil
}

// viaCopy reads the copy of the record that carries hash: one plain GET.
// It returns nil and no error if there is none (a record written before
// copies existed, or in Cluster mode), for the caller to follow the
// pointer instead. The near cache does not use copies: every Touch
// rewrites the copy, which would invalidate it on every instance.
func (s *Store) viaCopy(ctx context.Context, hash sessionkit.TokenHash) (*sessionkit.Record, error) {
	v, err := s.c.Do(ctx, s.c.B().Get().Key(s.k.copy(hash)).Build()).ToString()
	if rueidis.IsRedisNil(err) {
		return nil, nil
	}
	if err != nil {
		return nil, storeErr("get", err)
	}
	h, err := parseCopy(v)
	if err != nil {
		return nil, storeErr("get", err)
	}
	r, err := h.record("get")
	if err != nil {
		return nil, err
	}
	if r.TokenHash != hash {
		// Not the record this key is for: take the checked path.
		return nil, nil
	}
	return r, nil
}

// viaPointer follows hash's pointer to a record. handle is the pointer's
// handle, "" if there is no pointer.
func (s *Store) viaPointer(ctx context.Context, hash sessionkit.TokenHash) (*sessionkit.Record, string, error) {
	pk := s.k.ptr(hash)
	if s.scriptRead(pk) {
		h, rf, ok, err := s.followRef(ctx, pk, "", "")
		if err != nil {
			return nil, "", err
		}
		if ok {
			_, r, err := s.resolve(ctx, h, rf.handle)
			return r, rf.handle, err
		}
	}
	var res rueidis.RedisResult
	if s.recent != nil && !s.recent.has(pk) {
		res = s.c.DoCache(ctx, s.c.B().Get().Key(pk).Cache(), s.o.NearCacheTTL)
	} else {
		res = s.c.Do(ctx, s.c.B().Get().Key(pk).Build())
	}
	v, err := res.ToString()
	if rueidis.IsRedisNil(err) {
		return nil, "", sessionkit.ErrNotFound
	}
	if err != nil {
		return nil, "", storeErr("get", err)
	}
	ref, err := parseRef(v)
	if err != nil {
		return nil, "", storeErr("get", err)
	}
	_, r, err := s.locate(ctx, ref.tag, ref.handle)
	return r, ref.handle, err
}

// GetByHandle returns the record for a handle.
func (s *Store) GetByHandle(ctx context.Context, handle string) (*sessionkit.Record, error) {
	if handle == "" {
		return nil, sessionkit.ErrNotFound
	}
	_, r, err := s.locate(ctx, anonTag(handle), handle)
	return r, err
}

// claimPtr makes hash resolve to ref. It fails with ErrExists if the hash
// belongs to another live record. It reports whether it wrote the pointer.
func (s *Store) claimPtr(ctx context.Context, hash sessionkit.TokenHash, ref ref, purge time.Time) error {
	pk := s.k.ptr(hash)
	for range 2 {
		s.recent.mark(pk)
		ok, err := s.c.Do(ctx, s.c.B().Set().Key(pk).Value(ref.String()).Nx().Build()).AsBool()
		if err != nil && !rueidis.IsRedisNil(err) {
			return storeErr("claim token", err)
		}
		if ok {
			s.recent.mark(pk)
			return s.maintain(ctx, maint{key: pk, op: "extend", n: ms(purge)})
		}
		// Taken: by another live record, or left behind by one.
		if other, err := s.Get(ctx, hash); err == nil && other.Handle != ref.handle {
			return sessionkit.ErrExists
		} else if err != nil && !errors.Is(err, sessionkit.ErrNotFound) {
			return err
		}
		if err := s.c.Do(ctx, s.c.B().Del().Key(pk).Build()).Error(); err != nil {
			return storeErr("claim token", err)
		}
	}
	return sessionkit.ErrExists
}

// maint is one luaMaintain call.
type maint struct {
	key, op, n, arg string
}

// maintain runs luaMaintain for each m in one pipeline. A server that does
// not know the script yet gets it with EVAL, one call at a time.
func (s *Store) maintain(ctx context.Context, ms ...maint) error {
	cmds := make(rueidis.Commands, len(ms))
	args := make([][]string, len(ms))
	for i, m := range ms {
		arg := m.arg
		if m.op == "extend" {
			arg = s.slackMS()
		}
		args[i] = []string{m.op, m.n, arg}
		cmds[i] = s.c.B().Evalsha().Sha1(maintainSHA).Numkeys(1).Key(m.key).Arg(args[i]...).Build()
		s.recent.mark(m.key)
	}
	for i, r := range s.c.DoMulti(ctx, cmds...) {
		err := r.Error()
		if rerr, ok := rueidis.IsRedisErr(err); ok && rerr.IsNoScript() {
			err = luaMaintain.Exec(ctx, s.c, []string{ms[i].key}, args[i]).Error()
		}
		if err != nil {
			return storeErr("maintain", err)
		}
	}
	return nil
}

// afterWrite keeps a session's token pointer, locator stub and expiry
// entry in line with its effective PurgeAt.
func (s *Store) afterWrite(ctx context.Context, tag string, r *sessionkit.Record) error {
	m := []maint{
		{key: s.k.ptr(r.TokenHash), op: "extend", n: ms(r.PurgeAt)},
		{key: s.k.expiry(), op: "zadd", n: micros(r.PurgeAt), arg: ref{r.Handle, tag}.String()},
	}
	if tag != anonTag(r.Handle) {
		m = append(m, maint{key: s.k.rec(anonTag(r.Handle), r.Handle), op: "extend", n: ms(r.PurgeAt)})
	}
	return s.maintain(ctx, m...)
}

func ms(t time.Time) string {
	if t.IsZero() || t.UnixMilli() <= 0 {
		return "0"
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}

func (s *Store) slackMS() string { return strconv.FormatInt(s.o.Slack.Milliseconds(), 10) }

// cpre tells a writing script to keep records' copies: the key prefix on a
// single server, "" in Cluster mode, where a script may not compute keys.
func (s *Store) cpre() string {
	if s.single.Load() {
		return s.k.prefix
	}
	return ""
}

// Create inserts a new record with Version 1.
func (s *Store) Create(ctx context.Context, rec *sessionkit.Record, lim sessionkit.Limit) ([]*sessionkit.Record, error) {
	if rec.Handle == "" {
		return nil, errorf("create", "empty handle")
	}
	r := rec.Clone()
	r.Version = 1
	tag := homeTag(r.Subject, r.Handle)
	if err := s.claimPtr(ctx, r.TokenHash, ref{r.Handle, tag}, r.PurgeAt); err != nil {
		return nil, err
	}
	undo := func(stub bool) {
		// Best effort: a leftover pointer resolves to nothing and expires.
		ctx := context.WithoutCancel(ctx)
		luaDelIf.Exec(ctx, s.c, []string{s.k.ptr(r.TokenHash)}, []string{ref{r.Handle, tag}.String()})
		if stub {
			luaDelIf.Exec(ctx, s.c, []string{s.k.rec(anonTag(r.Handle), r.Handle)}, []string{tag})
		}
	}
	if r.Subject != "" {
		lk := s.k.rec(anonTag(r.Handle), r.Handle)
		s.recent.mark(lk)
		code, err := luaStub.Exec(ctx, s.c, []string{lk}, []string{tag, "1", micros(r.PurgeAt), s.slackMS()}).ToString()
		s.recent.mark(lk)
		if err != nil {
			undo(false)
			return nil, storeErr("create", err)
		}
		if code != "OK" {
			undo(false)
			return nil, sessionkit.ErrExists
		}
	}
	evicted, err := s.insert(ctx, tag, r, "L", "", lim)
	if err != nil {
		undo(r.Subject != "")
		return nil, err
	}
	rec.Version = 1
	return evicted, s.afterWrite(ctx, tag, r)
}

// member is one entry of a subject index snapshot.
type member struct {
	home
	handle string
	rec    *sessionkit.Record
}

func (s *Store) snapshot(ctx context.Context, tag string) ([]member, error) {
	vals, err := luaSnapshot.Exec(ctx, s.c, []string{s.k.index(tag)}, []string{s.k.home(tag)}).AsStrSlice()
	if err != nil {
		return nil, storeErr("read index", err)
	}
	if len(vals)%6 != 0 {
		return nil, errorf("read index", "bad snapshot length %d", len(vals))
	}
	out := make([]member, 0, len(vals)/6)
	for i := 0; i < len(vals); i += 6 {
		m := member{handle: vals[i], home: home{tag: tag, state: vals[i+1], version: vals[i+2], bytes: vals[i+3], src: vals[i+4], act: vals[i+5]}}
		if m.state == "L" || m.state == "P" || m.state == "X" {
			if m.rec, err = m.home.record("read index"); err != nil {
				return nil, err
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// snapshotArgs is the verify part of a script's arguments.
func snapshotArgs(args []string, snap []member) []string {
	args = append(args, strconv.Itoa(len(snap)))
	for _, m := range snap {
		args = append(args, m.handle, m.version, m.act)
	}
	return args
}

// revokedCopy returns the revoked form of r.
func revokedCopy(r *sessionkit.Record, rv sessionkit.Revocation) *sessionkit.Record {
	c := r.Clone()
	c.RevokedAt = rv.At
	c.RevokedReason = rv.Reason
	c.PurgeAt = rv.PurgeAt
	c.Data = nil
	c.Refresh = sessionkit.RefreshState{}
	c.Version++
	return c
}

func revokeArgs(args []string, rs []*sessionkit.Record) ([]string, error) {
	args = append(args, strconv.Itoa(len(rs)))
	for _, r := range rs {
		b, err := r.MarshalBinary()
		if err != nil {
			return nil, storeErr("encode", err)
		}
		args = append(args, r.Handle, strconv.FormatUint(r.Version, 10), string(b), micros(r.PurgeAt))
	}
	return args, nil
}

// insert writes r (state L, or P for the new home of a move) into tag,
// adding it to its subject's index and enforcing lim there atomically.
func (s *Store) insert(ctx context.Context, tag string, r *sessionkit.Record, state, src string, lim sessionkit.Limit) ([]*sessionkit.Record, error) {
	b, err := r.MarshalBinary()
	if err != nil {
		return nil, storeErr("encode", err)
	}
	score := ""
	if r.Subject != "" {
		score = micros(r.CreatedAt)
	}
	keys := []string{s.k.rec(tag, r.Handle), s.k.act(tag, r.Handle), s.k.index(tag)}
	for attempt := range maxAttempts {
		if err := backoff(ctx, attempt); err != nil {
			return nil, storeErr("create", err)
		}
		args := []string{s.k.home(tag), r.Handle, state, strconv.FormatUint(r.Version, 10), string(b),
			micros(r.PurgeAt), encodeActivity(r.Activity), score, src, s.cpre(), s.slackMS(),
			strconv.FormatInt(pendingTTL.Milliseconds(), 10), "0"}
		var evicted []*sessionkit.Record
		if r.Subject != "" && lim.Max > 0 {
			snap, err := s.snapshot(ctx, tag)
			if err != nil {
				return nil, err
			}
			if evicted, err = decideLimit(snap, r, lim); err != nil {
				return nil, err
			}
			args[12] = "1"
			args = snapshotArgs(args, snap)
			if args, err = revokeArgs(args, evicted); err != nil {
				return nil, err
			}
		}
		s.recent.mark(keys[0], keys[1])
		for _, e := range evicted {
			s.recent.mark(s.k.rec(tag, e.Handle), s.k.act(tag, e.Handle))
		}
		code, err := luaCreate.Exec(ctx, s.c, keys, args).ToString()
		s.recent.mark(keys[0], keys[1])
		if err != nil {
			return nil, storeErr("create", err)
		}
		switch code {
		case "OK":
			for _, e := range evicted {
				s.recent.mark(s.k.rec(tag, e.Handle), s.k.act(tag, e.Handle))
				if err := s.afterWrite(ctx, tag, e); err != nil {
					return evicted, err
				}
			}
			return evicted, nil
		case "EXISTS":
			return nil, sessionkit.ErrExists
		case "CONFLICT":
			return nil, sessionkit.ErrConflict
		case "RETRY":
			continue
		default:
			return nil, errorf("create", "unexpected reply %q", code)
		}
	}
	return nil, errorf("create", "subject index kept changing")
}

// decideLimit picks the sessions to evict so r fits under lim.
func decideLimit(snap []member, r *sessionkit.Record, lim sessionkit.Limit) ([]*sessionkit.Record, error) {
	var live []*sessionkit.Record
	for _, m := range snap {
		if m.handle == r.Handle || m.rec == nil || (m.state != "L" && m.state != "P") {
			continue
		}
		if m.rec.Live(lim.Now) {
			live = append(live, m.rec)
		}
	}
	excess := len(live) + 1 - lim.Max
	if excess <= 0 {
		return nil, nil
	}
	if lim.Policy != sessionkit.LimitEvictOldest {
		return nil, sessionkit.ErrLimit
	}
	slices.SortFunc(live, func(a, b *sessionkit.Record) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.Handle, b.Handle))
	})
	out := make([]*sessionkit.Record, excess)
	for i, e := range live[:excess] {
		out[i] = revokedCopy(e, lim.Revocation)
	}
	return out, nil
}

// Update replaces a record by compare-and-swap on its version.
func (s *Store) Update(ctx context.Context, rec *sessionkit.Record, lim sessionkit.Limit) ([]*sessionkit.Record, error) {
	for range 3 {
		ev, err := s.update(ctx, rec, lim)
		if errors.Is(err, errMoved) {
			continue
		}
		return ev, err
	}
	return nil, sessionkit.ErrConflict
}

// errMoved means the record left its home between locate and write.
var errMoved = errors.New("redisstore: record moved")

func (s *Store) update(ctx context.Context, rec *sessionkit.Record, lim sessionkit.Limit) ([]*sessionkit.Record, error) {
	if done, err := s.updateFast(ctx, rec); done {
		return nil, err
	}
	h, cur, err := s.locate(ctx, anonTag(rec.Handle), rec.Handle)
	if err != nil {
		return nil, err
	}
	if cur.Revoked() {
		return nil, sessionkit.ErrRevoked
	}
	if cur.Version != rec.Version {
		return nil, sessionkit.ErrConflict
	}
	r := rec.Clone()
	r.Version = rec.Version + 1
	// Activity never moves backwards.
	if cur.LastSeenAt.After(r.LastSeenAt) {
		r.Activity = cur.Activity
	}
	tag := homeTag(r.Subject, r.Handle)
	renew := r.TokenHash != cur.TokenHash
	if renew {
		if err := s.claimPtr(ctx, r.TokenHash, ref{r.Handle, tag}, r.PurgeAt); err != nil {
			return nil, err
		}
	}
	var evicted []*sessionkit.Record
	if tag == h.tag {
		err = s.updateInPlace(ctx, tag, rec.Version, r)
	} else {
		evicted, err = s.move(ctx, h, cur, r, lim)
	}
	if err != nil {
		if renew {
			luaDelIf.Exec(context.WithoutCancel(ctx), s.c, []string{s.k.ptr(r.TokenHash)}, []string{ref{r.Handle, tag}.String()})
		}
		return nil, err
	}
	rec.Version = r.Version
	if renew {
		// The old hash stopped resolving when the record changed; this
		// only tidies up.
		pk := s.k.ptr(cur.TokenHash)
		s.recent.mark(pk)
		s.c.Do(ctx, s.c.B().Del().Key(pk).Build())
		s.recent.mark(pk)
	}
	return evicted, s.afterWrite(ctx, tag, r)
}

// updateFast is Update for the common case, a change that keeps token and
// subject, without locating the record first. It tries the home of
// rec.Subject; the script also checks that the stored record carries the
// same token hash. done is false when that guess was wrong (a renewal, a
// subject change, a forward stub): the caller then takes the general path.
func (s *Store) updateFast(ctx context.Context, rec *sessionkit.Record) (done bool, err error) {
	r := rec.Clone()
	r.Version = rec.Version + 1
	b, err := r.MarshalBinary()
	if err != nil {
		return true, storeErr("encode", err)
	}
	tag := homeTag(r.Subject, r.Handle)
	sec, nsec := lastSeen(r.LastSeenAt)
	// The token hash follows the codec version byte and the handle.
	off := sessionkit.EncodedTokenHashOffset
	keys := []string{s.k.rec(tag, r.Handle), s.k.act(tag, r.Handle)}
	args := []string{strconv.FormatUint(rec.Version, 10), strconv.FormatUint(r.Version, 10),
		string(b), micros(r.PurgeAt), encodeActivity(r.Activity), sec, nsec, s.slackMS(),
		strconv.Itoa(off), string(r.TokenHash[:])}
	script, single := luaUpdate, s.single.Load()
	if single {
		// The helper keys live in other slots; one server has them all.
		lk := s.k.rec(anonTag(r.Handle), r.Handle)
		keys = append(keys, s.k.ptr(r.TokenHash), s.k.expiry(), lk)
		args = append(args, ref{r.Handle, tag}.String(), strconv.FormatBool(tag != anonTag(r.Handle)), s.cpre())
		script = luaUpdateSingle
	} else {
		args = append(args, "")
	}
	s.recent.mark(keys...)
	res, err := script.Exec(ctx, s.c, keys, args).AsStrSlice()
	if rerr, isRedis := rueidis.IsRedisErr(err); single && isRedis && scriptRefused(rerr.Error()) {
		s.single.Store(false)
		return false, nil
	}
	if err != nil {
		s.recent.mark(keys...)
		return true, storeErr("update", err)
	}
	switch res[0] {
	case "OK":
	case "REVOKED":
		return true, sessionkit.ErrRevoked
	case "CONFLICT":
		return true, sessionkit.ErrConflict
	default: // NOTFOUND, SLOW
		return false, nil
	}
	s.recent.mark(keys...)
	if len(res) > 1 {
		if a, err := decodeActivity(res[1]); err == nil {
			r.Activity = a
		}
	}
	rec.Version = r.Version
	if single {
		return true, nil
	}
	return true, s.afterWrite(ctx, tag, r)
}

func (s *Store) updateInPlace(ctx context.Context, tag string, expect uint64, r *sessionkit.Record) error {
	b, err := r.MarshalBinary()
	if err != nil {
		return storeErr("encode", err)
	}
	sec, nsec := lastSeen(r.LastSeenAt)
	keys := []string{s.k.rec(tag, r.Handle), s.k.act(tag, r.Handle)}
	s.recent.mark(keys...)
	res, err := luaUpdate.Exec(ctx, s.c, keys, []string{strconv.FormatUint(expect, 10), strconv.FormatUint(r.Version, 10),
		string(b), micros(r.PurgeAt), encodeActivity(r.Activity), sec, nsec, s.slackMS(), "", "", s.cpre()}).AsStrSlice()
	s.recent.mark(keys...)
	if err != nil {
		return storeErr("update", err)
	}
	if err := replyErr(res[0]); err != nil {
		return err
	}
	if len(res) > 1 {
		if a, err := decodeActivity(res[1]); err == nil {
			r.Activity = a
		}
	}
	return nil
}

func replyErr(code string) error {
	switch code {
	case "OK":
		return nil
	case "REVOKED":
		return sessionkit.ErrRevoked
	case "NOTFOUND":
		return errMoved
	case "CONFLICT":
		return sessionkit.ErrConflict
	case "EXISTS":
		return sessionkit.ErrExists
	}
	return errorf("write", "unexpected reply %q", code)
}

func lastSeen(t time.Time) (string, string) {
	if t.IsZero() || t.Unix() <= 0 {
		return "0", "0"
	}
	return strconv.FormatInt(t.Unix(), 10), strconv.Itoa(t.Nanosecond())
}

// move changes a record's home (its subject changed). The new home gets a
// pending copy first, with the limit enforced there; the commit is the
// compare-and-swap that turns the old record into a forward stub.
func (s *Store) move(ctx context.Context, from home, cur, r *sessionkit.Record, lim sessionkit.Limit) ([]*sessionkit.Record, error) {
	to := homeTag(r.Subject, r.Handle)
	locator := anonTag(r.Handle)
	evicted, err := s.insert(ctx, to, r, "P", from.tag, lim)
	if err != nil {
		return nil, err
	}
	version := strconv.FormatUint(r.Version, 10)
	fromKeys := []string{s.k.rec(from.tag, r.Handle), s.k.act(from.tag, r.Handle), s.k.index(from.tag)}
	s.recent.mark(fromKeys[:2]...)
	code, err := luaMoveOut.Exec(ctx, s.c, fromKeys, []string{strconv.FormatUint(cur.Version, 10), to, version, r.Handle,
		micros(r.PurgeAt), s.slackMS(), s.cpre()}).ToString()
	s.recent.mark(fromKeys[:2]...)
	if err == nil {
		err = replyErr(code)
	} else {
		err = storeErr("update", err)
	}
	toKeys := []string{s.k.rec(to, r.Handle), s.k.act(to, r.Handle), s.k.index(to)}
	if err != nil {
		// Not committed; a network error here leaves a pending copy that
		// readers ignore and that expires.
		s.recent.mark(toKeys[:2]...)
		luaRollback.Exec(context.WithoutCancel(ctx), s.c, toKeys, []string{version, r.Handle})
		s.recent.mark(toKeys[:2]...)
		return nil, err
	}
	// Committed. Readers finish the move themselves if this fails.
	s.recent.mark(toKeys[:2]...)
	luaFinalize.Exec(ctx, s.c, toKeys[:2], []string{version, s.slackMS(), s.cpre()})
	s.recent.mark(toKeys[:2]...)
	if from.tag != locator && to != locator {
		lk := s.k.rec(locator, r.Handle)
		s.recent.mark(lk)
		luaRepoint.Exec(ctx, s.c, []string{lk}, []string{from.tag, to, version})
		s.recent.mark(lk)
	}
	return evicted, nil
}

// Touch records activity, moving it forward only.
func (s *Store) Touch(ctx context.Context, handle string, a sessionkit.Activity) error {
	for range 3 {
		h, cur, err := s.locate(ctx, anonTag(handle), handle)
		if err != nil {
			return err
		}
		if cur.Revoked() {
			return sessionkit.ErrRevoked
		}
		sec, nsec := lastSeen(a.LastSeenAt)
		keys := []string{s.k.rec(h.tag, handle), s.k.act(h.tag, handle)}
		s.recent.mark(keys[1])
		res, err := luaTouch.Exec(ctx, s.c, keys, []string{encodeActivity(a), sec, nsec, s.slackMS(), s.cpre()}).AsStrSlice()
		s.recent.mark(keys[1])
		if err != nil {
			return storeErr("touch", err)
		}
		if err := replyErr(res[0]); errors.Is(err, errMoved) {
			continue
		} else if err != nil {
			return err
		}
		if len(res) > 1 && res[1] == encodeActivity(a) {
			cur.Activity = a
			return s.afterWrite(ctx, h.tag, cur)
		}
		return nil
	}
	return sessionkit.ErrConflict
}

// Revoke marks one session revoked.
func (s *Store) Revoke(ctx context.Context, handle string, rv sessionkit.Revocation) (*sessionkit.Record, error) {
	for range maxAttempts {
		h, cur, err := s.locate(ctx, anonTag(handle), handle)
		if err != nil {
			return nil, err
		}
		if cur.Revoked() {
			return nil, sessionkit.ErrRevoked
		}
		out := revokedCopy(cur, rv)
		args, err := revokeArgs([]string{strconv.FormatUint(cur.Version, 10), handle, s.cpre()}, []*sessionkit.Record{out})
		if err != nil {
			return nil, err
		}
		keys := []string{s.k.rec(h.tag, handle), s.k.act(h.tag, handle), s.k.index(h.tag)}
		s.recent.mark(keys[:2]...)
		code, err := luaRevoke.Exec(ctx, s.c, keys, args).ToString()
		s.recent.mark(keys[:2]...)
		if err != nil {
			return nil, storeErr("revoke", err)
		}
		switch err := replyErr(code); {
		case err == nil:
			return out, s.afterWrite(ctx, h.tag, out)
		case errors.Is(err, errMoved), errors.Is(err, sessionkit.ErrConflict):
			continue
		default:
			return nil, err
		}
	}
	return nil, errorf("revoke", "session kept changing")
}

// RevokeSubject revokes every session of subject except one, atomically.
func (s *Store) RevokeSubject(ctx context.Context, subject, except string, rv sessionkit.Revocation) ([]*sessionkit.Record, error) {
	if subject == "" {
		return nil, nil
	}
	tag := subjectTag(subject)
	for attempt := range maxAttempts {
		if err := backoff(ctx, attempt); err != nil {
			return nil, storeErr("revoke subject", err)
		}
		snap, err := s.snapshot(ctx, tag)
		if err != nil {
			return nil, err
		}
		var out []*sessionkit.Record
		for _, m := range snap {
			if m.handle == except || m.rec == nil || (m.state != "L" && m.state != "P") || m.rec.Subject != subject {
				continue
			}
			out = append(out, revokedCopy(m.rec, rv))
		}
		args, err := revokeArgs(snapshotArgs([]string{s.k.home(tag), s.cpre()}, snap), out)
		if err != nil {
			return nil, err
		}
		for _, r := range out {
			s.recent.mark(s.k.rec(tag, r.Handle), s.k.act(tag, r.Handle))
		}
		code, err := luaRevokeMany.Exec(ctx, s.c, []string{s.k.index(tag)}, args).ToString()
		if err != nil {
			return nil, storeErr("revoke subject", err)
		}
		if code == "RETRY" {
			continue
		}
		if code != "OK" {
			return nil, errorf("revoke subject", "unexpected reply %q", code)
		}
		for _, r := range out {
			s.recent.mark(s.k.rec(tag, r.Handle), s.k.act(tag, r.Handle))
			if err := s.afterWrite(ctx, tag, r); err != nil {
				return out, err
			}
		}
		slices.SortFunc(out, byAge)
		return out, nil
	}
	return nil, errorf("revoke subject", "subject index kept changing")
}

func byAge(a, b *sessionkit.Record) int {
	return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.Handle, b.Handle))
}

// Delete removes a record at once.
func (s *Store) Delete(ctx context.Context, handle string) error {
	for range maxAttempts {
		h, cur, err := s.locate(ctx, anonTag(handle), handle)
		if err != nil {
			return err
		}
		keys := []string{s.k.rec(h.tag, handle), s.k.act(h.tag, handle), s.k.index(h.tag)}
		s.recent.mark(keys[:2]...)
		n, err := luaRemove.Exec(ctx, s.c, keys, []string{handle, h.version, s.cpre()}).AsInt64()
		s.recent.mark(keys[:2]...)
		if err != nil {
			return storeErr("delete", err)
		}
		if n < 0 {
			// The record changed or moved after it was located: removing
			// what is there now could drop a forward stub, or the pointer
			// of a newer token, and leave the session behind.
			continue
		}
		return s.forget(ctx, h.tag, cur)
	}
	return errorf("delete", "session kept changing")
}

// forget removes the keys that point at a removed record.
func (s *Store) forget(ctx context.Context, tag string, r *sessionkit.Record) error {
	pk := s.k.ptr(r.TokenHash)
	cmds := rueidis.Commands{
		s.c.B().Zrem().Key(s.k.expiry()).Member(ref{r.Handle, tag}.String()).Build(),
	}
	s.recent.mark(pk)
	res := s.c.DoMulti(ctx, cmds...)
	err := luaDelIf.Exec(ctx, s.c, []string{pk}, []string{ref{r.Handle, tag}.String()}).Error()
	if err == nil {
		err = res[0].Error()
	}
	// A pointer written by an earlier home of the session names that home.
	if v, gerr := s.c.Do(ctx, s.c.B().Get().Key(pk).Build()).ToString(); gerr == nil {
		if ref, perr := parseRef(v); perr == nil && ref.handle == r.Handle {
			s.c.Do(ctx, s.c.B().Del().Key(pk).Build())
		}
	}
	s.recent.mark(pk)
	if tag != anonTag(r.Handle) {
		lk := s.k.rec(anonTag(r.Handle), r.Handle)
		s.recent.mark(lk)
		if e := luaDelIf.Exec(ctx, s.c, []string{lk}, []string{tag}).Error(); err == nil {
			err = e
		}
		s.recent.mark(lk)
	}
	return storeErr("delete", err)
}

// ListSubject returns the sessions in subject's index, oldest first.
func (s *Store) ListSubject(ctx context.Context, subject string) ([]*sessionkit.Record, error) {
	if subject == "" {
		return nil, nil
	}
	tag := subjectTag(subject)
	snap, err := s.snapshot(ctx, tag)
	if err != nil {
		return nil, err
	}
	var out []*sessionkit.Record
	for _, m := range snap {
		if m.rec == nil || m.rec.Subject != subject {
			continue
		}
		switch m.state {
		case "L":
			out = append(out, m.rec)
		case "P":
			// Listed once the move committed.
			if _, r, err := s.locate(ctx, tag, m.handle); err == nil && !r.Revoked() && r.Subject == subject {
				out = append(out, r)
			} else if err != nil && !errors.Is(err, sessionkit.ErrNotFound) {
				return nil, err
			}
		}
	}
	slices.SortFunc(out, byAge)
	return out, nil
}

// DeleteExpired removes up to max records whose PurgeAt is at or before
// now. Redis also expires records by itself (Options.Slack after PurgeAt);
// this finds those due earlier, as seen by now, through the expiry set.
func (s *Store) DeleteExpired(ctx context.Context, now time.Time, max int) (int, error) {
	nowUS := micros(now)
	removed := 0
	for removed < max {
		batch := min(max-removed, 128)
		cands, err := s.c.Do(ctx, s.c.B().Zrangebyscore().Key(s.k.expiry()).Min("-inf").Max(nowUS).
			Limit(0, int64(batch)).Build()).AsStrSlice()
		if err != nil {
			return removed, storeErr("delete expired", err)
		}
		if len(cands) == 0 {
			break
		}
		for _, c := range cands {
			ref, err := parseRef(c)
			if err != nil {
				if err := s.c.Do(ctx, s.c.B().Zrem().Key(s.k.expiry()).Member(c).Build()).Error(); err != nil {
					return removed, storeErr("delete expired", err)
				}
				continue
			}
			keys := []string{s.k.rec(ref.tag, ref.handle), s.k.act(ref.tag, ref.handle), s.k.index(ref.tag)}
			s.recent.mark(keys[:2]...)
			res, err := luaPurge.Exec(ctx, s.c, keys, []string{nowUS, ref.handle, s.cpre()}).AsStrSlice()
			if err != nil {
				return removed, storeErr("delete expired", err)
			}
			s.recent.mark(keys[:2]...)
			switch res[0] {
			case "DELETED":
				var r sessionkit.Record
				if len(res) > 1 && r.UnmarshalBinary([]byte(res[1])) == nil {
					if err := s.forget(ctx, ref.tag, &r); err != nil {
						return removed, err
					}
				}
				removed++
			case "KEEP":
				p := "0"
				if len(res) > 1 {
					p = res[1]
				}
				if err := s.maintain(ctx, maint{key: s.k.expiry(), op: "zadd", n: p, arg: c}); err != nil {
					return removed, err
				}
			default: // GONE
				if err := s.c.Do(ctx, s.c.B().Zrem().Key(s.k.expiry()).Member(c).Build()).Error(); err != nil {
					return removed, storeErr("delete expired", err)
				}
			}
		}
	}
	return removed, nil
}

// Ping reports whether Redis can be reached.
func (s *Store) Ping(ctx context.Context) error {
	return storeErr("ping", s.c.Do(ctx, s.c.B().Ping().Build()).Error())
}

// Close releases the connection if the Store opened it.
func (s *Store) Close() error {
	if s.owned {
		s.c.Close()
	}
	return nil
}

// recent remembers the keys this instance wrote within the near-cache TTL.
// Reads of them bypass the near cache: Redis delivers the invalidation of a
// client's own write asynchronously, and a writer must read its own write.
// Writers mark keys before a write as well as after it, so that a read
// racing the write on this instance never takes the pre-write value from
// the cache after the write completed.
type recent struct {
	ttl  time.Duration
	mu   sync.Mutex
	m    map[string]time.Time
	next time.Time // next sweep
}

func newRecent(ttl time.Duration) *recent {
	return &recent{ttl: ttl, m: make(map[string]time.Time)}
}

func (r *recent) mark(keys ...string) {
	if r == nil {
		return
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		r.m[k] = now.Add(r.ttl)
	}
	if now.After(r.next) {
		for k, t := range r.m {
			if now.After(t) {
				delete(r.m, k)
			}
		}
		r.next = now.Add(r.ttl)
	}
}

func (r *recent) has(key string) bool {
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.m[key]
	return ok && time.Now().Before(t)
}

// backoff waits before an optimistic retry: nothing before the first
// attempt, then a random delay that grows with the attempt, so writers
// contending for one subject spread out.
func backoff(ctx context.Context, attempt int) error {
	if attempt == 0 {
		return nil
	}
	d := time.Duration(rand.Int64N(int64(min(attempt, 20)) * int64(time.Millisecond)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
