package verify

import (
	"fmt"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// maxJSONDepth bounds nesting in header and payload, so the key scan's work
// is bounded however a token is built.
const maxJSONDepth = 16

// maxPairwise is the number of members of one object compared pairwise;
// beyond it an object's keys go into maps so that a token made of many
// short keys costs linear, not quadratic, time.
const maxPairwise = 32

var (
	errJSONInvalid   = fmt.Errorf("%w: invalid JSON", ErrMalformed)
	errJSONNotObject = fmt.Errorf("%w: not a JSON object", ErrMalformed)
	errJSONTrailing  = fmt.Errorf("%w: trailing data after JSON object", ErrMalformed)
	errJSONDepth     = fmt.Errorf("%w: JSON nested too deeply", ErrMalformed)
)

// span is a byte range of the scanned document.
type span struct{ start, end int }

// member is one member of a JSON object: its key without the quotes, still
// escaped, and its value.
type member struct {
	key, val span
	// plain is set when the key has neither escapes nor non-ASCII bytes,
	// so its text is its value.
	plain bool
}

// keyScanner validates a JSON document that must be one object and
// rejects duplicate keys at every level of nesting. Two keys are
// duplicates when they are equal after unescaping under Unicode lower
// casing (strings.ToLower) or under simple case folding
// (strings.EqualFold, which is how encoding/json matches a key to a struct
// field), so {"exp":1,"EXP":2}, {"sub":1,"\u0073ub":2} and
// {"sub":1,"\u017fub":2} are all refused: different parsers could read
// them differently. It accepts exactly the JSON that encoding/json
// accepts, invalid UTF-8 in strings included.
//
// A scanner is reused across documents; after Scan, Members holds the
// top-level members. Scanning allocates nothing unless an object has more
// than maxPairwise members.
type keyScanner struct {
	doc     []byte
	i       int
	members []member // top-level members, then those of the open nested objects
}

// Scan checks doc. On success s.members holds doc's top-level members.
func (s *keyScanner) Scan(doc []byte) error {
	s.doc, s.i, s.members = doc, 0, s.members[:0]
	s.skipSpace()
	if s.i >= len(doc) {
		return errJSONInvalid
	}
	switch doc[s.i] {
	case '{':
	case '[', '"', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 't', 'f', 'n':
		return errJSONNotObject
	default:
		return errJSONInvalid
	}
	s.i++
	if err := s.object(1); err != nil {
		return err
	}
	s.skipSpace()
	if s.i != len(doc) {
		return errJSONTrailing
	}
	return nil
}

// allPlain reports whether every top-level key is plain.
func (s *keyScanner) allPlain() bool {
	for _, m := range s.members {
		if !m.plain {
			return false
		}
	}
	return true
}

func (s *keyScanner) bytes(sp span) []byte { return s.doc[sp.start:sp.end] }

func (s *keyScanner) skipSpace() {
	for s.i < len(s.doc) {
		switch s.doc[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// next returns the byte at the cursor after whitespace, or 0 at the end.
func (s *keyScanner) next() byte {
	s.skipSpace()
	if s.i < len(s.doc) {
		return s.doc[s.i]
	}
	return 0
}

// object scans the members of an object whose '{' was consumed. depth
// counts the open objects and arrays, this one included.
func (s *keyScanner) object(depth int) error {
	if depth > maxJSONDepth {
		return errJSONDepth
	}
	base := len(s.members)
	if depth > 1 {
		defer func() { s.members = s.members[:base] }()
	}
	if s.next() == '}' {
		s.i++
		return nil
	}
	var large *keySet
	for {
		if s.next() != '"' {
			return errJSONInvalid
		}
		s.i++
		key, plain, err := s.str()
		if err != nil {
			return err
		}
		m := member{key: key, plain: plain}
		if large == nil && len(s.members)-base >= maxPairwise {
			large = newKeySet(s, s.members[base:])
		}
		if large != nil {
			if !large.add(s.bytes(key)) {
				return s.duplicate(m)
			}
		} else {
			for _, o := range s.members[base:] {
				if s.sameKey(o, m) {
					return s.duplicate(m)
				}
			}
		}
		idx := len(s.members)
		s.members = append(s.members, m)
		if s.next() != ':' {
			return errJSONInvalid
		}
		s.i++
		s.skipSpace()
		start := s.i
		if err := s.value(depth); err != nil {
			return err
		}
		s.members[idx].val = span{start, s.i}
		switch s.next() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return errJSONInvalid
		}
	}
}

func (s *keyScanner) duplicate(m member) error {
	return fmt.Errorf("%w: duplicate or case-variant key %q", ErrMalformed, s.bytes(m.key))
}

// value scans one value inside a container at depth.
func (s *keyScanner) value(depth int) error {
	if s.i >= len(s.doc) {
		return errJSONInvalid
	}
	switch c := s.doc[s.i]; c {
	case '{':
		s.i++
		return s.object(depth + 1)
	case '[':
		s.i++
		return s.array(depth + 1)
	case '"':
		s.i++
		_, _, err := s.str()
		return err
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		if c == '-' || '0' <= c && c <= '9' {
			return s.number()
		}
		return errJSONInvalid
	}
}

func (s *keyScanner) array(depth int) error {
	if depth > maxJSONDepth {
		return errJSONDepth
	}
	if s.next() == ']' {
		s.i++
		return nil
	}
	for {
		s.skipSpace()
		if err := s.value(depth); err != nil {
			return err
		}
		switch s.next() {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return errJSONInvalid
		}
	}
}

func (s *keyScanner) literal(lit string) error {
	if len(s.doc)-s.i < len(lit) || string(s.doc[s.i:s.i+len(lit)]) != lit {
		return errJSONInvalid
	}
	s.i += len(lit)
	return nil
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func (s *keyScanner) number() error {
	d, i := s.doc, s.i
	if d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		i = digits(d, i)
	default:
		return errJSONInvalid
	}
	if i < len(d) && d[i] == '.' {
		j := digits(d, i+1)
		if j == i+1 {
			return errJSONInvalid
		}
		i = j
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		j := digits(d, i)
		if j == i {
			return errJSONInvalid
		}
		i = j
	}
	s.i = i
	return nil
}

func digits(d []byte, i int) int {
	for i < len(d) && '0' <= d[i] && d[i] <= '9' {
		i++
	}
	return i
}

// str scans a string whose opening quote was consumed and returns its
// body. Like encoding/json it accepts invalid UTF-8, which decoding
// replaces with U+FFFD.
func (s *keyScanner) str() (span, bool, error) {
	d := s.doc
	start, plain := s.i, true
	for i := s.i; i < len(d); {
		switch c := d[i]; {
		case c == '"':
			s.i = i + 1
			return span{start, i}, plain, nil
		case c == '\\':
			plain = false
			if i+1 >= len(d) {
				return span{}, false, errJSONInvalid
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(d) || hex4(d[i+2:i+6]) < 0 {
					return span{}, false, errJSONInvalid
				}
				i += 6
			default:
				return span{}, false, errJSONInvalid
			}
		case c < 0x20:
			return span{}, false, errJSONInvalid
		case c >= utf8.RuneSelf:
			plain = false
			i++
		default:
			i++
		}
	}
	return span{}, false, errJSONInvalid
}

// hex4 decodes four hex digits, or returns -1.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// nextRune decodes the rune at body[i:] of a scanned string body as
// encoding/json unquotes it: escapes resolved, surrogate pairs joined, a
// lone surrogate or an invalid UTF-8 byte read as U+FFFD. It returns the
// index after it.
func nextRune(body []byte, i int) (rune, int) {
	c := body[i]
	if c >= utf8.RuneSelf {
		r, n := utf8.DecodeRune(body[i:])
		return r, i + n
	}
	if c != '\\' {
		return rune(c), i + 1
	}
	switch e := body[i+1]; e {
	case 'b':
		return '\b', i + 2
	case 'f':
		return '\f', i + 2
	case 'n':
		return '\n', i + 2
	case 'r':
		return '\r', i + 2
	case 't':
		return '\t', i + 2
	case 'u':
	default:
		return rune(e), i + 2
	}
	r := hex4(body[i+2 : i+6])
	i += 6
	if utf16.IsSurrogate(r) {
		if i+6 <= len(body) && body[i] == '\\' && body[i+1] == 'u' {
			if d := utf16.DecodeRune(r, hex4(body[i+2:i+6])); d != unicode.ReplacementChar {
				return d, i + 6
			}
		}
		return unicode.ReplacementChar, i
	}
	return r, i
}

// sameKey reports whether two keys collide (see keyScanner).
func (s *keyScanner) sameKey(a, b member) bool {
	ka, kb := s.bytes(a.key), s.bytes(b.key)
	if a.plain && b.plain {
		// For ASCII both relations are ASCII case-insensitivity.
		if len(ka) != len(kb) {
			return false
		}
		for i := range ka {
			if lowerASCII(ka[i]) != lowerASCII(kb[i]) {
				return false
			}
		}
		return true
	}
	return sameRunes(ka, kb, lowerEq) || sameRunes(ka, kb, foldEq)
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// sameRunes reports whether two string bodies have as many runes and eq
// holds for each pair.
func sameRunes(a, b []byte, eq func(r, q rune) bool) bool {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		var r, q rune
		r, i = nextRune(a, i)
		q, j = nextRune(b, j)
		if !eq(r, q) {
			return false
		}
	}
	return i == len(a) && j == len(b)
}

// lowerEq is the rune relation under which strings.ToLower makes two
// valid UTF-8 strings equal.
func lowerEq(r, q rune) bool { return r == q || unicode.ToLower(r) == unicode.ToLower(q) }

// foldEq is the rune relation of strings.EqualFold: r and q lie in one
// simple case folding orbit.
func foldEq(r, q rune) bool {
	if r == q {
		return true
	}
	if q < r {
		r, q = q, r
	}
	f := unicode.SimpleFold(r)
	for f != r && f < q {
		f = unicode.SimpleFold(f)
	}
	return f == q
}

// keySet holds the keys of one large object in both canonical forms.
type keySet struct {
	lower, fold map[string]struct{}
	buf         []rune
}

func newKeySet(s *keyScanner, ms []member) *keySet {
	k := &keySet{lower: make(map[string]struct{}, 2*len(ms)), fold: make(map[string]struct{}, 2*len(ms))}
	for _, m := range ms {
		k.add(s.bytes(m.key))
	}
	return k
}

// add records a key body and reports whether it was new.
func (k *keySet) add(body []byte) bool {
	k.buf = k.buf[:0]
	for i := 0; i < len(body); {
		var r rune
		r, i = nextRune(body, i)
		k.buf = append(k.buf, r)
	}
	lower := make([]rune, len(k.buf))
	fold := make([]rune, len(k.buf))
	for i, r := range k.buf {
		lower[i] = unicode.ToLower(r)
		fold[i] = minFold(r)
	}
	ls, fs := string(lower), string(fold)
	_, dupL := k.lower[ls]
	_, dupF := k.fold[fs]
	k.lower[ls], k.fold[fs] = struct{}{}, struct{}{}
	return !dupL && !dupF
}

// minFold returns the smallest rune of r's simple case folding orbit: two
// runes are foldEq exactly when their minFold is equal.
func minFold(r rune) rune {
	min := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f < min {
			min = f
		}
	}
	return min
}
