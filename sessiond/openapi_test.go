package sessiond

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/eventlog"
	"github.com/sessionkit/sessionkit/store/memstore"
)

// TestOpenAPIServedDocumentCoversExtensions checks the served document of a
// server with every extension sessiond ships: each documented operation is
// routed (no 404 or 405 from the mux), and extension paths are present.
func TestOpenAPIServedDocumentCoversExtensions(t *testing.T) {
	store := memstore.New(memstore.Options{})
	mon, err := NewMonitoring(MonitoringOptions{Logger: discardLogger(), History: eventlog.NewMemory(eventlog.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mon.Close() })
	tokens, err := NewTokens(t.Context(), TokenSettings{
		Issuer: "https://sessiond.test", Lifetime: time.Minute, Grace: time.Second,
		Alg: "EdDSA", Rotation: time.Hour, PrePublish: time.Minute,
	}, store, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	m, err := sessionkit.New(mon.InstrumentStore(store), sessionkit.Config{Events: sessionkit.MultiSink{mon.Sink(), tokens.Revocations}})
	if err != nil {
		t.Fatal(err)
	}
	mon.Start(m)
	keys := &Keys{}
	keys.AddKeys(testKey)
	srv, err := New(Config{Manager: m, Keys: keys, Logger: discardLogger(), Bearer: tokens, Extensions: []Extension{mon, tokens}})
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/openapi.json", nil))
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/v1/tokens", "/v1/tokens/introspect", "/.well-known/jwks.json", "/v1/events", "/metrics"} {
		if doc.Paths[p] == nil {
			t.Errorf("served document lacks %s", p)
		}
	}
	for path, ops := range doc.Paths {
		for method := range ops {
			if method == "parameters" || method == "summary" || method == "description" {
				continue
			}
			url := strings.NewReplacer("{handle}", "h", "{subject}", "alice").Replace(path)
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			req := httptest.NewRequestWithContext(ctx, strings.ToUpper(method), url, strings.NewReader("{}"))
			req.Header.Set("Authorization", "Bearer "+testKey)
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			cancel()
			var body ErrorBody
			json.Unmarshal(rec.Body.Bytes(), &body)
			if body.Error.Code == CodeNotFound || body.Error.Code == CodeMethodNotAllowed {
				t.Errorf("%s %s is documented but not routed: %d %s", method, path, rec.Code, body.Error.Code)
			}
		}
	}
}
