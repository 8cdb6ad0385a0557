package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
)

// Algorithm is a JWS algorithm this package signs and verifies with.
type Algorithm string

// The algorithms a Key may use. Nothing else is ever accepted: in particular
// no HMAC algorithm and never "none".
const (
	EdDSA Algorithm = "EdDSA" // Ed25519; the default
	ES256 Algorithm = "ES256" // ECDSA on P-256 with SHA-256
)

// ErrUnsupportedKey is returned for a key that is neither Ed25519 nor ECDSA P-256.
var ErrUnsupportedKey = errors.New("token: unsupported key: want Ed25519 or ECDSA P-256")

// Key is a signing or verification key with its algorithm and key id.
// A Key parsed from a public key can only verify; Signer reports whether it
// can sign. The key id is the RFC 7638 JWK thumbprint of the public key, so
// the same key always has the same kid on every replica.
type Key struct {
	alg  Algorithm
	kid  string
	pub  crypto.PublicKey
	priv crypto.Signer // nil for a verification-only key
}

// GenerateKey returns a fresh private key for alg from crypto/rand.
func GenerateKey(alg Algorithm) (*Key, error) {
	switch alg {
	case EdDSA, "":
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		return newKey(priv)
	case ES256:
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		return newKey(priv)
	default:
		return nil, fmt.Errorf("%w: algorithm %q", ErrUnsupportedKey, alg)
	}
}

// ParsePEM parses one PEM block holding a PKCS#8 private key, a SEC 1 EC
// private key or a PKIX public key. A public key yields a verification-only Key.
func ParsePEM(data []byte) (*Key, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("token: no PEM block found")
	}
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("token: parse PKCS#8 key: %w", err)
		}
		signer, ok := k.(crypto.Signer)
		if !ok {
			return nil, ErrUnsupportedKey
		}
		return newKey(signer)
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("token: parse EC key: %w", err)
		}
		return newKey(k)
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("token: parse public key: %w", err)
		}
		return newPublicKey(k)
	default:
		return nil, fmt.Errorf("token: unsupported PEM block %q", block.Type)
	}
}

// NewKey returns a Key for an Ed25519 or ECDSA P-256 key already parsed: a
// crypto.Signer gives a signing key, a public key a verification-only one.
// Anything else is ErrUnsupportedKey.
func NewKey(k any) (*Key, error) {
	if s, ok := k.(crypto.Signer); ok {
		return newKey(s)
	}
	return newPublicKey(k)
}

func newKey(priv crypto.Signer) (*Key, error) {
	k, err := newPublicKey(priv.Public())
	if err != nil {
		return nil, err
	}
	k.priv = priv
	return k, nil
}

func newPublicKey(pub crypto.PublicKey) (*Key, error) {
	k := &Key{pub: pub}
	switch p := pub.(type) {
	case ed25519.PublicKey:
		k.alg = EdDSA
	case *ecdsa.PublicKey:
		if p.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%w: curve %s", ErrUnsupportedKey, p.Curve.Params().Name)
		}
		k.alg = ES256
	default:
		return nil, fmt.Errorf("%w: %T", ErrUnsupportedKey, pub)
	}
	thumb, err := json.Marshal(k.thumbprintMembers())
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(thumb)
	k.kid = base64.RawURLEncoding.EncodeToString(sum[:])
	return k, nil
}

// ID returns the key id: the RFC 7638 SHA-256 thumbprint, base64url.
func (k *Key) ID() string { return k.kid }

// Algorithm returns the JWS algorithm of the key.
func (k *Key) Algorithm() Algorithm { return k.alg }

// Signer reports whether the key holds a private part and can sign.
func (k *Key) Signer() bool { return k.priv != nil }

// Public returns a verification-only copy of the key.
func (k *Key) Public() *Key { return &Key{alg: k.alg, kid: k.kid, pub: k.pub} }

// MarshalPEM returns the private key as PKCS#8 PEM, or the public key as PKIX
// PEM for a verification-only key.
func (k *Key) MarshalPEM() ([]byte, error) {
	if k.priv == nil {
		der, err := x509.MarshalPKIXPublicKey(k.pub)
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// thumbprintMembers returns the required JWK members in lexicographic order,
// as RFC 7638 §3.2 requires (encoding/json sorts map keys).
func (k *Key) thumbprintMembers() map[string]string {
	switch p := k.pub.(type) {
	case ed25519.PublicKey:
		return map[string]string{"crv": "Ed25519", "kty": "OKP", "x": b64(p)}
	case *ecdsa.PublicKey:
		raw, _ := p.Bytes() // uncompressed point: 0x04 || X || Y, 32 bytes each
		return map[string]string{"crv": "P-256", "kty": "EC", "x": b64(raw[1:33]), "y": b64(raw[33:65])}
	}
	return nil
}

// JWK is one public JSON Web Key, as published in a JWKS document or as
// carried in a DPoP proof's header. The keys of this package are EC (P-256,
// crv x y) or OKP (Ed25519, crv x); N and E exist only so that Thumbprint
// can compute RSA thumbprints too.
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
	Kid string `json:"kid,omitempty"`
	Alg string `json:"alg,omitempty"`
	Use string `json:"use,omitempty"`
}

// JWK returns the public part of the key as a JWK.
func (k *Key) JWK() JWK {
	m := k.thumbprintMembers()
	return JWK{Kty: m["kty"], Crv: m["crv"], X: m["x"], Y: m["y"], Kid: k.kid, Alg: string(k.alg), Use: "sig"}
}

// JWKS is a JSON Web Key Set document.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// NewJWKS returns the set of the public parts of keys, in order, without
// duplicates.
func NewJWKS(keys ...*Key) JWKS {
	set := JWKS{Keys: make([]JWK, 0, len(keys))}
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if k == nil || seen[k.kid] {
			continue
		}
		seen[k.kid] = true
		set.Keys = append(set.Keys, k.JWK())
	}
	return set
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
