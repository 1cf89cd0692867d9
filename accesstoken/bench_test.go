package accesstoken_test

import (
	"context"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/sessionkit/sessionkit/accesstoken"
)

var benchAlgs = []string{accesstoken.EdDSA, accesstoken.ES256}

// BenchmarkIssue signs access tokens for a live session (claims, signing,
// size check), without a store write.
func BenchmarkIssue(b *testing.B) {
	for _, alg := range benchAlgs {
		b.Run(alg, func(b *testing.B) {
			e := newEnv(b, alg, nil)
			_, rec := e.login(b, "alice")
			ctx := context.Background()
			for b.Loop() {
				if _, _, err := e.is.IssueAccessToken(ctx, rec, accesstoken.Params{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerify runs the strict verifier, revocation check included.
func BenchmarkVerify(b *testing.B) {
	for _, alg := range benchAlgs {
		b.Run(alg, func(b *testing.B) {
			e := newEnv(b, alg, nil)
			_, rec := e.login(b, "alice")
			tok, _, err := e.is.IssueAccessToken(context.Background(), rec, accesstoken.Params{})
			if err != nil {
				b.Fatal(err)
			}
			v := e.verifier(b)
			ctx := context.Background()
			for b.Loop() {
				if _, err := v.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBareJose is go-jose alone on the same tokens and keys: the
// floor the strict verifier is compared with.
func BenchmarkBareJose(b *testing.B) {
	for _, alg := range benchAlgs {
		e := newEnv(b, alg, nil)
		key, err := e.ring.SigningKey(e.clk.Now())
		if err != nil {
			b.Fatal(err)
		}
		signer, _ := key.Signer()
		_, rec := e.login(b, "alice")
		tok, _, _ := e.is.IssueAccessToken(context.Background(), rec, accesstoken.Params{})
		payload := []byte(`{"iss":"https://sessions.test","sub":"alice","aud":"api","exp":1900000000,"iat":1800000000,"nbf":1800000000,"jti":"AAAAAAAAAAAAAAAAAAAAAA","sid":"AAAAAAAAAAAAAAAAAAAAAA","auth_level":2}`)
		pub := key.Public().Key
		b.Run("sign/"+alg, func(b *testing.B) {
			for b.Loop() {
				jws, err := signer.Sign(payload)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := jws.CompactSerialize(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("verify/"+alg, func(b *testing.B) {
			for b.Loop() {
				jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := jws.Verify(pub); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRefresh rotates a refresh token through the in-memory store
// and signs a new access token each time.
func BenchmarkRefresh(b *testing.B) {
	for _, alg := range benchAlgs {
		b.Run(alg, func(b *testing.B) {
			e := newEnv(b, alg, nil)
			tok, _ := e.login(b, "alice")
			ctx := context.Background()
			p, err := e.is.Issue(ctx, tok, accesstoken.Params{})
			if err != nil {
				b.Fatal(err)
			}
			rt := p.RefreshToken
			for b.Loop() {
				p, err := e.is.Refresh(ctx, rt, accesstoken.Params{})
				if err != nil {
					b.Fatal(err)
				}
				rt = p.RefreshToken
			}
		})
	}
}

// BenchmarkVerifyRatio alternates the strict verifier and bare go-jose on
// the same token in one loop, so load on the machine hits both alike, and
// reports strict/bare as "x-bare".
func BenchmarkVerifyRatio(b *testing.B) {
	for _, alg := range benchAlgs {
		b.Run(alg, func(b *testing.B) {
			e := newEnv(b, alg, nil)
			_, rec := e.login(b, "alice")
			tok, _, _ := e.is.IssueAccessToken(context.Background(), rec, accesstoken.Params{})
			v := e.verifier(b)
			key, _ := e.ring.SigningKey(e.clk.Now())
			pub := key.Public().Key
			algs := []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)}
			ctx := context.Background()
			var strict, bare time.Duration
			for b.Loop() {
				t0 := time.Now()
				if _, err := v.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				jws, err := jose.ParseSignedCompact(tok, algs)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := jws.Verify(pub); err != nil {
					b.Fatal(err)
				}
				strict += t1.Sub(t0)
				bare += time.Since(t1)
			}
			b.ReportMetric(float64(strict)/float64(b.N), "strict-ns/op")
			b.ReportMetric(float64(bare)/float64(b.N), "bare-ns/op")
			b.ReportMetric(float64(strict)/float64(bare), "x-bare")
		})
	}
}
