package token

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DPoP proofs (RFC 9449) bind a ticket to a key the client holds: a ticket
// minted with Ticket.JKT carries cnf.jkt, and whoever presents it must also
// present a fresh proof signed by that key. This file checks such proofs. It
// knows nothing of HTTP or of the store: the caller passes the request method,
// compares the proof's key with the ticket (DPoPProof.Confirms) and records
// the proof's jti once (DPoPProof.ReplayKey, DPoPVerifier.ReplayTTL).

// DPoP proof limits and defaults.
const (
	// DPoPType is the typ header of a DPoP proof (RFC 9449 §4.2). Media type
	// names are case-insensitive (RFC 2045 §5.1) and RFC 7515 §4.1.9 has a
	// recipient treat a typ without "/" as if "application/" were prepended,
	// so "DPoP+JWT" and "application/dpop+jwt" are accepted too; nothing else
	// is (no parameters, no whitespace, no other type).
	DPoPType = "dpop+jwt"
	// DefaultDPoPWindow is how far a proof's iat may lie from now, either
	// way: the contract's 60 s.
	DefaultDPoPWindow = 60 * time.Second
	// DefaultDPoPMaxLength bounds the compact proof. A genuine ES256 proof
	// with the longest jti and an ath is under 1 KiB; the rest is room for
	// a long public URL.
	DefaultDPoPMaxLength = 4 << 10
	// MinDPoPJTILength is the shortest jti accepted: 16 base64url characters
	// carry 96 bits, the contract's minimum.
	MinDPoPJTILength = 16
	// MaxDPoPJTILength is the longest jti accepted, so that a replay-store
	// key stays small.
	MaxDPoPJTILength = 128
	// maxHTULength bounds the htu claim and the configured URL.
	maxHTULength = 2048
	// maxDPoPWindow bounds WithDPoPWindow: a longer window makes a stolen
	// proof useful for longer and the replay store larger.
	maxDPoPWindow = 5 * time.Minute
)

// ErrDPoPInvalid is returned by DPoPVerifier.Verify for every refused proof,
// tested with errors.Is; the wrapped text names the check that failed, for
// logs only, and never contains the proof or any value taken from it.
var ErrDPoPInvalid = errors.New("dpop proof invalid")

// ErrInvalidJKT is returned by Issuer.Mint for a Ticket.JKT that is not a
// thumbprint (see ValidJKT): a caller's dpop_jkt is bad input, not a signing
// failure.
var ErrInvalidJKT = errors.New("token: invalid dpop_jkt: want the 43-character base64url SHA-256 JWK thumbprint")

// DPoPOption configures a DPoPVerifier.
type DPoPOption func(*DPoPVerifier)

// WithDPoPTimeFunc sets the clock that iat is compared with; the default is
// time.Now. For tests, as golang-jwt's WithTimeFunc.
func WithDPoPTimeFunc(now func() time.Time) DPoPOption {
	return func(v *DPoPVerifier) { v.now = now }
}

// WithDPoPWindow sets how far iat may lie in the past or in the future; the
// default is DefaultDPoPWindow (60 s) and the maximum 5 minutes. The window
// is the time a stolen proof stays usable, and a verifier with a window w
// needs each jti kept for 2w (ReplayTTL), so keep it short.
func WithDPoPWindow(d time.Duration) DPoPOption {
	return func(v *DPoPVerifier) { v.window = d }
}

// WithDPoPMaxLength sets the longest compact proof accepted, in bytes; the
// default is DefaultDPoPMaxLength (4 KiB). Longer proofs are refused before
// any decoding.
func WithDPoPMaxLength(n int) DPoPOption {
	return func(v *DPoPVerifier) { v.maxLength = n }
}

