package sessiond_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	binDir    string
)

// TestMain removes the binary built by the end-to-end tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binary builds cmd/sessiond once per test run.
func binary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the sessiond binary")
	}
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "sessiond-e2e")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "sessiond")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/sessionkit/sessionkit/cmd/sessiond").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// syncBuffer collects a child's output for the test to read while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type daemon struct {
	cmd    *exec.Cmd
	url    string
	stderr *syncBuffer
	done   chan error
}

// start runs the binary with args and env and waits until it is ready.
func start(t *testing.T, env []string, args ...string) *daemon {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(binary(t), append([]string{"serve", "-addr", addr}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	d := &daemon{cmd: cmd, url: "http://" + addr, stderr: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-d.done
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := http.Get(d.url + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return d
			}
		}
		select {
		case err := <-d.done:
			t.Fatalf("sessiond exited: %v\n%s", err, d.stderr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessiond not ready:\n%s", d.stderr)
		}
	}
}

// stop sends SIGTERM and expects a clean exit.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil {
			t.Fatalf("sessiond exit: %v\n%s", err, d.stderr)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("sessiond did not stop on SIGTERM")
	}
}

type client struct {
	t   *testing.T
	url string
	key string
}

func (c client) call(method, path, body string) (int, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, c.url+path, rd)
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.Header.Get("Cache-Control") != "no-store" && path != "/openapi.json" {
		c.t.Errorf("%s %s: no Cache-Control: no-store", method, path)
	}
	var v map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &v); err != nil {
			c.t.Fatalf("%s %s: body %q: %v", method, path, b, err)
		}
	}
	return res.StatusCode, v
}

func (c client) want(status int, method, path, body string) map[string]any {
	c.t.Helper()
	got, v := c.call(method, path, body)
	if got != status {
		c.t.Fatalf("%s %s: status %d, want %d: %v", method, path, got, status, v)
	}
	return v
}

