package admin

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/eventlog"
)

// Input bounds: a form is tiny, and subjects and handles are short.
const (
	maxFormBytes  = 4 << 10
	maxSubjectLen = 256
	maxHandleLen  = 128
)

// errNotMounted is reported when the console serves before Mount gave it
// the users' Manager.
var errNotMounted = errors.New("admin: console is not mounted (no users' Manager)")

type loginData struct {
	Error     string
	SignedOut bool
}

func (c *Console) loginForm(w http.ResponseWriter, r *http.Request) {
	if operator(r) != "" {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, "login", page{Title: "Sign in", Data: loginData{SignedOut: r.URL.Query().Has("signed_out")}})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		c.render(w, r, http.StatusBadRequest, "login", page{Title: "Sign in", Data: loginData{Error: "The form could not be read. Try again."}})
		return
	}
	key := strings.TrimSpace(r.PostForm.Get("key"))
	id, ok := "", false
	if key != "" {
		id, ok = c.opts.CheckAPIKey(key)
	}
	if !ok {
		client := c.admin.Config().ClientInfo(r)
		c.logger().WarnContext(r.Context(), "admin: sign-in refused", "client_ip", client.IP, "user_agent", client.UserAgent)
		c.render(w, r, http.StatusUnauthorized, "login", page{Title: "Sign in", Data: loginData{Error: "That API key is not accepted."}})
		return
	}
	s := sessionkit.FromContext(r.Context())
	// Login issues a new token whatever the browser sent: no fixation.
	if err := s.Login(r.Context(), SubjectPrefix+id, 1); err != nil {
		c.fail(w, r, err)
		return
	}
	c.logger().InfoContext(r.Context(), "admin: signed in", "key_id", id)
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if s := sessionkit.FromContext(r.Context()); s != nil {
		if err := s.Logout(r.Context()); err != nil {
			c.fail(w, r, err)
			return
		}
	}
	http.Redirect(w, r, "/admin/login?signed_out", http.StatusSeeOther)
}

// Chart ranges offered on the overview.
var ranges = []struct {
	Name string
	Span time.Duration
	Step time.Duration
}{
	{"1h", time.Hour, time.Minute},
	{"6h", 6 * time.Hour, 5 * time.Minute},
	{"24h", 24 * time.Hour, 15 * time.Minute},
}

type overviewData struct {
	Range     string
	Ranges    []string
	Charts    []chart
	Source    string
	Anomalies []eventlog.Entry
	History   bool
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	ri := 0
	for i, rg := range ranges {
		if rg.Name == r.URL.Query().Get("range") {
			ri = i
		}
	}
	rg := ranges[ri]
	d := overviewData{Range: rg.Name, History: c.opts.History != nil}
	for _, x := range ranges {
		d.Ranges = append(d.Ranges, x.Name)
	}
	now := c.opts.Now()
	charts, source, err := c.charts(r.Context(), now, rg.Span, rg.Step)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	d.Charts, d.Source = charts, source
	if c.opts.History != nil {
		es, err := c.opts.History.Query(r.Context(), eventlog.Query{Type: sessionkit.EventAnomaly, Since: now.Add(-24 * time.Hour), Limit: 5})
		if err != nil {
			c.fail(w, r, err)
			return
		}
		slices.Reverse(es)
		d.Anomalies = es
	}
	c.render(w, r, http.StatusOK, "overview", page{Title: "Overview", Nav: "overview", Data: d})
}

type subjectData struct {
	Subject  string
	Sessions []*sessionkit.Record
	Events   []eventlog.Entry
	History  bool
}

// formSubject reads and checks the subject parameter.
func formSubject(r *http.Request) (string, bool) {
	s := strings.TrimSpace(r.FormValue("subject"))
	return s, s != "" && len(s) <= maxSubjectLen
}

func (c *Console) subject(w http.ResponseWriter, r *http.Request) {
	if c.users == nil {
		c.fail(w, r, errNotMounted)
		return
	}
	subject, ok := formSubject(r)
	if !ok {
		if subject == "" {
			http.Redirect(w, r, Prefix, http.StatusSeeOther)
			return
		}
		c.errorPage(w, r, http.StatusBadRequest, "Subject too long", "A subject has at most 256 bytes.")
		return
	}
	recs, err := c.users.List(r.Context(), subject)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	d := subjectData{Subject: subject, Sessions: recs, History: c.opts.History != nil}
	if c.opts.History != nil {
		es, err := c.opts.History.Query(r.Context(), eventlog.Query{Subject: subject, Limit: 50})
		if err != nil {
			c.fail(w, r, err)
			return
		}
		slices.Reverse(es)
		d.Events = es
	}
	c.render(w, r, http.StatusOK, "subject", page{Title: "Subject " + subject, Nav: "subject", Data: d})
}

