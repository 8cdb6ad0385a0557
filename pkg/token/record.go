package token

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"

	"github.com/golang-jwt/jwt/v5"
)

// A record is what a store keeps with a ticket's nonce in place of a bare
// marker: HMAC-SHA256 of the whole ticket string (header, claims and
// signature, byte for byte) under a key derived from the private key that
// signed it. A ticket that matches its record is the ticket that was
// minted, so a redemption that finds the match can skip the signature
// (Verifier.CheckUnsigned).

// RecordSize is the length in bytes of a record.
const RecordSize = sha256.Size

// recordInfo is the HKDF info of the record key: it names the product, the
// purpose and the version, so that the key is used for nothing else and a
// later scheme can derive a different one from the same signing key.
const recordInfo = "voicebroker ticket record HMAC-SHA256 v1"

// ErrNoRecord is returned by CheckUnsigned for a ticket it cannot check
// against a record: its header is not the header this verifier's keys
// write, or its key has no private part to derive the record key from.
// The caller must call Verify.
var ErrNoRecord = errors.New("token: no record key for this ticket")

// recordMAC computes records under one key. HMAC's inner and outer
// states are computed once per pooled hash (crypto/hmac keeps them after
// the first Sum and restores them on Reset), so a record costs the hashing
// of the ticket and of one block, and no allocation but the result's.
type recordMAC struct {
	pool sync.Pool // of *macState
}

// macState is one pooled HMAC with a buffer to copy a ticket into (a
// string passed to Write would be copied to a new slice each time).
type macState struct {
	h   hash.Hash // hmac.New(sha256.New, key)
	buf []byte
	out [RecordSize]byte
}

// newRecordMAC derives the record key from k's private key material with
// HKDF-SHA256, or returns nil for a verification-only key. Every replica
// with the same key file derives the same key.
func newRecordMAC(k *Key) (*recordMAC, error) {
	var secret []byte
	switch p := k.priv.(type) {
	case ed25519.PrivateKey:
		secret = p.Seed()
	case *ecdsa.PrivateKey:
		b, err := p.Bytes()
		if err != nil {
			return nil, fmt.Errorf("token: record key: %w", err)
		}
		secret = b
	default:
		return nil, nil
	}
	key, err := hkdf.Key(sha256.New, secret, nil, recordInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("token: record key: %w", err)
	}
	m := &recordMAC{}
	m.pool.New = func() any { return &macState{h: hmac.New(sha256.New, key), buf: make([]byte, 0, 1024)} }
	return m, nil
}

// sum returns the record of ticket.
func (m *recordMAC) sum(ticket string) string {
	st := m.pool.Get().(*macState)
	st.h.Reset()
	st.buf = append(st.buf[:0], ticket...)
	st.h.Write(st.buf)
	r := string(st.h.Sum(st.out[:0]))
	if cap(st.buf) <= MaxLength {
		m.pool.Put(st)
	}
	return r
}

// Record returns the record to keep with the nonce of ticket, a ticket
// this issuer signed: RecordSize bytes, HMAC-SHA256 of the whole ticket
// string under a key derived (HKDF-SHA256) from the issuer's private key.
// Nothing else is configured: replicas sharing the key file agree. A store
// that keeps it lets a verifier redeem the ticket without checking its
// signature (see Verifier.CheckUnsigned); the record is no secret to hide
// from the store, but it can only be made with the private key.
func (i *Issuer) Record(ticket string) string { return i.mac.sum(ticket) }

// CheckUnsigned checks everything Verify checks except the signature:
// the header segment must be, byte for byte, the one an Issuer of one of
// the verifier's keys writes (which pins alg, typ and kid), and the claims
// are decoded and validated exactly as Verify validates them. It returns
// the claims with the record that the ticket's nonce must hold.
//
// The claims are NOT authenticated: anyone can write a ticket that passes
// CheckUnsigned. They are the broker's only if the store's record for
// claims.ID, kept from Issuer.Record when the ticket was minted, equals
// record. A caller may act on them only after consuming the nonce on that
// equality, compared in the same atomic step as the consumption; on any
// other outcome (no record, a different one, a refusal for any reason) it
// must call Verify and answer as Verify's result says, or it hands an
// attacker who cannot sign an oracle on the claims it chose.
//
// Any error means "call Verify": ErrNoRecord for a header that is not one
// of the verifier's own or of a key without a private part, ErrExpired or
// ErrInvalid otherwise (whose reason is Verify's to give, since the
// signature has not been checked).
func (v *Verifier) CheckUnsigned(s string) (claims *Claims, record string, err error) {
	if len(s) == 0 || len(s) > MaxLength {
		return nil, "", fmt.Errorf("%w: length %d", ErrInvalid, len(s))
	}
	if !compactChars(s) {
		return nil, "", fmt.Errorf("%w: a character outside base64url", ErrInvalid)
	}
	head, rest, ok := strings.Cut(s, ".")
	if !ok {
		return nil, "", fmt.Errorf("%w: malformed", ErrInvalid)
	}
	mac, ok := v.records[head]
	if !ok {
		return nil, "", ErrNoRecord
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok || strings.IndexByte(sig, '.') >= 0 {
		return nil, "", fmt.Errorf("%w: malformed", ErrInvalid)
	}
	// As the parser decodes (jwt.WithStrictDecoding): one spelling only.
	// The signature is not checked, but it must decode as Verify needs it
	// to. Both segments are decoded into one buffer on the stack (a
	// genuine ticket's claims take about 350 bytes), which nothing keeps.
	var buf [1024]byte
	if _, err := decodeSegment(buf[:], sig); err != nil {
		return nil, "", fmt.Errorf("%w: signature encoding", ErrInvalid)
	}
	raw, err := decodeSegment(buf[:], payload)
	if err != nil {
		return nil, "", fmt.Errorf("%w: claims encoding", ErrInvalid)
	}
	c, ok := parseCanonical(raw)
	if !ok {
		c = new(Claims)
		if err := json.Unmarshal(bytes.Clone(raw), c); err != nil {
			return nil, "", fmt.Errorf("%w: claims: %v", ErrInvalid, err)
		}
	}
	if err := v.validate(c); err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return nil, "", ErrExpired
		}
		return nil, "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := checkClaims(c); err != nil {
		return nil, "", err
	}
	return c, mac.sum(s), nil
}

// decodeSegment decodes s, base64url without padding in its one strict
// spelling, into buf if it fits, or into a new slice.
func decodeSegment(buf []byte, s string) ([]byte, error) {
	enc := base64.RawURLEncoding.Strict()
	if n := enc.DecodedLen(len(s)); n > len(buf) {
		buf = make([]byte, n)
	}
	n, err := enc.Decode(buf, []byte(s))
	return buf[:n], err
}
