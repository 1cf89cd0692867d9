package main

import (
	"strings"
	"testing"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		line string
		name string
		vals map[string]float64
		ok   bool
	}{
		{"BenchmarkRequest/load/scs-redis-2   \t  5000\t  215122 ns/op\t 10064 B/op\t 207 allocs/op", "Request/load/scs-redis",
			map[string]float64{"ns/op": 215122, "B/op": 10064, "allocs/op": 207}, true},
		{"BenchmarkTouches/sessionkit-redis-2  1  1244564580 ns/op  60.00 min-gap-s  591.0 writes/run", "Touches/sessionkit-redis",
			map[string]float64{"ns/op": 1244564580, "min-gap-s": 60, "writes/run": 591}, true},
		{"BenchmarkFloor/bare-handler  100  168.1 ns/op", "Floor/bare-handler", map[string]float64{"ns/op": 168.1}, true},
		{"--- FAIL: BenchmarkRequest", "", nil, false},
		{"BenchmarkX-2 many 1 ns/op", "", nil, false},
		{"BenchmarkX-2 10 1", "", nil, false},
		{"goos: linux", "", nil, false},
		{"", "", nil, false},
	}
	for _, tt := range tests {
		name, vals, ok := parseLine(tt.line)
		if ok != tt.ok || name != tt.name {
			t.Errorf("parseLine(%q) = %q, %v; want %q, %v", tt.line, name, ok, tt.name, tt.ok)
			continue
		}
		for unit, want := range tt.vals {
			if vals[unit] != want {
				t.Errorf("parseLine(%q)[%s] = %v, want %v", tt.line, unit, vals[unit], want)
			}
		}
	}
}

func TestMedianAndReport(t *testing.T) {
	out := `
BenchmarkRequest/load/sessionkit-memory-2  100  1500 ns/op  10 B/op  1 allocs/op
BenchmarkRequest/load/sessionkit-memory-2  100  1000 ns/op  10 B/op  1 allocs/op
BenchmarkRequest/load/sessionkit-memory-2  100  9000 ns/op  10 B/op  1 allocs/op
BenchmarkRequest/load/scs-redis-2  100  300000 ns/op  10 B/op  1 allocs/op
BenchmarkRequest/load/sessionkit-redis-2  100  100000 ns/op  10 B/op  1 allocs/op
BenchmarkRequest/load/sessionkit-redis-2  100  100000 ns/op  10 B/op  1 allocs/op
BenchmarkFloor/redis-get-2  100  50000 ns/op  10 B/op  1 allocs/op
`
	r, err := parse(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := r.Median("Request/load/sessionkit-memory", "ns/op"); m != 1500 {
		t.Errorf("median = %v, want 1500", m)
	}
	var b strings.Builder
	report(&b, r, machine{Command: "go run ./cmd/benchreport"})
	got := b.String()
	for _, want := range []string{
		"| sessionkit Redis (no cache) faster than scs Redis, load-only | ≥ 1.5 x | 3.00 x | yes |",
		"| sessionkit Redis (no cache) load-only vs one raw rueidis GET | ≤ 1.3 x | 2.00 x | no |",
		"| sessionkit memory store, load-only | < 2 µs | 1.50 µs | yes |",
		"not measured",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
}

func FuzzParseLine(f *testing.F) {
	f.Add("BenchmarkRequest/load/scs-redis-2  5000  215122 ns/op  10064 B/op  207 allocs/op")
	f.Add("BenchmarkTouches/x-2 1 5 ns/op 60.00 min-gap-s")
	f.Add("Benchmark-2 1 1 ns/op")
	f.Fuzz(func(t *testing.T, line string) {
		name, vals, ok := parseLine(line)
		if !ok {
			return
		}
		if name == "" && !strings.HasPrefix(line, "Benchmark") {
			t.Fatalf("accepted %q", line)
		}
		if len(vals) == 0 {
			t.Fatalf("no values from %q", line)
		}
	})
}
