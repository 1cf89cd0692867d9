package verify

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxJSONDepth bounds nesting in header and payload, so the key walk's work
// is bounded however a token is built.
const maxJSONDepth = 16

// parts is a compact JWS split and decoded, before any signature check.
type parts struct {
	header, payload, sig []byte
}

// split checks the shape of a compact JWS and decodes its three parts. Each
// part must be canonical base64url without padding: decoding and encoding
// again must give the same text, so one token has exactly one spelling.
func split(token string) (parts, error) {
	var p parts
	h, rest, ok1 := strings.Cut(token, ".")
	pl, s, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(s, ".") {
		return p, fmt.Errorf("%w: not a compact JWS", ErrMalformed)
	}
	var err error
	if p.header, err = decodePart(h); err != nil {
		return p, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	if p.payload, err = decodePart(pl); err != nil {
		return p, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	if p.sig, err = decodePart(s); err != nil {
		return p, fmt.Errorf("%w: signature: %v", ErrMalformed, err)
	}
	if len(p.header) == 0 || len(p.payload) == 0 || len(p.sig) == 0 {
		return p, fmt.Errorf("%w: empty part", ErrMalformed)
	}
	return p, nil
}

var b64 = base64.RawURLEncoding.Strict()

func decodePart(s string) ([]byte, error) {
	out, err := b64.DecodeString(s)
	if err != nil {
		return nil, errors.New("not base64url")
	}
	// Strict decoding already refuses padding and non-zero trailing bits;
	// comparing the re-encoding also catches anything a future decoder
	// might tolerate.
	if b64.EncodedLen(len(out)) != len(s) || b64.EncodeToString(out) != s {
		return nil, errors.New("non-canonical base64url")
	}
	return out, nil
}

// checkObjectKeys walks a JSON document and fails unless it is one object
// with no duplicate keys at any level, comparing keys case-insensitively
// after unescaping: {"exp":1,"EXP":2} or {"exp":1,"\u0065xp":2} would be
// read differently by different JSON parsers.
func checkObjectKeys(doc []byte) error {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("%w: invalid JSON", ErrMalformed)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	if err := walkObject(dec, 1); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: trailing data after JSON object", ErrMalformed)
	}
	return nil
}

// walkObject reads the members of an object whose '{' was consumed.
func walkObject(dec *json.Decoder, depth int) error {
	if depth > maxJSONDepth {
		return fmt.Errorf("%w: JSON nested too deeply", ErrMalformed)
	}
	seen := make(map[string]struct{}, 8)
	for {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%w: invalid JSON", ErrMalformed)
		}
		if d, ok := tok.(json.Delim); ok && d == '}' {
			return nil
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("%w: invalid JSON", ErrMalformed)
		}
		fold := strings.ToLower(key)
		if _, dup := seen[fold]; dup {
			return fmt.Errorf("%w: duplicate or case-variant key %q", ErrMalformed, key)
		}
		seen[fold] = struct{}{}
		if err := walkValue(dec, depth); err != nil {
			return err
		}
	}
}

func walkValue(dec *json.Decoder, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("%w: invalid JSON", ErrMalformed)
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch d {
	case '{':
		return walkObject(dec, depth+1)
	case '[':
		if depth+1 > maxJSONDepth {
			return fmt.Errorf("%w: JSON nested too deeply", ErrMalformed)
		}
		for dec.More() {
			if err := walkValue(dec, depth+1); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return fmt.Errorf("%w: invalid JSON", ErrMalformed)
		}
		return nil
	}
	return fmt.Errorf("%w: invalid JSON", ErrMalformed)
}
