package sessionkit

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"time"
)

// maxUserAgent bounds the User-Agent kept in a session.
const maxUserAgent = 512

// RemoteClient is the default Config.ClientInfo: the IP of the connection's
// peer and the User-Agent header. Behind a reverse proxy the peer is the
// proxy; supply a ClientInfo that trusts only your proxy's header instead.
func RemoteClient(r *http.Request) Client {
	ip := r.RemoteAddr
	if host, _, err := net.SplitHostPort(ip); err == nil {
		ip = host
	}
	ua := r.UserAgent()
	if len(ua) > maxUserAgent {
		ua = ua[:maxUserAgent]
	}
	return Client{IP: ip, UserAgent: ua}
}

// LoadAndSave is the middleware that loads the request's session before
// next runs and saves its changes when the response starts. Handlers reach
// the session with FromContext.
//
// A token is read only from the session cookie (or an Authorization: Bearer
// header, with Config.AllowBearer), never from the URL. A token the store
// does not know is never adopted: the request continues without a session and
// a new one, with a new token, is created if the handler stores data. Several
// cookies with the session's name count as no session. When the store cannot
// be asked, Config.ErrorHandler answers and next never runs.
func (m *Manager) LoadAndSave(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		// One allocation holds the session and its writer.
		sw := &sessionWriter{ResponseWriter: w, r: r, m: m}
		s := &sw.session
		s.m, s.client = m, m.cfg.ClientInfo(r)
		token, found, dup := m.requestToken(r)
		switch {
		case dup:
			m.emit(ctx, EventRejected, nil, ReasonDuplicateCookie, s.client, nil)
			s.clear = true
		case found:
			rec, touch, err := m.load(ctx, token, s.client)
			switch {
			case err == nil:
				s.base, s.data, s.token, s.touchDue = rec, rec.Data, token, touch
			case errors.Is(err, ErrStore):
				m.cfg.ErrorHandler(w, r, err)
				return
			default:
				s.clear = true
			}
		}
		sw.r = r.WithContext(contextWithSession(ctx, s))
		next.ServeHTTP(sw, sw.r)
		sw.commit()
	})
}

// requestToken finds the session token. dup reports several session
// cookies, which may be cookie tossing from a sibling domain.
func (m *Manager) requestToken(r *http.Request) (token string, found, dup bool) {
	token, found, dup = CookieToken(r, m.cfg.Cookie.Name)
	if found || dup || !m.cfg.AllowBearer {
		return token, found, dup
	}
	if auth := r.Header.Get("Authorization"); len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
		return strings.TrimSpace(auth[7:]), true, false
	}
	return "", false, false
}

// CookieToken returns the value of the cookie called name in r. dup reports
// that the request carries it more than once, which must count as no
// session: a sibling domain may have planted the second one.
func CookieToken(r *http.Request, name string) (token string, found, dup bool) {
	for _, line := range r.Header["Cookie"] {
		for part := range strings.SplitSeq(line, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if !ok || k != name {
				continue
			}
			if found {
				return "", false, true
			}
			token, found = strings.Trim(v, `"`), true
		}
	}
	return token, found, false
}

// sessionWriter saves the session just before the response starts, so the
// cookie can still be set and a failed save can still become an error.
type sessionWriter struct {
	http.ResponseWriter
	session   Session
	r         *http.Request
	m         *Manager
	committed bool
	failed    bool
}

// errSaveFailed is returned to a handler writing a response that was
// replaced by the error handler's.
var errSaveFailed = errors.New("sessionkit: response replaced: the session could not be saved")

func (w *sessionWriter) commit() {
	if w.committed {
		return
	}
	w.committed = true
	if err := w.session.commit(w.r.Context()); err != nil {
		w.failed = true
		w.m.cfg.ErrorHandler(w.ResponseWriter, w.r, err)
		return
	}
	w.writeCookie()
}

func (w *sessionWriter) writeCookie() {
	s := &w.session
	c := w.m.cfg.Cookie
	var ck *http.Cookie
	switch {
	case s.setCookie && s.base != nil:
		ck = &http.Cookie{Name: c.Name, Value: s.token}
		if s.base.Persistent {
			ck.MaxAge = int(s.base.AbsoluteDeadline.Sub(w.m.cfg.Now()) / time.Second)
			if ck.MaxAge <= 0 {
				ck.MaxAge = -1
			}
		}
	case s.clear:
		ck = &http.Cookie{Name: c.Name, MaxAge: -1}
	default:
		return
	}
	ck.Path, ck.Domain, ck.SameSite = c.Path, c.Domain, c.SameSite
	ck.Secure, ck.HttpOnly = !c.InsecureNoSecure, !c.InsecureScriptAccess
	h := w.Header()
	h.Add("Set-Cookie", ck.String())
	h.Set("Cache-Control", "no-store")
	h.Add("Vary", "Cookie")
}

func (w *sessionWriter) WriteHeader(code int) {
	w.commit()
	if w.failed {
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *sessionWriter) Write(b []byte) (int, error) {
	w.commit()
	if w.failed {
		return 0, errSaveFailed
	}
	return w.ResponseWriter.Write(b)
}

// Flush starts the response if needed and flushes it.
func (w *sessionWriter) Flush() {
	w.commit()
	if w.failed {
		return
	}
	http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *sessionWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
