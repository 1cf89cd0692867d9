package verify

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Revocation is one entry of a revocation list. It names a session (sid),
// a token (jti), or a subject whose tokens issued before NotBefore are
// void. An entry is kept until Expires, when every token it could match has
// expired anyway.
type Revocation struct {
	SessionID string    `json:"sid,omitempty"`
	TokenID   string    `json:"jti,omitempty"`
	Subject   string    `json:"sub,omitempty"`
	NotBefore time.Time `json:"not_before,omitzero"`
	Expires   time.Time `json:"expires"`
}

// RevocationSet holds revocations in memory and checks claims against
// them. It is safe for concurrent use. The zero value is ready to use.
type RevocationSet struct {
	// Now is the clock. Default time.Now.
	Now func() time.Time

	mu       sync.RWMutex
	sids     map[string]time.Time
	jtis     map[string]time.Time
	subjects map[string]Revocation
	adds     int
}

func (s *RevocationSet) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Add records r. Expired entries are pruned now and then as a side effect.
func (s *RevocationSet) Add(r Revocation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sids == nil {
		s.sids = make(map[string]time.Time)
		s.jtis = make(map[string]time.Time)
		s.subjects = make(map[string]Revocation)
	}
	if r.SessionID != "" && r.Expires.After(s.sids[r.SessionID]) {
		s.sids[r.SessionID] = r.Expires
	}
	if r.TokenID != "" && r.Expires.After(s.jtis[r.TokenID]) {
		s.jtis[r.TokenID] = r.Expires
	}
	if r.Subject != "" && !r.NotBefore.IsZero() {
		old, ok := s.subjects[r.Subject]
		if !ok || r.NotBefore.After(old.NotBefore) {
			s.subjects[r.Subject] = r
		}
	}
	if s.adds++; s.adds%256 == 0 {
		s.pruneLocked(s.now())
	}
}

// Prune drops entries that expired.
func (s *RevocationSet) Prune() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked(s.now())
}

func (s *RevocationSet) pruneLocked(now time.Time) {
	for k, exp := range s.sids {
		if !now.Before(exp) {
			delete(s.sids, k)
		}
	}
	for k, exp := range s.jtis {
		if !now.Before(exp) {
			delete(s.jtis, k)
		}
	}
	for k, r := range s.subjects {
		if !now.Before(r.Expires) {
			delete(s.subjects, k)
		}
	}
}

// Len returns the number of entries held.
func (s *RevocationSet) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.sids) + len(s.jtis) + len(s.subjects)
}

// Check returns an error wrapping ErrRevoked if c's session or token was
// revoked, or its subject's tokens issued before c's iat were.
func (s *RevocationSet) Check(c *Claims) error {
	now := s.now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if exp, ok := s.sids[c.SessionID]; ok && now.Before(exp) {
		return fmt.Errorf("%w: session ended", ErrRevoked)
	}
	if exp, ok := s.jtis[c.ID]; ok && now.Before(exp) {
		return fmt.Errorf("%w: token revoked", ErrRevoked)
	}
	if r, ok := s.subjects[c.Subject]; ok && now.Before(r.Expires) && !c.IssuedAt.After(r.NotBefore) {
		return fmt.Errorf("%w: subject's tokens revoked", ErrRevoked)
	}
	return nil
}

// RevocationFeed keeps a RevocationSet up to date from a server-sent event
// stream (sessiond's GET /v1/tokens/revocations): each "revoke" event
// carries one Revocation as JSON. On connecting the server first sends
// every entry still in force, then "ready", then new entries as they
// happen. The feed reconnects after errors.
type RevocationFeed struct {
	URL    string
	APIKey string // sent as Authorization: Bearer
	Set    *RevocationSet
	Client *http.Client // default http.DefaultClient (no timeout: the stream is long-lived)
	// RetryDelay is the pause before reconnecting. Default 1s.
	RetryDelay time.Duration

	readyOnce sync.Once
	ready     chan struct{}
	mu        sync.Mutex
}

// Ready is closed once the first snapshot has been applied.
func (f *RevocationFeed) Ready() <-chan struct{} { return f.readyChan() }

func (f *RevocationFeed) readyChan() chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ready == nil {
		f.ready = make(chan struct{})
	}
	return f.ready
}

// Run follows the stream until ctx is done.
func (f *RevocationFeed) Run(ctx context.Context) error {
	delay := f.RetryDelay
	if delay <= 0 {
		delay = time.Second
	}
	for {
		err := f.follow(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		_ = err // the stream ended or failed; reconnect after a pause
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// maxEventBytes bounds one line of the stream.
const maxEventBytes = 64 << 10

func (f *RevocationFeed) follow(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.URL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if f.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+f.APIKey)
	}
	client := f.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("verify: revocation stream answered %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 4096), maxEventBytes)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			event = ""
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(line[len("event:"):])
			if event == "ready" {
				f.markReady()
			}
		case strings.HasPrefix(line, "data:") && event == "revoke":
			var r Revocation
			if err := json.Unmarshal([]byte(strings.TrimSpace(line[len("data:"):])), &r); err != nil {
				return fmt.Errorf("verify: revocation stream: %w", err)
			}
			f.Set.Add(r)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return errors.New("verify: revocation stream closed")
}

func (f *RevocationFeed) markReady() {
	ch := f.readyChan()
	f.readyOnce.Do(func() { close(ch) })
}
