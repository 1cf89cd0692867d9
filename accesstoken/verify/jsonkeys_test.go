package verify

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// The oracle below is the json.Decoder walk the key scanner replaced. It is
// kept to check the scanner against: legacy mode compares keys after
// strings.ToLower as the walk did; fold mode also refuses keys equal under
// strings.EqualFold, which the scanner adds.

type oracleMode int

const (
	oracleLegacy oracleMode = iota
	oracleFold
)

func oracleCheck(doc []byte, mode oracleMode) error {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return errJSONInvalid
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errJSONNotObject
	}
	if err := oracleObject(dec, 1, mode); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errJSONTrailing
	}
	return nil
}

func oracleObject(dec *json.Decoder, depth int, mode oracleMode) error {
	if depth > maxJSONDepth {
		return errJSONDepth
	}
	seen := make(map[string]struct{}, 8)
	var keys []string
	for {
		tok, err := dec.Token()
		if err != nil {
			return errJSONInvalid
		}
		if d, ok := tok.(json.Delim); ok && d == '}' {
			return nil
		}
		key, ok := tok.(string)
		if !ok {
			return errJSONInvalid
		}
		fold := strings.ToLower(key)
		if _, dup := seen[fold]; dup {
			return ErrMalformed
		}
		seen[fold] = struct{}{}
		if mode == oracleFold {
			for _, k := range keys {
				if strings.EqualFold(k, key) {
					return ErrMalformed
				}
			}
			keys = append(keys, key)
		}
		if err := oracleValue(dec, depth, mode); err != nil {
			return err
		}
	}
}

func oracleValue(dec *json.Decoder, depth int, mode oracleMode) error {
	tok, err := dec.Token()
	if err != nil {
		return errJSONInvalid
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch d {
	case '{':
		return oracleObject(dec, depth+1, mode)
	case '[':
		if depth+1 > maxJSONDepth {
			return errJSONDepth
		}
		for dec.More() {
			if err := oracleValue(dec, depth+1, mode); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return errJSONInvalid
		}
		return nil
	}
	return errJSONInvalid
}

func TestKeyScanner(t *testing.T) {
	deep := func(n int, open, close string) string {
		return `{"a":` + strings.Repeat(open, n) + "1" + strings.Repeat(close, n) + "}"
	}
	many := func(n int, extra string) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(`"k`)
			b.WriteString(strings.Repeat("x", i))
			b.WriteString(`":1`)
		}
		b.WriteString(extra + "}")
		return b.String()
	}
	cases := []struct {
		doc string
		ok  bool
	}{
		{`{}`, true},
		{" \t\r\n{ } \n", true},
		{`{"a":1,"b":[1,2,{"c":null}],"d":{"e":true,"f":false},"g":"h\u00e9\"","i":-0.5e+7}`, true},
		{`{"a":1,"A":2}`, false},
		{`{"a":1,"\u0061":2}`, false},
		{`{"sub":1,"\u017fub":2}`, false}, // long s folds to s
		{`{"sub":1,"ſub":2}`, false},
		{`{"k":1,"\u212a":2}`, false}, // Kelvin sign
		{`{"i":1,"\u0130":2}`, false}, // İ lowers to i
		{`{"\ud800":1,"\ufffd":2}`, false},
		{"{\"\xff\":1,\"\xfe\":2}", false},
		{`{"\ud83d\ude00":1,"\ud83d":2}`, true},
		{`{"x":{"a":1,"A":2}}`, false},
		{`{"x":[{"a":1},{"a":2}]}`, true},
		{`{"x":{"a":1},"y":{"a":1}}`, true},
		{`{"a":1}{}`, false},
		{`{"a":1} x`, false},
		{`{"a":1,}`, false},
		{`{"a" 1}`, false},
		{`{"a":01}`, false},
		{`{"a":1.}`, false},
		{`{"a":[1,]}`, false},
		{`{"a":"\x"}`, false},
		{"{\"a\":\"\x01\"}", false},
		{`{"a":tru}`, false},
		{`["a"]`, false},
		{`"a"`, false},
		{``, false},
		{deep(15, "[", "]"), true},
		{deep(16, "[", "]"), false},
		{deep(15, `{"b":`, "}"), true},
		{deep(16, `{"b":`, "}"), false},
		{many(100, ""), true},
		{many(100, `,"KXXX":2`), false},
		{many(100, `,"k\u017f":2`), true},
		{many(100, `,"kxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\u017f":2`), true},
		{many(100, `,"\u006bxx":2`), false},
	}
	var s keyScanner
	for _, tc := range cases {
		err := s.Scan([]byte(tc.doc))
		if (err == nil) != tc.ok {
			t.Errorf("Scan(%q) = %v, want ok=%v", tc.doc, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("Scan(%q) = %v, not ErrMalformed", tc.doc, err)
		}
		if oerr := oracleCheck([]byte(tc.doc), oracleFold); (oerr == nil) != tc.ok {
			t.Errorf("oracle(%q) = %v, want ok=%v", tc.doc, oerr, tc.ok)
		}
	}
}

