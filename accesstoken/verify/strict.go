package verify

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// parts is a compact JWS split and decoded, before any signature check.
type parts struct {
	header, payload, sig []byte
}

// scratch is the per-call working memory of Verify: the decoded parts and
// the key scanners' member lists. It is pooled, so nothing that outlives a
// call may point into it.
type scratch struct {
	buf     []byte
	hdr     keyScanner
	payload keyScanner
}

var scratchPool = sync.Pool{New: func() any {
	return &scratch{
		hdr:     keyScanner{members: make([]member, 0, 16)},
		payload: keyScanner{members: make([]member, 0, 32)},
	}
}}

// maxPooledBuf keeps a scratch that decoded an unusually large token out of
// the pool.
const maxPooledBuf = 16 << 10

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

func putScratch(s *scratch) {
	if cap(s.buf) > maxPooledBuf || cap(s.payload.members) > 256 || cap(s.hdr.members) > 256 {
		return
	}
	s.hdr.doc, s.payload.doc = nil, nil
	scratchPool.Put(s)
}

// split checks the shape of a compact JWS and decodes its three parts into
// s.buf. Each part must be canonical base64url without padding, so one
// token has exactly one spelling.
func (s *scratch) split(token string) (parts, error) {
	var p parts
	h, rest, ok1 := strings.Cut(token, ".")
	pl, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(sig, ".") {
		return p, fmt.Errorf("%w: not a compact JWS", ErrMalformed)
	}
	n := b64.DecodedLen(len(h)) + b64.DecodedLen(len(pl)) + b64.DecodedLen(len(sig))
	if cap(s.buf) < n {
		s.buf = make([]byte, n)
	}
	buf := s.buf[:n]
	var err error
	if p.header, buf, err = decodePart(buf, h); err != nil {
		return p, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	if p.payload, buf, err = decodePart(buf, pl); err != nil {
		return p, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	if p.sig, _, err = decodePart(buf, sig); err != nil {
		return p, fmt.Errorf("%w: signature: %v", ErrMalformed, err)
	}
	if len(p.header) == 0 || len(p.payload) == 0 || len(p.sig) == 0 {
		return p, fmt.Errorf("%w: empty part", ErrMalformed)
	}
	return p, nil
}

var b64 = base64.RawURLEncoding.Strict()

var (
	errNotBase64    = errors.New("not base64url")
	errNonCanonical = errors.New("non-canonical base64url")
)

// decodePart decodes s into the front of buf and returns the decoded bytes
// and the rest of buf. The strict decoder refuses padding, characters
// outside the URL alphabet and non-zero trailing bits; the only leniency
// left is that it skips CR and LF, which the length check catches: a
// canonical encoding of n bytes is exactly EncodedLen(n) characters long.
// Together that makes decoding a bijection, without encoding again.
func decodePart(buf []byte, s string) (out, rest []byte, err error) {
	n, err := b64.Decode(buf, []byte(s))
	if err != nil {
		return nil, buf, errNotBase64
	}
	if b64.EncodedLen(n) != len(s) {
		return nil, buf, errNonCanonical
	}
	return buf[:n:n], buf[n:], nil
}
