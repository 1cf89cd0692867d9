package sessionkit_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sessionkit/sessionkit"
)

func TestCookieToken(t *testing.T) {
	tests := []struct {
		header     []string
		token      string
		found, dup bool
	}{
		{nil, "", false, false},
		{[]string{"a=1; __Host-session=tok; b=2"}, "tok", true, false},
		{[]string{`__Host-session="tok"`}, "tok", true, false},
		{[]string{"__Host-session=a; __Host-session=b"}, "", false, true},
		{[]string{"__Host-session=a", "__Host-session=b"}, "", false, true},
		{[]string{"__Host-sessionx=a; x__Host-session=b"}, "", false, false},
		{[]string{"__Host-session"}, "", false, false},
	}
	for _, tt := range tests {
		r, _ := http.NewRequest("GET", "/", nil)
		r.Header["Cookie"] = tt.header
		tok, found, dup := sessionkit.CookieToken(r, "__Host-session")
		if tok != tt.token || found != tt.found || dup != tt.dup {
			t.Errorf("%q: got %q %v %v", tt.header, tok, found, dup)
		}
	}
}

func FuzzCookieToken(f *testing.F) {
	f.Add("__Host-session=abc; x=y")
	f.Add("__Host-session=a; __Host-session=b")
	f.Add(`__Host-session="q"`)
	f.Fuzz(func(t *testing.T, header string) {
		r, _ := http.NewRequest("GET", "/", nil)
		r.Header["Cookie"] = []string{header}
		tok, found, dup := sessionkit.CookieToken(r, "__Host-session")
		if dup && (found || tok != "") {
			t.Fatalf("duplicate reported with a token: %q %v", tok, found)
		}
		if !found && tok != "" {
			t.Fatalf("token %q without found", tok)
		}
		if n := strings.Count(header, "__Host-session="); found && n == 0 {
			t.Fatalf("found a cookie absent from %q", header)
		}
	})
}