func errCode(v map[string]any) string {
	e, _ := v["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func TestEndToEnd(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	logFile := filepath.Join(dir, "sessiond.log")
	args := []string{"-data-dir", data, "-idle-timeout", "10s", "-absolute-timeout", "60s", "-touch-interval", "1s", "-log-file", logFile}
	d := start(t, nil, args...)

	// First start: a key was generated into a private file.
	kb, err := os.ReadFile(filepath.Join(data, "api-key"))
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(string(kb))
	if fi, _ := os.Stat(filepath.Join(data, "api-key")); fi.Mode().Perm() != 0o600 {
		t.Errorf("api-key mode %v", fi.Mode())
	}

	anon := client{t, d.url, ""}
	anon.want(200, "GET", "/healthz", "")
	anon.want(200, "GET", "/openapi.json", "")
	if v := anon.want(401, "POST", "/v1/sessions", `{"subject":"alice"}`); errCode(v) != "unauthorized" {
		t.Errorf("no key: %v", v)
	}
	c := client{t, d.url, key}

	v := c.want(201, "POST", "/v1/sessions", `{"subject":"alice","data":{"theme":"dark"},"client":{"ip":"192.0.2.1","user_agent":"e2e"}}`)
	tok := v["token"].(string)
	handle := v["session"].(map[string]any)["handle"].(string)
	c.want(200, "POST", "/v1/sessions/verify", `{"token":"`+tok+`","client":{"ip":"192.0.2.1","user_agent":"e2e"}}`)

	v = c.want(200, "POST", "/v1/sessions/renew", `{"token":"`+tok+`","auth_level":2}`)
	oldTok, tok := tok, v["token"].(string)
	if v := c.want(401, "POST", "/v1/sessions/verify", `{"token":"`+oldTok+`"}`); errCode(v) != "session_not_found" {
		t.Errorf("old token: %v", v)
	}
	v = c.want(200, "PATCH", "/v1/sessions/"+handle, `{"data":{"lang":"de"},"version":2}`)
	if v["session"].(map[string]any)["version"] != float64(3) {
		t.Errorf("patch: %v", v)
	}
	if v := c.want(409, "PATCH", "/v1/sessions/"+handle, `{"data":{"lang":"fr"},"version":2}`); errCode(v) != "version_conflict" {
		t.Errorf("stale patch: %v", v)
	}
	other := c.want(201, "POST", "/v1/sessions", `{"subject":"alice"}`)["token"].(string)
	v = c.want(200, "GET", "/v1/subjects/alice/sessions", "")
	if n := len(v["sessions"].([]any)); n != 2 {
		t.Fatalf("list: %d sessions", n)
	}
	if v := c.want(200, "DELETE", "/v1/subjects/alice/sessions?except="+handle, ""); v["revoked"] != float64(1) {
		t.Errorf("revoke all: %v", v)
	}
	c.want(401, "POST", "/v1/sessions/verify", `{"token":"`+other+`"}`)

	// Restart: the session and the key survive.
	d.stop(t)
	d = start(t, nil, args...)
	c.url = d.url
	v = c.want(200, "POST", "/v1/sessions/verify", `{"token":"`+tok+`"}`)
	s := v["session"].(map[string]any)
	if s["handle"] != handle || s["auth_level"] != float64(2) || s["data"].(map[string]any)["lang"] != "de" {
		t.Errorf("after restart: %v", s)
	}

	// The operator commands cannot open the locked bolt file meanwhile.
	out, err := exec.Command(binary(t), "sessions", "list", "-subject", "alice", "-data-dir", data, "-lock-timeout", "200ms").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "HTTP API") {
		t.Errorf("sessions list on a locked store: %v\n%s", err, out)
	}

	c.want(204, "POST", "/v1/sessions/logout", `{"token":"`+tok+`"}`)
	if v := c.want(401, "POST", "/v1/sessions/verify", `{"token":"`+tok+`"}`); errCode(v) != "session_revoked" {
		t.Errorf("after logout: %v", v)
	}
	d.stop(t)

	// The log: JSON lines, with the key's path and never the key or a token.
	lb, _ := os.ReadFile(logFile)
	logText := string(lb)
	for _, secret := range []string{key, tok, oldTok, other} {
		if strings.Contains(logText, secret) {
			t.Errorf("log holds a secret")
		}
	}
	if !strings.Contains(logText, filepath.Join(data, "api-key")) {
		t.Errorf("log does not name the generated key's path")
	}
	keyID := ""
	for line := range strings.SplitSeq(strings.TrimSpace(logText), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q is not JSON", line)
		}
		if rec["event"] == "created" {
			keyID, _ = rec["actor"].(string)
		}
	}
	if !strings.HasPrefix(keyID, "apikey:") {
		t.Errorf("created event actor %q", keyID)
	}
}

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	env := []string{"SESSIOND_DATA_DIR=" + dir, "SESSIOND_API_KEY=sk_one,sk_two"}
	run := func(args ...string) (string, error) {
		cmd := exec.Command(binary(t), args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	d := start(t, env)
	c := client{t, d.url, "sk_two"}
	h1 := c.want(201, "POST", "/v1/sessions", `{"subject":"bob","client":{"ip":"192.0.2.9","user_agent":"cli-test"}}`)["session"].(map[string]any)["handle"].(string)
	h2 := c.want(201, "POST", "/v1/sessions", `{"subject":"bob"}`)["session"].(map[string]any)["handle"].(string)
	h3 := c.want(201, "POST", "/v1/sessions", `{"subject":"bob"}`)["session"].(map[string]any)["handle"].(string)
	d.stop(t)

	out, err := run("sessions", "list", "-subject", "bob")
	if err != nil || !strings.Contains(out, h1) || !strings.Contains(out, "192.0.2.9") || !strings.Contains(out, "cli-test") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if out, err := run("sessions", "show", h1); err != nil || !strings.Contains(out, "live") {
		t.Errorf("show: %v\n%s", err, out)
	}
	if out, err := run("sessions", "revoke", h2); err != nil {
		t.Errorf("revoke: %v\n%s", err, out)
	}
	if out, err := run("sessions", "revoke-all", "-subject", "bob", "-except", h1); err != nil || !strings.Contains(out, "revoked 1 ") {
		t.Errorf("revoke-all: %v\n%s", err, out)
	}
	out, _ = run("sessions", "list", "-subject", "bob")
	if !strings.Contains(out, h1) || strings.Contains(out, h2) || strings.Contains(out, h3) {
		t.Errorf("list after revoke:\n%s", out)
	}
	if out, err := run("sessions", "show", h2); err != nil || !strings.Contains(out, "ended: operator") {
		t.Errorf("show revoked: %v\n%s", err, out)
	}
	if _, err := run("sessions", "show", "no-such-handle"); err == nil {
		t.Error("show of an unknown handle succeeded")
	}
	if out, err := run("sessions", "list"); err == nil {
		t.Errorf("list without -subject succeeded:\n%s", out)
	}

	// apikey new prints a key once that a restarted server accepts.
	out, err = run("apikey", "new")
	if err != nil {
		t.Fatal(err, out)
	}
	cmd := exec.Command(binary(t), "apikey", "new")
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	newKey := strings.TrimSpace(string(stdout))
	if !strings.HasPrefix(newKey, "sk_") || strings.Contains(newKey, "\n") {
		t.Fatalf("apikey new printed %q", stdout)
	}
	out, _ = run("apikey", "list")
	if strings.Count(out, "SESSIOND_API_KEY") != 2 || strings.Count(out, "api-keys") != 2 || strings.Contains(out, newKey) {
		t.Errorf("apikey list:\n%s", out)
	}
	d = start(t, env)
	client{t, d.url, newKey}.want(200, "GET", "/v1/subjects/bob/sessions", "")
	d.stop(t)

	if out, err := run("migrate"); err != nil || !strings.Contains(out, "nothing to migrate") {
		t.Errorf("migrate on bolt: %v\n%s", err, out)
	}
	if out, err := run("-h"); err != nil || !strings.Contains(out, "SESSIOND_IDLE_TIMEOUT") || !strings.Contains(out, "__Host-session") {
		t.Errorf("-h: %v\n%s", err, out)
	}
	if _, err := run("frobnicate"); err == nil {
		t.Error("unknown command succeeded")
	}
	if out, err := run("serve", "-touch-interval", "20m"); err == nil || !strings.Contains(out, "touch interval") {
		t.Errorf("touch interval over idle timeout: %v\n%s", err, out)
	}
	if out, err := run("serve", "-store", "ftp://x"); err == nil || !strings.Contains(out, "scheme") {
		t.Errorf("unknown store scheme: %v\n%s", err, out)
	}
}
