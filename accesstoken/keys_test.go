package accesstoken_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/accesstoken"
	"github.com/sessionkit/sessionkit/accesstoken/verify"
	"github.com/sessionkit/sessionkit/internal/testclock"
	"github.com/sessionkit/sessionkit/store/memstore"
)

func kids(set jose.JSONWebKeySet) []string {
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.KeyID)
	}
	return out
}

func TestKeyRotationOverlap(t *testing.T) {
	clk := testclock.New(time.Now().Truncate(time.Second))
	store := memstore.New(memstore.Options{})
	defer store.Close()
	kek := make([]byte, 32)
	rand.Read(kek)
	cfg := accesstoken.KeyRingConfig{
		RotationPeriod: time.Hour, PrePublish: 10 * time.Minute, TokenLifetime: 6 * time.Minute,
		KV: store, KEK: kek, Now: clk.Now,
	}
	ring, err := accesstoken.NewKeyRing(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A second instance on the same store agrees on the keys.
	ring2, err := accesstoken.NewKeyRing(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	k1, _ := ring.SigningKey(clk.Now())
	k1b, _ := ring2.SigningKey(clk.Now())
	if k1.ID != k1b.ID {
		t.Fatalf("instances sign with %s and %s", k1.ID, k1b.ID)
	}
	m, _ := sessionkit.New(store, sessionkit.Config{Now: clk.Now, Events: sessionkit.MultiSink{}, IdleTimeout: 24 * time.Hour, AbsoluteTimeout: 48 * time.Hour})
	is, err := accesstoken.NewIssuer(m, ring, accesstoken.Config{Issuer: "iss", Audience: "api"})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := is.Verifier("api")
	tok, _, _ := m.Create(t.Context(), sessionkit.CreateParams{Subject: "alice"})

	// 50 minutes in, the next key is due: published now, signing after
	// the pre-publication period.
	clk.Add(50 * time.Minute)
	if err := ring2.Maintain(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := ring.Maintain(t.Context()); err != nil {
		t.Fatal(err)
	}
	jwks := kids(ring.JWKS(clk.Now()))
	if len(jwks) != 2 || !slices.Contains(jwks, k1.ID) {
		t.Fatalf("JWKS during pre-publication = %v, want the old and the next key", jwks)
	}
	if !slices.Equal(jwks, kids(ring2.JWKS(clk.Now()))) {
		t.Fatal("instances publish different key sets")
	}
	next := jwks[1]
	if k, _ := ring.SigningKey(clk.Now()); k.ID != k1.ID {
		t.Fatalf("the next key signs before its pre-publication ended")
	}
	// The last token of the old key, issued just before the switch.
	clk.Add(10*time.Minute - time.Second)
	p, err := is.Issue(t.Context(), tok, accesstoken.Params{})
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Second)
	// After pre-publication the next key signs; the old one stays
	// published, and its tokens verify until they expire.
	ring.Maintain(t.Context())
	if k, _ := ring.SigningKey(clk.Now()); k.ID != next {
		t.Fatalf("signing key %s, want %s", k.ID, next)
	}
	p2, err := is.Issue(t.Context(), tok, accesstoken.Params{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), p2.AccessToken); err != nil {
		t.Fatalf("token of the new key: %v", err)
	}
	clk.Add(4 * time.Minute)
	if _, err := v.Verify(t.Context(), p.AccessToken); err != nil {
		t.Fatalf("token of the old key after the switch: %v", err)
	}
	if !slices.Contains(kids(ring.JWKS(clk.Now())), k1.ID) {
		t.Fatal("old key left the JWKS while its tokens could be live")
	}
	// Once every token of the old key has expired it leaves the JWKS.
	clk.Add(3 * time.Minute)
	if err := ring.Maintain(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := kids(ring.JWKS(clk.Now())); !slices.Equal(got, []string{next}) {
		t.Fatalf("JWKS after expiry = %v, want [%s]", got, next)
	}
	if _, err := v.Verify(t.Context(), p.AccessToken); err == nil {
		t.Fatal("old token still verifies")
	}

	// A key ring with the wrong key-encryption key cannot read the keys.
	bad := cfg
	bad.KEK = make([]byte, 32)
	if _, err := accesstoken.NewKeyRing(t.Context(), bad); !errors.Is(err, accesstoken.ErrKeyDecrypt) {
		t.Fatalf("wrong KEK: err = %v, want ErrKeyDecrypt", err)
	}
	// The stored value holds no private key in the clear.
	blob, _, err := store.GetValue(t.Context(), "accesstoken/signing-keys")
	if err != nil {
		t.Fatal(err)
	}
	if json.Valid(blob) {
		t.Fatal("keys stored as plain JSON")
	}
}

func TestKeyRotationOldTokenVerifiesUntilExpiry(t *testing.T) {
	e := newEnv(t, accesstoken.EdDSA, nil)
	tok, _ := e.login(t, "alice")
	old, err := e.is.Issue(t.Context(), tok, accesstoken.Params{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.ring.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}
	jwksNow := kids(e.ring.JWKS(e.clk.Now()))
	if len(jwksNow) != 2 {
		t.Fatalf("JWKS right after Rotate = %v, want 2 keys", jwksNow)
	}
	e.clk.Add(10*time.Minute + time.Second) // pre-publication over: new key signs
	fresh, err := e.is.Refresh(t.Context(), old.RefreshToken, accesstoken.Params{})
	if err != nil {
		t.Fatal(err)
	}
	hdr := func(tok string) string {
		j, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.EdDSA})
		if err != nil {
			t.Fatal(err)
		}
		return j.Signatures[0].Header.KeyID
	}
	if hdr(fresh.AccessToken) == hdr(old.AccessToken) {
		t.Fatal("the rotated ring still signs with the old key")
	}
	if _, err := e.verifier(t).Verify(t.Context(), fresh.AccessToken); err != nil {
		t.Fatal(err)
	}
}

func TestStaticKeyFiles(t *testing.T) {
	dir := t.TempDir()
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der1, _ := x509.MarshalPKCS8PrivateKey(ed)
	der2, _ := x509.MarshalECPrivateKey(ec)
	pemFile := filepath.Join(dir, "keys.pem")
	os.WriteFile(pemFile, append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der1}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der2})...), 0o600)
	keys, err := accesstoken.LoadKeyFile(pemFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].Algorithm != accesstoken.EdDSA || keys[1].Algorithm != accesstoken.ES256 {
		t.Fatalf("keys = %v", keys)
	}
	ring, err := accesstoken.StaticKeyRing(keys)
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := ring.SigningKey(time.Now()); k.ID != keys[0].ID {
		t.Fatal("the first key does not sign")
	}
	if got := kids(ring.JWKS(time.Now())); len(got) != 2 {
		t.Fatalf("JWKS = %v", got)
	}
	if err := ring.Rotate(t.Context()); err == nil {
		t.Fatal("a static ring rotated")
	}
	// The same keys as a JWK set with private parts.
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: ed, KeyID: "a", Algorithm: "EdDSA", Use: "sig"}}}
	b, _ := json.Marshal(set)
	jwkKeys, err := accesstoken.ParseKeys(b)
	if err != nil || len(jwkKeys) != 1 || jwkKeys[0].ID != "a" {
		t.Fatalf("JWK set: %v %v", jwkKeys, err)
	}
	// A public-only JWK set is not a signing key file.
	pub := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: ed.Public(), KeyID: "a", Algorithm: "EdDSA"}}}
	b, _ = json.Marshal(pub)
	if _, err := accesstoken.ParseKeys(b); !errors.Is(err, accesstoken.ErrKeyFile) {
		t.Fatalf("public JWK set: err = %v", err)
	}
	if _, err := accesstoken.ParseKeys([]byte("garbage")); !errors.Is(err, accesstoken.ErrKeyFile) {
		t.Fatalf("garbage: err = %v", err)
	}
	// The published set verifies through verify.KeysFromJWKS.
	pubSet := ring.JWKS(time.Now())
	vk, err := verify.KeysFromJWKS(&pubSet)
	if err != nil || len(vk) != 2 {
		t.Fatalf("KeysFromJWKS: %v %v", vk, err)
	}
}

func FuzzParseKeys(f *testing.F) {
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AA","d":"AA"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := accesstoken.ParseKeys(b)
		if err == nil && len(keys) == 0 {
			t.Fatal("no keys and no error")
		}
	})
}

var _ = context.Background
