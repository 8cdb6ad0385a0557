// Package token mints and verifies voicebroker's single-use tickets.
//
// A ticket is a JWT signed with EdDSA (Ed25519) or ES256, with header typ
// "vst+jwt" and the kid of its key, audience "voice-session", and a jti nonce
// of 128 random bits. This package knows nothing of HTTP or of where the
// nonce is stored: making a ticket single-use is the caller's job (store the
// ID at mint, consume it atomically at redemption).
//
// A ticket may be sender-constrained (RFC 9449, DPoP): minted with the
// thumbprint of the client's public key, it carries cnf.jkt, and a
// DPoPVerifier checks the proof that must accompany it.
package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/voicebroker/voicebroker/internal/compactjson"
)

// Fixed values of every ticket.
const (
	// Type is the JOSE header typ of a ticket (RFC 8725 §3.11 explicit typing),
	// so that no other JWT signed by the same key can pass as one.
	Type = "vst+jwt"
	// Audience is the aud claim of every ticket.
	Audience = "voice-session"
	// MaxLength bounds the compact serialisation accepted by Verify.
	// Metadata is limited to 2 KiB compacted and goes into the ticket as it
	// is (see appendClaims), so a genuine ticket stays well below it: about
	// 5 KiB at most, with the longest identity of characters JSON escapes.
	MaxLength = 8 << 10
	// DefaultLeeway is the clock skew tolerated on exp, nbf and iat.
	DefaultLeeway = 5 * time.Second
)

// Errors returned by Verify, tested with errors.Is. Every failure other than
// expiry is ErrInvalid; the wrapped text says why, for logs only.
var (
	ErrInvalid = errors.New("token invalid")
	ErrExpired = errors.New("token expired")
)

// Claims are the claims of a ticket.
type Claims struct {
	Issuer    string          `json:"iss"`
	Audience  string          `json:"aud"`
	Subject   string          `json:"sub"` // the participant identity
	ID        string          `json:"jti"` // the single-use nonce
	IssuedAt  int64           `json:"iat"`
	NotBefore int64           `json:"nbf"`
	ExpiresAt int64           `json:"exp"`
	Org       string          `json:"org"`
	Agent     string          `json:"agent"`
	Channel   string          `json:"channel"`
	Metadata  json.RawMessage `json:"metadata"`
	Origin    string          `json:"origin,omitempty"` // set on public-mode tickets only
	// Confirmation is the cnf claim of a sender-constrained ticket (RFC 7800,
	// RFC 9449 §6); nil for a bearer ticket. Verify refuses a cnf whose jkt
	// is not a thumbprint.
	Confirmation *Confirmation `json:"cnf,omitempty"`
}

// Confirmation is a ticket's cnf claim.
type Confirmation struct {
	// JKT is the RFC 7638 SHA-256 thumbprint of the key a DPoP proof must be
	// signed with, base64url (43 characters).
	JKT string `json:"jkt"`
}

// JKT returns the thumbprint the ticket is bound to, or "" for a bearer
// ticket. Compare it with a proof's key with DPoPProof.Confirms.
func (c *Claims) JKT() string {
	if c == nil || c.Confirmation == nil {
		return ""
	}
	return c.Confirmation.JKT
}

// Expiry returns the expiry time.
func (c *Claims) Expiry() time.Time { return time.Unix(c.ExpiresAt, 0) }

// The jwt.Claims interface, for the parser's validation.

func (c *Claims) GetExpirationTime() (*jwt.NumericDate, error) { return numeric(c.ExpiresAt), nil }
func (c *Claims) GetIssuedAt() (*jwt.NumericDate, error)       { return numeric(c.IssuedAt), nil }
func (c *Claims) GetNotBefore() (*jwt.NumericDate, error)      { return numeric(c.NotBefore), nil }
func (c *Claims) GetIssuer() (string, error)                   { return c.Issuer, nil }
func (c *Claims) GetSubject() (string, error)                  { return c.Subject, nil }
func (c *Claims) GetAudience() (jwt.ClaimStrings, error)       { return jwt.ClaimStrings{c.Audience}, nil }

func numeric(sec int64) *jwt.NumericDate {
	if sec == 0 {
		return nil
	}
	return jwt.NewNumericDate(time.Unix(sec, 0))
}

