package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit"
)

// Run runs the Store conformance tests. newStore is called once per subtest
// and must return a fresh, empty store; it registers its own cleanup with
// t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) sessionkit.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s sessionkit.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"NotFound", testNotFound},
		{"CreateExists", testCreateExists},
		{"UpdateCAS", testUpdateCAS},
		{"UpdateTokenHash", testUpdateTokenHash},
		{"UpdateSubject", testUpdateSubject},
		{"Activity", testActivity},
		{"Revoke", testRevoke},
		{"RevokeSubject", testRevokeSubject},
		{"ListSubject", testListSubject},
		{"Limit", testLimit},
		{"DeleteExpired", testDeleteExpired},
		{"Delete", testDelete},
		{"Ping", testPing},
		{"ConcurrentCAS", testConcurrentCAS},
		{"RevokeRacesWriters", testRevokeRace},
		{"ConcurrentLimit", testConcurrentLimit},
		{"IndexConsistency", testIndexConsistency},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// now is the suite's clock: the real time, so that stores which also expire
// records natively keep them for the length of a test.
func now() time.Time { return time.Now().Truncate(time.Microsecond) }

func create(t *testing.T, s sessionkit.Store, rec *sessionkit.Record, lim sessionkit.Limit) []*sessionkit.Record {
	t.Helper()
	ev, err := s.Create(t.Context(), rec, lim)
	if err != nil {
		t.Fatalf("Create(%s): %v", rec.Handle, err)
	}
	return ev
}

func update(t *testing.T, s sessionkit.Store, rec *sessionkit.Record, lim sessionkit.Limit) []*sessionkit.Record {
	t.Helper()
	ev, err := s.Update(t.Context(), rec, lim)
	if err != nil {
		t.Fatalf("Update(%s): %v", rec.Handle, err)
	}
	return ev
}

func get(t *testing.T, s sessionkit.Store, hash sessionkit.TokenHash) *sessionkit.Record {
	t.Helper()
	r, err := s.Get(t.Context(), hash)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return r
}

func getHandle(t *testing.T, s sessionkit.Store, handle string) *sessionkit.Record {
	t.Helper()
	r, err := s.GetByHandle(t.Context(), handle)
	if err != nil {
		t.Fatalf("GetByHandle(%s): %v", handle, err)
	}
	return r
}

// same fails the test if got differs from want.
func same(t *testing.T, what string, want, got *sessionkit.Record) {
	t.Helper()
	if d := diff(want, got); len(d) > 0 {
		t.Fatalf("%s differs:\n\t%s", what, strings.Join(d, "\n\t"))
	}
}

// gone checks that neither the hash nor the handle resolves.
func gone(t *testing.T, s sessionkit.Store, rec *sessionkit.Record) {
	t.Helper()
	if _, err := s.Get(t.Context(), rec.TokenHash); !errors.Is(err, sessionkit.ErrNotFound) {
		t.Fatalf("Get(hash of %s) error = %v, want ErrNotFound", rec.Handle, err)
	}
	if _, err := s.GetByHandle(t.Context(), rec.Handle); !errors.Is(err, sessionkit.ErrNotFound) {
		t.Fatalf("GetByHandle(%s) error = %v, want ErrNotFound", rec.Handle, err)
	}
}

func list(t *testing.T, s sessionkit.Store, subject string) []string {
	t.Helper()
	recs, err := s.ListSubject(t.Context(), subject)
	if err != nil {
		t.Fatalf("ListSubject(%q): %v", subject, err)
	}
	hs := make([]string, len(recs))
	for i, r := range recs {
		if r.Subject != subject {
			t.Fatalf("ListSubject(%q) returned %s with subject %q", subject, r.Handle, r.Subject)
		}
		if r.Revoked() {
			t.Fatalf("ListSubject(%q) returned revoked session %s", subject, r.Handle)
		}
		if i > 0 && r.CreatedAt.Before(recs[i-1].CreatedAt) {
			t.Fatalf("ListSubject(%q) not oldest first at %d", subject, i)
		}
		hs[i] = r.Handle
	}
	return hs
}

func wantList(t *testing.T, s sessionkit.Store, subject string, want ...*sessionkit.Record) {
	t.Helper()
	got := list(t, s, subject)
	w := make([]string, len(want))
	for i, r := range want {
		w[i] = r.Handle
	}
	if !slices.Equal(got, w) {
		t.Fatalf("ListSubject(%q) = %v, want %v", subject, got, w)
	}
}