func TestKeyScannerAllocs(t *testing.T) {
	doc := []byte(`{"iss":"https://sessions.test","sub":"alice","aud":["api","x"],"exp":1900000000,"iat":1800000000,"nbf":1800000000,"jti":"AAAAAAAAAAAAAAAAAAAAAA","sid":"AAAAAAAAAAAAAAAAAAAAAA","auth_level":2,"scope":{"a":[1,2,{"b":null}]}}`)
	s := keyScanner{members: make([]member, 0, 32)}
	if n := testing.AllocsPerRun(100, func() {
		if err := s.Scan(doc); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Scan allocates %v times", n)
	}
}

// FuzzKeyScanner checks the scanner against the json.Decoder oracle, and
// the fields read from a scan against those read through a map.
func FuzzKeyScanner(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"a":1,"A":2}`, `{"sub":1,"\u017fub":2}`, `{"i":1,"\u0130":2}`, `{"x":{"a":[1,{"b":2}]}}`,
		`{"iss":"i","sub":"s","aud":["a"],"exp":1,"iat":2,"nbf":3,"jti":"j","sid":"s","auth_level":2,"x":null}`,
		`{"aud":"a","exp":"1","auth_level":1.5,"sub":null}`, "{\"\xff\":1}", `{"\ud83d\ude00":1}`, `[1]`, `{"a":1e999}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		var s keyScanner
		err := s.Scan(doc)
		legacy := oracleCheck(doc, oracleLegacy)
		fold := oracleCheck(doc, oracleFold)
		if (err == nil) != (fold == nil) {
			t.Fatalf("Scan(%q) = %v, oracle %v", doc, err, fold)
		}
		if legacy != nil && err == nil {
			t.Fatalf("Scan(%q) accepts what the json.Decoder walk refused: %v", doc, legacy)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Scan(%q) = %v, not ErrMalformed", doc, err)
			}
			return
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(doc, &m) != nil {
			t.Fatalf("Scan accepted %q, json.Unmarshal did not", doc)
		}
		if len(m) != len(s.members) {
			t.Fatalf("%d members, map has %d", len(s.members), len(m))
		}
		for _, mb := range s.members {
			val := s.bytes(mb.val)
			if mb.plain && !bytes.Equal(m[string(s.bytes(mb.key))], val) {
				t.Fatalf("member %q = %q, map says %q", s.bytes(mb.key), val, m[string(s.bytes(mb.key))])
			}
			var want string
			wantErr := json.Unmarshal(val, &want)
			if got, ok := jsonString(val); ok != (wantErr == nil) || got != want {
				t.Fatalf("jsonString(%q) = %q, %v; json.Unmarshal: %q, %v", val, got, ok, want, wantErr)
			}
			var wantN int
			wantErr = json.Unmarshal(val, &wantN)
			if got, ok := jsonInt(val); ok != (wantErr == nil) || got != wantN {
				t.Fatalf("jsonInt(%q) = %d, %v; json.Unmarshal: %d, %v", val, got, ok, wantN, wantErr)
			}
		}
		fast, err := payloadFields(&s, doc)
		if err != nil {
			t.Fatal(err)
		}
		slow, err := payloadFieldsMap(doc)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("fields from the scan %+v, from the map %+v", fast, slow)
		}
		c1, err1 := fast.claims()
		c2, err2 := slow.claims()
		if !reflect.DeepEqual(c1, c2) || (err1 == nil) != (err2 == nil) || err1 != nil && err1.Error() != err2.Error() {
			t.Fatalf("claims from the scan %+v, %v; from the map %+v, %v", c1, err1, c2, err2)
		}
	})
}

// BenchmarkStrictChecks times what Verify adds to go-jose: splitting and
// decoding, the header and payload scans and the claim decoding.
func BenchmarkStrictChecks(b *testing.B) {
	enc := func(s string) string { return b64.EncodeToString([]byte(s)) }
	tok := enc(`{"alg":"EdDSA","kid":"k1","typ":"at+jwt"}`) + "." +
		enc(`{"iss":"https://sessions.test","sub":"alice","aud":"api","exp":1900000000,"iat":1800000000,"nbf":1800000000,"jti":"AAAAAAAAAAAAAAAAAAAAAA","sid":"AAAAAAAAAAAAAAAAAAAAAA","auth_level":2}`) +
		"." + enc(strings.Repeat("s", 64))
	v, err := New(Config{Issuer: "https://sessions.test", Audience: "api", Keys: StaticKeys{}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s := getScratch()
		p, err := s.split(tok)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := v.checkHeader(&s.hdr, p.header); err != nil {
			b.Fatal(err)
		}
		if err := s.payload.Scan(p.payload); err != nil {
			b.Fatal(err)
		}
		f, _ := payloadFields(&s.payload, p.payload)
		if _, err := f.claims(); err != nil {
			b.Fatal(err)
		}
		putScratch(s)
	}
}
