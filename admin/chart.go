package admin

import (
	"context"
	"fmt"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/eventlog"
)

// chart is a bar chart drawn as inline SVG by the overview template. All
// geometry is computed here, in the SVG's user units.
type chart struct {
	ID, Title, Class string
	Desc             string // one-sentence summary for screen readers
	Note             string // where the numbers come from, or why there are none
	Unavailable      bool
	Max              int64 // value of the top grid line
	Bars             []bar
	StartLabel       string
	MidLabel         string
	EndLabel         string
}

type bar struct {
	X, Y, W, H float64
	Value      int64
	Start, End time.Time
}

// SVG geometry of a chart.
const (
	chartW      = 320
	chartH      = 164
	plotLeft    = 28.0
	plotRight   = 314.0
	plotTop     = 8.0
	plotBottom  = 140.0
	barFraction = 0.78
)

// Layout constants the template needs.
func (chart) W() int            { return chartW }
func (chart) H() int            { return chartH }
func (chart) Left() float64     { return plotLeft }
func (chart) Right() float64    { return plotRight }
func (chart) Top() float64      { return plotTop }
func (chart) Bottom() float64   { return plotBottom }
func (chart) Middle() float64   { return (plotTop + plotBottom) / 2 }
func (chart) LabelY() float64   { return plotBottom + 20 }
func (chart) CenterX() float64  { return (plotLeft + plotRight) / 2 }
func (c chart) HalfMax() string { return fmt.Sprint(float64(c.Max) / 2) }
func (c chart) NonZero() []bar  { return nonZero(c.Bars) }
func (c chart) Latest() int64   { return c.Bars[len(c.Bars)-1].Value }
func (c chart) HasBars() bool   { return len(c.Bars) > 0 }

func nonZero(bs []bar) []bar {
	var out []bar
	for _, b := range bs {
		if b.Value != 0 {
			out = append(out, b)
		}
	}
	return out
}

// buckets are n consecutive intervals of step ending with the one that
// holds now.
type buckets struct {
	start time.Time
	step  time.Duration
	n     int
}

func newBuckets(now time.Time, span, step time.Duration) buckets {
	end := now.Truncate(step).Add(step)
	n := int(span / step)
	return buckets{start: end.Add(-time.Duration(n) * step), step: step, n: n}
}

// index returns t's bucket, or -1 outside the range.
func (b buckets) index(t time.Time) int {
	if t.Before(b.start) {
		return -1
	}
	i := int(t.Sub(b.start) / b.step)
	if i >= b.n {
		return -1
	}
	return i
}

// charts computes the overview's charts: from Series when configured,
// otherwise created and rejected from the History. It returns the charts
// and a sentence naming their source.
func (c *Console) charts(ctx context.Context, now time.Time, span, step time.Duration) ([]chart, string, error) {
	b := newBuckets(now, span, step)
	created := make([]int64, b.n)
	rejected := make([]int64, b.n)
	var active []int64
	source := ""
	switch {
	case c.opts.Series != nil:
		active = make([]int64, b.n)
		seen := make([]bool, b.n)
		var carry int64
		for _, p := range c.opts.Series.Series(time.Time{}) {
			i := b.index(p.Time)
			if i < 0 {
				if p.Time.Before(b.start) {
					carry = p.Active
				}
				continue
			}
			created[i] += int64(p.Created)
			rejected[i] += int64(p.Rejected)
			active[i], seen[i] = p.Active, true
		}
		for i := range active {
			if seen[i] {
				carry = active[i]
			}
			active[i] = carry
		}
		source = "From this instance's metrics collector (per-minute counts since it started)."
	case c.opts.History != nil:
		truncated := false
		for _, s := range []struct {
			typ sessionkit.EventType
			out []int64
		}{{sessionkit.EventCreated, created}, {sessionkit.EventRejected, rejected}} {
			es, err := c.opts.History.Query(ctx, eventlog.Query{Type: s.typ, Since: b.start, Limit: eventlog.MaxQueryLimit})
			if err != nil {
				return nil, "", err
			}
			truncated = truncated || len(es) == eventlog.MaxQueryLimit
			for _, e := range es {
				if i := b.index(e.Time); i >= 0 {
					s.out[i]++
				}
			}
		}
		source = "From the event history."
		if truncated {
			source += fmt.Sprintf(" Only the latest %d events of each kind are counted.", eventlog.MaxQueryLimit)
		}
	default:
		return []chart{
			{ID: "created", Title: "Sessions created", Unavailable: true},
			{ID: "active", Title: "Active sessions", Unavailable: true},
			{ID: "rejected", Title: "Requests rejected", Unavailable: true},
		}, "Charts need the event history or the metrics collector; neither is configured.", nil
	}
	per := "per " + shortDuration(step)
	over := "over the last " + shortDuration(span)
	out := []chart{makeChart(b, "created", "Sessions created", created,
		func(total, peak int64) string {
			return fmt.Sprintf("Sessions created %s %s: %d in total, at most %d %s.", per, over, total, peak, per)
		})}
	if active != nil {
		out = append(out, makeChart(b, "active", "Active sessions", active,
			func(_, peak int64) string {
				return fmt.Sprintf("Active sessions %s: %d now, at most %d.", over, active[len(active)-1], peak)
			}))
	} else {
		out = append(out, chart{ID: "active", Title: "Active sessions", Unavailable: true,
			Note: "Counting active sessions needs the metrics collector."})
	}
	out = append(out, makeChart(b, "rejected", "Requests rejected", rejected,
		func(total, peak int64) string {
			return fmt.Sprintf("Rejected requests %s %s: %d in total, at most %d %s.", per, over, total, peak, per)
		}))
	return out, source, nil
}

func makeChart(b buckets, id, title string, values []int64, desc func(total, peak int64) string) chart {
	var total, peak int64
	for _, v := range values {
		total += v
		peak = max(peak, v)
	}
	top := niceCeil(peak)
	slot := (plotRight - plotLeft) / float64(b.n)
	bw := max(slot*barFraction, 1)
	c := chart{ID: id, Title: title, Class: id, Max: top, Desc: desc(total, peak)}
	for i, v := range values {
		h := float64(v) / float64(top) * (plotBottom - plotTop)
		if v > 0 && h < 1 {
			h = 1 // a non-zero value stays visible
		}
		start := b.start.Add(time.Duration(i) * b.step)
		c.Bars = append(c.Bars, bar{
			X: plotLeft + float64(i)*slot + (slot-bw)/2, W: bw,
			Y: plotBottom - h, H: h,
			Value: v, Start: start, End: start.Add(b.step),
		})
	}
	end := b.start.Add(time.Duration(b.n) * b.step)
	c.StartLabel = b.start.UTC().Format("15:04")
	c.MidLabel = b.start.Add(end.Sub(b.start) / 2).UTC().Format("15:04")
	c.EndLabel = end.UTC().Format("15:04 UTC")
	return c
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (at least 2, so
// the middle grid line is a whole number).
func niceCeil(v int64) int64 {
	if v <= 2 {
		return 2
	}
	for p := int64(1); ; p *= 10 {
		for _, m := range []int64{1, 2, 5} {
			if m*p >= v {
				return m * p
			}
		}
	}
}

func shortDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}
