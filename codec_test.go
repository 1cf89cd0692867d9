package sessionkit

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
)

func sampleRecord() *Record {
	now := time.Date(2026, 11, 26, 10, 0, 0, 123456789, time.UTC)
	return &Record{
		Handle: "h_abc", TokenHash: TokenHash{1, 2, 3}, Subject: "alice", AuthLevel: 2,
		CreatedAt: now, AuthenticatedAt: now.Add(time.Second),
		Activity: Activity{
			LastSeenAt: now.Add(time.Minute), IdleDeadline: now.Add(16 * time.Minute),
			PurgeAt: now.Add(2 * time.Hour), LastClient: Client{IP: "10.0.0.2", UserAgent: "UA 2"},
		},
		AbsoluteDeadline: now.Add(8 * time.Hour), Persistent: true,
		Client: Client{IP: "10.0.0.1", UserAgent: "UA\n1"},
		Data:   map[string]json.RawMessage{"visits": json.RawMessage(`3`), "name": json.RawMessage(`"Alice"`)},
		Refresh: RefreshState{Hash: TokenHash{9}, PrevHash: TokenHash{8}, RotatedAt: now,
			Successor: []byte{1, 2, 3}, Generation: 7, Key: []byte{4, 5, 6}},
		RevokedAt: now.Add(time.Hour), RevokedReason: "logout",
		Version: 42,
	}
}

func TestRecordBinaryRoundTrip(t *testing.T) {
	tests := map[string]*Record{
		"full":  sampleRecord(),
		"empty": {},
		"anonymous": {Handle: "x", CreatedAt: time.Unix(1700000000, 0).UTC(),
			AbsoluteDeadline: time.Unix(1700028800, 0).UTC()},
	}
	for name, rec := range tests {
		t.Run(name, func(t *testing.T) {
			b, err := rec.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var got Record
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(&got, rec) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, *rec)
			}
			again, _ := got.MarshalBinary()
			if !bytes.Equal(again, b) {
				t.Error("encoding is not deterministic")
			}
		})
	}
}

func TestRecordUnmarshalRejectsCorruption(t *testing.T) {
	good, _ := sampleRecord().MarshalBinary()
	tests := map[string][]byte{
		"nil":           nil,
		"wrong version": append([]byte{99}, good[1:]...),
		"truncated":     good[:len(good)-1],
		"trailing":      append(append([]byte(nil), good...), 0),
		"huge length":   {codecVersion, 0xff, 0xff, 0xff, 0xff, 0x0f},
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			var r Record
			if err := r.UnmarshalBinary(b); !errors.Is(err, ErrCodec) {
				t.Fatalf("err = %v, want ErrCodec", err)
			}
		})
	}
}

func FuzzRecordUnmarshal(f *testing.F) {
	good, _ := sampleRecord().MarshalBinary()
	f.Add(good)
	f.Add([]byte{codecVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Record
		if err := r.UnmarshalBinary(b); err != nil {
			return
		}
		// Whatever decodes must encode back to a record that decodes the same.
		again, err := r.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var r2 Record
		if err := r2.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatal("decode/encode/decode changed the record")
		}
	})
}

func BenchmarkRecordMarshal(b *testing.B) {
	rec := sampleRecord()
	b.ReportAllocs()
	for b.Loop() {
		rec.MarshalBinary()
	}
}

func BenchmarkRecordUnmarshal(b *testing.B) {
	enc, _ := sampleRecord().MarshalBinary()
	b.ReportAllocs()
	for b.Loop() {
		var r Record
		r.UnmarshalBinary(enc)
	}
}

func TestRecordEncodingLeavesOutUnusedParts(t *testing.T) {
	full := sampleRecord()
	plain := sampleRecord()
	plain.Refresh = RefreshState{}
	plain.LastClient = plain.Client
	a, _ := full.MarshalBinary()
	b, _ := plain.MarshalBinary()
	// Two hashes and the second client are not written for a plain record.
	if saved := len(a) - len(b); saved < 64+len(full.LastClient.IP)+len(full.LastClient.UserAgent) {
		t.Fatalf("plain record %d bytes, full %d", len(b), len(a))
	}
	var got Record
	if err := got.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(&got, plain) {
		t.Fatalf("round trip of the plain record: %v\n got %+v\nwant %+v", err, got, *plain)
	}
}

func TestEncodedTokenHashOffset(t *testing.T) {
	rec := sampleRecord()
	b, _ := rec.MarshalBinary()
	if !bytes.Equal(b[EncodedTokenHashOffset:EncodedTokenHashOffset+len(rec.TokenHash)], rec.TokenHash[:]) {
		t.Fatal("the token hash is not at EncodedTokenHashOffset")
	}
}
