package sessiond_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/sessiond"
	"github.com/sessionkit/sessionkit/store/memstore"
)

// A server over an in-memory store, with one API key and one extension
// route that answers errors like the built-in ones.
func ExampleNew() {
	store := memstore.New(memstore.Options{})
	defer store.Close()
	m, _ := sessionkit.New(store, sessionkit.Config{Events: sessionkit.MultiSink{}})
	keys := &sessiond.Keys{}
	keys.AddKeys("sk_example")
	hello := sessiond.ExtensionFunc(func(mux *http.ServeMux, api sessiond.APIContext) {
		mux.Handle("POST /v1/hello", api.RequireAPIKey(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var req struct{ Name string }
			if err := sessiond.DecodeJSON(w, r, api.MaxBodyBytes, &req); err != nil {
				sessiond.WriteErr(w, err, http.StatusNotFound)
				return
			}
			sessiond.WriteJSON(w, http.StatusOK, map[string]string{"hello": req.Name})
		})))
	})
	srv, err := sessiond.New(sessiond.Config{Manager: m, Keys: keys, Extensions: []sessiond.Extension{hello}})
	if err != nil {
		panic(err)
	}
	for _, body := range []string{`{"subject":"alice"}`, `{"subject":"alice","admin":true}`} {
		req := httptest.NewRequest("POST", "/v1/sessions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer sk_example")
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		fmt.Println(rec.Code)
	}
	req := httptest.NewRequest("POST", "/v1/hello", strings.NewReader(`{"Name":"ext"}`))
	req.Header.Set("Authorization", "Bearer sk_example")
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	fmt.Print(rec.Code, " ", rec.Body.String())
	// Output:
	// 201
	// 400
	// 200 {"hello":"ext"}
}

func ExampleWriteError() {
	rec := httptest.NewRecorder()
	sessiond.WriteError(rec, http.StatusConflict, sessiond.CodeVersionConflict, "the session changed")
	fmt.Print(rec.Code, " ", rec.Header().Get("Cache-Control"), " ", rec.Body.String())
	// Output: 409 no-store {"error":{"code":"version_conflict","message":"the session changed"}}
}
