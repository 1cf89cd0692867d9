package anomaly

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessionkit/sessionkit"
)

// Actor names the engine as the cause of the events it raises and the
// actions it takes. The engine ignores events with this actor, so it never
// reacts to itself.
const Actor = "anomaly-engine"

// Rule names: the Reason of the anomaly events the engine raises.
const (
	RuleImpossibleTravel = "impossible_travel"
	RuleTokenGuessing    = "token_guessing"
	RuleRefreshReuse     = "refresh_reuse"
	RuleLoginSurge       = "login_surge"
	RuleNewDevice        = "new_device"
)

// Action is what the engine does to a session when a rule fires.
type Action int

const (
	// Alert only raises the anomaly event.
	Alert Action = iota
	// StepUp lowers the session's auth level to Config.StepUpLevel, so the
	// application asks the user to authenticate again.
	StepUp
	// Revoke ends the session.
	Revoke
	// Off disables the rule.
	Off
)

// ParseAction parses "alert", "step-up", "revoke" or "off".
func ParseAction(s string) (Action, error) {
	switch s {
	case "alert", "":
		return Alert, nil
	case "step-up", "stepup":
		return StepUp, nil
	case "revoke":
		return Revoke, nil
	case "off":
		return Off, nil
	}
	return Alert, fmt.Errorf("anomaly: unknown action %q (alert, step-up, revoke, off)", s)
}

func (a Action) String() string {
	switch a {
	case StepUp:
		return "step-up"
	case Revoke:
		return "revoke"
	case Off:
		return "off"
	}
	return "alert"
}

// Config configures an Engine. The zero value enables every rule with
// Alert (and the token-guessing block) and bounded default state.
type Config struct {
	// Binding is the action on the core's ip_change and user_agent_change
	// anomalies (which the core already reported; no second event is
	// raised).
	Binding Action

	// Travel: one session seen from two networks (TravelIPv4Prefix /
	// TravelIPv6Prefix bits, defaults 16 and 32: coarser than the core's
	// binding) within TravelWindow (default 10m).
	Travel           Action
	TravelWindow     time.Duration
	TravelIPv4Prefix int
	TravelIPv6Prefix int

	// Guessing configures the token-guessing limiter. GuessingAlert
	// controls only the alert: the block applies whenever Limiter is in
	// use. Use Off to stop feeding the limiter.
	Guessing      Action
	GuessingLimit LimiterOptions

	// RefreshReuse is the action on a reused refresh token.
	RefreshReuse Action

	// Surge: a subject's logins in one SurgeInterval (default 1h) at least
	// SurgeMinCount (default 10) and above SurgeMultiplier (default 5)
	// times its EWMA baseline (smoothing SurgeAlpha, default 0.3).
	Surge           Action
	SurgeInterval   time.Duration
	SurgeMinCount   int
	SurgeMultiplier float64
	SurgeAlpha      float64

	// NewDevice: a login from a device (User-Agent family and network of
	// DeviceIPv4Prefix / DeviceIPv6Prefix bits, defaults 24 and 48) the
	// subject has not used before. Up to DevicesPerSubject (default 16)
	// devices are remembered per subject; the first login of a subject
	// the engine knows nothing of raises nothing.
	NewDevice         Action
	DeviceIPv4Prefix  int
	DeviceIPv6Prefix  int
	DevicesPerSubject int

	// StepUpLevel is the auth level StepUp lowers to. Default 0.
	StepUpLevel int

	// MaxSessions and MaxSubjects bound the per-session and per-subject
	// state. Defaults 100,000 each.
	MaxSessions int
	MaxSubjects int
	// QueueSize bounds the findings waiting for the worker. Default 1024;
	// beyond it findings are dropped and counted.
	QueueSize int

	// Now is the clock. Default time.Now.
	Now func() time.Time
	// OnError receives errors of actions. Default: ignored.
	OnError func(error)
}