// Ticket is what a caller asks to be minted.
type Ticket struct {
	Org      string
	Agent    string
	Channel  string
	Identity string
	Metadata json.RawMessage // a JSON object; nil means {}
	Origin   string          // empty for backend-minted tickets
	// JKT, when set, binds the ticket to a client key: the RFC 7638 SHA-256
	// thumbprint of its public JWK (the request's dpop_jkt), which the ticket
	// carries as cnf.jkt. Mint refuses one that is not a thumbprint
	// (ErrInvalidJKT). Empty for a bearer ticket.
	JKT string
}

// Issuer mints tickets. It is safe for concurrent use.
type Issuer struct {
	key    *Key
	method jwt.SigningMethod
	iss    string
	ttl    time.Duration
	now    func() time.Time
	// header is the first segment of every ticket the issuer signs, made
	// once: {"alg","kid","typ"}, base64url.
	header string
	// ed is the key when it is Ed25519, signed with directly.
	ed ed25519.PrivateKey
	// mac makes the records of the issuer's tickets (Record).
	mac *recordMAC
}

// NewIssuer returns an Issuer that signs with key (which must hold a private
// part) tickets with the given iss claim and lifetime.
func NewIssuer(key *Key, issuer string, ttl time.Duration) (*Issuer, error) {
	if key == nil || !key.Signer() {
		return nil, errors.New("token: issuer needs a private key")
	}
	if issuer == "" {
		return nil, errors.New("token: issuer needs an iss value")
	}
	if ttl <= 0 {
		return nil, errors.New("token: issuer needs a positive lifetime")
	}
	i := &Issuer{key: key, method: signingMethod(key.alg), iss: issuer, ttl: ttl, now: time.Now}
	var err error
	if i.header, err = headerOf(key); err != nil {
		return nil, err
	}
	if ed, ok := key.priv.(ed25519.PrivateKey); ok {
		i.ed = ed
	}
	if i.mac, err = newRecordMAC(key); err != nil {
		return nil, err
	}
	return i, nil
}

