package keyfile_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/voicebroker/voicebroker/internal/keyfile"
)

func pemOf(t testing.TB, typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestParse(t *testing.T) {
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ecPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaPriv, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaSmall, _ := rsa.GenerateKey(rand.Reader, 1024)
	pkcs8 := func(k any) []byte { d, _ := x509.MarshalPKCS8PrivateKey(k); return d }
	pkix := func(k any) []byte { d, _ := x509.MarshalPKIXPublicKey(k); return d }
	ecDER, _ := x509.MarshalECPrivateKey(ecPriv)

	good := map[string]struct {
		data    []byte
		private bool
	}{
		"ed25519 PKCS#8":    {pemOf(t, "PRIVATE KEY", pkcs8(edPriv)), true},
		"ed25519 public":    {pemOf(t, "PUBLIC KEY", pkix(edPriv.Public())), false},
		"P-256 SEC 1":       {pemOf(t, "EC PRIVATE KEY", ecDER), true},
		"P-256 public":      {pemOf(t, "PUBLIC KEY", pkix(ecPriv.Public())), false},
		"RSA PKCS#1":        {pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaPriv)), true},
		"RSA PKCS#1 public": {pemOf(t, "RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&rsaPriv.PublicKey)), false},
		"with text around":  {append([]byte("comment\n"), pemOf(t, "PUBLIC KEY", pkix(edPriv.Public()))...), false},
	}
	for name, tc := range good {
		k, err := keyfile.Parse(tc.data)
		if err != nil || k.Public == nil || (k.Private != nil) != tc.private {
			t.Errorf("%s: %+v, %v", name, k, err)
		}
	}
	two := append(pemOf(t, "PUBLIC KEY", pkix(edPriv.Public())), pemOf(t, "PUBLIC KEY", pkix(ecPriv.Public()))...)
	bad := map[string]struct {
		data []byte
		want error
		says string
	}{
		"empty":         {nil, keyfile.ErrNotPEM, "empty"},
		"not PEM":       {[]byte("hello"), keyfile.ErrNotPEM, "no PEM block"},
		"two blocks":    {two, keyfile.ErrNotPEM, "more than one"},
		"broken DER":    {pemOf(t, "PRIVATE KEY", []byte{1, 2, 3}), keyfile.ErrNotPEM, "does not parse"},
		"P-384":         {pemOf(t, "PRIVATE KEY", pkcs8(ec384)), keyfile.ErrKeyType, "P-384"},
		"short RSA":     {pemOf(t, "PRIVATE KEY", pkcs8(rsaSmall)), keyfile.ErrKeyType, "1024 bits"},
		"certificate":   {pemOf(t, "CERTIFICATE", []byte{1}), keyfile.ErrKeyType, "certificate"},
		"unknown block": {pemOf(t, "OPENSSH PRIVATE KEY", []byte{1}), keyfile.ErrKeyType, "OPENSSH"},
		"wrong block":   {pemOf(t, "EC PRIVATE KEY", pkcs8(edPriv)), keyfile.ErrNotPEM, "does not parse"},
	}
	for name, tc := range bad {
		_, err := keyfile.Parse(tc.data)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: err = %v, want %v saying %q", name, err, tc.want, tc.says)
		}
	}
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	if _, err := keyfile.Read(filepath.Join(dir, "missing.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	big := filepath.Join(dir, "big.pem")
	os.WriteFile(big, make([]byte, keyfile.MaxSize+10), 0o600)
	if _, err := keyfile.Read(big); !errors.Is(err, keyfile.ErrNotPEM) {
		t.Fatalf("oversized file: %v", err)
	}
	if _, err := keyfile.Read(dir); err == nil {
		t.Fatal("a directory read as a key")
	}
}

// FuzzParse: never panics; an accepted key has a public part of an
// accepted type, and a private part only if it signs for that public key.
func FuzzParse(f *testing.F) {
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	d, _ := x509.MarshalPKCS8PrivateKey(edPriv)
	f.Add(pemOf(f, "PRIVATE KEY", d))
	p, _ := x509.MarshalPKIXPublicKey(edPriv.Public())
	f.Add(pemOf(f, "PUBLIC KEY", p))
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := keyfile.Parse(data)
		if err != nil {
			if !errors.Is(err, keyfile.ErrNotPEM) && !errors.Is(err, keyfile.ErrKeyType) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			return
		}
		switch k.Public.(type) {
		case ed25519.PublicKey, *ecdsa.PublicKey, *rsa.PublicKey:
		default:
			t.Fatalf("accepted %T", k.Public)
		}
		if k.Private != nil {
			type equaler interface{ Equal(crypto.PublicKey) bool }
			if e, ok := k.Private.Public().(equaler); !ok || !e.Equal(k.Public) {
				t.Fatal("private and public parts disagree")
			}
		}
	})
}
