package accesstoken_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/accesstoken"
	"github.com/sessionkit/sessionkit/accesstoken/verify"
	"github.com/sessionkit/sessionkit/store/memstore"
)

// Issue tokens in-process and protect a handler with the verifier's
// middleware.
func Example() {
	ctx := context.Background()
	store := memstore.New(memstore.Options{})
	defer store.Close()
	revs := accesstoken.NewRevocations(accesstoken.DefaultLifetime+verify.MaxLeeway, nil)
	m, _ := sessionkit.New(store, sessionkit.Config{Events: revs})
	ring, _ := accesstoken.NewKeyRing(ctx, accesstoken.KeyRingConfig{})
	is, _ := accesstoken.NewIssuer(m, ring, accesstoken.Config{Issuer: "https://auth.example", Audience: "api", Revocations: revs})

	sessionToken, _, _ := m.Create(ctx, sessionkit.CreateParams{Subject: "alice"})
	pair, _ := is.Issue(ctx, sessionToken, accesstoken.Params{})

	v, _ := is.Verifier("api")
	h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := verify.FromContext(r.Context())
		fmt.Fprint(w, "hello ", c.Subject)
	}))
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Authorization", "Bearer "+pair.AccessToken)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	fmt.Println(rec.Code, rec.Body.String())

	// Logging out revokes the access token before it expires.
	m.Logout(ctx, sessionToken)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	fmt.Println(rec.Code)
	// Output:
	// 200 hello alice
	// 401
}
