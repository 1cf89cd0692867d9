// Command benchreport runs the comparison benchmarks of the bench module
// and writes RESULTS.md: medians of ns/op, B/op and allocs/op over several
// runs, the ratios sessionkit is measured by, and whether each target was
// met. Run it from the bench directory:
//
//	SESSIONKIT_REDIS_URL=redis://127.0.0.1:6379/0 go run ./cmd/benchreport -count 8
//
// It compiles the benchmarks once and runs all of them -count times in
// passes, so that load from other processes affects every benchmark alike.
// The raw output is kept next to it (results.txt), so benchstat can read it
// too. Text below the notes marker of an existing RESULTS.md is
// kept when the file is written again.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

const notesMarker = "<!-- notes: text below this line is kept when benchreport rewrites the file -->"

func main() {
	count := flag.Int("count", 8, "runs of each benchmark; medians are reported")
	benchtime := flag.String("benchtime", "1s", "go test -benchtime")
	bench := flag.String("bench", ".", "go test -bench pattern")
	out := flag.String("out", "RESULTS.md", "report to write")
	raw := flag.String("raw", "results.txt", "where to keep the raw go test output")
	in := flag.String("in", "", "read this raw output instead of running the benchmarks")
	flag.Parse()
	log.SetFlags(0)

	loadBefore := loadavg()
	start := time.Now()
	var output []byte
	if *in != "" {
		b, err := os.ReadFile(*in)
		if err != nil {
			log.Fatal(err)
		}
		output = b
	} else {
		if os.Getenv("SESSIONKIT_REDIS_URL") == "" {
			log.Fatal("benchreport: set SESSIONKIT_REDIS_URL, e.g. redis://127.0.0.1:6379/0")
		}
		var err error
		if output, err = run(*count, *bench, *benchtime); err != nil {
			log.Fatalf("benchreport: %v", err)
		}
		if *raw != "" {
			if err := os.WriteFile(*raw, output, 0o644); err != nil {
				log.Fatal(err)
			}
		}
	}
	res, err := parse(bytes.NewReader(output))
	if err != nil {
		log.Fatal(err)
	}
	env := machine{
		When:       start,
		Took:       time.Since(start),
		CPUs:       runtime.NumCPU(),
		CPU:        cpuModel(),
		Go:         runtime.Version(),
		LoadBefore: loadBefore,
		LoadAfter:  loadavg(),
		Command: fmt.Sprintf("cd bench && SESSIONKIT_REDIS_URL=redis://127.0.0.1:6379/0 go run ./cmd/benchreport -count %d -benchtime %s",
			*count, *benchtime),
	}
	notes := ""
	if old, err := os.ReadFile(*out); err == nil {
		if _, after, ok := strings.Cut(string(old), notesMarker); ok {
			notes = after
		}
	}
	var b strings.Builder
	report(&b, res, env)
	b.WriteString("\n" + notesMarker)
	b.WriteString(notes)
	if err := os.WriteFile(*out, []byte(b.String()), 0o644); err != nil {
		log.Fatal(err)
	}
	log.Printf("benchreport: wrote %s", *out)
}

// run compiles the benchmarks once and runs every one of them count times,
// in count passes over all of them rather than count runs of each in a
// row: load from other processes that comes and goes then spreads over all
// benchmarks instead of skewing the ratios between them.
func run(count int, bench, benchtime string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "benchreport")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "bench.test")
	build := exec.Command("go", "test", "-c", "-o", bin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("go test -c: %w", err)
	}
	var buf bytes.Buffer
	for pass := range count {
		log.Printf("benchreport: pass %d of %d", pass+1, count)
		cmd := exec.Command(bin, "-test.run", "^$", "-test.bench", bench, "-test.benchmem", "-test.benchtime", benchtime)
		cmd.Stdout = io.MultiWriter(os.Stdout, &buf)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("pass %d: %w", pass+1, err)
		}
	}
	return buf.Bytes(), nil
}

