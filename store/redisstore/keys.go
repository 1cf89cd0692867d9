package redisstore

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/sessionkit/sessionkit"
)

// Key layout (see doc.go). A home is the hash-tagged group of keys that one
// Lua script may change together; tag is the text between the braces.

// anonTag is the home of an anonymous session and the locator of every
// session: it depends on the handle alone.
func anonTag(handle string) string { return "a:" + handle }

// subjectTag is the home of every session of one subject. The subject is
// hashed so that key names have a fixed size, carry no personal data and
// cannot contain braces.
func subjectTag(subject string) string {
	h := sha256.Sum256([]byte(subject))
	return "s:" + hex.EncodeToString(h[:16])
}

// homeTag is where a record with this subject and handle lives.
func homeTag(subject, handle string) string {
	if subject == "" {
		return anonTag(handle)
	}
	return subjectTag(subject)
}

type keys struct{ prefix string }

// home returns the common prefix of every key of a home, e.g. "sk:{s:ab12}:".
func (k keys) home(tag string) string   { return k.prefix + "{" + tag + "}:" }
func (k keys) rec(tag, h string) string { return k.home(tag) + "r:" + h }
func (k keys) act(tag, h string) string { return k.home(tag) + "a:" + h }
func (k keys) index(tag string) string  { return k.home(tag) + "i" }

// ptr is the key that maps a token hash to its session.
func (k keys) ptr(hash sessionkit.TokenHash) string {
	return k.prefix + "{t:" + hex.EncodeToString(hash[:]) + "}"
}

// copy is the key of the copy of the live or revoked record that carries
// hash, with its activity, kept on a single server only (see doc.go).
func (k keys) copy(hash sessionkit.TokenHash) string {
	return k.prefix + "{c:" + hex.EncodeToString(hash[:]) + "}"
}

// expiry is the sorted set of purge candidates used by DeleteExpired.
func (k keys) expiry() string { return k.prefix + "{x}:purge" }

// kv is the key of a KVStore value.
func (k keys) kv(key string) string { return k.prefix + "{k:" + hex.EncodeToString([]byte(key)) + "}" }

// ref names one session in a home. It is the value of a token pointer and a
// member of the expiry set: "<len(handle)>:<handle><tag>".
type ref struct{ handle, tag string }

func (r ref) String() string { return strconv.Itoa(len(r.handle)) + ":" + r.handle + r.tag }

var errRef = errors.New("redisstore: malformed reference")

// parseRef reverses ref.String.
func parseRef(s string) (ref, error) {
	i := strings.IndexByte(s, ':')
	if i <= 0 || i > 4 {
		return ref{}, errRef
	}
	n, err := strconv.Atoi(s[:i])
	if err != nil || n <= 0 || n > len(s)-i-1 {
		return ref{}, errRef
	}
	r := ref{handle: s[i+1 : i+1+n], tag: s[i+1+n:]}
	if r.tag == "" {
		return ref{}, errRef
	}
	return r, nil
}

// micros formats t as Unix microseconds for Lua, which compares numbers as
// doubles (exact below 2^53 µs, i.e. until year 2255). Zero means "never".
func micros(t time.Time) string {
	if t.IsZero() || t.UnixMicro() <= 0 {
		return "0"
	}
	return strconv.FormatInt(t.UnixMicro(), 10)
}

// encodeActivity writes the activity value: a text header the scripts read
// ("<unix sec> <nsec> <PurgeAt µs>|") followed by the exact binary fields.
func encodeActivity(a sessionkit.Activity) string {
	var sec, nsec int64
	if !a.LastSeenAt.IsZero() && a.LastSeenAt.Unix() > 0 {
		sec, nsec = a.LastSeenAt.Unix(), int64(a.LastSeenAt.Nanosecond())
	}
	b := make([]byte, 0, 64+len(a.LastClient.IP)+len(a.LastClient.UserAgent))
	b = strconv.AppendInt(b, sec, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, nsec, 10)
	b = append(b, ' ')
	b = append(b, micros(a.PurgeAt)...)
	b = append(b, '|')
	b = appendTime(b, a.LastSeenAt)
	b = appendTime(b, a.IdleDeadline)
	b = appendTime(b, a.PurgeAt)
	b = appendString(b, a.LastClient.IP)
	b = appendString(b, a.LastClient.UserAgent)
	return string(b)
}

var errActivity = errors.New("redisstore: malformed activity")

// decodeActivity reverses encodeActivity. It never panics.
func decodeActivity(s string) (sessionkit.Activity, error) {
	i := strings.IndexByte(s, '|')
	if i < 0 || i > 64 {
		return sessionkit.Activity{}, errActivity
	}
	b := []byte(s[i+1:])
	var a sessionkit.Activity
	var ok bool
	if a.LastSeenAt, b, ok = readTime(b); !ok {
		return a, errActivity
	}
	if a.IdleDeadline, b, ok = readTime(b); !ok {
		return a, errActivity
	}
	if a.PurgeAt, b, ok = readTime(b); !ok {
		return a, errActivity
	}
	if a.LastClient.IP, b, ok = readString(b); !ok {
		return a, errActivity
	}
	if a.LastClient.UserAgent, b, ok = readString(b); !ok || len(b) != 0 {
		return a, errActivity
	}
	return a, nil
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return binary.AppendVarint(b, 0)
	}
	return binary.AppendVarint(b, t.UnixNano())
}

func readTime(b []byte) (time.Time, []byte, bool) {
	v, n := binary.Varint(b)
	if n <= 0 {
		return time.Time{}, nil, false
	}
	if v == 0 {
		return time.Time{}, b[n:], true
	}
	return time.Unix(0, v).UTC(), b[n:], true
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func readString(b []byte) (string, []byte, bool) {
	l, n := binary.Uvarint(b)
	if n <= 0 || l > uint64(len(b)-n) {
		return "", nil, false
	}
	b = b[n:]
	return string(b[:l]), b[l:], true
}

var errCopy = errors.New("redisstore: malformed record copy")

// parseCopy splits a record copy, "<len(bytes)>:<record bytes><activity>",
// into a home holding a record (its state is not stored: a revoked record
// has no activity, so merging none changes nothing).
func parseCopy(s string) (home, error) {
	i := strings.IndexByte(s, ':')
	if i <= 0 || i > 10 {
		return home{}, errCopy
	}
	n, err := strconv.Atoi(s[:i])
	if err != nil || n < 0 || n > len(s)-i-1 {
		return home{}, errCopy
	}
	return home{state: "L", bytes: s[i+1 : i+1+n], act: s[i+1+n:]}, nil
}
