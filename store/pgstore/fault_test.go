package pgstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/internal/testenv"
)

// privatePG is a PostgreSQL cluster of the test's own, on a spare port, that
// the test may kill and restart.
type privatePG struct {
	t    *testing.T
	bin  string
	dir  string
	port int
	cred *syscall.Credential
	cmd  *exec.Cmd
	log  *os.File
}

func (p *privatePG) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?connect_timeout=2", p.port)
}

// startPrivatePG runs initdb in a temporary directory and starts the
// server. PostgreSQL refuses to run as root, so as root it runs both as the
// postgres user.
func startPrivatePG(t *testing.T) *privatePG {
	t.Helper()
	initdbs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	initdb := ""
	if len(initdbs) > 0 {
		initdb = initdbs[len(initdbs)-1]
	} else if p, err := exec.LookPath("initdb"); err == nil {
		initdb = p
	}
	if initdb == "" {
		testenv.Missing(t, "PostgreSQL server binaries (initdb, postgres) not found: install postgresql to run the fault test")
	}
	p := &privatePG{t: t, bin: filepath.Dir(initdb)}
	dir, err := os.MkdirTemp("", "pgstore-fault-")
	if err != nil {
		t.Fatal(err)
	}
	p.dir = dir
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			testenv.Missing(t, "running as root and there is no postgres user to run a private PostgreSQL server as")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	out, err := p.command(initdb, "-D", filepath.Join(dir, "data"), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8").CombinedOutput()
	if err != nil {
		testenv.Missing(t, "initdb failed (%v): %s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	p.log, err = os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd != nil {
			p.kill()
		}
		p.log.Close()
	})
	p.start()
	return p
}

func (p *privatePG) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred, Pdeathsig: syscall.SIGQUIT}
	return cmd
}

