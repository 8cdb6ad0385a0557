package token

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// JKTLength is the length of a SHA-256 JWK thumbprint in base64url without
// padding: the form of cnf.jkt and of the dpop_jkt mint parameter.
const JKTLength = 43

// ErrInvalidJWK is returned by Thumbprint for a JWK without the members
// RFC 7638 needs for its kty, or with values that are not plain base64url.
var ErrInvalidJWK = errors.New("token: invalid JWK")

// Thumbprint returns the RFC 7638 SHA-256 thumbprint of a public JWK,
// base64url without padding (43 characters): the hash of the canonical JSON
// of the required members only, in lexicographic order, without whitespace
// (EC: crv, kty, x, y; OKP: crv, kty, x; RSA: e, kty, n). Kid, Alg and Use
// are not part of it.
//
// Thumbprint hashes the representation, as RFC 7638 defines it; it does not
// check that the members describe a valid key (DPoPVerifier does that before
// it computes one). x, y, n and e must be base64url without padding, and crv
// printable ASCII without quotes or backslashes, so that the canonical JSON
// needs no escaping and no two JWKs share it. The JWK of a Key gives the same
// value as Key.ID.
func Thumbprint(jwk JWK) (string, error) {
	var canonical string
	switch jwk.Kty {
	case "EC":
		if !plainJSON(jwk.Crv) || !b64url(jwk.X) || !b64url(jwk.Y) || jwk.N != "" || jwk.E != "" {
			return "", fmt.Errorf("%w: EC needs crv, x and y", ErrInvalidJWK)
		}
		canonical = `{"crv":"` + jwk.Crv + `","kty":"EC","x":"` + jwk.X + `","y":"` + jwk.Y + `"}`
	case "OKP":
		if !plainJSON(jwk.Crv) || !b64url(jwk.X) || jwk.Y != "" || jwk.N != "" || jwk.E != "" {
			return "", fmt.Errorf("%w: OKP needs crv and x only", ErrInvalidJWK)
		}
		canonical = `{"crv":"` + jwk.Crv + `","kty":"OKP","x":"` + jwk.X + `"}`
	case "RSA":
		if !b64url(jwk.E) || !b64url(jwk.N) || jwk.Crv != "" || jwk.X != "" || jwk.Y != "" {
			return "", fmt.Errorf("%w: RSA needs e and n only", ErrInvalidJWK)
		}
		canonical = `{"e":"` + jwk.E + `","kty":"RSA","n":"` + jwk.N + `"}`
	default:
		return "", fmt.Errorf("%w: unsupported kty", ErrInvalidJWK)
	}
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// ValidJKT reports whether s has the form of a SHA-256 JWK thumbprint:
// exactly 43 characters of the base64url alphabet, no padding, decoding to
// 32 bytes with no stray bits (so each thumbprint has exactly one spelling).
func ValidJKT(s string) bool {
	if len(s) != JKTLength || !b64url(s) {
		return false
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil && len(raw) == sha256.Size
}

// b64url reports whether s is non-empty and made of the base64url alphabet
// only (no padding, no whitespace: Go's decoder would skip CR and LF).
func b64url(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isB64URL(s[i]) {
			return false
		}
	}
	return true
}

func isB64URL(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// plainJSON reports whether s is non-empty printable ASCII that JSON encodes
// without any escape.
func plainJSON(s string) bool {
	return s != "" && strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r > 0x7e || r == '"' || r == '\\' }) < 0
}

// decodeB64URL decodes base64url without padding, refusing anything outside
// the alphabet and non-zero padding bits.
func decodeB64URL(s string) ([]byte, bool) {
	if !b64url(s) {
		return nil, false
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return raw, err == nil
}
