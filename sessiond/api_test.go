package sessiond

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"token":"x","client":{"ip":"1","user_agent":"u"}}`, `{`, `{"token":1}`, `{} {}`, `{"x":1}`, "", `{"token":"\u0000"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest("POST", "/", strings.NewReader(body))
		w := httptest.NewRecorder()
		var v verifyRequest
		err := DecodeJSON(w, r, 256, &v)
		if err == nil {
			return
		}
		var re *RequestError
		if !errors.As(err, &re) {
			t.Fatalf("error %T is not a RequestError", err)
		}
		if re.Status != http.StatusBadRequest && re.Status != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d for bad input", re.Status)
		}
		if re.Code != CodeInvalidJSON && re.Code != CodeBodyTooLarge {
			t.Fatalf("code %q", re.Code)
		}
	})
}

func TestDecodeJSONLimit(t *testing.T) {
	body := `{"token":"` + strings.Repeat("a", 300) + `"}`
	r := httptest.NewRequest("POST", "/", strings.NewReader(body))
	var v verifyRequest
	err := DecodeJSON(httptest.NewRecorder(), r, 100, &v)
	var re *RequestError
	if !errors.As(err, &re) || re.Code != CodeBodyTooLarge || re.Status != 413 {
		t.Fatalf("err %v", err)
	}
	r = httptest.NewRequest("POST", "/", strings.NewReader(`{"token":"a"}`+strings.Repeat(" ", 200)))
	if err := DecodeJSON(httptest.NewRecorder(), r, 1000, &v); err != nil || v.Token != "a" {
		t.Fatalf("trailing whitespace rejected: %v", err)
	}
	r = httptest.NewRequest("POST", "/", strings.NewReader(`{"token":"b"}`))
	r.Header.Set("Content-Type", "application/json; charset=utf-8")
	if err := DecodeJSON(httptest.NewRecorder(), r, 0, &v); err != nil || v.Token != "b" {
		t.Fatalf("charset parameter rejected: %v", err)
	}
}
