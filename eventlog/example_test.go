package eventlog_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/eventlog"
	"github.com/sessionkit/sessionkit/store/memstore"
)

func Example() {
	dir, _ := os.MkdirTemp("", "events")
	defer os.RemoveAll(dir)
	history, err := eventlog.OpenBolt(filepath.Join(dir, "events.db"), eventlog.Options{})
	if err != nil {
		panic(err)
	}
	defer history.Close()
	rec := eventlog.NewRecorder(history, eventlog.RecorderOptions{})
	stream := eventlog.NewStream(eventlog.StreamOptions{})
	defer stream.Close()

	m, _ := sessionkit.New(memstore.New(memstore.Options{}), sessionkit.Config{
		Events: sessionkit.MultiSink{rec, stream},
	})
	mux := http.NewServeMux()
	mux.Handle("GET /admin/events/stream", stream) // behind the app's own auth

	ctx := context.Background()
	_, s, _ := m.Create(ctx, sessionkit.CreateParams{Subject: "alice"})
	m.Revoke(ctx, s.Handle, sessionkit.ReasonOperator)
	rec.Close() // writes what is queued

	// What happened to this session?
	events, _ := history.Query(ctx, eventlog.Query{Handle: s.Handle})
	for _, e := range events {
		fmt.Println(strings.TrimSpace(string(e.Type) + " " + e.Reason))
	}
	// Output:
	// created
	// authenticated
	// revoked operator
}

func ExampleVerify() {
	secret := eventlog.NewSecret()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hooks/sessions", func(w http.ResponseWriter, r *http.Request) {
		body, err := readLimited(r, 1<<20)
		if err != nil || eventlog.Verify(secret, r.Header, body, nowFunc(), 0) != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		// Parse body as an eventlog.Payload.
		w.WriteHeader(http.StatusNoContent)
	})
}

func readLimited(r *http.Request, n int64) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r.Body, n))
}

var nowFunc = time.Now