// pathHandle reads and checks the handle path value.
func pathHandle(r *http.Request) (string, bool) {
	h := r.PathValue("handle")
	if h == "" || len(h) > maxHandleLen {
		return "", false
	}
	for i := 0; i < len(h); i++ {
		b := h[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_') {
			return "", false
		}
	}
	return h, true
}

type sessionData struct {
	Handle  string
	Record  *sessionkit.Record // nil when the store has no record
	Live    bool
	Events  []eventlog.Entry
	History bool
}

func (c *Console) session(w http.ResponseWriter, r *http.Request) {
	if c.users == nil {
		c.fail(w, r, errNotMounted)
		return
	}
	handle, ok := pathHandle(r)
	if !ok {
		c.errorPage(w, r, http.StatusNotFound, "No such session", "That is not a session handle.")
		return
	}
	d := sessionData{Handle: handle, History: c.opts.History != nil}
	rec, err := c.users.Get(r.Context(), handle)
	switch {
	case err == nil:
		d.Record, d.Live = rec, rec.Live(c.opts.Now())
	case errors.Is(err, sessionkit.ErrNotFound):
	default:
		c.fail(w, r, err)
		return
	}
	if c.opts.History != nil {
		es, err := c.opts.History.Query(r.Context(), eventlog.Query{Handle: handle, Limit: 500})
		if err != nil {
			c.fail(w, r, err)
			return
		}
		d.Events = es
	}
	if d.Record == nil && len(d.Events) == 0 {
		c.errorPage(w, r, http.StatusNotFound, "No such session", "No session and no events have this handle. Ended sessions are purged after their retention period.")
		return
	}
	c.render(w, r, http.StatusOK, "session", page{Title: "Session " + handle, Nav: "subject", Data: d})
}

type confirmData struct {
	Action  string // form action
	Subject string
	Record  *sessionkit.Record // for a single session
	Count   int                // for a whole subject
}

func (c *Console) confirmRevoke(w http.ResponseWriter, r *http.Request) {
	if c.users == nil {
		c.fail(w, r, errNotMounted)
		return
	}
	handle, ok := pathHandle(r)
	if !ok {
		c.errorPage(w, r, http.StatusNotFound, "No such session", "That is not a session handle.")
		return
	}
	rec, err := c.users.Get(r.Context(), handle)
	switch {
	case errors.Is(err, sessionkit.ErrNotFound):
		c.errorPage(w, r, http.StatusNotFound, "No such session", "The store has no session with this handle.")
		return
	case err != nil:
		c.fail(w, r, err)
		return
	case !rec.Live(c.opts.Now()):
		c.errorPage(w, r, http.StatusConflict, "Session already ended", "This session is no longer live; there is nothing to revoke.")
		return
	}
	c.render(w, r, http.StatusOK, "confirm", page{Title: "Revoke session?", Nav: "subject",
		Data: confirmData{Action: sessionURL(handle) + "/revoke", Subject: rec.Subject, Record: rec}})
}

