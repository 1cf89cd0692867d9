package eventlog_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/eventlog"
)

// receiver verifies every webhook and answers with the next status.
type receiver struct {
	t        *testing.T
	secret   string
	statuses []int
	mu       sync.Mutex
	calls    int
	got      []eventlog.Payload
	ids      []string
	bad      atomic.Int32
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := eventlog.Verify(rc.secret, r.Header, body, time.Now(), 0); err != nil {
		rc.bad.Add(1)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	status := http.StatusNoContent
	if rc.calls < len(rc.statuses) {
		status = rc.statuses[rc.calls]
	}
	rc.calls++
	if status < 300 {
		var p eventlog.Payload
		json.Unmarshal(body, &p)
		rc.got = append(rc.got, p)
		rc.ids = append(rc.ids, r.Header.Get(eventlog.HeaderID))
	}
	w.WriteHeader(status)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not reached")
}

func TestWebhookRetriesAndSignature(t *testing.T) {
	secret := eventlog.NewSecret()
	rc := &receiver{t: t, secret: secret, statuses: []int{500, 503}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	wh, err := eventlog.NewWebhooks(eventlog.WebhookOptions{
		URLs: []string{srv.URL}, Secret: secret, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond,
		Types: []sessionkit.EventType{sessionkit.EventAnomaly},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	wh.Emit(context.Background(), sessionkit.Event{Type: sessionkit.EventCreated})
	wh.Emit(context.Background(), sessionkit.Event{Type: sessionkit.EventAnomaly, Subject: "alice", Reason: "new_device"})
	waitFor(t, func() bool { return wh.Stats().Delivered == 1 })
	st := wh.Stats()
	if st.Retries != 2 || st.Failed != 0 || rc.bad.Load() != 0 {
		t.Errorf("stats %+v, bad signatures %d", st, rc.bad.Load())
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.got) != 1 || rc.got[0].Type != "session.anomaly" || rc.got[0].Data.Reason != "new_device" || rc.ids[0] != "msg_"+rc.got[0].Data.ID {
		t.Errorf("payload %+v ids %v", rc.got, rc.ids)
	}
}

func TestWebhookGivesUp(t *testing.T) {
	secret := eventlog.NewSecret()
	rc := &receiver{t: t, secret: secret, statuses: []int{500, 500, 500, 500}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	wh, _ := eventlog.NewWebhooks(eventlog.WebhookOptions{URLs: []string{srv.URL}, Secret: secret, MaxAttempts: 3, BaseDelay: time.Millisecond})
	defer wh.Close()
	wh.Emit(context.Background(), sessionkit.Event{Type: sessionkit.EventRevoked})
	waitFor(t, func() bool { return wh.Stats().Failed == 1 })
	if st := wh.Stats(); st.Delivered != 0 || st.Retries != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestWebhookDropsWhenFull(t *testing.T) {
	secret := eventlog.NewSecret()
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	wh, _ := eventlog.NewWebhooks(eventlog.WebhookOptions{URLs: []string{srv.URL}, Secret: secret, Workers: 1, QueueSize: 2})
	start := time.Now()
	for range 50 {
		wh.Emit(context.Background(), sessionkit.Event{Type: sessionkit.EventRejected})
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Emit blocked %v", d)
	}
	if st := wh.Stats(); st.Dropped < 47 {
		t.Errorf("dropped %d, want >= 47", st.Dropped)
	}
	wh.Close()
}

func TestVerify(t *testing.T) {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	key, err := eventlog.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1700000000, 0)
	body := []byte(`{"type":"session.created"}`)
	good := http.Header{}
	good.Set(eventlog.HeaderID, "msg_1")
	good.Set(eventlog.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	good.Set(eventlog.HeaderSignature, "v1,bogus "+eventlog.Sign(key, "msg_1", now.Unix(), body))
	tests := []struct {
		name   string
		mutate func(h http.Header) []byte
		want   error
	}{
		{"ok", func(h http.Header) []byte { return body }, nil},
		{"body changed", func(h http.Header) []byte { return append([]byte(nil), `{"type":"x"}`...) }, eventlog.ErrSignature},
		{"id changed", func(h http.Header) []byte { h.Set(eventlog.HeaderID, "msg_2"); return body }, eventlog.ErrSignature},
		{"old", func(h http.Header) []byte {
			h.Set(eventlog.HeaderTimestamp, strconv.FormatInt(now.Add(-time.Hour).Unix(), 10))
			return body
		}, eventlog.ErrTimestamp},
		{"no signature", func(h http.Header) []byte { h.Del(eventlog.HeaderSignature); return body }, eventlog.ErrMissingHeaders},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := good.Clone()
			b := tt.mutate(h)
			if err := eventlog.Verify(secret, h, b, now, 0); !errors.Is(err, tt.want) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
	for _, bad := range []string{"", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!!", "whsec_c2hvcnQ="} {
		if _, err := eventlog.ParseSecret(bad); !errors.Is(err, eventlog.ErrSecret) {
			t.Errorf("ParseSecret(%q) = %v", bad, err)
		}
	}
}

func FuzzVerify(f *testing.F) {
	f.Add("msg_1", "1700000000", "v1,abc", []byte("{}"))
	f.Add("", "x", "v1,", []byte(nil))
	secret := eventlog.NewSecret()
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set(eventlog.HeaderID, id)
		h.Set(eventlog.HeaderTimestamp, ts)
		h.Set(eventlog.HeaderSignature, sig)
		if eventlog.Verify(secret, h, body, time.Unix(1700000000, 0), 0) == nil {
			t.Fatal("forged signature accepted")
		}
	})
}

func FuzzParseSecret(f *testing.F) {
	f.Add("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	f.Fuzz(func(t *testing.T, s string) {
		if k, err := eventlog.ParseSecret(s); err == nil && (len(k) < 24 || len(k) > 64) {
			t.Fatalf("accepted key of %d bytes", len(k))
		}
	})
}
