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
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Fixed values of every ticket.
const (
	// Type is the JOSE header typ of a ticket (RFC 8725 §3.11 explicit typing),
	// so that no other JWT signed by the same key can pass as one.
	Type = "vst+jwt"
	// Audience is the aud claim of every ticket.
	Audience = "voice-session"
	// MaxLength bounds the compact serialisation accepted by Verify.
	// Metadata is limited to 2 KiB, so a genuine ticket stays well below it.
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
	return &Issuer{key: key, method: signingMethod(key.alg), iss: issuer, ttl: ttl, now: time.Now}, nil
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
func (i *Issuer) Mint(t Ticket) (string, *Claims, error) {
	var cnf *Confirmation
	if t.JKT != "" {
		if !ValidJKT(t.JKT) {
			return "", nil, ErrInvalidJKT
		}
		cnf = &Confirmation{JKT: t.JKT}
	}
	nonce, err := NewNonce()
	if err != nil {
		return "", nil, err
	}
	now := i.now().Unix()
	md := t.Metadata
	if len(md) == 0 {
		md = json.RawMessage("{}")
	}
	c := &Claims{
		Issuer: i.iss, Audience: Audience, Subject: t.Identity, ID: nonce,
		IssuedAt: now, NotBefore: now, ExpiresAt: now + int64(i.ttl/time.Second),
		Org: t.Org, Agent: t.Agent, Channel: t.Channel, Metadata: md, Origin: t.Origin,
		Confirmation: cnf,
	}
	tok := jwt.NewWithClaims(i.method, c)
	tok.Header["typ"] = Type
	tok.Header["kid"] = i.key.kid
	s, err := tok.SignedString(i.key.priv)
	if err != nil {
		return "", nil, fmt.Errorf("token: sign: %w", err)
	}
	return s, c, nil
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
}

// NewVerifier returns a Verifier for tickets with the given iss claim, signed
// by any of keys (the current signing key and those still accepted after a
// rotation). now may be nil for time.Now; leeway is the clock skew tolerated.
func NewVerifier(issuer string, keys []*Key, now func() time.Time, leeway time.Duration) (*Verifier, error) {
	if issuer == "" || len(keys) == 0 {
		return nil, errors.New("token: verifier needs an issuer and at least one key")
	}
	if now == nil {
		now = time.Now
	}
	m := make(map[string]*Key, len(keys))
	for _, k := range keys {
		m[k.kid] = k.Public()
	}
	return &Verifier{
		keys: m,
		parser: jwt.NewParser(
			// Only our two asymmetric algorithms: this refuses "none" and the
			// HS256-signed-with-the-public-key confusion before any key is used.
			jwt.WithValidMethods([]string{string(EdDSA), string(ES256)}),
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
			// One ticket, one spelling: refuse base64 with stray padding bits.
			jwt.WithStrictDecoding(),
			jwt.WithTimeFunc(now),
		),
	}, nil
}

// Verify checks the signature, header and claims of a ticket and returns
// its claims. It does not consume the nonce. The error is ErrExpired past
// exp (plus leeway) and ErrInvalid for anything else, wrapped with a reason
// that never contains the token.
func (v *Verifier) Verify(s string) (*Claims, error) {
	if len(s) == 0 || len(s) > MaxLength {
		return nil, fmt.Errorf("%w: length %d", ErrInvalid, len(s))
	}
	c := new(Claims)
	_, err := v.parser.ParseWithClaims(s, c, v.keyFor)
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, ErrExpired
	default:
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if c.ID == "" || c.Org == "" || c.Agent == "" || c.Channel == "" || c.IssuedAt == 0 || c.NotBefore == 0 {
		return nil, fmt.Errorf("%w: missing claim", ErrInvalid)
	}
	if len(c.Metadata) == 0 || c.Metadata[0] != '{' {
		return nil, fmt.Errorf("%w: metadata is not an object", ErrInvalid)
	}
	if c.Confirmation != nil && !ValidJKT(c.Confirmation.JKT) {
		return nil, fmt.Errorf("%w: cnf without a valid jkt", ErrInvalid)
	}
	return c, nil
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
