package sessiond_test

import (
	"net/http"
	"os/exec"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/internal/pgtest"
	"github.com/sessionkit/sessionkit/internal/redistest"
	"github.com/sessionkit/sessionkit/sessiond"
)

// TestStoreFaults runs the sessiond binary on a private Redis or PostgreSQL
// server, crashes that server and checks over HTTP that sessiond fails
// closed (503 store_unavailable, readyz 503, forward auth never 200), then
// restarts the server and checks that the same sessiond process serves the
// surviving session again without a restart of its own.
func TestStoreFaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		// up starts the store's server and returns its URL and the
		// functions that crash and restart it.
		up func(t *testing.T) (url string, kill, restart func())
		// migrate: run `sessiond migrate` before serving.
		migrate bool
	}{
		{"redis", func(t *testing.T) (string, func(), func()) {
			// AOF with fsync per write: the session survives a SIGKILL.
			srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
			return srv.URL(), srv.Kill, srv.Restart
		}, false},
		{"postgres", func(t *testing.T) (string, func(), func()) {
			pg := pgtest.Start(t)
			return pg.URL(), pg.Kill, pg.Restart
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin := binary(t)
			storeURL, kill, restart := tc.up(t)
			const key = "sk_fault_test_key"
			env := []string{sessiond.EnvAPIKey + "=" + key}
			args := []string{"-store", storeURL, "-data-dir", t.TempDir()}
			if tc.migrate {
				cmd := exec.Command(bin, append([]string{"migrate"}, args...)...)
				cmd.Env = append(cmd.Environ(), env...)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("migrate: %v\n%s", err, out)
				}
			}
			d := start(t, env, args...)
			c := client{t, d.url, key}
			anon := client{t, d.url, ""}
			tok := c.want(201, "POST", "/v1/sessions", `{"subject":"alice"}`)["token"].(string)
			verify := `{"token":"` + tok + `"}`
			c.want(200, "POST", "/v1/sessions/verify", verify)
			if got := forwardAuth(t, d.url, tok); got != 200 {
				t.Fatalf("forward auth before the crash: %d", got)
			}

			kill()
			if v := c.want(503, "POST", "/v1/sessions/verify", verify); errCode(v) != sessiond.CodeStoreUnavailable {
				t.Errorf("verify, store down: %v", v)
			}
			if v := c.want(503, "POST", "/v1/sessions", `{"subject":"bob"}`); errCode(v) != sessiond.CodeStoreUnavailable {
				t.Errorf("create, store down: %v", v)
			}
			anon.want(503, "GET", "/readyz", "")
			anon.want(200, "GET", "/healthz", "")
			if got := forwardAuth(t, d.url, tok); got == 200 {
				t.Errorf("forward auth, store down: 200; want 503 or 401 (fail closed)")
			} else if got != 503 {
				t.Logf("forward auth, store down: %d", got)
			}

			restart()
			begin, failed := time.Now(), 0
			for {
				status, v := c.call("POST", "/v1/sessions/verify", verify)
				if status == 200 {
					break
				}
				if status != 503 || errCode(v) != sessiond.CodeStoreUnavailable {
					t.Fatalf("verify while the store recovers: %d %v; want 503 store_unavailable, then 200", status, v)
				}
				failed++
				if time.Since(begin) > 10*time.Second {
					t.Fatalf("sessiond did not recover within 10s of the store's restart")
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Logf("verify recovered %v after the store accepted connections again (%d requests got 503 meanwhile)",
				time.Since(begin).Round(time.Millisecond), failed)
			anon.want(200, "GET", "/readyz", "")
			if got := forwardAuth(t, d.url, tok); got != 200 {
				t.Errorf("forward auth after the restart: %d", got)
			}
			c.want(201, "POST", "/v1/sessions", `{"subject":"bob"}`)
			d.stop(t)
		})
	}
}

// forwardAuth asks GET /v1/auth about a request carrying tok in the
// session cookie and returns the status.
func forwardAuth(t *testing.T, base, tok string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/v1/auth", nil)
	req.Header.Set("Cookie", sessionkit.DefaultCookieName+"="+tok)
	req.Header.Set("X-Forwarded-For", "192.0.2.7")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}
