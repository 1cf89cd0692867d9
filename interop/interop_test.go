package interop_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/internal/testenv"
	"github.com/sessionkit/sessionkit/sessiond"
	"github.com/sessionkit/sessionkit/store/memstore"
)

const apiKey = "interop-api-key-0123456789"

// nodeVerify runs verify.mjs and reports whether jose accepted the token.
func nodeVerify(t *testing.T, node, jwksURL, token, issuer, audience string) (bool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, "verify.mjs", jwksURL, token, issuer, audience).CombinedOutput()
	var res struct {
		Valid bool `json:"valid"`
	}
	if jerr := json.Unmarshal([]byte(strings.TrimSpace(string(out))), &res); jerr != nil {
		t.Fatalf("verify.mjs printed %q (err %v)", out, err)
	}
	if res.Valid != (err == nil) {
		t.Fatalf("verify.mjs exit status %v disagrees with its output %q", err, out)
	}
	return res.Valid, string(out)
}

// lifetime leaves node, started twice per token on a loaded machine, ample
// time to check the fresh token before it expires.
const lifetime = 8 * time.Second

func TestJoseVerifiesAccessTokens(t *testing.T) {
	node := testenv.Program(t, "node")
	if _, err := os.Stat("node_modules/jose"); err != nil {
		testenv.Missing(t, "interop/node_modules/jose not installed: run `npm ci` in interop/")
	}
	for _, alg := range []string{"EdDSA", "ES256", "RS256"} {
		t.Run(alg, func(t *testing.T) {
			// The algorithms wait out their tokens' lifetime side by side.
			t.Parallel()
			store := memstore.New(memstore.Options{})
			defer store.Close()
			ts := sessiond.TokenSettings{
				Issuer: "https://sessiond.interop.test", Audience: "interop-api", Lifetime: lifetime,
				Grace: time.Second, Alg: alg, Rotation: time.Hour, PrePublish: time.Minute,
			}
			tokens, err := sessiond.NewTokens(t.Context(), ts, store, nil)
			if err != nil {
				t.Fatal(err)
			}
			m, err := sessionkit.New(store, sessionkit.Config{Events: tokens.Revocations})
			if err != nil {
				t.Fatal(err)
			}
			keys := &sessiond.Keys{}
			keys.AddKeys(apiKey)
			srv, err := sessiond.New(sessiond.Config{
				Manager: m, Keys: keys, Bearer: tokens, Extensions: []sessiond.Extension{tokens},
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			hs := httptest.NewServer(srv.Handler())
			defer hs.Close()

			issued := time.Now()
			sessTok, _, err := m.Create(t.Context(), sessionkit.CreateParams{Subject: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest("POST", hs.URL+"/v1/tokens", strings.NewReader(`{"token":"`+sessTok+`"}`))
			req.Header.Set("Authorization", "Bearer "+apiKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var pair struct {
				AccessToken string `json:"access_token"`
			}
			json.NewDecoder(resp.Body).Decode(&pair)
			resp.Body.Close()
			if resp.StatusCode != 200 || pair.AccessToken == "" {
				t.Fatalf("POST /v1/tokens: %d", resp.StatusCode)
			}
			jwks := hs.URL + "/.well-known/jwks.json"
			if ok, out := nodeVerify(t, node, jwks, pair.AccessToken, ts.Issuer, ts.Audience); !ok {
				t.Fatalf("jose rejected a fresh token: %s", out)
			}
			if ok, _ := nodeVerify(t, node, jwks, pair.AccessToken, ts.Issuer, "someone-else"); ok {
				t.Fatal("jose accepted the token for another audience")
			}
			// jose allows no clock tolerance by default: wait out the
			// lifetime and it must refuse the token.
			time.Sleep(time.Until(issued.Add(lifetime + 1500*time.Millisecond)))
			if ok, out := nodeVerify(t, node, jwks, pair.AccessToken, ts.Issuer, ts.Audience); ok {
				t.Fatalf("jose accepted an expired token: %s", out)
			} else if !strings.Contains(out, "ERR_JWT_EXPIRED") {
				t.Fatalf("jose rejected the expired token for another reason: %s", out)
			}
		})
	}
}
