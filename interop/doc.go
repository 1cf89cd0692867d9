// Package interop checks that access tokens from sessiond verify with an
// independent JWT implementation: the npm package jose, run by node on
// verify.mjs. Install it with `npm ci` in this directory.
package interop
