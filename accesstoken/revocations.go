package accesstoken

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/accesstoken/verify"
)

// Revocations is the issuer's revocation list. As a sessionkit.EventSink
// (add it to the Manager's Config.Events) it records the handle of every
// session that ends, which is the sid claim of its access tokens. Entries
// are kept for TTL, the longest an access token can live, and are streamed
// to remote verifiers by ServeHTTP. It is safe for concurrent use.
type Revocations struct {
	set verify.RevocationSet
	ttl time.Duration
	now func() time.Time

	mu     sync.Mutex
	log    []logEntry // in seq order
	seq    uint64
	notify chan struct{} // closed and replaced on every add
}

type logEntry struct {
	seq uint64
	r   verify.Revocation
}

// NewRevocations returns a list that keeps entries for ttl (the access
// token lifetime plus the verifiers' leeway). now is the clock; nil means
// time.Now.
func NewRevocations(ttl time.Duration, now func() time.Time) *Revocations {
	if now == nil {
		now = time.Now
	}
	r := &Revocations{ttl: ttl, now: now, notify: make(chan struct{})}
	r.set.Now = now
	return r
}

// Emit records the sessions that end. Rejections and other events are
// ignored.
func (r *Revocations) Emit(_ context.Context, e sessionkit.Event) {
	switch e.Type {
	case sessionkit.EventRevoked, sessionkit.EventLoggedOut, sessionkit.EventExpiredIdle,
		sessionkit.EventExpiredAbs, sessionkit.EventRefreshReused:
	default:
		return
	}
	if e.Handle == "" {
		return
	}
	r.Add(verify.Revocation{SessionID: e.Handle, Expires: r.now().Add(r.ttl)})
}

// RevokeSubject voids every access token of subject issued at or before
// now, e.g. after a password change.
func (r *Revocations) RevokeSubject(subject string) {
	now := r.now()
	r.Add(verify.Revocation{Subject: subject, NotBefore: now, Expires: now.Add(r.ttl)})
}

// Add records rv and wakes the streams.
func (r *Revocations) Add(rv verify.Revocation) {
	r.set.Add(rv)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	r.log = append(r.log, logEntry{r.seq, rv})
	if len(r.log) > 64 && !r.now().Before(r.log[0].r.Expires) {
		r.pruneLocked()
	}
	close(r.notify)
	r.notify = make(chan struct{})
}

func (r *Revocations) pruneLocked() {
	now := r.now()
	i := 0
	for i < len(r.log) && !now.Before(r.log[i].r.Expires) {
		i++
	}
	r.log = append(r.log[:0], r.log[i:]...)
}

// Check implements verify.Checker.
func (r *Revocations) Check(c *verify.Claims) error { return r.set.Check(c) }

// since returns the entries after seq still in force, the last seq, and a
// channel closed at the next add.
func (r *Revocations) since(seq uint64) ([]logEntry, uint64, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	var out []logEntry
	for _, e := range r.log {
		if e.seq > seq && now.Before(e.r.Expires) {
			out = append(out, e)
		}
	}
	return out, r.seq, r.notify
}

// Heartbeat is the interval of the stream's keep-alive comments.
const Heartbeat = 15 * time.Second

// ServeHTTP streams the list as server-sent events: every entry in force
// as "revoke" events, then a "ready" event, then each new entry as it is
// added, with a comment every Heartbeat to keep proxies from closing the
// connection. verify.RevocationFeed is the client. Authenticate the route:
// it reveals session handles.
func (r *Revocations) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	// The server's write timeout would cut the stream; lift it for this
	// response only.
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	entries, seq, wake := r.since(0)
	if err := writeEntries(w, entries); err != nil {
		return
	}
	fmt.Fprint(w, "event: ready\ndata: {}\n\n")
	fl.Flush()
	tick := time.NewTicker(Heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-req.Context().Done():
			return
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil {
				return
			}
			fl.Flush()
		case <-wake:
			entries, seq, wake = r.since(seq)
			if err := writeEntries(w, entries); err != nil {
				return
			}
			fl.Flush()
		}
	}
}

func writeEntries(w http.ResponseWriter, entries []logEntry) error {
	for _, e := range entries {
		b, err := json.Marshal(e.r)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "id: %d\nevent: revoke\ndata: %s\n\n", e.seq, b); err != nil {
			return err
		}
	}
	return nil
}
