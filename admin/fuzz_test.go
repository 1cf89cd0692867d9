package admin_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sessionkit/sessionkit"
)

// FuzzPagesEscape renders the subject and session pages for a session
// whose User-Agent and subject are attacker-chosen: neither may reach the
// page unescaped.
func FuzzPagesEscape(f *testing.F) {
	f.Add("alice", hostileUA)
	f.Add(`"><svg onload=alert(1)>`, `'';!--"<XSS>=&{()}`)
	f.Add("a&b", "\u2028<script>\x00")
	f.Fuzz(func(t *testing.T, subject, ua string) {
		// Markers around the values make a match in the page mean this
		// value, not markup (or an escape) that happens to look like it.
		const open, end = "zqx", "xqz"
		subject, ua = open+strings.TrimSpace(subject)+end, open+ua+end
		if len(subject) > 256 || !utf8.ValidString(subject) || !utf8.ValidString(ua) {
			t.Skip()
		}
		e := newEnv(t)
		e.signIn()
		_, rec, err := e.users.Create(context.Background(), sessionkit.CreateParams{Subject: subject, Client: sessionkit.Client{IP: "198.51.100.1", UserAgent: ua}})
		if err != nil {
			t.Skip(err) // the core refuses some subjects (e.g. control characters)
		}
		for _, path := range []string{"/admin/subject?subject=" + url.QueryEscape(subject), "/admin/sessions/" + rec.Handle} {
			w := e.do("GET", path, nil)
			if w.Code != http.StatusOK {
				t.Fatalf("GET %s: %d", path, w.Code)
			}
			body := w.Body.String()
			for _, v := range []string{subject, ua} {
				if strings.ContainsAny(v, `<>"'&`) && strings.Contains(body, v) {
					t.Fatalf("GET %s: %q appears unescaped", path, v)
				}
			}
		}
	})
}
