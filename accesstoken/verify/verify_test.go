package verify_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/sessionkit/accesstoken/verify"
)

var enc = base64.RawURLEncoding

// fixture holds keys and a verifier with a fixed clock.
type fixture struct {
	ed    ed25519.PrivateKey
	rsa   *rsa.PrivateKey
	ec    *ecdsa.PrivateKey
	now   time.Time
	revs  *verify.RevocationSet
	v     *verify.Verifier
	rsPEM []byte
}

var testRSA = func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}()

func newFixture(t testing.TB) *fixture {
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f := &fixture{ed: ed, rsa: testRSA, ec: ec, now: time.Unix(1_800_000_000, 0), revs: &verify.RevocationSet{}}
	der, _ := x509.MarshalPKIXPublicKey(&f.rsa.PublicKey)
	f.rsPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	keys := verify.StaticKeys{
		"ed": {ID: "ed", Algorithm: "EdDSA", Key: ed.Public()},
		"rs": {ID: "rs", Algorithm: "RS256", Key: &f.rsa.PublicKey},
		"ec": {ID: "ec", Algorithm: "ES256", Key: &ec.PublicKey},
	}
	f.revs.Now = func() time.Time { return f.now }
	v, err := verify.New(verify.Config{
		Issuer:      "https://issuer.test",
		Audience:    "api",
		Keys:        keys,
		Algorithms:  []string{"EdDSA", "RS256", "ES256", "HS256"},
		Revocations: f.revs,
		Now:         func() time.Time { return f.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	f.v = v
	return f
}

// sign builds a compact JWS from raw header and payload JSON, signing with
// the algorithm the header's alg field names.
func (f *fixture) sign(header, payload string) string {
	input := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	return input + "." + enc.EncodeToString(f.sigFor(header, input))
}

func (f *fixture) sigFor(header, input string) []byte {
	h := sha256.Sum256([]byte(input))
	switch {
	case strings.Contains(header, `"EdDSA"`):
		return ed25519.Sign(f.ed, []byte(input))
	case strings.Contains(header, `"RS256"`):
		s, _ := rsa.SignPKCS1v15(rand.Reader, f.rsa, crypto.SHA256, h[:])
		return s
	case strings.Contains(header, `"ES256"`):
		r, s, _ := ecdsa.Sign(rand.Reader, f.ec, h[:])
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out
	case strings.Contains(header, `"HS256"`):
		m := hmac.New(sha256.New, f.rsPEM)
		m.Write([]byte(input))
		return m.Sum(nil)
	}
	return []byte("not-a-signature")
}

func (f *fixture) claims(mod func(m map[string]string)) string {
	m := map[string]string{
		"iss": `"https://issuer.test"`, "sub": `"alice"`, "aud": `"api"`,
		"exp": fmt.Sprint(f.now.Add(5 * time.Minute).Unix()), "iat": fmt.Sprint(f.now.Unix()),
		"nbf": fmt.Sprint(f.now.Unix()), "jti": `"j1"`, "sid": `"s1"`, "auth_level": "1",
	}
	if mod != nil {
		mod(m)
	}
	var b strings.Builder
	b.WriteString("{")
	first := true
	for _, k := range []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "sid", "auth_level"} {
		v, ok := m[k]
		if !ok {
			continue
		}
		if !first {
			b.WriteString(",")
		}
		first = false
		fmt.Fprintf(&b, "%q:%s", k, v)
	}
	if extra, ok := m["_raw"]; ok {
		b.WriteString("," + extra)
	}
	b.WriteString("}")
	return b.String()
}

const edHeader = `{"alg":"EdDSA","kid":"ed","typ":"at+jwt"}`

func TestVerifyAccepts(t *testing.T) {
	f := newFixture(t)
	cases := []struct{ name, tok string }{
		{"EdDSA", f.sign(edHeader, f.claims(nil))},
		{"RS256", f.sign(`{"alg":"RS256","kid":"rs","typ":"at+jwt"}`, f.claims(nil))},
		{"ES256", f.sign(`{"alg":"ES256","kid":"ec","typ":"at+jwt"}`, f.claims(nil))},
		{"typ upper case", f.sign(`{"alg":"EdDSA","kid":"ed","typ":"AT+JWT"}`, f.claims(nil))},
		{"typ media type", f.sign(`{"alg":"EdDSA","kid":"ed","typ":"application/at+jwt"}`, f.claims(nil))},
		{"aud array", f.sign(edHeader, f.claims(func(m map[string]string) { m["aud"] = `["other","api"]` }))},
		{"nbf within leeway", f.sign(edHeader, f.claims(func(m map[string]string) { m["nbf"] = fmt.Sprint(f.now.Add(20 * time.Second).Unix()) }))},
		{"no nbf", f.sign(edHeader, f.claims(func(m map[string]string) { delete(m, "nbf") }))},
		{"extra claim", f.sign(edHeader, f.claims(func(m map[string]string) { m["_raw"] = `"scope":"read"` }))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := f.v.Verify(t.Context(), tc.tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if c.Subject != "alice" || c.SessionID != "s1" || c.ID != "j1" || c.AuthLevel != 1 {
				t.Fatalf("claims = %+v", c)
			}
		})
	}
}

// derSig re-encodes a raw r||s ECDSA signature as ASN.1 DER, a second
// encoding of the same signature that must not be accepted.
func derSig(raw []byte) []byte {
	var s struct{ R, S *big.Int }
	s.R = new(big.Int).SetBytes(raw[:32])
	s.S = new(big.Int).SetBytes(raw[32:])
	b, _ := asn1.Marshal(s)
	return b
}

func TestVerifyRejects(t *testing.T) {
	f := newFixture(t)
	good := f.sign(edHeader, f.claims(nil))
	parts := strings.Split(good, ".")
	esTok := f.sign(`{"alg":"ES256","kid":"ec","typ":"at+jwt"}`, f.claims(nil))
	esParts := strings.Split(esTok, ".")
	esRaw, _ := enc.DecodeString(esParts[2])
	withClaims := func(mod func(map[string]string)) string { return f.sign(edHeader, f.claims(mod)) }
	withHeader := func(h string) string { return f.sign(h, f.claims(nil)) }
	flipLastBits := func(s string) string {
		// The last character of a 64-byte signature carries 4 spare bits.
		last := s[len(s)-1]
		const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		i := strings.IndexByte(alpha, last)
		return s[:len(s)-1] + string(alpha[i|1])
	}
	f.revs.Add(verify.Revocation{SessionID: "revoked-sid", Expires: f.now.Add(time.Hour)})
	f.revs.Add(verify.Revocation{Subject: "bob", NotBefore: f.now, Expires: f.now.Add(time.Hour)})

	cases := []struct {
		name string
		tok  string
		want error
	}{
		{"alg none", f.sign(`{"alg":"none","kid":"ed","typ":"at+jwt"}`, f.claims(nil)), verify.ErrAlgorithm},
		{"alg None", f.sign(`{"alg":"None","kid":"ed","typ":"at+jwt"}`, f.claims(nil)), verify.ErrAlgorithm},
		{"alg NONE", f.sign(`{"alg":"NONE","kid":"ed","typ":"at+jwt"}`, f.claims(nil)), verify.ErrAlgorithm},
		{"alg none empty signature", parts[0][:0] + enc.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." + parts[1] + ".", verify.ErrMalformed},
		{"alg not in list", withHeader(`{"alg":"ES384","kid":"ec","typ":"at+jwt"}`), verify.ErrAlgorithm},
		{"alg not a string", withHeader(`{"alg":["EdDSA"],"kid":"ed","typ":"at+jwt"}`), verify.ErrAlgorithm},
		{"HS256 with RSA public key", withHeader(`{"alg":"HS256","kid":"rs","typ":"at+jwt"}`), verify.ErrAlgorithm},
		{"alg differs from key", withHeader(`{"alg":"RS256","kid":"ed","typ":"at+jwt"}`), verify.ErrAlgorithm},
		{"jwk header", withHeader(`{"alg":"EdDSA","kid":"ed","typ":"at+jwt","jwk":{"kty":"OKP"}}`), verify.ErrHeader},
		{"jku header", withHeader(`{"alg":"EdDSA","kid":"ed","typ":"at+jwt","jku":"https://evil.test/jwks"}`), verify.ErrHeader},
		{"x5u header", withHeader(`{"alg":"EdDSA","kid":"ed","typ":"at+jwt","x5u":"https://evil.test/c"}`), verify.ErrHeader},
		{"x5c header", withHeader(`{"alg":"EdDSA","kid":"ed","typ":"at+jwt","x5c":["MIIB"]}`), verify.ErrHeader},
		{"crit header", withHeader(`{"alg":"EdDSA","kid":"ed","typ":"at+jwt","crit":["exp"]}`), verify.ErrHeader},
		{"unknown kid", withHeader(`{"alg":"EdDSA","kid":"nope","typ":"at+jwt"}`), verify.ErrUnknownKey},
		{"missing kid", withHeader(`{"alg":"EdDSA","typ":"at+jwt"}`), verify.ErrUnknownKey},
		{"kid not a string", withHeader(`{"alg":"EdDSA","kid":7,"typ":"at+jwt"}`), verify.ErrUnknownKey},
		{"missing typ", withHeader(`{"alg":"EdDSA","kid":"ed"}`), verify.ErrType},
		{"typ JWT", withHeader(`{"alg":"EdDSA","kid":"ed","typ":"JWT"}`), verify.ErrType},
		{"typ not a string", withHeader(`{"alg":"EdDSA","kid":"ed","typ":1}`), verify.ErrType},
		{"missing exp", withClaims(func(m map[string]string) { delete(m, "exp") }), verify.ErrExpired},
		{"expired", withClaims(func(m map[string]string) { m["exp"] = fmt.Sprint(f.now.Add(-31 * time.Second).Unix()) }), verify.ErrExpired},
		{"exp a string", withClaims(func(m map[string]string) { m["exp"] = `"1900000000"` }), verify.ErrClaims},
		{"nbf in the future", withClaims(func(m map[string]string) { m["nbf"] = fmt.Sprint(f.now.Add(31 * time.Second).Unix()) }), verify.ErrNotYetValid},
		{"iat in the future", withClaims(func(m map[string]string) { m["iat"] = fmt.Sprint(f.now.Add(time.Minute).Unix()) }), verify.ErrNotYetValid},
		{"missing iat", withClaims(func(m map[string]string) { delete(m, "iat") }), verify.ErrClaims},
		{"wrong iss", withClaims(func(m map[string]string) { m["iss"] = `"https://evil.test"` }), verify.ErrIssuer},
		{"missing aud", withClaims(func(m map[string]string) { delete(m, "aud") }), verify.ErrAudience},
		{"wrong aud", withClaims(func(m map[string]string) { m["aud"] = `"other"` }), verify.ErrAudience},
		{"aud number", withClaims(func(m map[string]string) { m["aud"] = `5` }), verify.ErrAudience},
		{"aud object", withClaims(func(m map[string]string) { m["aud"] = `{}` }), verify.ErrAudience},
		{"aud array of numbers", withClaims(func(m map[string]string) { m["aud"] = `[5]` }), verify.ErrAudience},
		{"missing sid", withClaims(func(m map[string]string) { delete(m, "sid") }), verify.ErrClaims},
		{"refresh token", "c2Vzc2lvbmhhbmRsZQ.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", verify.ErrMalformed},
		{"tampered payload", parts[0] + "." + enc.EncodeToString([]byte(strings.Replace(f.claims(nil), `"alice"`, `"admin"`, 1))) + "." + parts[2], verify.ErrSignature},
		{"padding", parts[0] + "." + parts[1] + "." + parts[2] + "==", verify.ErrMalformed},
		{"padded header", paddedPart(edHeader) + "." + parts[1] + "." + parts[2], verify.ErrMalformed},
		{"standard base64 alphabet", parts[0] + "." + parts[1] + "." + strings.NewReplacer("-", "+", "_", "/").Replace(parts[2]) + "+", verify.ErrMalformed},
		{"non-canonical trailing bits", parts[0] + "." + parts[1] + "." + flipLastBits(parts[2]), verify.ErrMalformed},
		{"ES256 DER signature", esParts[0] + "." + esParts[1] + "." + enc.EncodeToString(derSig(esRaw)), verify.ErrSignature},
		{"Ed25519 signature with extra byte", parts[0] + "." + parts[1] + "." + enc.EncodeToString(append(mustDecode(parts[2]), 0)), verify.ErrSignature},
		{"duplicate header key", withHeader(`{"alg":"EdDSA","alg":"EdDSA","kid":"ed","typ":"at+jwt"}`), verify.ErrMalformed},
		{"case-variant header key", withHeader(`{"alg":"EdDSA","kid":"ed","KID":"rs","typ":"at+jwt"}`), verify.ErrMalformed},
		{"duplicate payload key", withClaims(func(m map[string]string) { m["_raw"] = `"sub":"admin"` }), verify.ErrMalformed},
		{"case-variant payload key", withClaims(func(m map[string]string) { m["_raw"] = `"EXP":1` }), verify.ErrMalformed},
		{"escaped duplicate payload key", withClaims(func(m map[string]string) { m["_raw"] = `"\u0073ub":"admin"` }), verify.ErrMalformed},
		{"nested duplicate key", withClaims(func(m map[string]string) { m["_raw"] = `"x":{"a":1,"A":2}` }), verify.ErrMalformed},
		{"payload not an object", f.sign(edHeader, `["a"]`), verify.ErrMalformed},
		{"trailing data after payload", f.sign(edHeader, f.claims(nil)+"{}"), verify.ErrMalformed},
		{"two parts", parts[0] + "." + parts[1], verify.ErrMalformed},
		{"four parts", good + ".x", verify.ErrMalformed},
		{"oversized", good + strings.Repeat("A", verify.DefaultMaxTokenBytes), verify.ErrTooLarge},
		{"revoked session", withClaims(func(m map[string]string) { m["sid"] = `"revoked-sid"` }), verify.ErrRevoked},
		{"subject revoked before iat", withClaims(func(m map[string]string) { m["sub"] = `"bob"` }), verify.ErrRevoked},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := f.v.Verify(t.Context(), tc.tok)
			if err == nil {
				t.Fatalf("Verify accepted it: %+v", c)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify error = %v, want %v", err, tc.want)
			}
			if !errors.Is(err, verify.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
		})
	}
}

// paddedPart encodes s with base64url padding, adding spaces to s until
// the encoding needs padding.
func paddedPart(s string) string {
	for len(s)%3 == 0 {
		s += " "
	}
	return base64.URLEncoding.EncodeToString([]byte(s))
}

func mustDecode(s string) []byte {
	b, err := enc.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestNewRejectsBadConfig(t *testing.T) {
	keys := verify.StaticKeys{}
	cases := []verify.Config{
		{Audience: "a", Keys: keys},
		{Issuer: "i", Keys: keys},
		{Issuer: "i", Audience: "a"},
		{Issuer: "i", Audience: "a", Keys: keys, Algorithms: []string{"none"}},
		{Issuer: "i", Audience: "a", Keys: keys, Leeway: 2 * time.Minute},
	}
	for i, c := range cases {
		if _, err := verify.New(c); !errors.Is(err, verify.ErrConfig) {
			t.Errorf("case %d: New error = %v, want ErrConfig", i, err)
		}
	}
}

func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	f.Add(fx.sign(edHeader, fx.claims(nil)))
	f.Add(fx.sign(`{"alg":"ES256","kid":"ec","typ":"at+jwt"}`, fx.claims(nil)))
	f.Add(fx.sign(`{"alg":"none"}`, `{}`))
	f.Add("a.b.c")
	f.Add("eyJ9.eyJ9.")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := fx.v.Verify(t.Context(), tok)
		if (c == nil) == (err == nil) {
			t.Fatalf("Verify returned claims %v and error %v", c, err)
		}
	})
}
