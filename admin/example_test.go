package admin_test

import (
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/admin"
	"github.com/sessionkit/sessionkit/eventlog"
	"github.com/sessionkit/sessionkit/sessiond"
	"github.com/sessionkit/sessionkit/store/memstore"
)

// The console mounted on sessiond: users' events go to a history and a
// live stream; admin sessions live in a store of their own.
func ExampleNew() {
	history := eventlog.NewMemory(eventlog.Options{})
	recorder := eventlog.NewRecorder(history, eventlog.RecorderOptions{})
	defer recorder.Close()
	stream := eventlog.NewStream(eventlog.StreamOptions{})
	defer stream.Close()
	users, err := sessionkit.New(memstore.New(memstore.Options{}), sessionkit.Config{
		Events: sessionkit.MultiSink{recorder, stream},
	})
	if err != nil {
		log.Fatal(err)
	}
	keys := &sessiond.Keys{}
	keys.AddKeys("sk_example")

	console, err := admin.New(admin.Options{
		Store:       memstore.New(memstore.Options{}), // admin sessions only
		CheckAPIKey: keys.Check,
		History:     history,
		Stream:      stream,
		Logger:      discard(),
	})
	if err != nil {
		log.Fatal(err)
	}
	srv, err := sessiond.New(sessiond.Config{Manager: users, Keys: keys, Logger: discard(),
		Extensions: []sessiond.Extension{console}})
	if err != nil {
		log.Fatal(err)
	}

	// An operator signs in with the API key.
	req := httptest.NewRequest("POST", "https://sessiond.example/admin/login",
		strings.NewReader(url.Values{"key": {"sk_example"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	w := httptest.NewRecorder()
	srv.Handler().ServeHTTP(w, req)
	c := w.Result().Cookies()[0]
	fmt.Println(w.Code, w.Header().Get("Location"))
	fmt.Println(c.Name, c.Secure, c.HttpOnly, c.SameSite == http.SameSiteStrictMode)
	// Output:
	// 303 /admin/
	// __Host-sessiond-admin true true true
}
