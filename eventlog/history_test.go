package eventlog_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/eventlog"
	"github.com/sessionkit/sessionkit/internal/testclock"
)

func newClock() *testclock.Clock { return testclock.New(time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)) }

// opener opens a fresh History with o.
type opener func(t *testing.T, o eventlog.Options) eventlog.History

func backends() map[string]opener {
	return map[string]opener{
		"memory": func(t *testing.T, o eventlog.Options) eventlog.History { return eventlog.NewMemory(o) },
		"bolt": func(t *testing.T, o eventlog.Options) eventlog.History {
			h, err := eventlog.OpenBolt(filepath.Join(t.TempDir(), "events.db"), o)
			if err != nil {
				t.Fatal(err)
			}
			return h
		},
	}
}

func TestHistory(t *testing.T) {
	for name, open := range allBackends() {
		// Redis finds events by handle from per-handle lists that the
		// global cap does not trim.
		t.Run(name, func(t *testing.T) { testHistory(t, open, name != "redis") })
	}
}

func ev(clk *testclock.Clock, typ sessionkit.EventType, subject, handle string) eventlog.Entry {
	clk.Add(time.Millisecond)
	return eventlog.NewEntry(sessionkit.Event{Type: typ, Subject: subject, Handle: handle, Client: sessionkit.Client{IP: "192.0.2.1"}}, clk.Now())
}

