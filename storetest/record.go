package storetest

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/sessionkit/sessionkit"
)

// NewRecord returns a valid record with every field set, a random handle and
// token hash, created at now (truncated to microseconds). Its idle deadline
// is 30 minutes after now, its absolute deadline 12 hours after now and its
// PurgeAt one hour after the idle deadline. A non-empty subject makes it an
// authenticated session; an empty one an anonymous session. Version is 0,
// ready for Create.
func NewRecord(subject string, now time.Time) *sessionkit.Record {
	now = now.Truncate(time.Microsecond)
	r := &sessionkit.Record{
		Handle:    randomHandle(),
		TokenHash: randomHash(),
		Subject:   subject,
		CreatedAt: now,
		Activity: sessionkit.Activity{
			LastSeenAt:   now,
			IdleDeadline: now.Add(30 * time.Minute),
			PurgeAt:      now.Add(90 * time.Minute),
			LastClient:   sessionkit.Client{IP: "192.0.2.10", UserAgent: "storetest/1.0 (last)"},
		},
		AbsoluteDeadline: now.Add(12 * time.Hour),
		Persistent:       true,
		Client:           sessionkit.Client{IP: "192.0.2.1", UserAgent: "storetest/1.0"},
		Data: map[string]json.RawMessage{
			"cart":  json.RawMessage(`{"items":[1,2,3],"note":"caf\u00e9"}`),
			"theme": json.RawMessage(`"dark"`),
		},
	}
	if subject != "" {
		r.AuthLevel = 1
		r.AuthenticatedAt = now
		r.Refresh = sessionkit.RefreshState{
			Hash:       randomHash(),
			PrevHash:   randomHash(),
			RotatedAt:  now.Add(-time.Minute),
			Successor:  []byte{0x01, 0x02, 0x03, 0xfe},
			Generation: 3,
		}
	}
	return r
}

func randomHandle() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func randomHash() sessionkit.TokenHash {
	var b [32]byte
	rand.Read(b[:])
	return sha256.Sum256(b[:])
}

// diff lists the fields in which got differs from want; times are compared
// with Equal, byte slices by content (nil equals empty).
func diff(want, got *sessionkit.Record) []string {
	var d []string
	add := func(field string, w, g any) {
		d = append(d, fmt.Sprintf("%s: got %v, want %v", field, g, w))
	}
	if got == nil {
		return []string{"got nil record"}
	}
	if want.Handle != got.Handle {
		add("Handle", want.Handle, got.Handle)
	}
	if want.TokenHash != got.TokenHash {
		add("TokenHash", want.TokenHash, got.TokenHash)
	}
	if want.Subject != got.Subject {
		add("Subject", want.Subject, got.Subject)
	}
	if want.AuthLevel != got.AuthLevel {
		add("AuthLevel", want.AuthLevel, got.AuthLevel)
	}
	times := []struct {
		name string
		w, g time.Time
	}{
		{"CreatedAt", want.CreatedAt, got.CreatedAt},
		{"AuthenticatedAt", want.AuthenticatedAt, got.AuthenticatedAt},
		{"LastSeenAt", want.LastSeenAt, got.LastSeenAt},
		{"IdleDeadline", want.IdleDeadline, got.IdleDeadline},
		{"PurgeAt", want.PurgeAt, got.PurgeAt},
		{"AbsoluteDeadline", want.AbsoluteDeadline, got.AbsoluteDeadline},
		{"RevokedAt", want.RevokedAt, got.RevokedAt},
		{"Refresh.RotatedAt", want.Refresh.RotatedAt, got.Refresh.RotatedAt},
	}
	for _, tm := range times {
		if !tm.w.Equal(tm.g) {
			add(tm.name, tm.w, tm.g)
		}
	}
	if want.LastClient != got.LastClient {
		add("LastClient", want.LastClient, got.LastClient)
	}
	if want.Persistent != got.Persistent {
		add("Persistent", want.Persistent, got.Persistent)
	}
	if want.Client != got.Client {
		add("Client", want.Client, got.Client)
	}
	if !dataEqual(want.Data, got.Data) {
		add("Data", dataString(want.Data), dataString(got.Data))
	}
	if want.RevokedReason != got.RevokedReason {
		add("RevokedReason", want.RevokedReason, got.RevokedReason)
	}
	if want.Refresh.Hash != got.Refresh.Hash {
		add("Refresh.Hash", want.Refresh.Hash, got.Refresh.Hash)
	}
	if want.Refresh.PrevHash != got.Refresh.PrevHash {
		add("Refresh.PrevHash", want.Refresh.PrevHash, got.Refresh.PrevHash)
	}
	if !bytes.Equal(want.Refresh.Successor, got.Refresh.Successor) {
		add("Refresh.Successor", want.Refresh.Successor, got.Refresh.Successor)
	}
	if want.Refresh.Generation != got.Refresh.Generation {
		add("Refresh.Generation", want.Refresh.Generation, got.Refresh.Generation)
	}
	if want.Version != got.Version {
		add("Version", want.Version, got.Version)
	}
	return d
}

func dataEqual(a, b map[string]json.RawMessage) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

func dataString(m map[string]json.RawMessage) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%s", k, m[k])
	}
	b.WriteByte('}')
	return b.String()
}

// deepClone copies r including the bytes of every Data value, so the copy
// stays unchanged whatever is done to r.
func deepClone(r *sessionkit.Record) *sessionkit.Record {
	c := r.Clone()
	for k, v := range c.Data {
		c.Data[k] = append(json.RawMessage(nil), v...)
	}
	return c
}
