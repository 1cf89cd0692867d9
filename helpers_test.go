package sessionkit_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/internal/testclock"
	"github.com/sessionkit/sessionkit/store/memstore"
)

func newClock() *testclock.Clock {
	return testclock.New(time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC))
}

// recorder keeps every event.
type recorder struct {
	mu     sync.Mutex
	events []sessionkit.Event
}

func (r *recorder) Emit(_ context.Context, e sessionkit.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) count(typ sessionkit.EventType, reason string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Type == typ && (reason == "" || e.Reason == reason) {
			n++
		}
	}
	return n
}

func (r *recorder) all() []sessionkit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sessionkit.Event(nil), r.events...)
}

// faultyStore wraps a store, counts writes, and fails every call while down.
type faultyStore struct {
	sessionkit.Store
	down    atomic.Bool
	touches atomic.Int64
	updates atomic.Int64
}

var errDown = fmt.Errorf("%w: connection refused", sessionkit.ErrStore)

func (f *faultyStore) fail() error {
	if f.down.Load() {
		return errDown
	}
	return nil
}

func (f *faultyStore) Get(ctx context.Context, h sessionkit.TokenHash) (*sessionkit.Record, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Store.Get(ctx, h)
}

func (f *faultyStore) GetByHandle(ctx context.Context, h string) (*sessionkit.Record, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Store.GetByHandle(ctx, h)
}

func (f *faultyStore) Create(ctx context.Context, r *sessionkit.Record, l sessionkit.Limit) ([]*sessionkit.Record, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Store.Create(ctx, r, l)
}

func (f *faultyStore) Update(ctx context.Context, r *sessionkit.Record, l sessionkit.Limit) ([]*sessionkit.Record, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	f.updates.Add(1)
	return f.Store.Update(ctx, r, l)
}

func (f *faultyStore) Touch(ctx context.Context, h string, a sessionkit.Activity) error {
	if err := f.fail(); err != nil {
		return err
	}
	f.touches.Add(1)
	return f.Store.Touch(ctx, h, a)
}

type env struct {
	mgr   *sessionkit.Manager
	clock *testclock.Clock
	ev    *recorder
	store *faultyStore
}

func newEnv(t testing.TB, cfg sessionkit.Config) *env {
	t.Helper()
	e := &env{clock: newClock(), ev: &recorder{}}
	e.store = &faultyStore{Store: memstore.New(memstore.Options{})}
	cfg.Now = e.clock.Now
	if cfg.Events == nil {
		cfg.Events = e.ev
	}
	m, err := sessionkit.New(e.store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.mgr = m
	return e
}

func mustErr(t testing.TB, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
}
