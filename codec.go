package sessionkit

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"slices"
	"time"
)

// codecVersion is the first byte of every encoded record, so the format can
// change without misreading old records.
const codecVersion = 1

// EncodedTokenHashOffset is where the token hash starts in an encoded
// record: a store's server-side script can check a record's token without
// decoding it.
const EncodedTokenHashOffset = 2

// Flags after the version byte: parts that most records do not need are
// left out rather than written as zeros.
const (
	flagRefresh    = 1 << iota // the refresh state follows
	flagSameClient             // LastClient equals Client and is not written
	flagPersistent
	flagsKnown = flagRefresh | flagSameClient | flagPersistent
)

// ErrCodec reports bytes that are not an encoded record.
var ErrCodec = errors.New("sessionkit: invalid record encoding")

// MarshalBinary encodes the record compactly for stores that keep bytes. The
// encoding is deterministic: map keys are written in sorted order.
func (r *Record) MarshalBinary() ([]byte, error) {
	return r.AppendBinary(make([]byte, 0, 192+r.dataSize()))
}

// AppendBinary appends the encoding of r to b.
func (r *Record) AppendBinary(b []byte) ([]byte, error) {
	var flags byte
	hasRefresh := r.Refresh.Hash != (TokenHash{}) || r.Refresh.PrevHash != (TokenHash{}) ||
		!r.Refresh.RotatedAt.IsZero() || len(r.Refresh.Successor) > 0 || r.Refresh.Generation != 0 ||
		len(r.Refresh.Key) > 0
	if hasRefresh {
		flags |= flagRefresh
	}
	if r.LastClient == r.Client {
		flags |= flagSameClient
	}
	if r.Persistent {
		flags |= flagPersistent
	}
	b = append(b, codecVersion, flags)
	b = append(b, r.TokenHash[:]...)
	b = appendString(b, r.Handle)
	b = appendString(b, r.Subject)
	b = binary.AppendVarint(b, int64(r.AuthLevel))
	b = appendTime(b, r.CreatedAt)
	b = appendTime(b, r.AuthenticatedAt)
	b = appendTime(b, r.LastSeenAt)
	b = appendTime(b, r.IdleDeadline)
	b = appendTime(b, r.PurgeAt)
	if flags&flagSameClient == 0 {
		b = appendString(b, r.LastClient.IP)
		b = appendString(b, r.LastClient.UserAgent)
	}
	b = appendTime(b, r.AbsoluteDeadline)
	b = appendString(b, r.Client.IP)
	b = appendString(b, r.Client.UserAgent)
	b = binary.AppendUvarint(b, uint64(len(r.Data)))
	keys := make([]string, 0, len(r.Data))
	for k := range r.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = appendString(b, k)
		b = appendBytes(b, r.Data[k])
	}
	b = appendTime(b, r.RevokedAt)
	b = appendString(b, r.RevokedReason)
	if hasRefresh {
		b = append(b, r.Refresh.Hash[:]...)
		b = append(b, r.Refresh.PrevHash[:]...)
		b = appendTime(b, r.Refresh.RotatedAt)
		b = appendBytes(b, r.Refresh.Successor)
		b = binary.AppendUvarint(b, uint64(r.Refresh.Generation))
		b = appendBytes(b, r.Refresh.Key)
	}
	b = binary.AppendUvarint(b, r.Version)
	return b, nil
}

// UnmarshalBinary decodes a record written by MarshalBinary. It never
// panics; any malformed input returns an error wrapping ErrCodec.
func (r *Record) UnmarshalBinary(b []byte) error {
	d := decoder{b: b}
	if v := d.byte(); v != codecVersion {
		return ErrCodec
	}
	flags := d.byte()
	if flags&^flagsKnown != 0 {
		return ErrCodec
	}
	var out Record
	d.hash(&out.TokenHash)
	out.Handle = d.string()
	out.Subject = d.string()
	out.AuthLevel = int(d.varint())
	out.CreatedAt = d.time()
	out.AuthenticatedAt = d.time()
	out.LastSeenAt = d.time()
	out.IdleDeadline = d.time()
	out.PurgeAt = d.time()
	if flags&flagSameClient == 0 {
		out.LastClient.IP = d.string()
		out.LastClient.UserAgent = d.string()
	}
	out.AbsoluteDeadline = d.time()
	out.Persistent = flags&flagPersistent != 0
	out.Client.IP = d.string()
	out.Client.UserAgent = d.string()
	if flags&flagSameClient != 0 {
		out.LastClient = out.Client
	}
	n := d.uvarint()
	if n > uint64(len(d.b)) { // each entry takes at least two bytes
		return ErrCodec
	}
	if n > 0 {
		out.Data = make(map[string]json.RawMessage, n)
		for range n {
			k := d.string()
			v := d.bytes()
			if d.err {
				return ErrCodec
			}
			out.Data[k] = json.RawMessage(v)
		}
	}
	out.RevokedAt = d.time()
	out.RevokedReason = d.string()
	if flags&flagRefresh != 0 {
		d.hash(&out.Refresh.Hash)
		d.hash(&out.Refresh.PrevHash)
		out.Refresh.RotatedAt = d.time()
		if s := d.bytes(); len(s) > 0 {
			out.Refresh.Successor = s
		}
		out.Refresh.Generation = uint32(d.uvarint())
		if k := d.bytes(); len(k) > 0 {
			out.Refresh.Key = k
		}
	}
	out.Version = d.uvarint()
	if d.err || len(d.b) != 0 {
		return ErrCodec
	}
	*r = out
	return nil
}

func (r *Record) dataSize() int {
	n := 0
	for k, v := range r.Data {
		n += len(k) + len(v) + 4
	}
	return n
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendTime writes the zero time as 0 and any other time as Unix
// nanoseconds; the one instant this cannot tell from zero (the Unix epoch)
// never occurs in a session.
func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return binary.AppendVarint(b, 0)
	}
	return binary.AppendVarint(b, t.UnixNano())
}

// decoder reads the encoding; after the first error every read returns a
// zero value and err stays set, so callers check once at the end.
type decoder struct {
	b   []byte
	err bool
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.err = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = true
		d.b = nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = true
		d.b = nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

// raw returns the next length-prefixed run of bytes, still shared with
// the input.
func (d *decoder) raw() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = true
		d.b = nil
		return nil
	}
	s := d.b[:n]
	d.b = d.b[n:]
	return s
}

// bytes returns a copy, so a decoded record shares no memory with its
// encoding.
func (d *decoder) bytes() []byte { return append([]byte(nil), d.raw()...) }

func (d *decoder) string() string { return string(d.raw()) }

func (d *decoder) hash(h *TokenHash) {
	if len(d.b) < len(h) {
		d.err = true
		d.b = nil
		return
	}
	copy(h[:], d.b)
	d.b = d.b[len(h):]
}

func (d *decoder) time() time.Time {
	v := d.varint()
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, v).UTC()
}
