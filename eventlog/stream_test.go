package eventlog_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/eventlog"
)

func TestStreamSSE(t *testing.T) {
	s := eventlog.NewStream(eventlog.StreamOptions{Heartbeat: 20 * time.Millisecond})
	srv := httptest.NewServer(s)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "?subject=alice&type=anomaly,revoked")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	br := bufio.NewReader(resp.Body)
	if line, _ := br.ReadString('\n'); !strings.HasPrefix(line, ": stream open") {
		t.Fatalf("first line %q", line)
	}
	for s.Subscribers() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx := context.Background()
	s.Emit(ctx, sessionkit.Event{Type: sessionkit.EventAnomaly, Subject: "bob"})
	s.Emit(ctx, sessionkit.Event{Type: sessionkit.EventCreated, Subject: "alice"})
	s.Emit(ctx, sessionkit.Event{Type: sessionkit.EventAnomaly, Subject: "alice", Reason: "ip_change", Client: sessionkit.Client{UserAgent: "evil\nevent: x"}})

	var gotEvent, gotData string
	heartbeat := false
	deadline := time.Now().Add(5 * time.Second)
	for gotData == "" && time.Now().Before(deadline) {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == ": heartbeat":
			heartbeat = true
		case strings.HasPrefix(line, "event: "):
			gotEvent = line[7:]
		case strings.HasPrefix(line, "data: "):
			gotData = line[6:]
		}
	}
	if gotEvent != "anomaly" {
		t.Errorf("event %q", gotEvent)
	}
	var e eventlog.Entry
	if err := json.Unmarshal([]byte(gotData), &e); err != nil || e.Subject != "alice" || e.Reason != "ip_change" || e.ID == "" {
		t.Errorf("data %q: %v", gotData, err)
	}
	for !heartbeat && time.Now().Before(deadline) {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		heartbeat = line == ": heartbeat\n"
	}
	if !heartbeat {
		t.Error("no heartbeat")
	}
	// Closing the stream ends the response.
	s.Close()
	done := make(chan struct{})
	go func() {
		for {
			if _, err := br.ReadString('\n'); err != nil {
				close(done)
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("stream did not end after Close")
	}
}

func TestStreamSlowSubscriber(t *testing.T) {
	s := eventlog.NewStream(eventlog.StreamOptions{Buffer: 4, MaxSubscribers: 1})
	sub, err := s.Subscribe(eventlog.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Subscribe(eventlog.Filter{}); err != eventlog.ErrTooManySubscribers {
		t.Errorf("second subscriber: %v", err)
	}
	for range 10 {
		s.Emit(context.Background(), sessionkit.Event{Type: sessionkit.EventCreated})
	}
	if sub.Dropped() != 6 || s.Dropped() != 6 || len(sub.C()) != 4 {
		t.Errorf("dropped %d/%d, buffered %d; want 6, 6, 4", sub.Dropped(), s.Dropped(), len(sub.C()))
	}
	sub.Close()
	if s.Subscribers() != 0 {
		t.Error("subscriber not removed")
	}
	s.Close()
	if _, err := s.Subscribe(eventlog.Filter{}); err != eventlog.ErrClosed {
		t.Errorf("subscribe after close: %v", err)
	}
}
