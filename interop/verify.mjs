// Verifies a sessiond access token with the jose library: JWKS from the
// given URL, the issuer, the audience and typ at+jwt. Prints one JSON line
// and exits 0 when valid, 1 when not.
//
// usage: node verify.mjs JWKS_URL TOKEN ISSUER AUDIENCE
import { createRemoteJWKSet, jwtVerify } from 'jose';

const [jwksURL, token, issuer, audience] = process.argv.slice(2);
if (!jwksURL || !token || !issuer || !audience) {
  console.error('usage: node verify.mjs JWKS_URL TOKEN ISSUER AUDIENCE');
  process.exit(2);
}
const jwks = createRemoteJWKSet(new URL(jwksURL));
try {
  const { payload, protectedHeader } = await jwtVerify(token, jwks, {
    issuer,
    audience,
    typ: 'at+jwt',
    algorithms: ['EdDSA', 'ES256', 'RS256'],
  });
  console.log(JSON.stringify({ valid: true, alg: protectedHeader.alg, sub: payload.sub, sid: payload.sid }));
} catch (err) {
  console.log(JSON.stringify({ valid: false, code: err.code ?? 'ERR', message: err.message }));
  process.exit(1);
}