// WithDPoPAlgorithms restricts the proof algorithms to a subset of ES256 and
// EdDSA; by default both are accepted. No other algorithm can be allowed: not
// "none", no HMAC (whose secret would be the public key in the header) and
// no RSA.
func WithDPoPAlgorithms(algs ...Algorithm) DPoPOption {
	return func(v *DPoPVerifier) {
		v.es256, v.eddsa, v.badAlg = false, false, len(algs) == 0
		for _, a := range algs {
			switch a {
			case ES256:
				v.es256 = true
			case EdDSA:
				v.eddsa = true
			default:
				v.badAlg = true
			}
		}
	}
}

// DPoPVerifier checks DPoP proofs for one target URI. Build it once with
// NewDPoPVerifier; it is safe for concurrent use.
type DPoPVerifier struct {
	htu          string // normalised target URI
	window       time.Duration
	maxLength    int
	es256, eddsa bool
	badAlg       bool
	now          func() time.Time
}

// NewDPoPVerifier returns a verifier for proofs aimed at htu, the absolute
// http or https URL of the endpoint (for /connect: BROKER_PUBLIC_URL joined
// with "connect", e.g. by url.JoinPath), without query or fragment. htu is
// compared after the normalisation RFC 9449 §4.3 asks for (see Verify).
func NewDPoPVerifier(htu string, opts ...DPoPOption) (*DPoPVerifier, error) {
	norm, err := normalizeHTU(htu)
	if err != nil {
		return nil, fmt.Errorf("token: dpop verifier: htu %w", err)
	}
	v := &DPoPVerifier{htu: norm, window: DefaultDPoPWindow, maxLength: DefaultDPoPMaxLength,
		es256: true, eddsa: true, now: time.Now}
	for _, o := range opts {
		o(v)
	}
	switch {
	case v.now == nil:
		return nil, errors.New("token: dpop verifier: nil time function")
	case v.window <= 0 || v.window > maxDPoPWindow:
		return nil, fmt.Errorf("token: dpop verifier: window %s outside (0, %s]", v.window, maxDPoPWindow)
	case v.maxLength < 256 || v.maxLength > 16<<10:
		return nil, fmt.Errorf("token: dpop verifier: max length %d outside [256, 16384]", v.maxLength)
	case v.badAlg:
		return nil, errors.New("token: dpop verifier: algorithms must be a non-empty subset of ES256 and EdDSA")
	}
	return v, nil
}

// HTU returns the normalised target URI the verifier expects.
func (v *DPoPVerifier) HTU() string { return v.htu }

// ReplayTTL is how long a caller must remember an accepted proof's jti
// (under DPoPProof.ReplayKey): a proof accepted now has iat no later than
// now+window and stays acceptable until iat+window, so 2×window covers its
// whole life; DefaultLeeway is added for replicas whose clocks differ a
// little. With the default window: 2 min 5 s.
func (v *DPoPVerifier) ReplayTTL() time.Duration { return 2*v.window + DefaultLeeway }

// DPoPProof is what Verify found in an accepted proof.
type DPoPProof struct {
	// Thumbprint is the RFC 7638 SHA-256 thumbprint of the header's jwk,
	// base64url (43 characters): compare it with the ticket's cnf.jkt with
	// Confirms, which does so in constant time.
	Thumbprint string
	// JWK holds the public key's members (kty, crv, x and, for EC, y).
	JWK JWK
	// Algorithm is the header's alg: ES256 or EdDSA.
	Algorithm Algorithm
	// JTI is the proof's unique identifier: 16 to 128 base64url characters.
	// Store it once (ReplayKey) to refuse a replayed proof.
	JTI string
	// IssuedAt is the proof's iat, within the window of the verifier's clock.
	IssuedAt time.Time
	// HTM is the request method the proof was made for (equal to Verify's htm).
	HTM string
	// HTU is the target URI as the proof states it (equal to the verifier's
	// after normalisation).
	HTU string
	// ATH is the proof's ath claim (the base64url SHA-256 of the access
	// token), or "" when the proof has none; see CheckAccessToken.
	ATH string
}