func testHistory(t *testing.T, open opener, strictCap bool) {
	ctx := context.Background()
	clk := newClock()
	h := open(t, eventlog.Options{Retention: time.Hour, MaxEvents: 50, Now: clk.Now})
	defer h.Close()

	var batch []eventlog.Entry
	for i := range 10 {
		batch = append(batch,
			ev(clk, sessionkit.EventCreated, "alice", fmt.Sprintf("h%d", i)),
			ev(clk, sessionkit.EventRejected, "", ""),
		)
	}
	batch = append(batch, ev(clk, sessionkit.EventAnomaly, "alice", "h3"), ev(clk, sessionkit.EventRevoked, "bob", "h3"))
	if err := h.Append(ctx, batch); err != nil {
		t.Fatal(err)
	}

	// Per handle, in order.
	got, err := h.Query(ctx, eventlog.Query{Handle: "h3"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Type != sessionkit.EventCreated || got[1].Type != sessionkit.EventAnomaly || got[2].Type != sessionkit.EventRevoked {
		t.Fatalf("handle h3: %v", types(got))
	}
	if got[0].ID != batch[6].ID || got[0].Client.IP != "192.0.2.1" || !got[0].Time.Equal(batch[6].Time) {
		t.Errorf("entry round trip: %+v vs %+v", got[0], batch[6])
	}
	// Per subject, most recent limit, oldest first.
	got, _ = h.Query(ctx, eventlog.Query{Subject: "alice", Limit: 3})
	if len(got) != 3 || got[0].Handle != "h8" || got[1].Handle != "h9" || got[2].Type != sessionkit.EventAnomaly {
		t.Fatalf("subject alice limit 3: %v", handles(got))
	}
	// Anomalies.
	got, _ = eventlog.Anomalies(ctx, h, time.Time{}, 10)
	if len(got) != 1 || got[0].Handle != "h3" {
		t.Fatalf("anomalies: %v", types(got))
	}
	// Everything, newest 5.
	got, _ = h.Query(ctx, eventlog.Query{Limit: 5})
	if len(got) != 5 || got[4].Type != sessionkit.EventRevoked {
		t.Fatalf("all: %v", types(got))
	}
	// Since.
	got, _ = h.Query(ctx, eventlog.Query{Subject: "alice", Since: batch[18].Time})
	if len(got) != 2 {
		t.Fatalf("since: %v", handles(got))
	}

	// MaxEvents: 22 + 40 = 62 > 50, the oldest go first.
	batch = nil
	for i := range 40 {
		batch = append(batch, ev(clk, sessionkit.EventTouched, "carol", fmt.Sprintf("c%d", i)))
	}
	if err := h.Append(ctx, batch); err != nil {
		t.Fatal(err)
	}
	h.Prune(ctx)
	got, _ = h.Query(ctx, eventlog.Query{Limit: 1000})
	if len(got) > 50 || len(got) < 40 {
		t.Fatalf("after cap: %d events", len(got))
	}
	if got, _ := h.Query(ctx, eventlog.Query{Handle: "h0"}); strictCap && len(got) != 0 {
		t.Errorf("evicted event still found by handle: %v", types(got))
	}

	// Retention.
	clk.Add(2 * time.Hour)
	fresh := ev(clk, sessionkit.EventCreated, "dave", "d1")
	if err := h.Append(ctx, []eventlog.Entry{fresh}); err != nil {
		t.Fatal(err)
	}
	if got, _ := h.Query(ctx, eventlog.Query{Subject: "carol"}); len(got) != 0 {
		t.Errorf("expired events returned: %d", len(got))
	}
	if _, err := h.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ = h.Query(ctx, eventlog.Query{Limit: 1000})
	if len(got) != 1 || got[0].Handle != "d1" {
		t.Errorf("after prune: %v", handles(got))
	}
}

func types(es []eventlog.Entry) []string {
	var s []string
	for _, e := range es {
		s = append(s, string(e.Type))
	}
	return s
}

func handles(es []eventlog.Entry) []string {
	var s []string
	for _, e := range es {
		s = append(s, e.Handle+":"+string(e.Type))
	}
	return s
}

func TestBoltPruneCount(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	path := filepath.Join(t.TempDir(), "events.db")
	h, err := eventlog.OpenBolt(path, eventlog.Options{Retention: time.Minute, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	var batch []eventlog.Entry
	for range 2500 {
		batch = append(batch, ev(clk, sessionkit.EventRejected, "", ""))
	}
	h.Append(ctx, batch)
	clk.Add(time.Minute)
	h.Append(ctx, []eventlog.Entry{ev(clk, sessionkit.EventCreated, "x", "y")})
	n, err := h.Prune(ctx)
	if err != nil || n != 2500 {
		t.Fatalf("Prune = %d, %v; want 2500", n, err)
	}
	if h.Len() != 1 {
		t.Errorf("Len = %d, want 1", h.Len())
	}
	h.Close()
	// Reopening keeps the events.
	h, err = eventlog.OpenBolt(path, eventlog.Options{Retention: time.Minute, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if got, _ := h.Query(ctx, eventlog.Query{Subject: "x"}); len(got) != 1 {
		t.Errorf("after reopen: %v", types(got))
	}
}

func TestRecorder(t *testing.T) {
	ctx := context.Background()
	mem := eventlog.NewMemory(eventlog.Options{})
	rec := eventlog.NewRecorder(mem, eventlog.RecorderOptions{})
	for i := range 100 {
		rec.Emit(ctx, sessionkit.Event{Type: sessionkit.EventCreated, Handle: fmt.Sprint(i)})
	}
	if err := rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if mem.Len() != 100 || rec.Stats().Written != 100 {
		t.Fatalf("len %d stats %+v", mem.Len(), rec.Stats())
	}
	rec.Close()
	rec.Emit(ctx, sessionkit.Event{Type: sessionkit.EventCreated})
	if rec.Stats().Dropped != 1 {
		t.Errorf("emit after close not dropped: %+v", rec.Stats())
	}
}

// blockingHistory blocks every Append until release is closed.
type blockingHistory struct {
	eventlog.History
	release chan struct{}
}

func (b blockingHistory) Append(ctx context.Context, es []eventlog.Entry) error {
	<-b.release
	return b.History.Append(ctx, es)
}

func TestRecorderDropsWhenFull(t *testing.T) {
	ctx := context.Background()
	bh := blockingHistory{eventlog.NewMemory(eventlog.Options{}), make(chan struct{})}
	rec := eventlog.NewRecorder(bh, eventlog.RecorderOptions{QueueSize: 4, BatchSize: 1})
	start := time.Now()
	for range 100 {
		rec.Emit(ctx, sessionkit.Event{Type: sessionkit.EventRejected})
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Emit blocked for %v", d)
	}
	close(bh.release)
	rec.Flush(ctx)
	st := rec.Stats()
	if st.Dropped < 90 || st.Dropped+st.Written != 100 {
		t.Errorf("stats %+v: want >= 90 dropped and none lost silently", st)
	}
	rec.Close()
}
