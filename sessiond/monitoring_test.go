package sessiond

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/anomaly"
	"github.com/sessionkit/sessionkit/eventlog"
	"github.com/sessionkit/sessionkit/internal/testenv"
	"github.com/sessionkit/sessionkit/store/memstore"
)

type monFixture struct {
	mon *Monitoring
	m   *sessionkit.Manager
	url string
}

func newMonFixture(t *testing.T, o MonitoringOptions) *monFixture {
	t.Helper()
	o.Logger = discardLogger()
	mon, err := NewMonitoring(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mon.Close() })
	store := memstore.New(memstore.Options{})
	m, err := sessionkit.New(mon.InstrumentStore(store), sessionkit.Config{Events: mon.Sink()})
	if err != nil {
		t.Fatal(err)
	}
	mon.Start(m)
	keys := &Keys{}
	keys.AddKeys(testKey)
	srv, err := New(Config{Manager: m, Keys: keys, Logger: discardLogger(), Extensions: []Extension{mon}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &monFixture{mon: mon, m: m, url: hs.URL}
}

func (f *monFixture) do(t *testing.T, method, path string, body any, key bool) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, f.url+path, rd)
	if key {
		req.Header.Set("Authorization", "Bearer "+testKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func TestMonitoringMetricsAndHistory(t *testing.T) {
	f := newMonFixture(t, MonitoringOptions{History: eventlog.NewMemory(eventlog.Options{})})
	client := sessionkit.Client{IP: "192.0.2.10", UserAgent: "test"}
	status, _, body := f.do(t, "POST", "/v1/sessions", map[string]any{"subject": "alice", "client": client}, true)
	if status != http.StatusCreated && status != http.StatusOK {
		t.Fatalf("create: %d %s", status, body)
	}
	var created struct {
		Token   string  `json:"token"`
		Session Session `json:"session"`
	}
	json.Unmarshal(body, &created)
	if status, _, body := f.do(t, "POST", "/v1/sessions/verify", map[string]any{"token": created.Token, "client": client}, true); status != http.StatusOK {
		t.Fatalf("verify: %d %s", status, body)
	}
	f.do(t, "POST", "/v1/sessions/verify", map[string]any{"token": "nope", "client": client}, true)

	// /metrics needs the API key by default.
	if status, _, _ := f.do(t, "GET", "/metrics", nil, false); status != http.StatusUnauthorized {
		t.Errorf("metrics without key: %d", status)
	}
	status, _, expo := f.do(t, "GET", "/metrics", nil, true)
	if status != http.StatusOK {
		t.Fatalf("metrics: %d", status)
	}
	for _, want := range []string{
		"sessionkit_sessions_created_total 1",
		`sessionkit_rejections_total{reason="malformed"} 1`,
		"sessionkit_verify_duration_seconds_count 2",
		`sessionkit_store_operation_duration_seconds_count{op="create"} 1`,
		"sessionkit_sessions_active 1",
		"sessionkit_event_history_dropped_total 0",
	} {
		if !bytes.Contains(expo, []byte(want+"\n")) {
			t.Errorf("exposition lacks %q", want)
		}
	}
	if promtool := testenv.Program(t, "promtool"); promtool != "" {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(expo)
		if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) != 0 {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	}

	// History per handle, after the recorder wrote it.
	f.mon.Recorder.Flush(context.Background())
	status, _, body = f.do(t, "GET", "/v1/events?handle="+created.Session.Handle, nil, true)
	var er EventsResponse
	if err := json.Unmarshal(body, &er); status != http.StatusOK || err != nil {
		t.Fatalf("events: %d %s", status, body)
	}
	if len(er.Events) != 2 || er.Events[0].Type != sessionkit.EventCreated || er.Events[1].Type != sessionkit.EventAuthenticated {
		t.Errorf("events for handle: %+v", er.Events)
	}
	if bytes.Contains(body, []byte(created.Token)) {
		t.Error("history holds the token")
	}
	for _, bad := range []string{"?limit=0", "?limit=x", "?since=yesterday"} {
		if status, _, _ := f.do(t, "GET", "/v1/events"+bad, nil, true); status != http.StatusBadRequest {
			t.Errorf("events%s: %d", bad, status)
		}
	}
	if status, _, _ := f.do(t, "GET", "/v1/events", nil, false); status != http.StatusUnauthorized {
		t.Errorf("events without key: %d", status)
	}
	status, _, body = f.do(t, "GET", "/v1/metrics/series", nil, true)
	if status != http.StatusOK || !bytes.Contains(body, []byte(`"created":1`)) {
		t.Errorf("series: %d %s", status, body)
	}
}

func TestMonitoringGuessing429(t *testing.T) {
	f := newMonFixture(t, MonitoringOptions{Anomaly: anomaly.Config{GuessingLimit: anomaly.LimiterOptions{Threshold: 3, Block: time.Minute}}})
	attacker := sessionkit.Client{IP: "192.0.2.66", UserAgent: "bot"}
	_, _, body := f.do(t, "POST", "/v1/sessions", map[string]any{"subject": "alice", "client": attacker}, true)
	var created struct {
		Token string `json:"token"`
	}
	json.Unmarshal(body, &created)
	codes := []int{}
	for range 4 {
		status, _, _ := f.do(t, "POST", "/v1/sessions/verify", map[string]any{"token": strings.Repeat("A", 43), "client": attacker}, true)
		codes = append(codes, status)
	}
	if want := []int{401, 401, 429, 429}; !equalInts(codes, want) {
		t.Errorf("statuses %v, want %v", codes, want)
	}
	// The valid session from the same IP keeps working.
	if status, _, body := f.do(t, "POST", "/v1/sessions/verify", map[string]any{"token": created.Token, "client": attacker}, true); status != http.StatusOK {
		t.Errorf("valid session from blocked IP: %d %s", status, body)
	}
	// Forward auth: the attacker's IP is the connection's (127.0.0.1).
	for i := range 4 {
		req, _ := http.NewRequest("GET", f.url+"/v1/auth", nil)
		req.AddCookie(&http.Cookie{Name: sessionkit.DefaultCookieName, Value: "guess"})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if i == 3 && resp.StatusCode != http.StatusTooManyRequests {
			t.Errorf("forward auth guess %d: %d", i, resp.StatusCode)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMonitoringStreamAndWebhook(t *testing.T) {
	secret := eventlog.NewSecret()
	var mu sync.Mutex
	var got []eventlog.Payload
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if err := eventlog.Verify(secret, r.Header, b, time.Now(), 0); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var p eventlog.Payload
		json.Unmarshal(b, &p)
		mu.Lock()
		got = append(got, p)
		mu.Unlock()
	}))
	defer recv.Close()
	f := newMonFixture(t, MonitoringOptions{Webhooks: eventlog.WebhookOptions{URLs: []string{recv.URL}, Secret: secret}})

	req, _ := http.NewRequest("GET", f.url+"/v1/events/stream?subject=bob", nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	br.ReadString('\n') // ": stream open"
	for f.mon.Stream.Subscribers() == 0 {
		time.Sleep(time.Millisecond)
	}
	f.do(t, "POST", "/v1/sessions", map[string]any{"subject": "bob"}, true)
	var data string
	for data == "" {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if s, ok := strings.CutPrefix(line, "data: "); ok {
			data = s
		}
	}
	var e eventlog.Entry
	if err := json.Unmarshal([]byte(data), &e); err != nil || e.Subject != "bob" || e.Type != sessionkit.EventCreated || e.Actor == "" {
		t.Errorf("streamed %q: %v", data, err)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 2 {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// Workers deliver in parallel: order is not guaranteed.
	types := map[string]string{}
	for _, p := range got {
		types[p.Type] = p.Data.Subject
	}
	if types["session.created"] != "bob" || types["session.authenticated"] != "bob" {
		t.Errorf("webhooks received %+v", got)
	}
}

func TestMonitoringSettings(t *testing.T) {
	var st Settings
	fs := newTestFlagSet(&st)
	if err := fs.Parse([]string{"-anomaly-travel", "revoke", "-anomaly-new-device", "step-up", "-metrics", "public"}); err != nil {
		t.Fatal(err)
	}
	c, err := st.Monitoring.anomalyConfig()
	if err != nil || c.Travel != anomaly.Revoke || c.NewDevice != anomaly.StepUp || c.Binding != anomaly.Alert {
		t.Errorf("anomaly config %+v, %v", c, err)
	}
	st.Monitoring.AnomalyGuessing = "revoke"
	if _, err := st.Monitoring.anomalyConfig(); err == nil {
		t.Error("guessing revoke accepted")
	}
	if _, err := NewMonitoring(MonitoringOptions{MetricsAccess: "sometimes"}); err == nil {
		t.Error("bad metrics access accepted")
	}
	st.Monitoring.Events = ""
	st.DataDir = t.TempDir()
	h, err := openHistory(context.Background(), &st)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := h.(*eventlog.Bolt); !ok {
		t.Errorf("default history for the bolt store: %T", h)
	}
	h.Close()
	st.Monitoring.Events = "bolt:" + BoltPath("", st.DataDir)
	if _, err := openHistory(context.Background(), &st); err == nil {
		t.Error("history in the session store's file accepted")
	}
}

func newTestFlagSet(st *Settings) *flag.FlagSet {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	st.register(fs)
	return fs
}

func FuzzParseEventQuery(f *testing.F) {
	f.Add("subject=alice&limit=10&since=2030-01-01T00:00:00Z")
	f.Add("limit=-1&handle=%00")
	f.Fuzz(func(t *testing.T, raw string) {
		r := httptest.NewRequest("GET", "/v1/events", nil)
		r.URL.RawQuery = raw
		q, err := parseEventQuery(r)
		if err == nil && (q.Limit < 0 || q.Limit > eventlog.MaxQueryLimit || len(q.Subject) > 512) {
			t.Fatalf("accepted %+v", q)
		}
	})
}
