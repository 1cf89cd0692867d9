package sessionkit

import (
	"errors"
	"strings"
	"testing"
)

func TestNewTokenIsUniqueAndWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		tok, hash := newToken()
		if len(tok) != TokenLen {
			t.Fatalf("token length %d", len(tok))
		}
		h, err := HashToken(tok)
		if err != nil || h != hash {
			t.Fatalf("HashToken(new token) = %v, %v", h, err)
		}
		if seen[tok] {
			t.Fatal("duplicate token")
		}
		seen[tok] = true
	}
}

func TestHashTokenRejects(t *testing.T) {
	good, _ := newToken()
	tests := map[string]string{
		"empty":                       "",
		"short":                       good[:42],
		"long":                        good + "A",
		"padding":                     good[:42] + "=",
		"std alphabet":                good[:42] + "+",
		"space":                       " " + good[1:],
		"newline":                     good[:42] + "\n",
		"non-canonical trailing bits": good[:42] + "B",
		"unicode":                     strings.Repeat("é", 21) + "A",
	}
	for name, tok := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := HashToken(tok); !errors.Is(err, ErrMalformed) {
				t.Fatalf("HashToken(%q) err = %v, want ErrMalformed", tok, err)
			}
		})
	}
}

func FuzzHashToken(f *testing.F) {
	good, _ := newToken()
	f.Add(good)
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := HashToken(s)
		if err != nil {
			return
		}
		if len(s) != TokenLen || h == (TokenHash{}) {
			t.Fatalf("accepted %q", s)
		}
	})
}