func (c Config) withDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	defi := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.TravelWindow, 10*time.Minute)
	defi(&c.TravelIPv4Prefix, 16)
	defi(&c.TravelIPv6Prefix, 32)
	def(&c.SurgeInterval, time.Hour)
	defi(&c.SurgeMinCount, 10)
	if c.SurgeMultiplier <= 0 {
		c.SurgeMultiplier = 5
	}
	if c.SurgeAlpha <= 0 || c.SurgeAlpha > 1 {
		c.SurgeAlpha = 0.3
	}
	defi(&c.DeviceIPv4Prefix, 24)
	defi(&c.DeviceIPv6Prefix, 48)
	defi(&c.DevicesPerSubject, 16)
	defi(&c.MaxSessions, 100_000)
	defi(&c.MaxSubjects, 100_000)
	defi(&c.QueueSize, 1024)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.GuessingLimit.Now == nil {
		c.GuessingLimit.Now = c.Now
	}
	if c.OnError == nil {
		c.OnError = func(error) {}
	}
	return c
}

// finding is a rule that fired, waiting for the worker.
type finding struct {
	rule   string // empty: act only, raise no event (binding)
	action Action
	event  sessionkit.Event // the event that triggered it
	detail map[string]string
}

// Engine evaluates the rules. It is an EventSink; Start it with the Manager
// it acts through. It is safe for concurrent use.
type Engine struct {
	cfg     Config
	limiter *Limiter

	mu       sync.Mutex
	sessions *lru[string, sessionSeen]
	surge    *lru[string, *surgeState]
	devices  *lru[string, *lru[string, struct{}]]

	queue   chan finding
	m       atomic.Pointer[sessionkit.Manager]
	stop    chan struct{}
	done    chan struct{}
	started atomic.Bool
	closeMu sync.RWMutex
	closed  bool

	dropped, raised, acted atomic.Uint64
}

type sessionSeen struct {
	network netip.Prefix
	ip      string
	at      time.Time
}

type surgeState struct {
	bucket   int64 // interval number of count
	count    int
	baseline float64
	alerted  int64
}

// New returns an Engine. It evaluates events from the start but raises and
// acts only once Start has given it a Manager.
func New(cfg Config) *Engine {
	cfg = cfg.withDefaults()
	return &Engine{
		cfg:      cfg,
		limiter:  NewLimiter(cfg.GuessingLimit),
		sessions: newLRU[string, sessionSeen](cfg.MaxSessions),
		surge:    newLRU[string, *surgeState](cfg.MaxSubjects),
		devices:  newLRU[string, *lru[string, struct{}]](cfg.MaxSubjects),
		queue:    make(chan finding, cfg.QueueSize),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
}

// Limiter returns the token-guessing limiter fed by the engine. Wrap the
// handlers that validate tokens with its Middleware.
func (e *Engine) Limiter() *Limiter { return e.limiter }

// Start gives the engine the Manager to act through and starts its worker.
// Call it once, after sessionkit.New; Close stops the worker.
func (e *Engine) Start(m *sessionkit.Manager) {
	if !e.started.CompareAndSwap(false, true) {
		return
	}
	e.m.Store(m)
	go e.run()
}

// Close stops the worker. Findings still queued are dropped.
func (e *Engine) Close() {
	e.closeMu.Lock()
	if e.closed {
		e.closeMu.Unlock()
		return
	}
	e.closed = true
	close(e.stop)
	e.closeMu.Unlock()
	if e.started.Load() {
		<-e.done
	}
}

// Stats counts the engine's work.
type Stats struct {
	Raised, Acted, Dropped uint64
}

// Stats returns counts since the engine started.
func (e *Engine) Stats() Stats {
	return Stats{Raised: e.raised.Load(), Acted: e.acted.Load(), Dropped: e.dropped.Load()}
}

// Emit evaluates e. It does only in-memory work and never blocks.
func (e *Engine) Emit(ctx context.Context, ev sessionkit.Event) {
	if ev.Actor == Actor {
		return
	}
	now := ev.Time
	if now.IsZero() {
		now = e.cfg.Now()
	}
	switch ev.Type {
	case sessionkit.EventRejected:
		if guessing(ev.Reason) {
			Mark(ctx, ev.Client.IP)
			if e.cfg.Guessing != Off {
				if started, n := e.limiter.Observe(ev.Client.IP, now); started {
					e.enqueue(finding{rule: RuleTokenGuessing, action: Alert, event: ev, detail: map[string]string{
						"ip": ev.Client.IP, "count": strconv.Itoa(n),
						"window": e.limiter.opts.Window.String(), "blocked_for": e.limiter.opts.Block.String(),
					}})
				}
			}
		}
	case sessionkit.EventAnomaly:
		if ev.Reason == sessionkit.ReasonIPChange || ev.Reason == sessionkit.ReasonUAChange {
			if e.cfg.Binding != Off && e.cfg.Binding != Alert {
				e.enqueue(finding{action: e.cfg.Binding, event: ev})
			}
			if ev.Reason == sessionkit.ReasonIPChange {
				e.travel(ev, ev.Detail["from"], ev.Detail["to"], now)
			}
		}
	case sessionkit.EventRefreshReused:
		if e.cfg.RefreshReuse != Off {
			e.enqueue(finding{rule: RuleRefreshReuse, action: e.cfg.RefreshReuse, event: ev, detail: copyDetail(ev.Detail)})
		}
	case sessionkit.EventAuthenticated:
		e.seen(ev, now)
		e.login(ev, now)
	case sessionkit.EventCreated, sessionkit.EventRenewed, sessionkit.EventRefreshed:
		e.seen(ev, now)
	case sessionkit.EventRevoked, sessionkit.EventLoggedOut, sessionkit.EventExpiredAbs, sessionkit.EventExpiredIdle:
		e.mu.Lock()
		e.sessions.del(ev.Handle)
		e.mu.Unlock()
	}
}

func copyDetail(d map[string]string) map[string]string {
	out := make(map[string]string, len(d))
	for k, v := range d {
		out[k] = v
	}
	return out
}

func (e *Engine) enqueue(f finding) {
	e.closeMu.RLock()
	defer e.closeMu.RUnlock()
	if e.closed {
		e.dropped.Add(1)
		return
	}
	select {
	case e.queue <- f:
	default:
		e.dropped.Add(1)
	}
}

// network returns the prefix of ip with the given bits.
func network(ip string, v4, v6 int) (netip.Prefix, bool) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	bits := v6
	if a.Is4() {
		bits = v4
	}
	p, err := a.Prefix(bits)
	return p, err == nil
}