// Confirms reports, in constant time, whether the proof's key is the one
// the ticket is bound to. It is false for a ticket without cnf.jkt.
func (p *DPoPProof) Confirms(c *Claims) bool {
	jkt := c.JKT()
	if jkt == "" || len(jkt) != len(p.Thumbprint) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(jkt), []byte(p.Thumbprint)) == 1
}

// ReplayKey is the store key under which the caller records the proof's jti,
// once, for DPoPVerifier.ReplayTTL: "dpop:" + thumbprint + ":" + jti. Both
// parts are base64url, so the key holds no separator but its own colons and
// at most 177 bytes. A key that is already present means a replayed proof.
func (p *DPoPProof) ReplayKey() string { return "dpop:" + p.Thumbprint + ":" + p.JTI }

// CheckAccessToken checks the proof's optional ath claim against the access
// token presented with it (at /connect, the ticket): nil when the proof has
// no ath, or when ath is the base64url SHA-256 of accessToken; an
// ErrDPoPInvalid otherwise. The contract does not require ath, but a client
// that sends one has asked for its proof to be good for that token only.
func (p *DPoPProof) CheckAccessToken(accessToken string) error {
	if p.ATH == "" {
		return nil
	}
	sum := sha256.Sum256([]byte(accessToken))
	want := base64.RawURLEncoding.EncodeToString(sum[:])
	if subtle.ConstantTimeCompare([]byte(want), []byte(p.ATH)) != 1 {
		return fmt.Errorf("%w: ath does not match the access token", ErrDPoPInvalid)
	}
	return nil
}

// Verify checks a DPoP proof (the DPoP header's value) for a request with
// method htm and returns what it states. It checks, and refuses with an
// ErrDPoPInvalid otherwise:
//   - the compact JWS: at most the maximum length, only base64url characters
//     and exactly two dots, each part strict base64url (no padding);
//   - header and payload: JSON objects in valid UTF-8, with no duplicate key
//     and no two keys differing only in case, at any depth;
//   - typ: "dpop+jwt" (see DPoPType for the case-insensitive comparison);
//   - alg: exactly "ES256" or "EdDSA", and allowed by WithDPoPAlgorithms;
//   - no kid, jku, x5u, x5c, x5t, x5t#S256, crit or b64 header (in any case):
//     the key is the jwk and nothing else, and no extension is understood;
//   - jwk: a public EC P-256 key (x and y 32 bytes each, on the curve) for
//     ES256 or a public OKP Ed25519 key (x 32 bytes) for EdDSA, without any
//     private member (d, p, q, dp, dq, qi, oth, k); an alg, use or key_ops
//     member, if present, must allow this use;
//   - the signature: ES256 as raw r||s (64 bytes), EdDSA 64 bytes;
//   - jti: a string of 16 to 128 base64url characters;
//   - htm: exactly htm (methods are case-sensitive);
//   - htu: a string equal to the verifier's URI after normalisation: scheme
//     and host compared in lower case, the scheme's default port dropped,
//     percent-encoded unreserved characters decoded and other escapes in
//     upper case, an empty path read as "/". A query or fragment, userinfo,
//     a dot segment, or a character outside printable ASCII is refused;
//   - iat: a number within the window of the verifier's clock, either way;
//   - ath, if present: a 43-character base64url SHA-256 (see CheckAccessToken).
//
// Verify does not record the jti nor compare the key with a ticket: the
// caller does both (Confirms, ReplayKey), and should refuse a request with
// more than one DPoP header before calling it.
func (v *DPoPVerifier) Verify(proof, htm string) (*DPoPProof, error) {
	p, reason := v.verify(proof, htm)
	if reason != "" {
		return nil, fmt.Errorf("%w: %s", ErrDPoPInvalid, reason)
	}
	return p, nil
}