func handles(recs []*sessionkit.Record) []string {
	hs := make([]string, len(recs))
	for i, r := range recs {
		hs[i] = r.Handle
	}
	slices.Sort(hs)
	return hs
}

// revoked returns what want looks like after Revoke with rv.
func revoked(want *sessionkit.Record, rv sessionkit.Revocation) *sessionkit.Record {
	r := deepClone(want)
	r.RevokedAt = rv.At
	r.RevokedReason = rv.Reason
	r.PurgeAt = rv.PurgeAt
	r.Data = nil
	r.Refresh = sessionkit.RefreshState{}
	r.Version++
	return r
}

func revocation(base time.Time, reason string) sessionkit.Revocation {
	return sessionkit.Revocation{At: base.Add(time.Minute), Reason: reason, PurgeAt: base.Add(2 * time.Hour)}
}

func testRoundTrip(t *testing.T, s sessionkit.Store) {
	base := now()
	minimal := NewRecord("", base)
	minimal.Data = nil
	minimal.Persistent = false
	minimal.Client = sessionkit.Client{}
	minimal.LastClient = sessionkit.Client{}
	big := NewRecord("user:big", base.Add(-time.Hour))
	big.AuthLevel = 3
	big.Data["blob"] = json.RawMessage(`"` + strings.Repeat("x", 8<<10) + `"`)
	big.Data["nested"] = json.RawMessage(`{"a":{"b":[true,false,null]},"u":"\u2028"}`)
	for _, tc := range []struct {
		name string
		rec  *sessionkit.Record
	}{
		{"anonymous", NewRecord("", base)},
		{"authenticated", NewRecord("user:1", base)},
		{"minimal", minimal},
		{"large", big},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := tc.rec
			want := deepClone(rec)
			want.Version = 1
			if ev := create(t, s, rec, sessionkit.Limit{}); len(ev) != 0 {
				t.Fatalf("Create evicted %v without a limit", handles(ev))
			}
			if rec.Version != 1 {
				t.Fatalf("Create set Version = %d, want 1", rec.Version)
			}
			// The store must not keep the caller's record.
			rec.AuthLevel = 99
			for k := range rec.Data {
				rec.Data[k][0] = '!'
			}
			if rec.Data != nil {
				rec.Data["added"] = json.RawMessage(`1`)
			}
			got := get(t, s, want.TokenHash)
			same(t, "Get", want, got)
			same(t, "GetByHandle", want, getHandle(t, s, want.Handle))
			// Records handed out belong to the caller.
			for k := range got.Data {
				got.Data[k][0] = '!'
				got.Data[k] = nil
			}
			if got.Data != nil {
				got.Data["added"] = json.RawMessage(`2`)
			}
			if len(got.Refresh.Successor) > 0 {
				got.Refresh.Successor[0] ^= 0xff
			}
			same(t, "Get after changing a returned record", want, get(t, s, want.TokenHash))
		})
	}
}

func testNotFound(t *testing.T, s sessionkit.Store) {
	ctx := t.Context()
	rec := NewRecord("user:1", now())
	rec.Version = 1
	checks := []struct {
		name string
		err  error
	}{
		{"Get", func() error { _, err := s.Get(ctx, rec.TokenHash); return err }()},
		{"GetByHandle", func() error { _, err := s.GetByHandle(ctx, rec.Handle); return err }()},
		{"Update", func() error { _, err := s.Update(ctx, rec, sessionkit.Limit{}); return err }()},
		{"Touch", s.Touch(ctx, rec.Handle, rec.Activity)},
		{"Revoke", func() error { _, err := s.Revoke(ctx, rec.Handle, revocation(rec.CreatedAt, "x")); return err }()},
		{"Delete", s.Delete(ctx, rec.Handle)},
	}
	for _, c := range checks {
		if !errors.Is(c.err, sessionkit.ErrNotFound) {
			t.Errorf("%s(unknown) error = %v, want ErrNotFound", c.name, c.err)
		}
	}
	if rv, err := s.RevokeSubject(ctx, "user:1", "", revocation(rec.CreatedAt, "x")); err != nil || len(rv) != 0 {
		t.Errorf("RevokeSubject(unknown) = %v, %v; want none, nil", handles(rv), err)
	}
	if l := list(t, s, "user:1"); len(l) != 0 {
		t.Errorf("ListSubject(unknown) = %v, want empty", l)
	}
	// A failed Update or Touch must not have created anything.
	gone(t, s, rec)
}