// seen records where a session was last seen.
func (e *Engine) seen(ev sessionkit.Event, now time.Time) {
	if ev.Handle == "" || ev.Client.IP == "" {
		return
	}
	n, ok := network(ev.Client.IP, e.cfg.TravelIPv4Prefix, e.cfg.TravelIPv6Prefix)
	if !ok {
		return
	}
	e.mu.Lock()
	e.sessions.put(ev.Handle, sessionSeen{network: n, ip: ev.Client.IP, at: now})
	e.mu.Unlock()
}

// travel checks a session's move to the network of to. The session was in
// use from its previous network at least until the last event that named
// it (a creation, login or earlier change); a move within TravelWindow of
// that is flagged. Two clients using one session alternate between
// networks, and each switch after the first is caught this way.
func (e *Engine) travel(ev sessionkit.Event, from, to string, now time.Time) {
	if e.cfg.Travel == Off || ev.Handle == "" {
		return
	}
	nto, ok := network(to, e.cfg.TravelIPv4Prefix, e.cfg.TravelIPv6Prefix)
	if !ok {
		return
	}
	e.mu.Lock()
	prev, known := e.sessions.get(ev.Handle)
	if !known {
		if nfrom, ok := network(from, e.cfg.TravelIPv4Prefix, e.cfg.TravelIPv6Prefix); ok {
			prev = sessionSeen{network: nfrom, ip: from}
		}
	}
	e.sessions.put(ev.Handle, sessionSeen{network: nto, ip: to, at: now})
	e.mu.Unlock()
	if !known || prev.network == nto || now.Sub(prev.at) > e.cfg.TravelWindow {
		return
	}
	e.enqueue(finding{rule: RuleImpossibleTravel, action: e.cfg.Travel, event: ev, detail: map[string]string{
		"from": prev.ip, "to": to, "seen_from_at": prev.at.UTC().Format(time.RFC3339),
		"interval": now.Sub(prev.at).Round(time.Second).String(),
	}})
}

