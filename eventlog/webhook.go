package eventlog

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessionkit/sessionkit"
)

// Standard Webhooks header names.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// Errors of secrets and signature verification.
var (
	ErrSecret         = errors.New("eventlog: webhook secret must be whsec_ followed by base64 of 24 to 64 bytes")
	ErrSignature      = errors.New("eventlog: webhook signature does not match")
	ErrTimestamp      = errors.New("eventlog: webhook timestamp missing or outside the tolerance")
	ErrMissingHeaders = errors.New("eventlog: webhook headers missing")
)

// DefaultTolerance is how far a webhook's timestamp may be from the
// receiver's clock; it bounds replays.
const DefaultTolerance = 5 * time.Minute

const maxSignatureHeader = 4096

// ParseSecret decodes a "whsec_<base64>" secret.
func ParseSecret(s string) ([]byte, error) {
	b64, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return nil, ErrSecret
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) < 24 || len(key) > 64 {
		return nil, ErrSecret
	}
	return key, nil
}

// NewSecret returns a fresh random secret in the whsec_ form.
func NewSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// Sign returns the webhook-signature value for a message: "v1," and the
// base64 HMAC-SHA256 of "id.timestamp.body" under key.
func Sign(key []byte, id string, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write(strconv.AppendInt(nil, ts, 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Verify checks a received webhook: the timestamp within tolerance of now
// (DefaultTolerance if zero) and one of the space-separated v1 signatures
// matching, compared in constant time. Receivers must verify the raw body
// before parsing it.
func Verify(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	key, err := ParseSecret(secret)
	if err != nil {
		return err
	}
	id, tsText, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || tsText == "" || sigs == "" || len(sigs) > maxSignatureHeader {
		return ErrMissingHeaders
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil || now.Sub(time.Unix(ts, 0)).Abs() > tolerance {
		return ErrTimestamp
	}
	want := Sign(key, id, ts, body)
	for sig := range strings.FieldsSeq(sigs) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return nil
		}
	}
	return ErrSignature
}

// WebhookOptions configure Webhooks. URLs and Secret are required.
type WebhookOptions struct {
	URLs []string
	// Secret signs every message: "whsec_" and base64 of the key.
	Secret string
	// Types limits the events sent; empty sends all.
	Types []sessionkit.EventType
	// Workers deliver in parallel. Default 2.
	Workers int
	// QueueSize bounds the deliveries waiting. Default 1024; beyond it
	// events are dropped and counted.
	QueueSize int
	// MaxAttempts bounds the tries of one delivery. Default 5.
	MaxAttempts int
	// BaseDelay and MaxDelay shape the exponential backoff between tries
	// (with full jitter). Defaults 1s and 1m.
	BaseDelay, MaxDelay time.Duration
	// Timeout bounds one try. Default 10s.
	Timeout time.Duration
	// Client sends the requests. Default: a client with Timeout.
	Client *http.Client
	// Now stamps messages. Default time.Now.
	Now func() time.Time
}

// Payload is the JSON body of a webhook: the Standard Webhooks envelope with
// the event as data.
type Payload struct {
	Type      string    `json:"type"` // "session.<event type>"
	Timestamp time.Time `json:"timestamp"`
	Data      Entry     `json:"data"`
}

type delivery struct {
	url  string
	id   string
	body []byte
}

// Webhooks delivers events to HTTP endpoints in the background. Emit never
// blocks.
type Webhooks struct {
	opts  WebhookOptions
	key   []byte
	types map[sessionkit.EventType]bool
	queue chan delivery

	mu     sync.RWMutex
	closed bool
	stop   chan struct{}
	wg     sync.WaitGroup

	delivered, failed, dropped, retries atomic.Uint64
}

// ErrNoURL is returned by NewWebhooks without URLs.
var ErrNoURL = errors.New("eventlog: no webhook URL")

// NewWebhooks starts the delivery workers. Close stops them.
func NewWebhooks(o WebhookOptions) (*Webhooks, error) {
	if len(o.URLs) == 0 {
		return nil, ErrNoURL
	}
	for _, u := range o.URLs {
		if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
			return nil, fmt.Errorf("eventlog: webhook URL %q must be http or https", u)
		}
	}
	key, err := ParseSecret(o.Secret)
	if err != nil {
		return nil, err
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 1024
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.BaseDelay <= 0 {
		o.BaseDelay = time.Second
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = time.Minute
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: o.Timeout}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	w := &Webhooks{opts: o, key: key, queue: make(chan delivery, o.QueueSize), stop: make(chan struct{})}
	if len(o.Types) > 0 {
		w.types = make(map[sessionkit.EventType]bool)
		for _, t := range o.Types {
			w.types[t] = true
		}
	}
	for range o.Workers {
		w.wg.Add(1)
		go w.work()
	}
	return w, nil
}

// Emit queues e for every URL, dropping (and counting) what does not fit.
func (w *Webhooks) Emit(_ context.Context, e sessionkit.Event) {
	if w.types != nil && !w.types[e.Type] {
		return
	}
	ent := NewEntry(e, w.opts.Now())
	body, err := json.Marshal(Payload{Type: "session." + string(e.Type), Timestamp: ent.Time.UTC(), Data: ent})
	if err != nil {
		return
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	for _, u := range w.opts.URLs {
		if w.closed {
			w.dropped.Add(1)
			continue
		}
		select {
		case w.queue <- delivery{url: u, id: "msg_" + ent.ID, body: body}:
		default:
			w.dropped.Add(1)
		}
	}
}

// WebhookStats counts deliveries.
type WebhookStats struct {
	Delivered, Failed, Dropped, Retries uint64
}

// Stats returns the counts since start. Failed deliveries exhausted their
// attempts; dropped ones never got a place in the queue.
func (w *Webhooks) Stats() WebhookStats {
	return WebhookStats{Delivered: w.delivered.Load(), Failed: w.failed.Load(), Dropped: w.dropped.Load(), Retries: w.retries.Load()}
}

// Close stops the workers, abandoning retries and queued deliveries.
func (w *Webhooks) Close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	close(w.stop)
	w.mu.Unlock()
	w.wg.Wait()
}

func (w *Webhooks) work() {
	defer w.wg.Done()
	for {
		select {
		case <-w.stop:
			return
		case d := <-w.queue:
			w.deliver(d)
		}
	}
}

func (w *Webhooks) deliver(d delivery) {
	for attempt := 1; ; attempt++ {
		if w.try(d) {
			w.delivered.Add(1)
			return
		}
		if attempt >= w.opts.MaxAttempts {
			w.failed.Add(1)
			return
		}
		w.retries.Add(1)
		t := time.NewTimer(w.backoff(attempt))
		select {
		case <-w.stop:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// backoff is full jitter: uniform in [0, min(MaxDelay, BaseDelay*2^(n-1))].
func (w *Webhooks) backoff(attempt int) time.Duration {
	ceil := w.opts.MaxDelay
	if attempt < 31 {
		if d := w.opts.BaseDelay << (attempt - 1); d > 0 && d < ceil {
			ceil = d
		}
	}
	n, err := rand.Int(rand.Reader, big.NewInt(int64(ceil)+1))
	if err != nil {
		return ceil
	}
	return time.Duration(n.Int64())
}

// try sends one request; a 2xx answer is success.
func (w *Webhooks) try(d delivery) bool {
	ctx, cancel := context.WithTimeout(context.Background(), w.opts.Timeout)
	defer cancel()
	go func() {
		select {
		case <-w.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url, bytes.NewReader(d.body))
	if err != nil {
		return false
	}
	ts := w.opts.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderID, d.id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(w.key, d.id, ts, d.body))
	resp, err := w.opts.Client.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 300
}
