package sessiond_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/internal/testenv"
	"github.com/sessionkit/sessionkit/sessiond"
	"github.com/sessionkit/sessionkit/store/memstore"
)

// nginxConf puts nginx in front of upstream, asking sessiond's forward auth
// about every request and passing the subject on.
const nginxConf = `%s
worker_processes 1;
pid %[2]s/nginx.pid;
error_log stderr warn;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path %[2]s/client_body;
	proxy_temp_path %[2]s/proxy;
	fastcgi_temp_path %[2]s/fastcgi;
	uwsgi_temp_path %[2]s/uwsgi;
	scgi_temp_path %[2]s/scgi;
	server {
		listen %[3]s;
		location / {
			auth_request /_sessiond_auth;
			auth_request_set $session_subject $upstream_http_x_session_subject;
			proxy_set_header X-Session-Subject $session_subject;
			proxy_pass http://%[4]s;
		}
		location = /_sessiond_auth {
			internal;
			proxy_pass http://%[5]s/v1/auth;
			proxy_pass_request_body off;
			proxy_set_header Content-Length "";
			proxy_set_header X-Forwarded-For $remote_addr;
			proxy_set_header X-Real-IP $remote_addr;
		}
	}
}
`

func TestNginxForwardAuth(t *testing.T) {
	nginx := testenv.Program(t, "nginx")
	store := memstore.New(memstore.Options{})
	defer store.Close()
	m, err := sessionkit.New(store, sessionkit.Config{Events: sessionkit.EventSinkFunc(func(context.Context, sessionkit.Event) {})})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sessiond.New(sessiond.Config{Manager: m, Keys: &sessiond.Keys{}})
	if err != nil {
		t.Fatal(err)
	}
	auth := httptest.NewServer(srv.Handler())
	defer auth.Close()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "subject=%s", r.Header.Get("X-Session-Subject"))
	}))
	defer upstream.Close()

	prefix := t.TempDir()
	addr := freeAddr(t)
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;"
	}
	conf := filepath.Join(prefix, "nginx.conf")
	text := fmt.Sprintf(nginxConf, user, prefix, addr, strings.TrimPrefix(upstream.URL, "http://"), strings.TrimPrefix(auth.URL, "http://"))
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-e", "stderr", "-p", prefix, "-c", conf, "-g", "daemon off;")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		// Stop exactly the nginx started here, by its PID.
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}()

	get := func(cookie string, hdr ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+addr+"/app", nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	// Wait for nginx to listen.
	for deadline := time.Now().Add(10 * time.Second); ; {
		req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
			break
		}
		select {
		case err := <-done:
			t.Fatalf("nginx exited: %v\n%s", err, stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not start:\n%s", stderr.String())
		}
	}

	tok, rec, err := m.Create(context.Background(), sessionkit.CreateParams{Subject: "alice", Client: sessionkit.Client{IP: "127.0.0.1", UserAgent: "Go-http-client/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	ck := "__Host-session="
	if code, body := get(ck + tok); code != 200 || body != "subject=alice" {
		t.Errorf("valid cookie: %d %q\n%s", code, body, stderr.String())
	}
	// A client cannot forge the header the upstream trusts.
	if code, body := get(ck+tok, "X-Session-Subject", "mallory"); code != 200 || body != "subject=alice" {
		t.Errorf("forged subject header: %d %q", code, body)
	}
	if code, _ := get("", "X-Session-Subject", "mallory"); code != 401 {
		t.Errorf("no cookie: %d", code)
	}
	if code, _ := get(ck + "invalid"); code != 401 {
		t.Errorf("invalid cookie: %d", code)
	}
	if code, _ := get(ck + tok + "; " + ck + tok); code != 401 {
		t.Errorf("duplicate cookie: %d", code)
	}
	if code, _ := get("", "Authorization", "Bearer "+tok); code != 401 {
		t.Errorf("session token as bearer: %d", code)
	}
	if _, err := m.Revoke(context.Background(), rec.Handle, sessionkit.ReasonOperator); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(ck + tok); code != 401 {
		t.Errorf("revoked cookie: %d", code)
	}
}
