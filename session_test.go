package sessionkit_test

import (
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit"
)

// TestSessionValues stores values of each type through Put and reads them
// back in a later request with the typed getters.
func TestSessionValues(t *testing.T) {
	e := newEnv(t, sessionkit.Config{})
	when := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	mux := http.NewServeMux()
	mux.HandleFunc("/put", func(w http.ResponseWriter, r *http.Request) {
		s := sessionkit.FromContext(r.Context())
		for k, v := range map[string]any{"s": "text", "i": 42, "i64": int64(1) << 53, "f": 2.5, "b": true, "t": when, "gone": 1, "flash": "hi"} {
			if err := s.Put(k, v); err != nil {
				t.Error(err)
			}
		}
		if err := s.Put("bad", func() {}); err == nil {
			t.Error("Put of a function succeeded")
		}
	})
	var got []any
	var keys []string
	var flash, again string
	mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		s := sessionkit.FromContext(r.Context())
		s.Remove("gone")
		got = []any{s.GetString("s"), s.GetInt("i"), s.GetInt64("i64"), s.GetFloat64("f"), s.GetBool("b"), s.GetTime("t"),
			s.GetInt("s"), s.GetString("missing")}
		flash, again = s.PopString("flash"), s.PopString("flash")
		keys = s.Keys()
	})
	h := e.mgr.LoadAndSave(mux)
	tok := do(h, "/put", nil).cookie.Value
	do(h, "/get", withCookie(tok))
	want := []any{"text", 42, int64(1) << 53, 2.5, true, when, 0, ""}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("getters = %v, want %v", got, want)
	}
	if flash != "hi" || again != "" {
		t.Errorf("flash read %q then %q, want once", flash, again)
	}
	if !reflect.DeepEqual(keys, []string{"b", "f", "i", "i64", "s", "t"}) {
		t.Errorf("keys = %v", keys)
	}
	// Remove and Pop were saved too.
	rec, err := e.mgr.Validate(ctx, tok, sessionkit.Client{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rec.Data["gone"]; ok {
		t.Error("removed key still stored")
	}
	if _, ok := rec.Data["flash"]; ok {
		t.Error("popped flash still stored")
	}
}
