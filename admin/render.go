package admin

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sessionkit/sessionkit"
)

// pages holds one template set per page, each combined with the layout.
type pages struct {
	sets map[string]*template.Template
}

var funcs = template.FuncMap{
	"time":       fmtTime,
	"iso":        func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"rel":        relTime,
	"clip":       clip,
	"subjectURL": subjectURL,
	"sessionURL": sessionURL,
	"isAnomaly": func(t sessionkit.EventType) bool {
		return t == sessionkit.EventAnomaly || t == sessionkit.EventRefreshReused
	},
	"isBad": func(t sessionkit.EventType) bool {
		return t == sessionkit.EventRejected || t == sessionkit.EventRevoked
	},
}

func parsePages() (*pages, error) {
	names, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return nil, err
	}
	p := &pages{sets: map[string]*template.Template{}}
	for _, n := range names {
		base := strings.TrimPrefix(n, "templates/")
		if base == "layout.html" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(assets, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("admin: template %s: %w", base, err)
		}
		p.sets[strings.TrimSuffix(base, ".html")] = t
	}
	return p, nil
}

// page is what the layout needs, with the page's own data in Data.
type page struct {
	Title    string
	Nav      string // the active navigation entry
	Operator string // signed-in key id, "" on the sign-in page
	Flash    string
	Now      time.Time
	Data     any
}

// render writes page name with status. It renders into a buffer first so a
// template error becomes an error page, not half a page.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	t, ok := c.pages.sets[name]
	if !ok {
		panic("admin: no page " + name)
	}
	if p.Operator == "" {
		p.Operator = operator(r)
	}
	if p.Now.IsZero() {
		p.Now = c.opts.Now()
	}
	if p.Flash == "" && name != "error" && p.Operator != "" && status < 300 {
		if s := sessionkit.FromContext(r.Context()); s != nil {
			p.Flash = s.PopString(flashKey)
		}
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		c.logger().ErrorContext(r.Context(), "admin: render", "page", name, "err", err)
		if name == "error" {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		c.errorPage(w, r, http.StatusInternalServerError, "Internal error", "The console failed to build this page. The error was logged.")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

type errorData struct {
	Status  int
	Message string
}

// errorPage answers with a readable error page.
func (c *Console) errorPage(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	c.render(w, r, status, "error", page{Title: title, Data: errorData{Status: status, Message: msg}})
}

const flashKey = "flash"

// flash leaves a message for the next page the operator sees.
func flash(r *http.Request, msg string) {
	if s := sessionkit.FromContext(r.Context()); s != nil {
		s.Put(flashKey, msg)
	}
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// relTime describes t relative to now: "in 14m", "3h 2m ago".
func relTime(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := t.Sub(now)
	suffix, prefix := "", "in "
	if d < 0 {
		d, suffix, prefix = -d, " ago", ""
	}
	var s string
	switch {
	case d < time.Second:
		return "now"
	case d < time.Minute:
		s = fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		s = fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		s = fmt.Sprintf("%dh %dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	default:
		s = fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	}
	return prefix + s + suffix
}

// clip shortens s to n runes for display; the full value goes in a title.
func clip(n int, s string) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func subjectURL(subject string) string {
	return "/admin/subject?subject=" + url.QueryEscape(subject)
}

func sessionURL(handle string) string {
	return "/admin/sessions/" + url.PathEscape(handle)
}