// login runs the rules on a login: surge and new device.
func (e *Engine) login(ev sessionkit.Event, now time.Time) {
	if ev.Subject == "" {
		return
	}
	var fs []finding
	e.mu.Lock()
	if e.cfg.Surge != Off {
		if f, ok := e.surgeLocked(ev, now); ok {
			fs = append(fs, f)
		}
	}
	if e.cfg.NewDevice != Off {
		if f, ok := e.deviceLocked(ev); ok {
			fs = append(fs, f)
		}
	}
	e.mu.Unlock()
	for _, f := range fs {
		e.enqueue(f)
	}
}

func (e *Engine) surgeLocked(ev sessionkit.Event, now time.Time) (finding, bool) {
	bucket := now.UnixNano() / int64(e.cfg.SurgeInterval)
	st, ok := e.surge.get(ev.Subject)
	if !ok {
		st = &surgeState{bucket: bucket, alerted: math.MinInt64}
		e.surge.put(ev.Subject, st)
	}
	if bucket != st.bucket {
		// Close the finished interval and any empty ones after it.
		a := e.cfg.SurgeAlpha
		st.baseline = a*float64(st.count) + (1-a)*st.baseline
		if gap := bucket - st.bucket - 1; gap > 0 {
			st.baseline *= math.Pow(1-a, float64(min(gap, 1000)))
		}
		st.bucket, st.count = bucket, 0
	}
	st.count++
	if st.count < e.cfg.SurgeMinCount || float64(st.count) <= e.cfg.SurgeMultiplier*st.baseline || st.alerted == bucket {
		return finding{}, false
	}
	st.alerted = bucket
	return finding{rule: RuleLoginSurge, action: e.cfg.Surge, event: ev, detail: map[string]string{
		"logins": strconv.Itoa(st.count), "interval": e.cfg.SurgeInterval.String(),
		"baseline": strconv.FormatFloat(st.baseline, 'f', 2, 64),
	}}, true
}

func (e *Engine) deviceLocked(ev sessionkit.Event) (finding, bool) {
	dev := DeviceKey(ev.Client, e.cfg.DeviceIPv4Prefix, e.cfg.DeviceIPv6Prefix)
	known, ok := e.devices.get(ev.Subject)
	if !ok {
		known = newLRU[string, struct{}](e.cfg.DevicesPerSubject)
		e.devices.put(ev.Subject, known)
	}
	_, seen := known.get(dev)
	first := known.len() == 0
	known.put(dev, struct{}{})
	if seen || first {
		return finding{}, false
	}
	return finding{rule: RuleNewDevice, action: e.cfg.NewDevice, event: ev, detail: map[string]string{
		"device": dev, "known_devices": strconv.Itoa(known.len() - 1),
	}}, true
}

func (e *Engine) run() {
	defer close(e.done)
	for {
		select {
		case <-e.stop:
			return
		case f := <-e.queue:
			e.handle(f)
		}
	}
}

// handle raises the finding's event and applies its action.
func (e *Engine) handle(f finding) {
	m := e.m.Load()
	ctx, cancel := context.WithTimeout(sessionkit.WithActor(context.Background(), Actor), 10*time.Second)
	defer cancel()
	if f.rule != "" {
		detail := f.detail
		if f.action != Alert {
			detail["action"] = f.action.String()
		}
		m.Emit(ctx, sessionkit.Event{
			Type: sessionkit.EventAnomaly, Handle: f.event.Handle, Subject: f.event.Subject,
			Reason: f.rule, Client: f.event.Client, Detail: detail,
		})
		e.raised.Add(1)
	}
	if f.event.Handle == "" {
		return
	}
	var err error
	switch f.action {
	case Revoke:
		_, err = m.Revoke(ctx, f.event.Handle, "anomaly")
	case StepUp:
		_, err = m.LowerAuthLevel(ctx, f.event.Handle, e.cfg.StepUpLevel)
	default:
		return
	}
	switch {
	case err == nil:
		e.acted.Add(1)
	case errors.Is(err, sessionkit.ErrRevoked), errors.Is(err, sessionkit.ErrNotFound), errors.Is(err, sessionkit.ErrExpired):
		// The session ended meanwhile: nothing to do.
	default:
		e.cfg.OnError(fmt.Errorf("anomaly: %s on %s: %w", f.action, f.event.Handle, err))
	}
}
