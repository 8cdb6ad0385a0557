// Package keyfile reads the PEM key files the broker is configured with:
// its token signing and verification keys, the public keys of backend JWT
// issuers, and the delegated auth service's signing key. It is the one PEM
// parser of the configuration; callers check the key type they need.
package keyfile

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
)

// MaxSize bounds a key file; real PEM keys are a few KiB.
const MaxSize = 64 << 10

// MinRSABits is the shortest RSA modulus accepted.
const MinRSABits = 2048

// Errors wrapped by Read and Parse.
var (
	// ErrNotPEM: the file holds no PEM block, or more than one.
	ErrNotPEM = errors.New("not a PEM key")
	// ErrKeyType: the key is of a type or size this broker does not use.
	ErrKeyType = errors.New("unsupported key")
)

// Key is a parsed key: Private is nil for a public key.
type Key struct {
	Public  crypto.PublicKey
	Private crypto.Signer
}

// Read reads and parses the key file at path. Its errors say what is wrong
// without the file's content.
func Read(path string) (*Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: the file is over %d bytes", ErrNotPEM, MaxSize)
	}
	return Parse(data)
}

// Parse parses exactly one PEM block: a PKCS#8, PKCS#1 (RSA) or SEC 1 (EC)
// private key, or a PKIX or PKCS#1 public key. Accepted keys are Ed25519,
// ECDSA on P-256, and RSA of at least MinRSABits bits.
func Parse(data []byte) (*Key, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		if len(bytes.TrimSpace(data)) == 0 {
			return nil, fmt.Errorf("%w: the file is empty", ErrNotPEM)
		}
		return nil, fmt.Errorf("%w: no PEM block (-----BEGIN ...-----) found", ErrNotPEM)
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, fmt.Errorf("%w: more than one PEM block; put one key in each file", ErrNotPEM)
	}
	var (
		k   any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PUBLIC KEY":
		k, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		k, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		return nil, fmt.Errorf("%w: a certificate; give the key itself (PUBLIC KEY or PRIVATE KEY)", ErrKeyType)
	default:
		return nil, fmt.Errorf("%w: PEM block %q", ErrKeyType, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s block does not parse: %v", ErrNotPEM, block.Type, err)
	}
	out := &Key{}
	if s, ok := k.(crypto.Signer); ok {
		out.Private, out.Public = s, s.Public()
	} else {
		out.Public = k
	}
	if err := checkPublic(out.Public); err != nil {
		return nil, err
	}
	return out, nil
}

func checkPublic(k crypto.PublicKey) error {
	switch pk := k.(type) {
	case *rsa.PublicKey:
		if pk.N.BitLen() < MinRSABits {
			return fmt.Errorf("%w: RSA key of %d bits, shorter than %d", ErrKeyType, pk.N.BitLen(), MinRSABits)
		}
	case *ecdsa.PublicKey:
		if pk.Curve != elliptic.P256() {
			return fmt.Errorf("%w: ECDSA key on %s; only P-256 is used", ErrKeyType, pk.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("%w: %T; use Ed25519, ECDSA P-256 or RSA", ErrKeyType, k)
	}
	return nil
}

// IsRSA reports whether k is an RSA key.
func (k *Key) IsRSA() bool { _, ok := k.Public.(*rsa.PublicKey); return ok }
