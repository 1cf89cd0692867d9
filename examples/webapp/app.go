package main

import (
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/sessionkit/sessionkit"
)

//go:embed templates/*.html
var templates embed.FS

type app struct {
	mgr  *sessionkit.Manager
	page *template.Template
}

func newApp(mgr *sessionkit.Manager) *app {
	page := template.Must(template.New("").Funcs(template.FuncMap{
		"ago":   func(t time.Time) string { return mgr.Now().Sub(t).Round(time.Second).String() + " ago" },
		"until": func(t time.Time) string { return t.Sub(mgr.Now()).Round(time.Second).String() },
		"clock": func(t time.Time) string { return t.Local().Format("15:04:05") },
	}).ParseFS(templates, "templates/*.html"))
	return &app{mgr: mgr, page: page}
}

// routes returns the app's handler: sessions loaded and saved around every
// request, and unsafe cross-origin requests refused by their Sec-Fetch-Site
// and Origin headers (SameSite=Lax on the cookie is the second layer).
func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.home)
	mux.HandleFunc("POST /login", a.login)
	mux.HandleFunc("POST /logout", a.logout)
	mux.HandleFunc("POST /sessions/revoke", a.revoke)
	mux.HandleFunc("GET /whoami", a.whoami)
	return http.NewCrossOriginProtection().Handler(a.mgr.LoadAndSave(mux))
}

type homeView struct {
	Flash    string
	Visits   int
	Session  *sessionkit.Record
	Others   []*sessionkit.Record
	Error    string
	Current  string
	LoggedIn bool
}

func (a *app) home(w http.ResponseWriter, r *http.Request) {
	s := sessionkit.FromContext(r.Context())
	v := homeView{Flash: s.PopString("flash")}
	v.Visits = s.GetInt("visits") + 1
	s.Put("visits", v.Visits)
	v.Session = s.Record()
	if v.Session != nil {
		v.Current = v.Session.Handle
	}
	if sub := s.Subject(); sub != "" {
		v.LoggedIn = true
		others, err := a.mgr.List(r.Context(), sub)
		if err != nil {
			v.Error = "could not list your sessions"
		}
		v.Others = others
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	a.page.ExecuteTemplate(w, "home.html", v)
}

func (a *app) login(w http.ResponseWriter, r *http.Request) {
	user := strings.TrimSpace(r.PostFormValue("user"))
	if user == "" || len(user) > 64 {
		http.Error(w, "a user name of 1 to 64 characters is required", http.StatusBadRequest)
		return
	}
	s := sessionkit.FromContext(r.Context())
	if err := s.Login(r.Context(), user, 1); err != nil {
		http.Error(w, "login failed: "+friendly(err), statusOf(err))
		return
	}
	s.Put("flash", "Signed in as "+user+": your session has a new token.")
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (a *app) logout(w http.ResponseWriter, r *http.Request) {
	if err := sessionkit.FromContext(r.Context()).Logout(r.Context()); err != nil {
		http.Error(w, "logout failed: "+friendly(err), statusOf(err))
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// revoke ends one of the signed-in user's sessions; only their own.
func (a *app) revoke(w http.ResponseWriter, r *http.Request) {
	s := sessionkit.FromContext(r.Context())
	handle := r.PostFormValue("handle")
	rec, err := a.mgr.Get(r.Context(), handle)
	if s.Subject() == "" || err != nil || rec.Subject != s.Subject() {
		http.Error(w, "no such session", http.StatusNotFound)
		return
	}
	if _, err := a.mgr.Revoke(r.Context(), handle, sessionkit.ReasonLogout); err != nil {
		http.Error(w, "revoke failed: "+friendly(err), statusOf(err))
		return
	}
	if handle == s.Handle() {
		s.Logout(r.Context())
	} else {
		s.Put("flash", "Session revoked.")
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (a *app) whoami(w http.ResponseWriter, r *http.Request) {
	s := sessionkit.FromContext(r.Context())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	rec := s.Record()
	if rec == nil || rec.Subject == "" {
		w.WriteHeader(http.StatusUnauthorized)
		json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": "no_session", "message": "not signed in"}})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{
		"handle": rec.Handle, "subject": rec.Subject, "auth_level": rec.AuthLevel,
		"created_at": rec.CreatedAt, "authenticated_at": rec.AuthenticatedAt,
		"last_seen_at": rec.LastSeenAt, "idle_deadline": rec.IdleDeadline,
		"absolute_deadline": rec.AbsoluteDeadline,
		"client":            rec.LastClient, "data": rec.Data,
	})
}

func friendly(err error) string {
	switch {
	case errors.Is(err, sessionkit.ErrStore):
		return "the session store is unavailable"
	case errors.Is(err, sessionkit.ErrLimit):
		return "too many sessions"
	}
	return "the session ended"
}

func statusOf(err error) int {
	if errors.Is(err, sessionkit.ErrStore) {
		return http.StatusServiceUnavailable
	}
	return http.StatusConflict
}