// verify returns the proof, or the reason it is refused. Reasons are fixed
// strings: nothing of the proof is ever echoed.
func (v *DPoPVerifier) verify(proof, htm string) (*DPoPProof, string) {
	if proof == "" {
		return nil, "empty"
	}
	if len(proof) > v.maxLength {
		return nil, "too long"
	}
	if htm == "" {
		return nil, "no request method given"
	}
	parts := strings.Split(proof, ".")
	if len(parts) != 3 {
		return nil, "not a compact JWS of three parts"
	}
	rawHeader, ok1 := decodeB64URL(parts[0])
	rawPayload, ok2 := decodeB64URL(parts[1])
	sig, ok3 := decodeB64URL(parts[2])
	if !ok1 || !ok2 || !ok3 {
		return nil, "a part is empty or not base64url"
	}

	header, err := strictObject(rawHeader)
	if err != nil {
		return nil, "header: " + err.Error()
	}
	typ, ok := jsonString(header, "typ")
	if !ok || !isDPoPType(typ) {
		return nil, "typ is not dpop+jwt"
	}
	alg, ok := jsonString(header, "alg")
	if !ok {
		return nil, "alg missing"
	}
	switch {
	case alg == string(ES256) && v.es256, alg == string(EdDSA) && v.eddsa:
	default:
		return nil, "alg not allowed"
	}
	for name := range header {
		for _, banned := range bannedHeaders {
			if strings.EqualFold(name, banned) {
				return nil, "header " + banned + " not accepted"
			}
		}
	}
	jwk, pub, reason := parseProofJWK(header["jwk"], Algorithm(alg))
	if reason != "" {
		return nil, "jwk: " + reason
	}

	payload, err := strictObject(rawPayload)
	if err != nil {
		return nil, "payload: " + err.Error()
	}
	jti, ok := jsonString(payload, "jti")
	if !ok || len(jti) < MinDPoPJTILength || len(jti) > MaxDPoPJTILength || !b64url(jti) {
		return nil, "jti missing or not 16 to 128 base64url characters"
	}
	gotHTM, ok := jsonString(payload, "htm")
	if !ok || gotHTM != htm {
		return nil, "htm does not match the request method"
	}
	gotHTU, ok := jsonString(payload, "htu")
	if !ok {
		return nil, "htu missing"
	}
	if norm, err := normalizeHTU(gotHTU); err != nil || norm != v.htu {
		return nil, "htu does not match the target URI"
	}
	iat, ok := jsonNumericDate(payload, "iat")
	if !ok {
		return nil, "iat missing or not a number"
	}
	now := v.now()
	if iat.Before(now.Add(-v.window)) {
		return nil, "iat too old"
	}
	if iat.After(now.Add(v.window)) {
		return nil, "iat in the future"
	}
	var ath string
	if raw, present := payload["ath"]; present {
		if json.Unmarshal(raw, &ath) != nil || !ValidJKT(ath) {
			return nil, "ath is not a base64url SHA-256"
		}
	}

	signed := parts[0] + "." + parts[1]
	if len(sig) != 64 {
		return nil, "signature length"
	}
	switch key := pub.(type) {
	case *ecdsa.PublicKey:
		digest := sha256.Sum256([]byte(signed))
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		if !ecdsa.Verify(key, digest[:], r, s) {
			return nil, "signature does not verify"
		}
	case ed25519.PublicKey:
		if !ed25519.Verify(key, []byte(signed), sig) {
			return nil, "signature does not verify"
		}
	default:
		return nil, "key type"
	}

	thumb, err := Thumbprint(jwk)
	if err != nil {
		return nil, "thumbprint"
	}
	return &DPoPProof{Thumbprint: thumb, JWK: jwk, Algorithm: Algorithm(alg), JTI: jti,
		IssuedAt: iat, HTM: gotHTM, HTU: gotHTU, ATH: ath}, ""
}

// bannedHeaders are JOSE header parameters a DPoP proof may not carry: the
// key is the embedded jwk and is never fetched or looked up, and a proof
// needs no extension (crit) nor an unencoded payload (b64, RFC 7797).
var bannedHeaders = []string{"kid", "jku", "x5u", "x5c", "x5t", "x5t#S256", "crit", "b64"}

