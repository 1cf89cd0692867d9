// Command sessiond-load measures the throughput of session verification.
//
// It drives two HTTP servers on loopback with the same keep-alive load:
// sessiond's handler verifying a set of pre-created sessions
// (POST /v1/sessions/verify), and a bare net/http handler that answers a
// constant JSON body. The ratio of the two shows what the session service
// costs on top of the HTTP stack itself.
//
// By default both servers run in this process, sessiond on the embedded
// bolt store in a temporary directory. With -url, the sessiond at that
// address is measured instead (the API key from SESSIOND_API_KEY).
//
//	go run ./cmd/sessiond-load -c 32 -d 10s
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/sessiond"
	"github.com/sessionkit/sessionkit/store/boltstore"
)

func main() {
	var (
		conc     = flag.Int("c", 32, "concurrent keep-alive clients")
		dur      = flag.Duration("d", 10*time.Second, "measured duration per server")
		warm     = flag.Duration("warmup", time.Second, "unmeasured load before each run")
		sessions = flag.Int("sessions", 1000, "pre-created sessions to verify")
		url      = flag.String("url", "", "measure the sessiond at this base URL instead of an in-process one (key from SESSIOND_API_KEY)")
	)
	flag.Parse()
	if err := run(*conc, *dur, *warm, *sessions, *url); err != nil {
		fmt.Fprintln(os.Stderr, "sessiond-load:", err)
		os.Exit(1)
	}
}

func run(conc int, dur, warm time.Duration, n int, url string) error {
	ctx := context.Background()
	key := os.Getenv(sessiond.EnvAPIKey)
	var create func() (string, error)
	if url == "" {
		dir, err := os.MkdirTemp("", "sessiond-load")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		store, err := boltstore.Open(filepath.Join(dir, "sessions.db"), boltstore.Options{})
		if err != nil {
			return err
		}
		defer store.Close()
		// Events are dropped: the measurement is of the service, not of
		// writing a log line per request.
		m, err := sessionkit.New(store, sessionkit.Config{Events: sessionkit.EventSinkFunc(func(context.Context, sessionkit.Event) {})})
		if err != nil {
			return err
		}
		key = sessiond.NewKey()
		keys := &sessiond.Keys{}
		keys.AddKeys(key)
		srv, err := sessiond.New(sessiond.Config{Manager: m, Keys: keys, SweepInterval: -1})
		if err != nil {
			return err
		}
		base, stop, err := serve(srv.Handler())
		if err != nil {
			return err
		}
		defer stop()
		url = base
		create = func() (string, error) {
			tok, _, err := m.Create(ctx, sessionkit.CreateParams{Subject: "load", Client: sessionkit.Client{IP: "127.0.0.1", UserAgent: "sessiond-load"}})
			return tok, err
		}
	} else {
		if key == "" {
			return errors.New("-url needs the API key in " + sessiond.EnvAPIKey)
		}
		create = func() (string, error) { return createRemote(url, key) }
	}
	tokens := make([]string, n)
	for i := range tokens {
		tok, err := create()
		if err != nil {
			return fmt.Errorf("creating sessions: %w", err)
		}
		tokens[i] = tok
	}

	bodies := make([][]byte, n)
	for i, tok := range tokens {
		bodies[i], _ = json.Marshal(map[string]any{"token": tok, "client": map[string]string{"ip": "127.0.0.1", "user_agent": "sessiond-load"}})
	}
	constant := []byte(`{"session":{"handle":"AAAAAAAAAAAAAAAAAAAAAA","subject":"load","auth_level":0,"created_at":"2025-01-01T00:00:00Z","authenticated_at":"2025-01-01T00:00:00Z","last_seen_at":"2025-01-01T00:00:00Z","idle_deadline":"2025-01-01T00:15:00Z","absolute_deadline":"2025-01-01T08:00:00Z","client":{"ip":"127.0.0.1","user_agent":"sessiond-load"},"data":{},"version":1}}` + "\n")
	bareURL, stopBare, err := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(constant)
	}))
	if err != nil {
		return err
	}
	defer stopBare()

	fmt.Printf("%d clients, %v per server (after %v warm-up), %d sessions, GOMAXPROCS shared by servers and clients\n", conc, dur, warm, n)
	sd := load(url+"/v1/sessions/verify", key, bodies, conc, warm, dur)
	bare := load(bareURL+"/verify", key, bodies, conc, warm, dur)
	fmt.Printf("%-9s %10s %12s %10s %10s %8s\n", "server", "requests", "req/s", "p50", "p99", "errors")
	for _, r := range []struct {
		name string
		res  result
	}{{"sessiond", sd}, {"bare", bare}} {
		fmt.Printf("%-9s %10d %12.0f %10v %10v %8d\n", r.name, r.res.n, r.res.rate, r.res.p50, r.res.p99, r.res.errors)
	}
	ratio := sd.rate / bare.rate
	fmt.Printf("ratio sessiond/bare: %.2f (target >= 0.50)\n", ratio)
	if sd.errors > 0 {
		return fmt.Errorf("%d failed verifications", sd.errors)
	}
	return nil
}

// serve runs h on a loopback port.
func serve(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}

func createRemote(url, key string) (string, error) {
	req, _ := http.NewRequest("POST", url+"/v1/sessions", bytes.NewReader([]byte(`{"subject":"load","client":{"ip":"127.0.0.1","user_agent":"sessiond-load"}}`)))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	var out struct{ Token string }
	if res.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("POST /v1/sessions: %s", res.Status)
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		return "", err
	}
	return out.Token, nil
}

type result struct {
	n, errors int
	rate      float64
	p50, p99  time.Duration
}

// load sends requests from conc keep-alive clients, first for warm and
// unmeasured, then for dur, and reports the measured part.
func load(url, key string, bodies [][]byte, conc int, warm, dur time.Duration) result {
	tr := &http.Transport{MaxIdleConns: conc, MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	start := time.Now()
	measureFrom := start.Add(warm)
	end := measureFrom.Add(dur)
	var (
		mu     sync.Mutex
		lat    []time.Duration
		errs   int
		wg     sync.WaitGroup
		bufLen = 1 << 16
	)
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, bufLen)
			bad := 0
			for i := w; ; i += conc {
				t0 := time.Now()
				if !t0.Before(end) {
					break
				}
				req, _ := http.NewRequest("POST", url, bytes.NewReader(bodies[i%len(bodies)]))
				req.Header.Set("Authorization", "Bearer "+key)
				req.Header.Set("Content-Type", "application/json")
				res, err := client.Do(req)
				ok := err == nil && res.StatusCode == http.StatusOK
				if err == nil {
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
				if t0.Before(measureFrom) {
					continue
				}
				if !ok {
					bad++
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(lat)
	r := result{n: len(lat), errors: errs, rate: float64(len(lat)) / dur.Seconds()}
	if len(lat) > 0 {
		r.p50 = lat[len(lat)/2].Round(time.Microsecond)
		r.p99 = lat[len(lat)*99/100].Round(time.Microsecond)
	}
	return r
}
