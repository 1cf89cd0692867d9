package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit"
)

// testConcurrentCAS runs writers that each set their own data key on one
// session with read-modify-write retried on conflict. With compare-and-swap
// every key lands; a lost update drops one.
func testConcurrentCAS(t *testing.T, s sessionkit.Store) {
	ctx := t.Context()
	rec := NewRecord("user:cas", now())
	create(t, s, rec, sessionkit.Limit{})
	const writers = 50
	var wg sync.WaitGroup
	var successes atomic.Uint64
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			key := "w" + strconv.Itoa(w)
			for attempt := 0; ; attempt++ {
				if attempt > 10_000 {
					errs <- fmt.Errorf("writer %d: no success after %d attempts", w, attempt)
					return
				}
				r, err := s.GetByHandle(ctx, rec.Handle)
				if err != nil {
					errs <- fmt.Errorf("writer %d: GetByHandle: %w", w, err)
					return
				}
				if r.Data == nil {
					r.Data = map[string]json.RawMessage{}
				}
				r.Data[key] = json.RawMessage(strconv.Itoa(w))
				_, err = s.Update(ctx, r, sessionkit.Limit{})
				if err == nil {
					successes.Add(1)
					return
				}
				if !errors.Is(err, sessionkit.ErrConflict) {
					errs <- fmt.Errorf("writer %d: Update: %w", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := getHandle(t, s, rec.Handle)
	for w := range writers {
		if v := got.Data["w"+strconv.Itoa(w)]; string(v) != strconv.Itoa(w) {
			t.Errorf("data key w%d = %q, want %d: lost update", w, v, w)
		}
	}
	if want := 1 + successes.Load(); got.Version != want {
		t.Errorf("Version = %d after %d successful updates, want %d", got.Version, successes.Load(), want)
	}
	for k := range rec.Data {
		if _, ok := got.Data[k]; !ok {
			t.Errorf("original data key %q lost", k)
		}
	}
}

// testRevokeRace revokes a session while writers keep updating it. Once
// Revoke has returned, no Update may succeed, and the record stays revoked.
func testRevokeRace(t *testing.T, s sessionkit.Store) {
	ctx := t.Context()
	rec := NewRecord("user:race", now())
	create(t, s, rec, sessionkit.Limit{})
	const writers = 10
	var (
		wg        sync.WaitGroup
		revokedAt atomic.Bool
		updates   atomic.Int64
		mu        sync.Mutex
		versions  []uint64 // versions produced by successful updates
	)
	errs := make(chan error, writers+1)
	for w := range writers {
		wg.Go(func() {
			for i := 0; ; i++ {
				after := revokedAt.Load()
				r, err := s.GetByHandle(ctx, rec.Handle)
				if err != nil {
					errs <- fmt.Errorf("writer %d: GetByHandle: %w", w, err)
					return
				}
				if r.Revoked() {
					return
				}
				if after {
					errs <- fmt.Errorf("writer %d: GetByHandle returned a live record after Revoke returned", w)
					return
				}
				if r.Data == nil {
					r.Data = map[string]json.RawMessage{}
				}
				r.Data["w"+strconv.Itoa(w)] = json.RawMessage(strconv.Itoa(i))
				_, err = s.Update(ctx, r, sessionkit.Limit{})
				switch {
				case err == nil:
					if after {
						errs <- fmt.Errorf("writer %d: Update succeeded after Revoke returned", w)
						return
					}
					updates.Add(1)
					mu.Lock()
					versions = append(versions, r.Version)
					mu.Unlock()
				case errors.Is(err, sessionkit.ErrRevoked):
					return
				case errors.Is(err, sessionkit.ErrConflict):
				default:
					errs <- fmt.Errorf("writer %d: Update: %w", w, err)
					return
				}
			}
		})
	}
	var rv *sessionkit.Record
	wg.Go(func() {
		deadline := time.Now().Add(10 * time.Second)
		for updates.Load() < 20 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		var err error
		rv, err = s.Revoke(ctx, rec.Handle, revocation(rec.CreatedAt, sessionkit.ReasonLogout))
		revokedAt.Store(true)
		if err != nil {
			errs <- fmt.Errorf("Revoke: %w", err)
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if updates.Load() == 0 {
		t.Fatal("no update succeeded before the revocation: the race was not exercised")
	}
	got := getHandle(t, s, rec.Handle)
	same(t, "record after the race", rv, got)
	if !got.Revoked() || len(got.Data) != 0 {
		t.Fatalf("record after the race: revoked=%v data=%v; want revoked without data", got.Revoked(), dataString(got.Data))
	}
	for _, v := range versions {
		if v >= rv.Version {
			t.Fatalf("an update produced version %d, not older than the revocation's %d", v, rv.Version)
		}
	}
	wantList(t, s, "user:race")
}

// testConcurrentLimit creates sessions for one subject from many goroutines
// under a limit of 3: the index never holds more than 3 live sessions.
func testConcurrentLimit(t *testing.T, s sessionkit.Store) {
	const max, workers = 3, 12
	for _, policy := range []sessionkit.LimitPolicy{sessionkit.LimitReject, sessionkit.LimitEvictOldest} {
		name := map[sessionkit.LimitPolicy]string{sessionkit.LimitReject: "reject", sessionkit.LimitEvictOldest: "evict"}[policy]
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			base := now()
			subject := "user:climit-" + name
			lim := sessionkit.Limit{Max: max, Policy: policy, Now: base, Revocation: revocation(base, sessionkit.ReasonLimit)}
			var (
				wg      sync.WaitGroup
				created atomic.Int64
				evicted atomic.Int64
				stop    atomic.Bool
				mu      sync.Mutex
				recs    []*sessionkit.Record
			)
			errs := make(chan error, workers+1)
			// A watcher checks the index while the creates run.
			watch := make(chan struct{})
			go func() {
				defer close(watch)
				for !stop.Load() {
					l, err := s.ListSubject(ctx, subject)
					if err != nil {
						errs <- fmt.Errorf("ListSubject: %w", err)
						return
					}
					if live := countLive(l, base); live > max {
						errs <- fmt.Errorf("index holds %d live sessions, limit %d", live, max)
						return
					}
				}
			}()
			for w := range workers {
				wg.Go(func() {
					for i := range 3 {
						r := NewRecord(subject, base.Add(time.Duration(w*10+i)*time.Millisecond))
						ev, err := s.Create(ctx, r, lim)
						switch {
						case err == nil:
							created.Add(1)
							evicted.Add(int64(len(ev)))
							mu.Lock()
							recs = append(recs, r)
							mu.Unlock()
						case errors.Is(err, sessionkit.ErrLimit) && policy == sessionkit.LimitReject:
						default:
							errs <- fmt.Errorf("Create: %w", err)
							return
						}
					}
				})
			}
			wg.Wait()
			stop.Store(true)
			<-watch
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			l := list(t, s, subject)
			if len(l) != max {
				t.Fatalf("index holds %d sessions, want %d", len(l), max)
			}
			if policy == sessionkit.LimitReject && created.Load() != max {
				t.Fatalf("%d creates succeeded under LimitReject, want %d", created.Load(), max)
			}
			if policy == sessionkit.LimitEvictOldest && created.Load()-evicted.Load() != max {
				t.Fatalf("%d created, %d evicted: want %d left", created.Load(), evicted.Load(), max)
			}
			live := 0
			for _, r := range recs {
				if got := getHandle(t, s, r.Handle); !got.Revoked() {
					live++
					if !slices.Contains(l, r.Handle) {
						t.Fatalf("live session %s is missing from the index", r.Handle)
					}
				}
			}
			if live != max {
				t.Fatalf("%d sessions not revoked, want %d", live, max)
			}
		})
	}
}

func countLive(recs []*sessionkit.Record, now time.Time) int {
	n := 0
	for _, r := range recs {
		if r.Live(now) {
			n++
		}
	}
	return n
}

// testIndexConsistency runs a random mix of operations from several
// goroutines and then checks that every subject's index holds exactly its
// non-revoked records, oldest first.
func testIndexConsistency(t *testing.T, s sessionkit.Store) {
	ctx := t.Context()
	base := now()
	subjects := []string{"user:mix0", "user:mix1", "user:mix2", ""}
	var (
		mu    sync.Mutex
		known []string // every handle ever created
	)
	pick := func(r *rand.Rand) (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		if len(known) == 0 {
			return "", false
		}
		return known[r.IntN(len(known))], true
	}
	expected := func(err error, allowed ...error) error {
		if err == nil {
			return nil
		}
		for _, a := range allowed {
			if errors.Is(err, a) {
				return nil
			}
		}
		return err
	}
	const workers, ops = 4, 80
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 42))
			for i := range ops {
				var err error
				op := r.IntN(10)
				h, ok := pick(r)
				if !ok {
					op = 0
				}
				lim := sessionkit.Limit{Max: r.IntN(4), Policy: sessionkit.LimitPolicy(r.IntN(2)), Now: base,
					Revocation: revocation(base, sessionkit.ReasonLimit)}
				switch op {
				case 0, 1, 2:
					rec := NewRecord(subjects[r.IntN(len(subjects))], base.Add(time.Duration(r.IntN(1000))*time.Millisecond))
					_, err = s.Create(ctx, rec, lim)
					if err == nil {
						mu.Lock()
						known = append(known, rec.Handle)
						mu.Unlock()
					}
					err = expected(err, sessionkit.ErrLimit)
				case 3, 4:
					var rec *sessionkit.Record
					rec, err = s.GetByHandle(ctx, h)
					if err == nil {
						rec.Subject = subjects[r.IntN(len(subjects))]
						if r.IntN(2) == 0 {
							rec.TokenHash = randomHash()
						}
						_, err = s.Update(ctx, rec, lim)
					}
					err = expected(err, sessionkit.ErrLimit, sessionkit.ErrConflict, sessionkit.ErrRevoked, sessionkit.ErrNotFound)
				case 5:
					a := sessionkit.Activity{LastSeenAt: base.Add(time.Duration(i) * time.Second), IdleDeadline: base.Add(time.Hour), PurgeAt: base.Add(2 * time.Hour)}
					err = expected(s.Touch(ctx, h, a), sessionkit.ErrRevoked, sessionkit.ErrNotFound)
				case 6, 7:
					_, err = s.Revoke(ctx, h, revocation(base, sessionkit.ReasonLogout))
					err = expected(err, sessionkit.ErrRevoked, sessionkit.ErrNotFound)
				case 8:
					except := ""
					if r.IntN(2) == 0 {
						except = h
					}
					_, err = s.RevokeSubject(ctx, subjects[r.IntN(len(subjects)-1)], except, revocation(base, sessionkit.ReasonRevokeAll))
				case 9:
					err = expected(s.Delete(ctx, h), sessionkit.ErrNotFound)
				}
				if err != nil {
					errs <- fmt.Errorf("worker %d op %d (%d): %w", w, i, op, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := map[string][]string{}
	for _, h := range known {
		r, err := s.GetByHandle(ctx, h)
		if errors.Is(err, sessionkit.ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if r.Subject != "" && !r.Revoked() {
			want[r.Subject] = append(want[r.Subject], h)
		}
		if _, err := s.Get(ctx, r.TokenHash); err != nil {
			t.Fatalf("record %s does not resolve by its hash: %v", h, err)
		}
	}
	for _, subject := range subjects {
		got := list(t, s, subject)
		slices.Sort(got)
		w := want[subject]
		slices.Sort(w)
		if !slices.Equal(got, w) {
			t.Errorf("ListSubject(%q) = %v, want the non-revoked records %v", subject, got, w)
		}
	}
}
