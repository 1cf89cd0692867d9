package eventlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bucket layout of a Bolt history:
//
//	events:  key (8-byte big-endian UnixNano of the event time, then the
//	         entry's 4 random ID bytes) -> JSON entry. Keys sort by time, so
//	         the bucket is its own time index and pruning walks it from the
//	         start: O(pruned).
//	handle:  uvarint(len) handle key -> empty
//	subject: uvarint(len) subject key -> empty
//	type:    uvarint(len) type key -> empty
//	meta:    "count" -> uint64, the number of events
var (
	bktEvents  = []byte("events")
	bktHandle  = []byte("handle")
	bktSubject = []byte("subject")
	bktType    = []byte("type")
	bktMeta    = []byte("meta")
	keyCount   = []byte("count")
)

// Bolt is a History in its own bbolt file, separate from any session store.
type Bolt struct {
	db   *bolt.DB
	opts Options
}

// OpenBolt opens (creating if needed) the history file at path, e.g.
// <data-dir>/events.db.
func OpenBolt(path string, o Options) (*Bolt, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %v", ErrBackend, path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bktEvents, bktHandle, bktSubject, bktType, bktMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("%w: %v", ErrBackend, err)
	}
	return &Bolt{db: db, opts: o.withDefaults()}, nil
}

func eventKey(e *Entry) []byte {
	k := make([]byte, 12)
	binary.BigEndian.PutUint64(k, uint64(e.Time.UnixNano()))
	if id, err := hex.DecodeString(e.ID); err == nil && len(id) == 12 {
		copy(k[8:], id[8:])
	}
	return k
}

func indexPrefix(v string) []byte {
	p := binary.AppendUvarint(nil, uint64(len(v)))
	return append(p, v...)
}

func indexKey(v string, key []byte) []byte { return append(indexPrefix(v), key...) }

// Append stores entries and then enforces MaxEvents.
func (b *Bolt) Append(_ context.Context, entries []Entry) error {
	err := b.db.Update(func(tx *bolt.Tx) error {
		ev := tx.Bucket(bktEvents)
		meta := tx.Bucket(bktMeta)
		count := getCount(meta)
		for i := range entries {
			e := &entries[i]
			key := eventKey(e)
			body, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if ev.Get(key) == nil {
				count++
			}
			if err := ev.Put(key, body); err != nil {
				return err
			}
			if err := b.index(tx, e, key, true); err != nil {
				return err
			}
		}
		// Enforce the cap from the oldest end.
		if count > uint64(b.opts.MaxEvents) {
			n, err := b.removeOldest(tx, int(count-uint64(b.opts.MaxEvents)), time.Time{})
			if err != nil {
				return err
			}
			count -= uint64(n)
		}
		return putCount(meta, count)
	})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBackend, err)
	}
	return nil
}

// removeOldest removes up to max of the oldest events, only those before
// cutoff unless it is zero. Its cost is proportional to what it removes.
func (b *Bolt) removeOldest(tx *bolt.Tx, max int, cutoff time.Time) (int, error) {
	ev := tx.Bucket(bktEvents)
	var keys, bodies [][]byte
	c := ev.Cursor()
	for k, v := c.First(); k != nil && len(keys) < max; k, v = c.Next() {
		if !cutoff.IsZero() && int64(binary.BigEndian.Uint64(k[:8])) >= cutoff.UnixNano() {
			break
		}
		keys = append(keys, bytes.Clone(k))
		bodies = append(bodies, bytes.Clone(v))
	}
	for i, k := range keys {
		var e Entry
		if err := json.Unmarshal(bodies[i], &e); err == nil {
			if err := b.index(tx, &e, k, false); err != nil {
				return 0, err
			}
		}
		if err := ev.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// index adds or removes e's index entries.
func (b *Bolt) index(tx *bolt.Tx, e *Entry, key []byte, add bool) error {
	for _, ix := range []struct {
		bucket []byte
		value  string
	}{{bktHandle, e.Handle}, {bktSubject, e.Subject}, {bktType, string(e.Type)}} {
		if ix.value == "" {
			continue
		}
		bk := tx.Bucket(ix.bucket)
		var err error
		if add {
			err = bk.Put(indexKey(ix.value, key), nil)
		} else {
			err = bk.Delete(indexKey(ix.value, key))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func getCount(meta *bolt.Bucket) uint64 {
	v := meta.Get(keyCount)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func putCount(meta *bolt.Bucket, n uint64) error {
	return meta.Put(keyCount, binary.BigEndian.AppendUint64(nil, n))
}

// pruneBatch bounds one pruning transaction, so writers are not held up.
const pruneBatch = 1000

// Prune removes events older than the retention, in batches.
func (b *Bolt) Prune(_ context.Context) (int, error) {
	cutoff := b.opts.Now().Add(-b.opts.Retention)
	total := 0
	for {
		var n int
		err := b.db.Update(func(tx *bolt.Tx) error {
			var err error
			n, err = b.removeOldest(tx, pruneBatch, cutoff)
			if err != nil {
				return err
			}
			meta := tx.Bucket(bktMeta)
			c := getCount(meta)
			return putCount(meta, c-min(c, uint64(n)))
		})
		if err != nil {
			return total, fmt.Errorf("%w: %v", ErrBackend, err)
		}
		total += n
		if n < pruneBatch {
			return total, nil
		}
	}
}

// Query reads an index (handle, subject or type) backwards from its newest
// key, or the events bucket when q names none of them.
func (b *Bolt) Query(_ context.Context, q Query) ([]Entry, error) {
	cutoff := b.opts.Now().Add(-b.opts.Retention)
	if q.Since.Before(cutoff) {
		q.Since = cutoff
	}
	limit := q.limit()
	var out []Entry
	err := b.db.View(func(tx *bolt.Tx) error {
		ev := tx.Bucket(bktEvents)
		var (
			bucket []byte
			value  string
		)
		switch {
		case q.Handle != "":
			bucket, value = bktHandle, q.Handle
		case q.Subject != "":
			bucket, value = bktSubject, q.Subject
		case q.Type != "":
			bucket, value = bktType, string(q.Type)
		}
		// scanned bounds the work of a query whose filters reject most
		// events.
		scanned := 0
		visit := func(key, body []byte) bool {
			scanned++
			if len(key) >= 8 && int64(binary.BigEndian.Uint64(key[:8])) < q.Since.UnixNano() {
				return false
			}
			if body == nil {
				return true
			}
			var e Entry
			if json.Unmarshal(body, &e) == nil && q.match(&e) {
				out = append(out, e)
			}
			return len(out) < limit && scanned < 50*MaxQueryLimit
		}
		if bucket == nil {
			c := ev.Cursor()
			for k, v := c.Last(); k != nil; k, v = c.Prev() {
				if !visit(k, v) {
					break
				}
			}
			return nil
		}
		prefix := indexPrefix(value)
		c := tx.Bucket(bucket).Cursor()
		// Position after the last key with the prefix.
		k, _ := c.Seek(append(bytes.Clone(prefix), bytes.Repeat([]byte{0xff}, 13)...))
		if k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Prev() {
			key := k[len(prefix):]
			if !visit(key, ev.Get(key)) {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBackend, err)
	}
	reverse(out)
	return out, nil
}

// Len returns the number of events stored.
func (b *Bolt) Len() int {
	var n uint64
	b.db.View(func(tx *bolt.Tx) error { n = getCount(tx.Bucket(bktMeta)); return nil })
	return int(n)
}

// Close closes the file.
func (b *Bolt) Close() error { return b.db.Close() }