type machine struct {
	When                  time.Time
	Took                  time.Duration
	CPUs                  int
	CPU, Go               string
	LoadBefore, LoadAfter string
	Command               string
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// Results holds every measurement of every benchmark, by name (without
// the Benchmark prefix and the -GOMAXPROCS suffix) and unit.
type Results struct {
	names []string // in first-seen order
	m     map[string]map[string][]float64
}

// Median returns the median of one benchmark's values in unit, and whether
// there were any.
func (r Results) Median(name, unit string) (float64, bool) {
	v := slices.Clone(r.m[name][unit])
	if len(v) == 0 {
		return 0, false
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2], true
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2, true
}

// Runs returns how many results a benchmark has in unit.
func (r Results) Runs(name, unit string) int { return len(r.m[name][unit]) }

func parse(rd io.Reader) (Results, error) {
	res := Results{m: map[string]map[string][]float64{}}
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, vals, ok := parseLine(sc.Text())
		if !ok {
			continue
		}
		if res.m[name] == nil {
			res.m[name] = map[string][]float64{}
			res.names = append(res.names, name)
		}
		for unit, v := range vals {
			res.m[name][unit] = append(res.m[name][unit], v)
		}
	}
	return res, sc.Err()
}

// parseLine reads one result line of `go test -bench`:
//
//	BenchmarkX/y-8   1000   1234 ns/op   56 B/op   7 allocs/op   3.0 writes/run
//
// It returns the name without "Benchmark" and the -GOMAXPROCS suffix, and
// each value by unit. Anything else is not a result line.
func parseLine(line string) (string, map[string]float64, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || len(f)%2 != 0 || !strings.HasPrefix(f[0], "Benchmark") || len(f[0]) == len("Benchmark") {
		return "", nil, false
	}
	if _, err := strconv.ParseUint(f[1], 10, 64); err != nil {
		return "", nil, false
	}
	name := strings.TrimPrefix(f[0], "Benchmark")
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			name = name[:i]
		}
	}
	vals := make(map[string]float64, (len(f)-2)/2)
	for i := 2; i < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return "", nil, false
		}
		vals[f[i+1]] = v
	}
	return name, vals, true
}

// target is one goal the results are judged by: ratio = num/den (ns/op
// medians), met when it is at least (or at most) limit.
type target struct {
	what     string
	num, den string
	atLeast  bool
	limit    float64
	unit     string // how the value is shown: "x" for a ratio, "µs" for den == ""
}

var targets = []target{
	{what: "sessionkit Redis (no cache) faster than scs Redis, load-only", num: "Request/load/scs-redis", den: "Request/load/sessionkit-redis", atLeast: true, limit: 1.5, unit: "x"},
	{what: "sessionkit Redis (no cache) load-only vs one raw rueidis GET", num: "Request/load/sessionkit-redis", den: "Floor/redis-get", limit: 1.3, unit: "x"},
	{what: "sessionkit Redis near cache faster than scs Redis, load-only", num: "Request/load/scs-redis", den: "Request/load/sessionkit-redis-nearcache", atLeast: true, limit: 10, unit: "x"},
	{what: "sessionkit memory store, load-only", num: "Request/load/sessionkit-memory", limit: 2, unit: "µs"},
}

// extra ratios shown without a target.
var extra = []target{
	{what: "sessionkit Redis (no cache) load-only vs handler + raw GET", num: "Request/load/sessionkit-redis", den: "Floor/handler-redis-get", unit: "x"},
	{what: "sessionkit Redis (no cache) faster than scs Redis, load+modify+save", num: "Request/modify/scs-redis", den: "Request/modify/sessionkit-redis", unit: "x"},
	{what: "sessionkit Redis (no cache) faster than gorilla Redis (boj/redistore), load-only", num: "Request/load/gorilla-redis", den: "Request/load/sessionkit-redis", unit: "x"},
	{what: "sessionkit memory faster than scs memory, load-only", num: "Request/load/scs-memory", den: "Request/load/sessionkit-memory", unit: "x"},
}

