// Package sessionkit manages server-side sessions after a user has
// authenticated: it creates, validates, renews, expires and ends them, and
// keeps their state in a pluggable Store.
//
// The package has no I/O dependencies of its own. Stores live in their own
// packages (store/boltstore is the persistent default, store/memstore is for
// tests), and the HTTP middleware in this package only uses net/http.
//
// A session is identified by two values:
//
//   - a token: 32 bytes from crypto/rand, base64url without padding. It lives
//     only in the client and in memory while a request is served. Stores key
//     sessions by SHA-256(token) and never see the token itself.
//   - a handle: a random, non-secret identifier used to list, revoke and log
//     the session.
//
// Every deadline (idle, absolute) is enforced here, on every validation, with
// the clock in Config.Now. Every change to a stored session is a
// compare-and-swap on its version, so a write racing a logout can never bring
// the session back.
//
// Typical use:
//
//	store, _ := boltstore.Open("sessions.db", boltstore.Options{})
//	mgr, _ := sessionkit.New(store, sessionkit.Config{})
//	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
//		// ... check the password ...
//		if err := mgr.Login(r.Context(), user, 1); err != nil { ... }
//	})
//	http.ListenAndServe(addr, mgr.LoadAndSave(mux))
package sessionkit
