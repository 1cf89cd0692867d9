package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sessionkit/sessionkit/internal/testenv"
)

// Server is one private PostgreSQL cluster.
type Server struct {
	Port int
	Dir  string // holds the data directory, the socket and server.log

	t    testing.TB
	bin  string
	cred *syscall.Credential
	cmd  *exec.Cmd
	log  *os.File
}

// URL is a connection string for the server's postgres database, as the
// trusted postgres user. connect_timeout keeps a dial to a dead server short.
func (s *Server) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?connect_timeout=2", s.Port)
}

// Start runs initdb in a temporary directory, starts the server and stops
// it when the test ends. PostgreSQL refuses to run as root, so as root both
// run as the postgres user. Missing binaries skip the test (fail in CI).
func Start(t testing.TB) *Server {
	t.Helper()
	initdbs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	initdb := ""
	if len(initdbs) > 0 {
		initdb = initdbs[len(initdbs)-1]
	} else if p, err := exec.LookPath("initdb"); err == nil {
		initdb = p
	}
	if initdb == "" {
		testenv.Missing(t, "PostgreSQL server binaries (initdb, postgres) not found: install postgresql to run this test")
	}
	s := &Server{t: t, bin: filepath.Dir(initdb)}
	// Not t.TempDir: the directory must be owned by the postgres user, and
	// its socket path must stay short.
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	s.Dir = dir
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
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	out, err := s.command(initdb, "-D", s.dataDir(), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8").CombinedOutput()
	if err != nil {
		testenv.Missing(t, "initdb failed (%v): %s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	s.log, err = os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Kill() // the data is thrown away: no need for a checkpoint
		s.log.Close()
	})
	s.Restart()
	return s
}

func (s *Server) dataDir() string { return filepath.Join(s.Dir, "data") }

func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	// Pdeathsig: a test binary that dies must not leave a server behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGQUIT}
	return cmd
}

// Restart starts the server on the same port and data directory (after
// Kill or Stop) and waits until it accepts connections.
func (s *Server) Restart() {
	s.t.Helper()
	if s.cmd != nil {
		s.t.Fatalf("pgtest: server on port %d still running", s.Port)
	}
	cmd := s.command(filepath.Join(s.bin, "postgres"), "-D", s.dataDir(),
		"-p", strconv.Itoa(s.Port), "-k", s.Dir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off")
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start postgres: %v", err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, s.URL())
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.Dir, "server.log"))
			s.t.Fatalf("private postgres did not come up: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kill stops the server the way a crash would: SIGQUIT (immediate
// shutdown, as pg_ctl stop -m immediate) makes the postmaster and every
// backend exit at once, dropping all connections, without a shutdown
// checkpoint. Committed data survives in the WAL, replayed on Restart.
func (s *Server) Kill() { s.stop(syscall.SIGQUIT) }

// Stop stops the server with SIGINT (fast shutdown: connections are
// terminated, then a checkpoint is written).
func (s *Server) Stop() { s.stop(syscall.SIGINT) }

func (s *Server) stop(sig syscall.Signal) {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Signal(syscall.SIGQUIT)
		<-done
	}
	s.cmd = nil
}
