package redisstore

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit"
)

func FuzzParseRef(f *testing.F) {
	f.Add(ref{"abc", "a:abc"}.String())
	f.Add("3:abc")
	f.Add("99999:x")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseRef(s)
		if err != nil {
			return
		}
		if r.String() != s {
			t.Fatalf("parseRef(%q) = %+v, which formats as %q", s, r, r.String())
		}
	})
}

func FuzzDecodeActivity(f *testing.F) {
	f.Add(encodeActivity(sessionkit.Activity{LastSeenAt: time.Unix(1700000000, 5), PurgeAt: time.Unix(1700009000, 0),
		LastClient: sessionkit.Client{IP: "192.0.2.1", UserAgent: "ua"}}))
	f.Add("0 0 0|")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := decodeActivity(s)
		if err != nil {
			return
		}
		b, err := decodeActivity(encodeActivity(a))
		if err != nil || !b.LastSeenAt.Equal(a.LastSeenAt) || !b.PurgeAt.Equal(a.PurgeAt) || b.LastClient != a.LastClient {
			t.Fatalf("activity does not round-trip: %+v vs %+v (%v)", a, b, err)
		}
	})
}

func FuzzParseURL(f *testing.F) {
	f.Add("redis://127.0.0.1:6379/0")
	f.Add("rediss+cluster://u:p@h1:1,h2:2?prefix=x:&near_cache=1")
	f.Add("redis://h?near_cache_ttl=-1s")
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseURL(s)
		if err != nil {
			return
		}
		if _, err := clientOption(o.URL); err != nil {
			t.Fatalf("ParseURL(%q) accepted a URL clientOption rejects: %v", s, err)
		}
	})
}

func TestActivityRoundTrip(t *testing.T) {
	tests := []sessionkit.Activity{
		{},
		{LastSeenAt: time.Unix(1700000000, 123456789).UTC(), IdleDeadline: time.Unix(1700001800, 0).UTC(),
			PurgeAt: time.Unix(1700005400, 1).UTC(), LastClient: sessionkit.Client{IP: "2001:db8::1", UserAgent: "a|b 1 2"}},
	}
	for _, a := range tests {
		got, err := decodeActivity(encodeActivity(a))
		if err != nil {
			t.Fatal(err)
		}
		if !got.LastSeenAt.Equal(a.LastSeenAt) || !got.IdleDeadline.Equal(a.IdleDeadline) || !got.PurgeAt.Equal(a.PurgeAt) || got.LastClient != a.LastClient {
			t.Fatalf("round trip: got %+v, want %+v", got, a)
		}
	}
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		in      string
		url     string
		near    bool
		wantErr bool
	}{
		{in: "redis://127.0.0.1:6379/0", url: "redis://127.0.0.1:6379/0"},
		{in: "redis://h:1?near_cache=true&client_name=x", url: "redis://h:1?client_name=x", near: true},
		{in: "redis+cluster://h1:1,h2:2", url: "redis+cluster://h1:1,h2:2"},
		{in: "redis+cluster://h1:1,", wantErr: true},
		{in: "http://h:1", wantErr: true},
		{in: "redis://h:1?prefix=a{b", wantErr: true},
		{in: "redis://h:1?near_cache=maybe", wantErr: true},
	}
	for _, tt := range tests {
		o, err := ParseURL(tt.in)
		if (err != nil) != tt.wantErr {
			t.Fatalf("ParseURL(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
		}
		if err == nil && (o.URL != tt.url || o.NearCache != tt.near) {
			t.Fatalf("ParseURL(%q) = %q near=%v, want %q near=%v", tt.in, o.URL, o.NearCache, tt.url, tt.near)
		}
	}
	co, err := clientOption("redis+cluster://h1:1,h2:2")
	if err != nil || len(co.InitAddress) != 2 {
		t.Fatalf("cluster seeds: %v %v", co.InitAddress, err)
	}
}

// FuzzParseCopy checks that a record copy either splits into record bytes
// and activity that make it up again, or is rejected, without panicking.
func FuzzParseCopy(f *testing.F) {
	f.Add("3:abc0 0 0|")
	f.Add("0:")
	f.Add("12:short")
	f.Add("-1:x")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parseCopy(s)
		if err != nil {
			return
		}
		i := strings.IndexByte(s, ':')
		if n, _ := strconv.Atoi(s[:i]); n != len(h.bytes) || h.bytes+h.act != s[i+1:] {
			t.Fatalf("parseCopy(%q) = %q + %q", s, h.bytes, h.act)
		}
		h.record("get") // must not panic
	})
}
