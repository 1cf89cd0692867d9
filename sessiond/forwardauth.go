package sessiond

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/sessionkit/sessionkit"
)

// Headers set by forward auth on success, for the proxy to pass upstream.
const (
	HeaderSubject   = "X-Session-Subject"
	HeaderHandle    = "X-Session-Handle"
	HeaderAuthLevel = "X-Session-Auth-Level"
)

// maxUserAgent bounds the User-Agent passed to the Manager, as the core
// middleware does.
const maxUserAgent = 512

// forwardAuth answers a reverse proxy's subrequest: 200 with the identity
// headers when the forwarded request carries a live session cookie (or,
// with Config.Bearer, a valid access token), 401 otherwise.
func (s *Server) forwardAuth(w http.ResponseWriter, r *http.Request) {
	c := ForwardedClient(r)
	token, found, dup := sessionkit.CookieToken(r, s.cfg.CookieName)
	var id Identity
	switch {
	case dup:
		// Two cookies of one name may be cookie tossing from a sibling
		// domain: count it as no session.
		s.m.Emit(r.Context(), sessionkit.Event{Type: sessionkit.EventRejected, Reason: sessionkit.ReasonDuplicateCookie, Client: c})
		WriteError(w, http.StatusUnauthorized, CodeUnauthorized, "duplicate session cookies")
		return
	case found:
		rec, err := s.m.Validate(r.Context(), token, c)
		if err != nil {
			s.fail(w, r, err, http.StatusUnauthorized)
			return
		}
		id = Identity{Subject: rec.Subject, Handle: rec.Handle, AuthLevel: rec.AuthLevel}
	default:
		tok, ok := bearer(r)
		if !ok || s.cfg.Bearer == nil {
			WriteError(w, http.StatusUnauthorized, CodeUnauthorized, "no session")
			return
		}
		var err error
		id, err = s.cfg.Bearer.VerifyBearer(r.Context(), tok, c)
		if err != nil {
			if errors.Is(err, sessionkit.ErrStore) {
				s.fail(w, r, err, http.StatusUnauthorized)
				return
			}
			WriteError(w, http.StatusUnauthorized, CodeInvalidToken, "the access token is not valid")
			return
		}
	}
	h := w.Header()
	h.Set(HeaderSubject, id.Subject)
	h.Set(HeaderHandle, id.Handle)
	h.Set(HeaderAuthLevel, strconv.Itoa(id.AuthLevel))
	WriteJSON(w, http.StatusOK, map[string]any{"subject": id.Subject, "handle": id.Handle, "auth_level": id.AuthLevel})
}

// ForwardedClient returns the client of a request forwarded by a reverse
// proxy: the first address of X-Forwarded-For, else X-Real-IP, else the
// connection's peer; and the User-Agent. Forward auth is meant to be
// reachable only by the proxy, which sets these headers. A value that is
// not an IP address is ignored.
func ForwardedClient(r *http.Request) sessionkit.Client {
	ip := ""
	if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
		first, _, _ := strings.Cut(xff, ",")
		ip = cleanIP(first)
	}
	if ip == "" {
		ip = cleanIP(r.Header.Get("X-Real-IP"))
	}
	if ip == "" {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		ip = cleanIP(host)
	}
	ua := r.UserAgent()
	if len(ua) > maxUserAgent {
		ua = ua[:maxUserAgent]
	}
	return sessionkit.Client{IP: ip, UserAgent: ua}
}

func cleanIP(s string) string {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return ""
	}
	return a.Unmap().String()
}
