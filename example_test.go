package sessionkit_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/store/memstore"
)

// The middleware loads the session before a handler runs and saves it when
// the response starts; handlers reach it through the request's context.
func ExampleManager_LoadAndSave() {
	mgr, _ := sessionkit.New(memstore.New(memstore.Options{}), sessionkit.Config{
		Events: sessionkit.EventSinkFunc(func(context.Context, sessionkit.Event) {}),
	})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		s := sessionkit.FromContext(r.Context())
		// After checking the password: a new token, bound to the user.
		if err := s.Login(r.Context(), "alice", 1); err != nil {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		s.Put("flash", "Welcome back")
	})
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		s := sessionkit.FromContext(r.Context())
		fmt.Fprintf(w, "%s: %s", s.Subject(), s.PopString("flash"))
	})
	h := mgr.LoadAndSave(mux)

	login := httptest.NewRecorder()
	h.ServeHTTP(login, httptest.NewRequest("POST", "/login", nil))
	cookie := login.Result().Cookies()[0]
	fmt.Println(cookie.Name, cookie.HttpOnly, cookie.Secure, cookie.SameSite == http.SameSiteLaxMode)

	page := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(cookie)
	h.ServeHTTP(page, req)
	fmt.Println(page.Body.String())
	// Output:
	// __Host-session true true true
	// alice: Welcome back
}

// Services that hold the token themselves (such as sessiond) use the
// Manager directly.
func ExampleManager_Validate() {
	mgr, _ := sessionkit.New(memstore.New(memstore.Options{}), sessionkit.Config{
		Events: sessionkit.EventSinkFunc(func(context.Context, sessionkit.Event) {}),
	})
	ctx := context.Background()
	token, _, _ := mgr.Create(ctx, sessionkit.CreateParams{Subject: "alice"})

	rec, err := mgr.Validate(ctx, token, sessionkit.Client{IP: "192.0.2.1"})
	fmt.Println(rec.Subject, err)

	mgr.Logout(ctx, token)
	_, err = mgr.Validate(ctx, token, sessionkit.Client{IP: "192.0.2.1"})
	fmt.Println(errors.Is(err, sessionkit.ErrRevoked))
	// Output:
	// alice <nil>
	// true
}