func testCreateExists(t *testing.T, s sessionkit.Store) {
	base := now()
	orig := NewRecord("user:1", base)
	create(t, s, orig, sessionkit.Limit{})
	want := deepClone(orig)
	revokedOrig := NewRecord("user:1", base)
	create(t, s, revokedOrig, sessionkit.Limit{})
	if _, err := s.Revoke(t.Context(), revokedOrig.Handle, revocation(base, "logout")); err != nil {
		t.Fatal(err)
	}

	sameHandle := NewRecord("user:2", base)
	sameHandle.Handle = orig.Handle
	sameHash := NewRecord("user:2", base)
	sameHash.TokenHash = orig.TokenHash
	revokedHash := NewRecord("user:2", base)
	revokedHash.TokenHash = revokedOrig.TokenHash
	for _, tc := range []struct {
		name string
		rec  *sessionkit.Record
		// unseen is the part of rec that must not resolve after the failure.
		unseen func(t *testing.T)
	}{
		{"handle", sameHandle, func(t *testing.T) {
			if _, err := s.Get(t.Context(), sameHandle.TokenHash); !errors.Is(err, sessionkit.ErrNotFound) {
				t.Fatalf("hash of rejected record: error = %v, want ErrNotFound", err)
			}
		}},
		{"hash", sameHash, func(t *testing.T) {
			if _, err := s.GetByHandle(t.Context(), sameHash.Handle); !errors.Is(err, sessionkit.ErrNotFound) {
				t.Fatalf("handle of rejected record: error = %v, want ErrNotFound", err)
			}
		}},
		{"hash of revoked", revokedHash, func(t *testing.T) {
			if _, err := s.GetByHandle(t.Context(), revokedHash.Handle); !errors.Is(err, sessionkit.ErrNotFound) {
				t.Fatalf("handle of rejected record: error = %v, want ErrNotFound", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Create(t.Context(), tc.rec, sessionkit.Limit{Max: 5})
			if !errors.Is(err, sessionkit.ErrExists) {
				t.Fatalf("Create(duplicate %s) error = %v, want ErrExists", tc.name, err)
			}
			tc.unseen(t)
			same(t, "original", want, get(t, s, orig.TokenHash))
			wantList(t, s, "user:1", orig)
			wantList(t, s, "user:2")
		})
	}
}

func testUpdateCAS(t *testing.T, s sessionkit.Store) {
	ctx := t.Context()
	rec := NewRecord("user:1", now())
	create(t, s, rec, sessionkit.Limit{})
	for i := uint64(1); i <= 3; i++ {
		rec.Data["step"] = json.RawMessage(`"` + strings.Repeat("s", int(i)) + `"`)
		rec.AuthLevel = int(i)
		update(t, s, rec, sessionkit.Limit{})
		if rec.Version != i+1 {
			t.Fatalf("after update %d Version = %d, want %d", i, rec.Version, i+1)
		}
		same(t, "Get after Update", rec, get(t, s, rec.TokenHash))
	}
	want := deepClone(rec)
	// The store must not keep the caller's record after Update.
	rec.Data["step"][0] = '!'
	rec.Data["late"] = json.RawMessage(`1`)
	same(t, "Get after changing the updated record", want, getHandle(t, s, rec.Handle))

	for _, v := range []uint64{0, 1, want.Version - 1, want.Version + 1} {
		stale := deepClone(want)
		stale.Version = v
		stale.AuthLevel = 42
		if _, err := s.Update(ctx, stale, sessionkit.Limit{}); !errors.Is(err, sessionkit.ErrConflict) {
			t.Fatalf("Update(version %d, stored %d) error = %v, want ErrConflict", v, want.Version, err)
		}
		if stale.Version != v {
			t.Errorf("failed Update changed rec.Version to %d", stale.Version)
		}
		same(t, "record after a conflicting Update", want, get(t, s, want.TokenHash))
	}

	rv, err := s.Revoke(ctx, want.Handle, revocation(want.CreatedAt, sessionkit.ReasonLogout))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []uint64{want.Version, rv.Version} {
		w := deepClone(want)
		w.Version = v
		if _, err := s.Update(ctx, w, sessionkit.Limit{}); !errors.Is(err, sessionkit.ErrRevoked) {
			t.Fatalf("Update(revoked, version %d) error = %v, want ErrRevoked", v, err)
		}
	}
	same(t, "revoked record after Update attempts", rv, get(t, s, want.TokenHash))
}

func testUpdateTokenHash(t *testing.T, s sessionkit.Store) {
	base := now()
	rec := NewRecord("user:1", base)
	other := NewRecord("user:2", base)
	create(t, s, rec, sessionkit.Limit{})
	create(t, s, other, sessionkit.Limit{})
	old := rec.TokenHash
	rec.TokenHash = randomHash()
	rec.AuthLevel = 2
	update(t, s, rec, sessionkit.Limit{})
	if _, err := s.Get(t.Context(), old); !errors.Is(err, sessionkit.ErrNotFound) {
		t.Fatalf("Get(old hash) after renewal error = %v, want ErrNotFound", err)
	}
	same(t, "Get(new hash)", rec, get(t, s, rec.TokenHash))
	same(t, "GetByHandle after renewal", rec, getHandle(t, s, rec.Handle))
	wantList(t, s, "user:1", rec)

	// Taking another session's hash is refused and changes nothing.
	want := deepClone(rec)
	steal := deepClone(rec)
	steal.TokenHash = other.TokenHash
	if _, err := s.Update(t.Context(), steal, sessionkit.Limit{}); !errors.Is(err, sessionkit.ErrExists) {
		t.Fatalf("Update to another session's hash: error = %v, want ErrExists", err)
	}
	same(t, "record after refused renewal", want, get(t, s, want.TokenHash))
	same(t, "other record after refused renewal", other, get(t, s, other.TokenHash))
}

func testUpdateSubject(t *testing.T, s sessionkit.Store) {
	base := now()
	rec := NewRecord("", base)
	create(t, s, rec, sessionkit.Limit{})
	for _, subject := range []string{"user:alice", "user:bob", "", "user:alice"} {
		prev := rec.Subject
		rec.Subject = subject
		rec.TokenHash = randomHash() // login renews the token too
		update(t, s, rec, sessionkit.Limit{Max: 5, Now: base})
		same(t, "Get after subject change", rec, get(t, s, rec.TokenHash))
		if prev != "" && prev != subject {
			wantList(t, s, prev)
		}
		if subject != "" {
			wantList(t, s, subject, rec)
		}
		wantList(t, s, "")
	}
}

func testActivity(t *testing.T, s sessionkit.Store) {
	ctx := t.Context()
	base := now()
	rec := NewRecord("user:1", base)
	create(t, s, rec, sessionkit.Limit{})
	act := func(d time.Duration, ip string) sessionkit.Activity {
		return sessionkit.Activity{
			LastSeenAt:   base.Add(d),
			IdleDeadline: base.Add(d + 30*time.Minute),
			PurgeAt:      base.Add(d + 90*time.Minute),
			LastClient:   sessionkit.Client{IP: ip, UserAgent: "ua " + ip},
		}
	}
	want := deepClone(rec)
	for _, tc := range []struct {
		name    string
		a       sessionkit.Activity
		applied bool
	}{
		{"forward", act(10*time.Minute, "192.0.2.2"), true},
		{"backward", act(5*time.Minute, "192.0.2.3"), false},
		{"further", act(20*time.Minute, "192.0.2.4"), true},
		{"long ago", act(-time.Hour, "192.0.2.5"), false},
	} {
		if err := s.Touch(ctx, rec.Handle, tc.a); err != nil {
			t.Fatalf("Touch(%s): %v", tc.name, err)
		}
		if tc.applied {
			want.Activity = tc.a
		}
		same(t, "record after Touch "+tc.name, want, get(t, s, rec.TokenHash))
	}

	// Touch moved PurgeAt forward: purging at the first PurgeAt keeps it.
	if n, err := s.DeleteExpired(ctx, rec.PurgeAt, 100); err != nil || n != 0 {
		t.Fatalf("DeleteExpired at the original PurgeAt after Touch = %d, %v; want 0, nil", n, err)
	}

	// An Update carrying older activity keeps the stored activity but applies
	// the rest.
	upd := deepClone(want)
	upd.Activity = act(15*time.Minute, "192.0.2.6")
	upd.Data["k"] = json.RawMessage(`"v"`)
	update(t, s, upd, sessionkit.Limit{})
	want.Data["k"] = json.RawMessage(`"v"`)
	want.Version++
	same(t, "record after Update with older activity", want, get(t, s, rec.TokenHash))

	// An Update carrying newer activity applies it.
	upd = deepClone(want)
	upd.Activity = act(25*time.Minute, "192.0.2.7")
	update(t, s, upd, sessionkit.Limit{})
	want.Activity = upd.Activity
	want.Version++
	same(t, "record after Update with newer activity", want, get(t, s, rec.TokenHash))

	if _, err := s.Revoke(ctx, rec.Handle, revocation(base, sessionkit.ReasonLogout)); err != nil {
		t.Fatal(err)
	}
	if err := s.Touch(ctx, rec.Handle, act(time.Hour, "192.0.2.8")); !errors.Is(err, sessionkit.ErrRevoked) {
		t.Fatalf("Touch(revoked) error = %v, want ErrRevoked", err)
	}
	if got := get(t, s, rec.TokenHash); !got.Revoked() || got.LastSeenAt.Equal(base.Add(time.Hour)) {
		t.Fatalf("Touch changed a revoked record: revoked=%v LastSeenAt=%v", got.Revoked(), got.LastSeenAt)
	}
}

func testRevoke(t *testing.T, s sessionkit.Store) {
	ctx := t.Context()
	base := now()
	for _, subject := range []string{"user:1", ""} {
		t.Run("subject="+subject, func(t *testing.T) {
			rec := NewRecord(subject, base)
			keep := NewRecord(subject, base.Add(time.Second))
			create(t, s, rec, sessionkit.Limit{})
			create(t, s, keep, sessionkit.Limit{})
			rec.AuthLevel = 2
			update(t, s, rec, sessionkit.Limit{})
			rv := sessionkit.Revocation{At: base.Add(time.Minute), Reason: sessionkit.ReasonOperator, PurgeAt: base.Add(10 * time.Minute)}
			got, err := s.Revoke(ctx, rec.Handle, rv)
			if err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			want := revoked(rec, rv)
			same(t, "Revoke result", want, got)
			same(t, "Get after Revoke", want, get(t, s, rec.TokenHash))
			same(t, "GetByHandle after Revoke", want, getHandle(t, s, rec.Handle))
			if subject != "" {
				wantList(t, s, subject, keep)
			}
			if _, err := s.Revoke(ctx, rec.Handle, rv); !errors.Is(err, sessionkit.ErrRevoked) {
				t.Fatalf("second Revoke error = %v, want ErrRevoked", err)
			}
			same(t, "record after second Revoke", want, get(t, s, rec.TokenHash))
			// Revoke set PurgeAt earlier than before: the record is purged then.
			if n, err := s.DeleteExpired(ctx, rv.PurgeAt, 100); err != nil || n != 1 {
				t.Fatalf("DeleteExpired at revocation PurgeAt = %d, %v; want 1, nil", n, err)
			}
			gone(t, s, rec)
			same(t, "other record", keep, get(t, s, keep.TokenHash))
		})
	}
}

func testRevokeSubject(t *testing.T, s sessionkit.Store) {
	ctx := t.Context()
	base := now()
	var alice []*sessionkit.Record
	for i := range 4 {
		r := NewRecord("user:alice", base.Add(time.Duration(i)*time.Second))
		create(t, s, r, sessionkit.Limit{})
		alice = append(alice, r)
	}
	bob := NewRecord("user:bob", base)
	anon := NewRecord("", base)
	create(t, s, bob, sessionkit.Limit{})
	create(t, s, anon, sessionkit.Limit{})
	// One of alice's sessions is already revoked: it is not revoked again.
	first, err := s.Revoke(ctx, alice[0].Handle, revocation(base, sessionkit.ReasonLogout))
	if err != nil {
		t.Fatal(err)
	}

	rv := sessionkit.Revocation{At: base.Add(5 * time.Minute), Reason: sessionkit.ReasonRevokeAll, PurgeAt: base.Add(3 * time.Hour)}
	got, err := s.RevokeSubject(ctx, "user:alice", alice[2].Handle, rv)
	if err != nil {
		t.Fatalf("RevokeSubject(except): %v", err)
	}
	if g, w := handles(got), handles([]*sessionkit.Record{alice[1], alice[3]}); !slices.Equal(g, w) {
		t.Fatalf("RevokeSubject(except) revoked %v, want %v", g, w)
	}
	for _, r := range []*sessionkit.Record{alice[1], alice[3]} {
		want := revoked(r, rv)
		i := slices.IndexFunc(got, func(g *sessionkit.Record) bool { return g.Handle == r.Handle })
		same(t, "RevokeSubject result", want, got[i])
		same(t, "Get after RevokeSubject", want, get(t, s, r.TokenHash))
	}
	same(t, "session revoked earlier", first, get(t, s, alice[0].TokenHash))
	same(t, "excepted session", alice[2], get(t, s, alice[2].TokenHash))
	same(t, "other subject", bob, get(t, s, bob.TokenHash))
	same(t, "anonymous session", anon, get(t, s, anon.TokenHash))
	wantList(t, s, "user:alice", alice[2])
	wantList(t, s, "user:bob", bob)

	got, err = s.RevokeSubject(ctx, "user:alice", "", rv)
	if err != nil {
		t.Fatalf("RevokeSubject: %v", err)
	}
	if g := handles(got); !slices.Equal(g, []string{alice[2].Handle}) {
		t.Fatalf("RevokeSubject revoked %v, want [%s]", g, alice[2].Handle)
	}
	same(t, "Get after RevokeSubject", revoked(alice[2], rv), get(t, s, alice[2].TokenHash))
	wantList(t, s, "user:alice")
	if got, err = s.RevokeSubject(ctx, "user:alice", "", rv); err != nil || len(got) != 0 {
		t.Fatalf("RevokeSubject(empty index) = %v, %v; want none, nil", handles(got), err)
	}
	wantList(t, s, "user:bob", bob)
}

func testListSubject(t *testing.T, s sessionkit.Store) {
	ctx := t.Context()
	base := now()
	// Created out of order: the list is by CreatedAt, not insertion.
	offsets := []time.Duration{3, 1, 4, 0, 2}
	recs := make([]*sessionkit.Record, len(offsets))
	for i, o := range offsets {
		recs[i] = NewRecord("user:list", base.Add(o*time.Second))
		create(t, s, recs[i], sessionkit.Limit{})
	}
	create(t, s, NewRecord("user:other", base), sessionkit.Limit{})
	create(t, s, NewRecord("", base), sessionkit.Limit{})
	create(t, s, NewRecord("user:listing", base), sessionkit.Limit{}) // shares a prefix
	if _, err := s.Revoke(ctx, recs[2].Handle, revocation(base, sessionkit.ReasonLogout)); err != nil {
		t.Fatal(err)
	}
	wantList(t, s, "user:list", recs[3], recs[1], recs[4], recs[0])
	got, err := s.ListSubject(ctx, "user:list")
	if err != nil {
		t.Fatal(err)
	}
	same(t, "listed record", recs[3], got[0])
	if l := list(t, s, "user:lis"); len(l) != 0 {
		t.Fatalf("ListSubject(prefix) = %v, want empty", l)
	}
	if l := list(t, s, ""); len(l) != 0 {
		t.Fatalf("ListSubject(\"\") = %v, want empty: anonymous sessions have no index", l)
	}
}

func testLimit(t *testing.T, s sessionkit.Store) {
	base := now()
	n := 0
	for _, tc := range []struct {
		name     string
		policy   sessionkit.LimitPolicy
		max      int
		existing int
		onUpdate bool // the new session arrives by Update (login), not Create
		evicts   int  // -1: ErrLimit
	}{
		{"reject create", sessionkit.LimitReject, 3, 3, false, -1},
		{"reject update", sessionkit.LimitReject, 3, 3, true, -1},
		{"reject below max", sessionkit.LimitReject, 3, 2, false, 0},
		{"evict create", sessionkit.LimitEvictOldest, 3, 3, false, 1},
		{"evict update", sessionkit.LimitEvictOldest, 3, 3, true, 1},
		{"evict two", sessionkit.LimitEvictOldest, 2, 3, false, 2},
		{"evict two update", sessionkit.LimitEvictOldest, 2, 3, true, 2},
		{"evict below max", sessionkit.LimitEvictOldest, 3, 2, true, 0},
		{"no limit", sessionkit.LimitReject, 0, 3, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n++
			subject := "user:limit" + string(rune('a'+n))
			var old []*sessionkit.Record
			for i := range tc.existing {
				r := NewRecord(subject, base.Add(time.Duration(i)*time.Second))
				create(t, s, r, sessionkit.Limit{})
				old = append(old, r)
			}
			// Reversed creation order must not matter.
			slices.Reverse(old)
			for _, r := range old {
				update(t, s, r, sessionkit.Limit{})
			}
			slices.Reverse(old)

			rec := NewRecord(subject, base.Add(time.Minute))
			if tc.onUpdate {
				rec.Subject = ""
				create(t, s, rec, sessionkit.Limit{})
				rec.Subject = subject
			}
			before := deepClone(rec)
			lim := sessionkit.Limit{Max: tc.max, Policy: tc.policy, Now: base.Add(2 * time.Minute),
				Revocation: sessionkit.Revocation{At: base.Add(2 * time.Minute), Reason: sessionkit.ReasonLimit, PurgeAt: base.Add(4 * time.Hour)}}
			var ev []*sessionkit.Record
			var err error
			if tc.onUpdate {
				ev, err = s.Update(t.Context(), rec, lim)
			} else {
				ev, err = s.Create(t.Context(), rec, lim)
			}
			if tc.evicts < 0 {
				if !errors.Is(err, sessionkit.ErrLimit) || len(ev) != 0 {
					t.Fatalf("at the limit: evicted %v, error %v; want none, ErrLimit", handles(ev), err)
				}
				if tc.onUpdate {
					before.Subject = ""
					same(t, "session refused by the limit", before, get(t, s, rec.TokenHash))
				} else {
					gone(t, s, rec)
				}
				wantList(t, s, subject, old...)
				return
			}
			if err != nil {
				t.Fatalf("Create/Update under the limit: %v", err)
			}
			if g, w := handles(ev), handles(old[:tc.evicts]); !slices.Equal(g, w) {
				t.Fatalf("evicted %v, want %v (the oldest)", g, w)
			}
			for _, r := range old[:tc.evicts] {
				want := revoked(r, lim.Revocation)
				i := slices.IndexFunc(ev, func(g *sessionkit.Record) bool { return g.Handle == r.Handle })
				same(t, "evicted record", want, ev[i])
				same(t, "Get of evicted record", want, get(t, s, r.TokenHash))
			}
			wantList(t, s, subject, append(slices.Clone(old[tc.evicts:]), rec)...)
		})
	}

	// Sessions past a deadline at lim.Now are not live and do not count, but
	// they are not evicted either.
	for _, policy := range []sessionkit.LimitPolicy{sessionkit.LimitReject, sessionkit.LimitEvictOldest} {
		t.Run("expired do not count/"+map[sessionkit.LimitPolicy]string{0: "reject", 1: "evict"}[policy], func(t *testing.T) {
			subject := "user:expired" + string(rune('a'+int(policy)))
			idle := NewRecord(subject, base)
			idle.IdleDeadline = base.Add(time.Minute)
			absolute := NewRecord(subject, base.Add(time.Second))
			absolute.AbsoluteDeadline = base.Add(time.Minute)
			live := NewRecord(subject, base.Add(2*time.Second))
			for _, r := range []*sessionkit.Record{idle, absolute, live} {
				create(t, s, r, sessionkit.Limit{})
			}
			lim := sessionkit.Limit{Max: 2, Policy: policy, Now: base.Add(10 * time.Minute), Revocation: revocation(base, sessionkit.ReasonLimit)}
			rec := NewRecord(subject, base.Add(3*time.Second))
			ev, err := s.Create(t.Context(), rec, lim)
			if err != nil || len(ev) != 0 {
				t.Fatalf("Create with one live session of max 2 = %v, %v; want none, nil", handles(ev), err)
			}
			// Now two are live: the next one evicts the oldest live one,
			// never the expired ones.
			next := NewRecord(subject, base.Add(4*time.Second))
			ev, err = s.Create(t.Context(), next, lim)
			if policy == sessionkit.LimitReject {
				if !errors.Is(err, sessionkit.ErrLimit) {
					t.Fatalf("Create with two live sessions of max 2: error = %v, want ErrLimit", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g := handles(ev); !slices.Equal(g, []string{live.Handle}) {
				t.Fatalf("evicted %v, want [%s] (the oldest live one)", g, live.Handle)
			}
			for _, r := range []*sessionkit.Record{idle, absolute} {
				if got := get(t, s, r.TokenHash); got.Revoked() {
					t.Fatalf("expired session %s was revoked by the limit", r.Handle)
				}
			}
		})
	}

	// An Update within the same subject does not count the session against
	// itself.
	t.Run("update in place", func(t *testing.T) {
		var recs []*sessionkit.Record
		for i := range 3 {
			r := NewRecord("user:inplace", base.Add(time.Duration(i)*time.Second))
			create(t, s, r, sessionkit.Limit{})
			recs = append(recs, r)
		}
		lim := sessionkit.Limit{Max: 3, Policy: sessionkit.LimitEvictOldest, Now: base, Revocation: revocation(base, sessionkit.ReasonLimit)}
		recs[1].AuthLevel = 5
		if ev := update(t, s, recs[1], lim); len(ev) != 0 {
			t.Fatalf("Update in place evicted %v", handles(ev))
		}
		lim.Policy = sessionkit.LimitReject
		recs[2].TokenHash = randomHash()
		if ev := update(t, s, recs[2], lim); len(ev) != 0 {
			t.Fatalf("renewal in place evicted %v", handles(ev))
		}
		wantList(t, s, "user:inplace", recs...)
	})
}

func testDeleteExpired(t *testing.T, s sessionkit.Store) {
	ctx := t.Context()
	base := now()
	var expiring []*sessionkit.Record
	for i, d := range []time.Duration{10, 20, 30} {
		subject := "user:purge"
		if i == 1 {
			subject = ""
		}
		r := NewRecord(subject, base.Add(time.Duration(i)*time.Second))
		r.PurgeAt = base.Add(d * time.Minute)
		create(t, s, r, sessionkit.Limit{})
		expiring = append(expiring, r)
	}
	keep := NewRecord("user:purge", base.Add(5*time.Second))
	keep.PurgeAt = base.Add(2 * time.Hour)
	create(t, s, keep, sessionkit.Limit{})
	rv := NewRecord("user:purge", base)
	rv.PurgeAt = base.Add(3 * time.Hour)
	create(t, s, rv, sessionkit.Limit{})
	if _, err := s.Revoke(ctx, rv.Handle, sessionkit.Revocation{At: base, Reason: sessionkit.ReasonLogout, PurgeAt: base.Add(15 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	expiring = append(expiring, rv)
	// Due first, then moved past every other PurgeAt by Touch.
	late := NewRecord("user:purge", base.Add(6*time.Second))
	late.PurgeAt = base.Add(time.Minute)
	create(t, s, late, sessionkit.Limit{})
	late.Activity = sessionkit.Activity{LastSeenAt: base.Add(time.Hour), IdleDeadline: base.Add(2 * time.Hour), PurgeAt: base.Add(4 * time.Hour)}
	if err := s.Touch(ctx, late.Handle, late.Activity); err != nil {
		t.Fatal(err)
	}
	late.Version = 1

	at := base.Add(30 * time.Minute) // equal to the last PurgeAt: due
	steps := []struct {
		now       time.Time
		max, want int
	}{
		{base.Add(5 * time.Minute), 100, 0},
		{at, 3, 3},
		{at, 100, 1},
		{at, 100, 0},
	}
	total := 0
	for i, st := range steps {
		n, err := s.DeleteExpired(ctx, st.now, st.max)
		if err != nil {
			t.Fatalf("step %d: DeleteExpired: %v", i, err)
		}
		if n != st.want {
			t.Fatalf("step %d: DeleteExpired(+%v, %d) = %d, want %d", i, st.now.Sub(base), st.max, n, st.want)
		}
		total += n
	}
	for _, r := range expiring {
		gone(t, s, r)
	}
	same(t, "unexpired record", keep, get(t, s, keep.TokenHash))
	same(t, "record touched past now", late, get(t, s, late.TokenHash))
	wantList(t, s, "user:purge", keep, late)
	// The purged handles and hashes are free again.
	again := deepClone(expiring[0])
	again.Version = 0
	create(t, s, again, sessionkit.Limit{})
	wantList(t, s, "user:purge", again, keep, late)
}

func testDelete(t *testing.T, s sessionkit.Store) {
	ctx := t.Context()
	base := now()
	live := NewRecord("user:del", base)
	rv := NewRecord("user:del", base.Add(time.Second))
	other := NewRecord("user:del", base.Add(2*time.Second))
	for _, r := range []*sessionkit.Record{live, rv, other} {
		create(t, s, r, sessionkit.Limit{})
	}
	if _, err := s.Revoke(ctx, rv.Handle, revocation(base, sessionkit.ReasonLogout)); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*sessionkit.Record{live, rv} {
		if err := s.Delete(ctx, r.Handle); err != nil {
			t.Fatalf("Delete(%s): %v", r.Handle, err)
		}
		gone(t, s, r)
		if err := s.Delete(ctx, r.Handle); !errors.Is(err, sessionkit.ErrNotFound) {
			t.Fatalf("second Delete error = %v, want ErrNotFound", err)
		}
	}
	wantList(t, s, "user:del", other)
	// Nothing of the deleted records is left: not in the purge index either.
	if n, err := s.DeleteExpired(ctx, base.Add(100*time.Hour), 100); err != nil || n != 1 {
		t.Fatalf("DeleteExpired after Delete = %d, %v; want 1 (only the remaining record), nil", n, err)
	}
	again := deepClone(live)
	again.Version = 0
	create(t, s, again, sessionkit.Limit{})
	wantList(t, s, "user:del", again)
}

func testPing(t *testing.T, s sessionkit.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping with deadline: %v", err)
	}
}