// start runs the server on p.port and waits until it accepts connections.
func (p *privatePG) start() {
	p.t.Helper()
	cmd := p.command(filepath.Join(p.bin, "postgres"), "-D", filepath.Join(p.dir, "data"),
		"-p", strconv.Itoa(p.port), "-k", p.dir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off")
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start postgres: %v", err)
	}
	p.cmd = cmd
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, p.url())
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(p.dir, "server.log"))
			p.t.Fatalf("private postgres did not come up: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill stops the server the way a crash would: SIGQUIT makes the
// postmaster and every backend exit at once, dropping all connections,
// without a shutdown checkpoint.
func (p *privatePG) kill() {
	p.cmd.Process.Signal(syscall.SIGQUIT)
	p.cmd.Wait()
	p.cmd = nil
}

func TestFaultServerKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private PostgreSQL server")
	}
	pg := startPrivatePG(t)
	ctx := context.Background()
	before := runtime.NumGoroutine()

	o := Options{URL: pg.url(), AutoMigrate: true, NearCache: NearCacheOptions{
		Enabled: true, TTL: time.Hour, Heartbeat: 500 * time.Millisecond, RetryDelay: 50 * time.Millisecond,
	}}
	a, err := New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "listener up", a.cache.isEnabled)
	o.NearCache = NearCacheOptions{}
	b, err := New(ctx, o) // a second instance without cache
	if err != nil {
		t.Fatal(err)
	}

	now := time.Now()
	rec := newRecord("user", now)
	rec.IdleDeadline = now.Add(3 * time.Hour)
	if _, err := a.Create(ctx, rec, sessionkit.Limit{}); err != nil {
		t.Fatal(err)
	}
	// Writes during the outage use another record: a failed write drops
	// its own cache entry, which would hide a cache that was not flushed.
	other := newRecord("other", now)
	if _, err := a.Create(ctx, other, sessionkit.Limit{}); err != nil {
		t.Fatal(err)
	}
	mustGet(t, a, rec.TokenHash)
	hits := a.cache.hits.Load()
	mustGet(t, a, rec.TokenHash)
	if a.cache.hits.Load() != hits+1 {
		t.Fatal("record not cached before the crash")
	}

	// Load running while the server dies: every failure must wrap ErrStore.
	stop := make(chan struct{})
	loadErr := make(chan error, 1)
	go func() {
		defer close(loadErr)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			var err error
			if i%2 == 0 {
				_, err = a.Get(ctx, rec.TokenHash)
			} else {
				err = a.Touch(ctx, other.Handle, sessionkit.Activity{LastSeenAt: now.Add(time.Duration(i) * time.Microsecond)})
			}
			if err != nil && !errors.Is(err, sessionkit.ErrStore) {
				loadErr <- err
				return
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	pg.kill()
	waitFor(t, 5*time.Second, "near-cache disabled after the crash", func() bool { return !a.cache.isEnabled() })
	time.Sleep(50 * time.Millisecond)
	close(stop)
	if err := <-loadErr; err != nil {
		t.Errorf("operation during the crash: got %v, want success or an error wrapping ErrStore", err)
	}

	opCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rv := sessionkit.Revocation{At: now, Reason: sessionkit.ReasonOperator, PurgeAt: now.Add(time.Hour)}
	ops := map[string]func() error{
		"Get":         func() error { _, err := a.Get(opCtx, rec.TokenHash); return err },
		"GetByHandle": func() error { _, err := a.GetByHandle(opCtx, rec.Handle); return err },
		"Create": func() error {
			_, err := a.Create(opCtx, newRecord("user", now), sessionkit.Limit{Max: 3, Now: now})
			return err
		},
		"Update": func() error {
			r := other.Clone()
			_, err := a.Update(opCtx, r, sessionkit.Limit{})
			return err
		},
		"Touch": func() error {
			return a.Touch(opCtx, other.Handle, sessionkit.Activity{LastSeenAt: now.Add(time.Second)})
		},
		"Revoke":        func() error { _, err := a.Revoke(opCtx, other.Handle, rv); return err },
		"RevokeSubject": func() error { _, err := a.RevokeSubject(opCtx, "other", "", rv); return err },
		"Delete":        func() error { return a.Delete(opCtx, other.Handle) },
		"ListSubject":   func() error { _, err := a.ListSubject(opCtx, "other"); return err },
		"DeleteExpired": func() error { _, err := a.DeleteExpired(opCtx, now, 10); return err },
		"Ping":          func() error { return a.Ping(opCtx) },
		"GetValue":      func() error { _, _, err := a.GetValue(opCtx, "k"); return err },
		"PutValue":      func() error { _, err := a.PutValue(opCtx, "k", []byte("v"), 0); return err },
	}
	for name, op := range ops {
		if err := op(); !errors.Is(err, sessionkit.ErrStore) {
			t.Errorf("%s with the server down: got %v, want an error wrapping ErrStore", name, err)
		}
	}

	pg.start()
	waitFor(t, 15*time.Second, "store recovered", func() bool { return a.Ping(ctx) == nil && b.Ping(ctx) == nil })
	// Revoke through the other instance at once, before a's listener may
	// even be back: a must not serve its pre-crash copy.
	if _, err := b.Revoke(ctx, rec.Handle, rv); err != nil {
		t.Fatalf("Revoke after restart: %v", err)
	}
	if r := mustGet(t, a, rec.TokenHash); !r.Revoked() {
		t.Fatal("near-cache served its pre-crash copy of a session revoked after the restart")
	}
	waitFor(t, 15*time.Second, "listener back after restart", a.cache.isEnabled)
	mustGet(t, a, rec.TokenHash)
	hits = a.cache.hits.Load()
	if r := mustGet(t, a, rec.TokenHash); !r.Revoked() || a.cache.hits.Load() != hits+1 {
		t.Error("near-cache not serving again after recovery")
	}

	a.Close()
	b.Close()
	waitFor(t, 5*time.Second, fmt.Sprintf("goroutines back to %d after Close", before), func() bool {
		return runtime.NumGoroutine() <= before
	})
}