// privateJWKMembers are the private-key members of EC, OKP and RSA JWKs and
// the symmetric key of an oct JWK (RFC 7518 §6).
var privateJWKMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// parseProofJWK checks the header's jwk for alg and returns it with the
// public key it describes, or the reason it is refused.
func parseProofJWK(raw json.RawMessage, alg Algorithm) (JWK, any, string) {
	if raw == nil {
		return JWK{}, nil, "missing"
	}
	m, err := strictObject(raw)
	if err != nil {
		return JWK{}, nil, err.Error()
	}
	for name := range m {
		for _, private := range privateJWKMembers {
			if strings.EqualFold(name, private) {
				return JWK{}, nil, "holds a private key member"
			}
		}
	}
	if r, present := m["alg"]; present {
		var a string
		if json.Unmarshal(r, &a) != nil || a != string(alg) {
			return JWK{}, nil, "alg member differs from the header's"
		}
	}
	if r, present := m["use"]; present {
		var use string
		if json.Unmarshal(r, &use) != nil || use != "sig" {
			return JWK{}, nil, "use member is not sig"
		}
	}
	if r, present := m["key_ops"]; present {
		var ops []string
		if json.Unmarshal(r, &ops) != nil || !contains(ops, "verify") {
			return JWK{}, nil, "key_ops member lacks verify"
		}
	}
	kty, _ := jsonString(m, "kty")
	crv, _ := jsonString(m, "crv")
	x, _ := jsonString(m, "x")
	y, _ := jsonString(m, "y")
	xb, okX := decodeB64URL(x)
	switch {
	case alg == ES256 && kty == "EC" && crv == "P-256":
		yb, okY := decodeB64URL(y)
		if !okX || !okY || len(xb) != 32 || len(yb) != 32 {
			return JWK{}, nil, "EC x or y is not 32 bytes of base64url"
		}
		point := append(append([]byte{4}, xb...), yb...)
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
		if err != nil {
			return JWK{}, nil, "EC point is not on P-256"
		}
		return JWK{Kty: kty, Crv: crv, X: x, Y: y}, pub, ""
	case alg == EdDSA && kty == "OKP" && crv == "Ed25519":
		if _, present := m["y"]; present {
			return JWK{}, nil, "OKP key with a y member"
		}
		if !okX || len(xb) != ed25519.PublicKeySize {
			return JWK{}, nil, "OKP x is not 32 bytes of base64url"
		}
		return JWK{Kty: kty, Crv: crv, X: x}, ed25519.PublicKey(xb), ""
	default:
		return JWK{}, nil, "key type does not match alg (want EC P-256 for ES256, OKP Ed25519 for EdDSA)"
	}
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// jsonString returns the member name of m if it is a JSON string.
func jsonString(m map[string]json.RawMessage, name string) (string, bool) {
	raw, ok := m[name]
	if !ok || len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// jsonNumericDate returns the member name of m if it is a JSON number of
// seconds since the epoch (RFC 7519 NumericDate, fractions allowed) within
// a sane range.
func jsonNumericDate(m map[string]json.RawMessage, name string) (time.Time, bool) {
	raw, ok := m[name]
	if !ok || len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return time.Time{}, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsNaN(f) || math.Abs(f) > 1e12 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// isDPoPType compares a typ value with the DPoP media type, ignoring ASCII
// case and an "application/" prefix (RFC 7515 §4.1.9).
func isDPoPType(typ string) bool {
	t := asciiLower(typ)
	return t == DPoPType || t == "application/"+DPoPType
}

// asciiLower lower-cases A-Z only, so that no Unicode folding (the Kelvin
// sign for k, say) can make another string equal.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// normalizeHTU returns the form of an http or https URL that proofs are
// compared in (RFC 9449 §4.3, with RFC 3986 §6.2.2 and §6.2.3): scheme and
// host in lower case, the default port dropped, percent-encodings of
// unreserved characters decoded and others in upper case, an empty path
// as "/". It refuses what a DPoP htu must not hold (a query or fragment,
// RFC 9449 §4.2) and what makes the comparison doubtful: userinfo, a dot
// segment, a non-canonical port, anything outside printable ASCII.
func normalizeHTU(raw string) (string, error) {
	if raw == "" || len(raw) > maxHTULength {
		return "", errors.New("is empty or too long")
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] <= 0x20 || raw[i] >= 0x7f {
			return "", errors.New("holds a character outside printable ASCII")
		}
	}
	if strings.ContainsAny(raw, "?#") {
		return "", errors.New("has a query or fragment")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("is not a URL")
	}
	scheme := asciiLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", errors.New("is not an http or https URL")
	}
	if u.Opaque != "" || u.User != nil || u.Host == "" || u.Hostname() == "" {
		return "", errors.New("has no host, or has userinfo")
	}
	host := asciiLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port := u.Port(); port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return "", errors.New("has a bad port")
		}
		if !(scheme == "http" && n == 80 || scheme == "https" && n == 443) {
			host += ":" + port
		}
	}
	path, ok := normalizePath(u.EscapedPath())
	if !ok {
		return "", errors.New("has a bad path")
	}
	return scheme + "://" + host + path, nil
}