func (t target) value(r Results) (float64, bool) {
	n, ok := r.Median(t.num, "ns/op")
	if !ok {
		return 0, false
	}
	if t.den == "" {
		return n / 1000, true
	}
	d, ok := r.Median(t.den, "ns/op")
	if !ok || d == 0 {
		return 0, false
	}
	return n / d, true
}

func report(w *strings.Builder, r Results, env machine) {
	fmt.Fprintf(w, "# Benchmark results\n\nReproduce (from the repository root's `bench` directory; Redis at SESSIONKIT_REDIS_URL):\n\n")
	fmt.Fprintf(w, "```\n%s\n```\n\n", env.Command)
	fmt.Fprintf(w, "- Date: %s (run took %s)\n", env.When.UTC().Format("2006-01-02 15:04 MST"), env.Took.Round(time.Second))
	fmt.Fprintf(w, "- Machine: %d CPUs (`nproc`), %s, %s\n", env.CPUs, env.CPU, env.Go)
	fmt.Fprintf(w, "- Load average (1, 5, 15 min) before: %s, after: %s\n", env.LoadBefore, env.LoadAfter)
	fmt.Fprintf(w, "- Values are medians over the runs shown, taken in passes over all benchmarks; one request at a time (latency, not throughput).\n\n")

	fmt.Fprintf(w, "## Targets\n\n| Target | Goal | Measured | Met |\n|---|---|---|---|\n")
	for _, t := range targets {
		goal := "≤ "
		if t.atLeast {
			goal = "≥ "
		}
		if t.unit == "µs" {
			goal = "< "
		}
		v, ok := t.value(r)
		met, shown := "not measured", "–"
		if ok {
			shown = fmt.Sprintf("%.2f %s", v, t.unit)
			met = "no"
			if (t.atLeast && v >= t.limit) || (!t.atLeast && t.unit == "x" && v <= t.limit) || (t.unit == "µs" && v < t.limit) {
				met = "yes"
			}
		}
		fmt.Fprintf(w, "| %s | %s%g %s | %s | %s |\n", t.what, goal, t.limit, t.unit, shown, met)
	}
	fmt.Fprintf(w, "\n## Other ratios\n\n| Ratio | Measured |\n|---|---|\n")
	for _, t := range extra {
		if v, ok := t.value(r); ok {
			fmt.Fprintf(w, "| %s | %.2f x |\n", t.what, v)
		}
	}

	fmt.Fprintf(w, "\n## All benchmarks\n\n| Benchmark | Runs | ns/op | B/op | allocs/op | Other |\n|---|---|---|---|---|---|\n")
	for _, name := range r.names {
		cell := func(unit string) string {
			if v, ok := r.Median(name, unit); ok {
				return strconv.FormatFloat(v, 'f', -1, 64)
			}
			return "–"
		}
		var other []string
		for unit := range r.m[name] {
			if unit != "ns/op" && unit != "B/op" && unit != "allocs/op" {
				other = append(other, unit)
			}
		}
		slices.Sort(other)
		for i, unit := range other {
			other[i] = cell(unit) + " " + unit
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s |\n", name, r.Runs(name, "ns/op"), cell("ns/op"), cell("B/op"), cell("allocs/op"), strings.Join(other, ", "))
	}
	if v, ok := r.Median("Touches/sessionkit-redis", "writes/run"); ok {
		n, _ := r.Median("Touches/sessionkit-redis", "requests/run")
		g, _ := r.Median("Touches/sessionkit-redis", "min-gap-s")
		fmt.Fprintf(w, "\n## Touches\n\n%.0f load-only requests over a simulated hour (fake clock, Config.Now), spread over 10 sessions, "+
			"touch interval 1 minute: %.0f store writes (Update + Touch) on Redis; the shortest time between two writes of one session was %.0f s. "+
			"At most one write per session per interval allows %d.\n", n, v, g, 10*61)
	}
}