// headerOf returns the header segment of the tickets key signs: the header
// golang-jwt would write, its keys sorted as json.Marshal writes a map.
func headerOf(key *Key) (string, error) {
	h, err := json.Marshal(map[string]string{"alg": string(key.alg), "kid": key.kid, "typ": Type})
	if err != nil {
		return "", fmt.Errorf("token: header: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(h), nil
}

// WithClock returns a copy of the issuer that reads the time from now; for tests.
func (i *Issuer) WithClock(now func() time.Time) *Issuer {
	c := *i
	c.now = now
	return &c
}

// TTL returns the lifetime of minted tickets.
func (i *Issuer) TTL() time.Duration { return i.ttl }

// Mint signs a new ticket with a fresh 128-bit nonce and returns the compact
// JWT with its claims. The caller must store claims.ID before handing the
// token out, or the token will never redeem. A malformed t.JKT is
// ErrInvalidJKT (bad input, where any other error is a signing failure).
// It is NewClaims then Sign.
func (i *Issuer) Mint(t Ticket) (string, *Claims, error) {
	c, err := i.NewClaims(t)
	if err != nil {
		return "", nil, err
	}
	s, err := i.Sign(c)
	if err != nil {
		return "", nil, err
	}
	return s, c, nil
}

// NewClaims returns the claims of a new ticket for t, with a fresh 128-bit
// nonce, not yet signed: a caller can store the nonce (and be refused by a
// limit) before it pays for the signature. A malformed t.JKT is
// ErrInvalidJKT.
func (i *Issuer) NewClaims(t Ticket) (*Claims, error) {
	var cnf *Confirmation
	if t.JKT != "" {
		if !ValidJKT(t.JKT) {
			return nil, ErrInvalidJKT
		}
		cnf = &Confirmation{JKT: t.JKT}
	}
	nonce, err := NewNonce()
	if err != nil {
		return nil, err
	}
	now := i.now().Unix()
	md := t.Metadata
	if len(md) == 0 {
		md = json.RawMessage("{}")
	}
	return &Claims{
		Issuer: i.iss, Audience: Audience, Subject: t.Identity, ID: nonce,
		IssuedAt: now, NotBefore: now, ExpiresAt: now + int64(i.ttl/time.Second),
		Org: t.Org, Agent: t.Agent, Channel: t.Channel, Metadata: md, Origin: t.Origin,
		Confirmation: cnf,
	}, nil
}

// Sign returns the compact JWT of claims made by NewClaims.
func (i *Issuer) Sign(c *Claims) (string, error) {
	s, err := i.sign(c)
	if err != nil {
		return "", fmt.Errorf("token: sign: %w", err)
	}
	return s, nil
}

// sign returns the compact JWS of c: the issuer's header, the claims as
// json.Marshal writes them (appendClaims), and the signature, built in one
// buffer. The result is what golang-jwt's SignedString makes, byte for byte.
func (i *Issuer) sign(c *Claims) (string, error) {
	var scratch [512]byte
	payload, err := appendClaims(scratch[:0], c)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	buf := make([]byte, 0, len(i.header)+1+enc.EncodedLen(len(payload))+1+enc.EncodedLen(2*32))
	buf = append(buf, i.header...)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, payload)
	var sig []byte
	if i.ed != nil {
		sig = ed25519.Sign(i.ed, buf)
	} else if sig, err = i.method.Sign(string(buf), i.key.priv); err != nil {
		return "", err
	}
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return string(buf), nil
}

// appendClaims appends c as json.Marshal(c) writes it, without reflection.
func appendClaims(b []byte, c *Claims) ([]byte, error) {
	b = append(b, `{"iss":`...)
	b = AppendJSONString(b, c.Issuer)
	b = append(b, `,"aud":`...)
	b = AppendJSONString(b, c.Audience)
	b = append(b, `,"sub":`...)
	b = AppendJSONString(b, c.Subject)
	b = append(b, `,"jti":`...)
	b = AppendJSONString(b, c.ID)
	b = append(b, `,"iat":`...)
	b = strconv.AppendInt(b, c.IssuedAt, 10)
	b = append(b, `,"nbf":`...)
	b = strconv.AppendInt(b, c.NotBefore, 10)
	b = append(b, `,"exp":`...)
	b = strconv.AppendInt(b, c.ExpiresAt, 10)
	b = append(b, `,"org":`...)
	b = AppendJSONString(b, c.Org)
	b = append(b, `,"agent":`...)
	b = AppendJSONString(b, c.Agent)
	b = append(b, `,"channel":`...)
	b = AppendJSONString(b, c.Channel)
	b = append(b, `,"metadata":`...)
	switch md := c.Metadata; {
	case md == nil:
		b = append(b, "null"...)
	case string(md) == "{}":
		b = append(b, md...)
	default:
		// Validated and compacted, as json.Compact writes it, and not
		// HTML-escaped as json.Marshal would: a ticket is no HTML page, and
		// escaped, each <, > and & would take six bytes, so metadata within
		// its 2 KiB could make a ticket over MaxLength, minted but never
		// redeemable (nor sent in a 16 KiB body).
		var err error
		if b, err = compactjson.Append(b, md, false); err != nil {
			return nil, fmt.Errorf("token: metadata: %w", err)
		}
	}
	if c.Origin != "" {
		b = append(b, `,"origin":`...)
		b = AppendJSONString(b, c.Origin)
	}
	if c.Confirmation != nil {
		b = append(b, `,"cnf":{"jkt":`...)
		b = AppendJSONString(b, c.Confirmation.JKT)
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

// AppendJSONString appends s quoted as json.Marshal quotes it (HTML
// characters escaped): printable ASCII other than " \ < > & as it is;
// anything else through json.Marshal.
func AppendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// NewNonce returns 128 random bits, base64url without padding (22 characters).
func NewNonce() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("token: nonce: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func signingMethod(alg Algorithm) jwt.SigningMethod {
	if alg == ES256 {
		return jwt.SigningMethodES256
	}
	return jwt.SigningMethodEdDSA
}

// Verifier checks tickets against a fixed set of keys. It is safe for
// concurrent use.
type Verifier struct {
	keys   map[string]*Key
	parser *jwt.Parser
	// validator validates claims as parser does, for CheckUnsigned and
	// verifyCanonical (through validate).
	validator *jwt.Validator
	// The validator's settings, for validate's shortcut.
	iss    string
	now    func() time.Time
	leeway time.Duration
	// records maps the header segment of each key with a private part to
	// its record key, for CheckUnsigned.
	records map[string]*recordMAC
	// headers maps the header segment an Issuer of each key writes to the
	// key, public part only, for verifyCanonical.
	headers map[string]*Key
}

// NewVerifier returns a Verifier for tickets with the given iss claim, signed
// by any of keys (the current signing key and those still accepted after a
// rotation). now may be nil for time.Now; leeway is the clock skew tolerated.
// Keys given with their private part can also be checked against records
// (CheckUnsigned); a verification-only key cannot.
func NewVerifier(issuer string, keys []*Key, now func() time.Time, leeway time.Duration) (*Verifier, error) {
	if issuer == "" || len(keys) == 0 {
		return nil, errors.New("token: verifier needs an issuer and at least one key")
	}
	if now == nil {
		now = time.Now
	}
	v := &Verifier{keys: make(map[string]*Key, len(keys)), records: make(map[string]*recordMAC),
		headers: make(map[string]*Key, len(keys)), iss: issuer, now: now, leeway: leeway}
	for _, k := range keys {
		v.keys[k.kid] = k.Public()
		h, err := headerOf(k)
		if err != nil {
			return nil, err
		}
		v.headers[h] = v.keys[k.kid]
		mac, err := newRecordMAC(k)
		if err != nil {
			return nil, err
		}
		if mac != nil {
			v.records[h] = mac
		}
	}
	claimOpts := []jwt.ParserOption{
		// By default golang-jwt treats exp as optional; a ticket without
		// one would live forever.
		jwt.WithExpirationRequired(),
		// aud and iss keep tickets of another deployment, or other JWTs
		// signed by a shared key, from passing.
		jwt.WithAudience(Audience),
		jwt.WithIssuer(issuer),
		// iat in the future is as suspicious as nbf in the future.
		jwt.WithIssuedAt(),
		// Replicas' clocks differ by a little; tickets live a minute.
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(now),
	}
	// The same claim rules for CheckUnsigned as for Verify.
	v.validator = jwt.NewValidator(claimOpts...)
	v.parser = jwt.NewParser(append(claimOpts,
		// Only our two asymmetric algorithms: this refuses "none" and the
		// HS256-signed-with-the-public-key confusion before any key is used.
		jwt.WithValidMethods([]string{string(EdDSA), string(ES256)}),
		// One ticket, one spelling: refuse base64 with stray padding bits
		// (Verify refuses line breaks). An ES256 signature still has a
		// twin, (r, n-s), as ECDSA has: a second spelling of the same
		// claims and nonce, consumed once like the first.
		jwt.WithStrictDecoding(),
	)...)
	return v, nil
}

// Verify checks the signature, header and claims of a ticket and returns
// its claims. It does not consume the nonce. The error is ErrExpired past
// exp (plus leeway) and ErrInvalid for anything else, wrapped with a reason
// that never contains the token.
func (v *Verifier) Verify(s string) (*Claims, error) {
	if len(s) == 0 || len(s) > MaxLength {
		return nil, fmt.Errorf("%w: length %d", ErrInvalid, len(s))
	}
	if !compactChars(s) {
		return nil, fmt.Errorf("%w: a character outside base64url", ErrInvalid)
	}
	if c, done, err := v.verifyCanonical(s); done {
		return c, err
	}
	return v.verifyParsed(s)
}

// verifyParsed verifies s with the jwt parser, which decodes the header
// and the claims with json.Unmarshal.
func (v *Verifier) verifyParsed(s string) (*Claims, error) {
	c := new(Claims)
	_, err := v.parser.ParseWithClaims(s, c, v.keyFor)
	return result(c, err)
}

// result returns Verify's answer for the claims c the parser read and the
// parser's error.
func result(c *Claims, err error) (*Claims, error) {
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, ErrExpired
	default:
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := checkClaims(c); err != nil {
		return nil, err
	}
	return c, nil
}

// verifyCanonical verifies a ticket as the parser would, with its answer,
// when its header segment is, byte for byte, one a verifier's key writes
// and its claims are in the Issuer's shape (parseCanonical); it reports
// false, having checked no signature, for anything else, which the caller
// gives to the parser. The parser checks what a known header segment
// stands for (alg among the valid methods, typ, kid, the key's alg),
// then the signature with the key, then the claims, and so does this,
// with the same signing method and validator and the parser's error
// wrapping, so that each refusal has the parser's text (FuzzVerifyCanonical
// compares them). It saves the parser's decoding of the header into a map
// and of the claims by reflection: Verify of an Ed25519 ticket took about
// 62 µs of CPU and 45 allocations, 57 µs and 5 with this.
func (v *Verifier) verifyCanonical(s string) (c *Claims, done bool, err error) {
	head, rest, _ := strings.Cut(s, ".")
	k, ok := v.headers[head]
	if !ok {
		return nil, false, nil
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok || strings.IndexByte(sig, '.') >= 0 {
		return nil, false, nil
	}
	var buf [1024]byte
	raw, derr := decodeSegment(buf[:], payload)
	if derr != nil {
		return nil, false, nil
	}
	c, ok = parseCanonical(raw)
	if !ok {
		return nil, false, nil
	}
	// The claims are copied out of buf: it can take the signature.
	sigBytes, derr := decodeSegment(buf[:], sig)
	if derr != nil {
		return nil, false, nil
	}
	// The parser's errors, as its newError wraps them.
	if serr := signingMethod(k.alg).Verify(s[:len(head)+1+len(payload)], sigBytes, k.pub); serr != nil {
		_, err = result(nil, fmt.Errorf("%w: %w", jwt.ErrTokenSignatureInvalid, serr))
		return nil, true, err
	}
	if verr := v.validate(c); verr != nil {
		_, err = result(nil, fmt.Errorf("%w: %w", jwt.ErrTokenInvalidClaims, verr))
		return nil, true, err
	}
	c, err = result(c, nil)
	return c, true, err
}

// validate validates c as v.validator does and returns its error. A claim
// set that plainly passes every rule (the validator's comparisons, made
// on the same values) is taken without the validator, whose calls to the
// jwt.Claims getters and error list allocate five times a ticket;
// anything else, which fails, goes to the validator for its error
// (FuzzValidate compares the two).
func (v *Verifier) validate(c *Claims) error {
	if v.plainlyValid(c) {
		return nil
	}
	return v.validator.Validate(c)
}

// plainlyValid reports whether c passes the rules NewVerifier gives the
// validator: exp required and not past, nbf and iat (if set) not in the
// future, all with the leeway, aud and iss the expected values. Each test
// is the validator's own (jwt's verifyExpiresAt, verifyNotBefore,
// verifyIssuedAt, verifyAudience, verifyIssuer) on the times numeric
// makes, so it never passes what the validator refuses.
func (v *Verifier) plainlyValid(c *Claims) bool {
	if _, custom := any(c).(jwt.ClaimsValidator); custom {
		return false // the validator would call its Validate too
	}
	if c.ExpiresAt == 0 || c.Audience != Audience || c.Issuer != v.iss {
		return false
	}
	at := func(sec int64) time.Time { return time.Unix(sec, 0).Truncate(jwt.TimePrecision) }
	now := v.now()
	if !now.Before(at(c.ExpiresAt).Add(+v.leeway)) {
		return false
	}
	if c.NotBefore != 0 && now.Before(at(c.NotBefore).Add(-v.leeway)) {
		return false
	}
	return c.IssuedAt == 0 || !now.Before(at(c.IssuedAt).Add(-v.leeway))
}

// compactChars reports whether s is made only of the characters of a
// compact JWS: the base64url alphabet and the dots between segments. The
// base64 decoder (even in strict mode) skips CR and LF, so without this a
// ticket with a line break anywhere in it would verify as a second
// spelling of itself.
func compactChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if !compactChar[s[i]] {
			return false
		}
	}
	return true
}

// compactChar marks the characters of a compact JWS. Over a 560-byte
// ticket, isB64URL's comparisons took 0.4 µs, a fifth of CheckUnsigned;
// a lookup a byte takes 0.15 µs.
var compactChar = func() (t [256]bool) {
	for c := range len(t) {
		t[c] = c == '.' || isB64URL(byte(c))
	}
	return t
}()

// checkClaims checks what the parser's validator does not: the claims
// every ticket has, and their form.
func checkClaims(c *Claims) error {
	if c.ID == "" || c.Org == "" || c.Agent == "" || c.Channel == "" || c.IssuedAt == 0 || c.NotBefore == 0 {
		return fmt.Errorf("%w: missing claim", ErrInvalid)
	}
	if len(c.Metadata) == 0 || c.Metadata[0] != '{' {
		return fmt.Errorf("%w: metadata is not an object", ErrInvalid)
	}
	if c.Confirmation != nil && !ValidJKT(c.Confirmation.JKT) {
		return fmt.Errorf("%w: cnf without a valid jkt", ErrInvalid)
	}
	return nil
}

// keyFor picks the key by kid and checks the typ header; the parser has
// already restricted alg, and the signing method rejects a key of the wrong
// type for it.
func (v *Verifier) keyFor(t *jwt.Token) (any, error) {
	if typ, _ := t.Header["typ"].(string); typ != Type {
		return nil, fmt.Errorf("typ %q", typ)
	}
	kid, _ := t.Header["kid"].(string)
	k, ok := v.keys[kid]
	if !ok {
		return nil, errors.New("unknown kid")
	}
	if string(k.alg) != t.Method.Alg() {
		return nil, errors.New("alg does not match key")
	}
	return k.pub, nil
}