func (c *Console) revoke(w http.ResponseWriter, r *http.Request) {
	if c.users == nil {
		c.fail(w, r, errNotMounted)
		return
	}
	handle, ok := pathHandle(r)
	if !ok {
		c.errorPage(w, r, http.StatusNotFound, "No such session", "That is not a session handle.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if r.ParseForm() != nil || r.PostForm.Get("confirm") != "yes" {
		http.Redirect(w, r, sessionURL(handle)+"/revoke", http.StatusSeeOther)
		return
	}
	subject, _ := formSubject(r)
	rec, err := c.users.Revoke(r.Context(), handle, sessionkit.ReasonOperator)
	switch {
	case err == nil:
		subject = rec.Subject
		c.logger().InfoContext(r.Context(), "admin: session revoked", "operator", operator(r), "handle", handle)
		flash(r, "Session "+handle+" was revoked.")
	case errors.Is(err, sessionkit.ErrNotFound), errors.Is(err, sessionkit.ErrRevoked):
		flash(r, "Session "+handle+" had already ended.")
	default:
		c.fail(w, r, err)
		return
	}
	target := Prefix
	if subject != "" {
		target = subjectURL(subject)
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

func (c *Console) confirmRevokeSubject(w http.ResponseWriter, r *http.Request) {
	if c.users == nil {
		c.fail(w, r, errNotMounted)
		return
	}
	subject, ok := formSubject(r)
	if !ok {
		c.errorPage(w, r, http.StatusBadRequest, "No subject", "Choose a subject first.")
		return
	}
	recs, err := c.users.List(r.Context(), subject)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "confirm", page{Title: "Revoke all sessions?", Nav: "subject",
		Data: confirmData{Action: "/admin/subject/revoke", Subject: subject, Count: len(recs)}})
}

func (c *Console) revokeSubject(w http.ResponseWriter, r *http.Request) {
	if c.users == nil {
		c.fail(w, r, errNotMounted)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		c.errorPage(w, r, http.StatusBadRequest, "Bad form", "The form could not be read.")
		return
	}
	subject, ok := formSubject(r)
	if !ok {
		c.errorPage(w, r, http.StatusBadRequest, "No subject", "Choose a subject first.")
		return
	}
	if r.PostForm.Get("confirm") != "yes" {
		http.Redirect(w, r, "/admin/subject/revoke?subject="+url.QueryEscape(subject), http.StatusSeeOther)
		return
	}
	n, err := c.users.RevokeSubject(r.Context(), subject, "", sessionkit.ReasonOperator)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.logger().InfoContext(r.Context(), "admin: subject's sessions revoked", "operator", operator(r), "subject", subject, "count", n)
	flash(r, plural(n, "session was", "sessions were")+" revoked.")
	http.Redirect(w, r, subjectURL(subject), http.StatusSeeOther)
}

type anomaliesData struct {
	Window  string
	Windows []string
	Events  []eventlog.Entry
	History bool
	Limit   int
}

var windows = map[string]time.Duration{"1h": time.Hour, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour}

const anomalyLimit = 200

func (c *Console) anomalies(w http.ResponseWriter, r *http.Request) {
	win := r.URL.Query().Get("window")
	span, ok := windows[win]
	if !ok {
		win, span = "24h", windows["24h"]
	}
	d := anomaliesData{Window: win, Windows: []string{"1h", "24h", "7d"}, History: c.opts.History != nil, Limit: anomalyLimit}
	if c.opts.History != nil {
		es, err := c.opts.History.Query(r.Context(), eventlog.Query{Type: sessionkit.EventAnomaly, Since: c.opts.Now().Add(-span), Limit: anomalyLimit})
		if err != nil {
			c.fail(w, r, err)
			return
		}
		slices.Reverse(es)
		d.Events = es
	}
	c.render(w, r, http.StatusOK, "anomalies", page{Title: "Anomalies", Nav: "anomalies", Data: d})
}

// eventTypes are the types the live page listens for: the stream names each
// message after its event type.
var eventTypes = []sessionkit.EventType{
	sessionkit.EventCreated, sessionkit.EventAuthenticated, sessionkit.EventRenewed, sessionkit.EventTouched,
	sessionkit.EventUpdated, sessionkit.EventExpiredIdle, sessionkit.EventExpiredAbs, sessionkit.EventRevoked,
	sessionkit.EventLoggedOut, sessionkit.EventRejected, sessionkit.EventAnomaly, sessionkit.EventRefreshed,
	sessionkit.EventRefreshReused,
}

type liveData struct {
	Enabled bool
	Types   string
}

func (c *Console) live(w http.ResponseWriter, r *http.Request) {
	ts := make([]string, len(eventTypes))
	for i, t := range eventTypes {
		ts[i] = string(t)
	}
	c.render(w, r, http.StatusOK, "live", page{Title: "Live events", Nav: "live",
		Data: liveData{Enabled: c.opts.Stream != nil, Types: strings.Join(ts, " ")}})
}

// stream serves the live event stream to a signed-in operator. The stream
// outlives the server's write timeout, so the deadline is lifted; the
// stream's heartbeats detect dead clients.
func (c *Console) stream(w http.ResponseWriter, r *http.Request) {
	if c.opts.Stream == nil {
		http.Error(w, "live stream not configured", http.StatusNotFound)
		return
	}
	http.NewResponseController(w).SetWriteDeadline(time.Time{})
	q := r.URL.Query()
	// Pass on only the type filter this page offers.
	r2 := r.Clone(r.Context())
	r2.URL.RawQuery = ""
	if t := q.Get("type"); t == string(sessionkit.EventAnomaly) {
		r2.URL.RawQuery = "type=" + t
	}
	c.opts.Stream.ServeHTTP(w, r2)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