// normalizePath decodes percent-encoded unreserved characters, upper-cases
// the other escapes, reads an empty path as "/", and refuses "." and ".."
// segments (RFC 3986 would remove them; no client sends them).
func normalizePath(p string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
			return "", false
		}
		d := unhex(p[i+1])<<4 | unhex(p[i+2])
		if isUnreserved(d) {
			b.WriteByte(d)
		} else {
			b.WriteString("%" + strings.ToUpper(p[i+1:i+3]))
		}
		i += 2
	}
	out := b.String()
	if out == "" {
		out = "/"
	}
	if out[0] != '/' {
		return "", false
	}
	for _, seg := range strings.Split(out, "/") {
		if seg == "." || seg == ".." {
			return "", false
		}
	}
	return out, true
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func isUnreserved(c byte) bool { return isB64URL(c) || c == '.' || c == '~' }

// NewDPoPProof signs a DPoP proof with key, which must hold a private part,
// for a request with method htm to the URL htu (no query or fragment),
// issued at iat, with a fresh 128-bit jti. The header carries the key's
// public JWK, whose thumbprint is key.ID(): the value a client sends as
// dpop_jkt. For Go clients and tests; browsers make proofs with WebCrypto.
func NewDPoPProof(key *Key, htm, htu string, iat time.Time) (string, error) {
	if key == nil || !key.Signer() {
		return "", errors.New("token: dpop proof needs a private key")
	}
	if htm == "" || strings.ContainsAny(htu, "?#") {
		return "", errors.New("token: dpop proof needs a method and a URL without query or fragment")
	}
	jti, err := NewNonce()
	if err != nil {
		return "", err
	}
	pub := key.JWK()
	header, err := json.Marshal(struct {
		Typ string `json:"typ"`
		Alg string `json:"alg"`
		JWK JWK    `json:"jwk"`
	}{DPoPType, string(key.alg), JWK{Kty: pub.Kty, Crv: pub.Crv, X: pub.X, Y: pub.Y}})
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(struct {
		JTI string `json:"jti"`
		HTM string `json:"htm"`
		HTU string `json:"htu"`
		IAT int64  `json:"iat"`
	}{jti, htm, htu, iat.Unix()})
	if err != nil {
		return "", err
	}
	signed := b64(header) + "." + b64(payload)
	sig, err := signingMethod(key.alg).Sign(signed, key.priv)
	if err != nil {
		return "", fmt.Errorf("token: sign dpop proof: %w", err)
	}
	return signed + "." + b64(sig), nil
}
