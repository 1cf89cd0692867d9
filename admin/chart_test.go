package admin

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/eventlog"
	"github.com/sessionkit/sessionkit/metrics"
	"github.com/sessionkit/sessionkit/store/memstore"
)

type fixedSeries []metrics.Point

func (f fixedSeries) Series(time.Time) []metrics.Point { return f }

type failingHistory struct{}

func (failingHistory) Query(context.Context, eventlog.Query) ([]eventlog.Entry, error) {
	return nil, eventlog.ErrBackend
}

func newTestConsole(t *testing.T, o Options) *Console {
	t.Helper()
	o.Store = memstore.New(memstore.Options{})
	o.CheckAPIKey = func(string) (string, bool) { return "", false }
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestChartsFromSeries(t *testing.T) {
	now := time.Date(2026, 1, 2, 10, 30, 10, 0, time.UTC)
	series := fixedSeries{
		{Time: now.Add(-3 * time.Hour), Created: 9, Active: 7}, // before the range: carries the gauge in
		{Time: now.Add(-50 * time.Minute), Created: 2, Rejected: 1, Active: 9},
		{Time: now.Add(-50*time.Minute + 30*time.Second), Created: 1, Active: 10}, // same minute: adds up, last gauge wins
		{Time: now.Truncate(time.Minute), Created: 4, Rejected: 3, Active: 5},
	}
	c := newTestConsole(t, Options{Series: series})
	charts, _, err := c.charts(context.Background(), now, time.Hour, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(charts) != 3 {
		t.Fatalf("%d charts", len(charts))
	}
	created, active, rejected := charts[0], charts[1], charts[2]
	if len(created.Bars) != 60 {
		t.Fatalf("%d bars, want 60", len(created.Bars))
	}
	// The last bucket holds now.
	if last := created.Bars[59]; !last.Start.Equal(now.Truncate(time.Minute)) || last.Value != 4 {
		t.Errorf("last bucket %v = %d", last.Start, last.Value)
	}
	if v := created.Bars[9].Value; v != 3 {
		t.Errorf("bucket of -50m: created %d, want 3", v)
	}
	if active.Bars[0].Value != 7 || active.Bars[9].Value != 10 || active.Bars[30].Value != 10 || active.Bars[59].Value != 5 {
		t.Errorf("active gauge not carried: %d %d %d %d", active.Bars[0].Value, active.Bars[9].Value, active.Bars[30].Value, active.Bars[59].Value)
	}
	if rejected.Bars[9].Value != 1 || rejected.Max != 5 {
		t.Errorf("rejected bucket %d, max %d", rejected.Bars[9].Value, rejected.Max)
	}
	for _, b := range created.Bars {
		if b.Y < plotTop-0.001 || b.Y+b.H > plotBottom+0.001 || b.X < plotLeft || b.X+b.W > plotRight+0.001 {
			t.Fatalf("bar outside the plot: %+v", b)
		}
	}
}

func TestChartsFromHistory(t *testing.T) {
	now := time.Now()
	h := eventlog.NewMemory(eventlog.Options{})
	var es []eventlog.Entry
	for i, typ := range []sessionkit.EventType{sessionkit.EventCreated, sessionkit.EventCreated, sessionkit.EventRejected, sessionkit.EventTouched} {
		es = append(es, eventlog.NewEntry(sessionkit.Event{Type: typ, Time: now.Add(-time.Duration(i) * time.Minute)}, now))
	}
	h.Append(context.Background(), es)
	c := newTestConsole(t, Options{History: h})
	charts, source, err := c.charts(context.Background(), now, time.Hour, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if source != "From the event history." {
		t.Errorf("source %q", source)
	}
	sum := func(ch chart) (n int64) {
		for _, b := range ch.Bars {
			n += b.Value
		}
		return n
	}
	if sum(charts[0]) != 2 || !charts[1].Unavailable || sum(charts[2]) != 1 {
		t.Errorf("created %d, active unavailable %v, rejected %d", sum(charts[0]), charts[1].Unavailable, sum(charts[2]))
	}

	c = newTestConsole(t, Options{History: failingHistory{}})
	if _, _, err := c.charts(context.Background(), now, time.Hour, time.Minute); !errors.Is(err, eventlog.ErrBackend) {
		t.Errorf("failing history: %v", err)
	}
	c = newTestConsole(t, Options{})
	charts, _, err = c.charts(context.Background(), now, time.Hour, time.Minute)
	if err != nil || !charts[0].Unavailable {
		t.Errorf("no sources: %v, %+v", err, charts[0])
	}
}

func TestNiceCeil(t *testing.T) {
	for _, tt := range []struct{ in, want int64 }{{0, 2}, {1, 2}, {2, 2}, {3, 5}, {5, 5}, {6, 10}, {11, 20}, {21, 50}, {51, 100}, {999, 1000}} {
		if got := niceCeil(tt.in); got != tt.want {
			t.Errorf("niceCeil(%d) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestRelTime(t *testing.T) {
	now := time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{{0, "now"}, {30 * time.Second, "in 30s"}, {-5 * time.Minute, "5m ago"}, {7*time.Hour + 55*time.Minute, "in 7h 55m"}, {-72 * time.Hour, "3d ago"}} {
		if got := relTime(now.Add(tt.d), now); got != tt.want {
			t.Errorf("relTime(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
