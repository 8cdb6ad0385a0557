package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/auth"
)

// TestJWKSRefresh: an unknown kid refreshes the issuer's JWKS at most once a
// minute; known keys keep working in between.
func TestJWKSRefresh(t *testing.T) {
	var mu sync.Mutex
	keys := map[string]ed25519.PrivateKey{}
	addKey := func(kid string) ed25519.PrivateKey {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		mu.Lock()
		keys[kid] = priv
		mu.Unlock()
		return priv
	}
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		mu.Lock()
		defer mu.Unlock()
		var set []map[string]string
		for kid, k := range keys {
			set = append(set, map[string]string{"kty": "OKP", "crv": "Ed25519", "kid": kid,
				"x": base64.RawURLEncoding.EncodeToString(k.Public().(ed25519.PublicKey))})
		}
		json.NewEncoder(w).Encode(map[string]any{"keys": set})
	}))
	defer srv.Close()

	ten, err := config.Parse([]byte(`orgs:
  - id: acme
    tier: free
    jwt_issuers:
      - issuer: https://idp.example
        audience: vb
        jwks_url: ` + srv.URL + `
        scopes: [tokens:create]
`))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	a := auth.New(config.StaticHolder(ten), auth.Options{Now: func() time.Time { return now }})
	sign := func(kid string, k ed25519.PrivateKey) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{
			"iss": "https://idp.example", "aud": "vb", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()})
		tok.Header["kid"] = kid
		s, _ := tok.SignedString(k)
		return s
	}
	try := func(cred string) error {
		_, err := a.Authenticate(context.Background(), &auth.Request{Credential: cred, ClientIP: netip.MustParseAddr("127.0.0.1")})
		return err
	}

	k1 := addKey("k1")
	if err := try(sign("k1", k1)); err != nil {
		t.Fatalf("k1: %v", err)
	}
	k2 := addKey("k2")
	now = now.Add(10 * time.Second)
	if err := try(sign("k2", k2)); !errors.Is(err, auth.ErrUnauthorized) {
		t.Fatalf("k2 within the minute: %v, want unauthorized", err)
	}
	if err := try(sign("k1", k1)); err != nil {
		t.Fatalf("k1 again: %v", err)
	}
	if fetches.Load() != 1 {
		t.Fatalf("%d fetches within the first minute, want 1", fetches.Load())
	}
	now = now.Add(time.Minute)
	if err := try(sign("k2", k2)); err != nil {
		t.Fatalf("k2 after a minute: %v", err)
	}
	if err := try(sign("k3", k2)); !errors.Is(err, auth.ErrUnauthorized) || fetches.Load() != 2 {
		t.Fatalf("unknown kid right after a refresh: %v, %d fetches", err, fetches.Load())
	}
}

// TestJWKSUnreachable: an issuer whose JWKS cannot be fetched is a 503
// condition, not a verdict on the caller.
func TestJWKSUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	ten, _ := config.Parse([]byte("orgs:\n  - id: acme\n    tier: free\n    jwt_issuers:\n      - {issuer: https://idp.example, audience: vb, jwks_url: '" + url + "', scopes: [tokens:create]}\n"))
	a := auth.New(config.StaticHolder(ten), auth.Options{JWKSTimeout: time.Second})
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"iss": "https://idp.example", "aud": "vb",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix()})
	s, _ := tok.SignedString(k)
	_, err := a.Authenticate(context.Background(), &auth.Request{Credential: s})
	if !errors.Is(err, auth.ErrServiceUnavailable) {
		t.Fatalf("err = %v, want ErrServiceUnavailable", err)
	}
	if strings.Contains(err.Error(), s) {
		t.Fatal("error text carries the credential")
	}
}

// TestBackendJWTNamingTwoOrgsIsRefused: two orgs trust one identity
// provider, each with its own audience. A JWT carrying both audiences
// would verify for either; it is refused (401 unauthorized) rather than
// given to whichever org comes first, and each audience alone still
// authenticates as its own org.
func TestBackendJWTNamingTwoOrgsIsRefused(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{"kty": "OKP", "crv": "Ed25519", "kid": "k",
			"x": base64.RawURLEncoding.EncodeToString(priv.Public().(ed25519.PublicKey))}}})
	}))
	defer srv.Close()
	ten, err := config.Parse([]byte(`orgs:
  - id: acme
    tier: free
    jwt_issuers: [{issuer: https://idp.example, audience: vb-acme, jwks_url: ` + srv.URL + `, scopes: [tokens:create]}]
  - id: globex
    tier: free
    jwt_issuers: [{issuer: https://idp.example, audience: vb-globex, jwks_url: ` + srv.URL + `, scopes: [tokens:create]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	a := auth.New(config.StaticHolder(ten), auth.Options{})
	sign := func(aud ...string) string {
		now := time.Now()
		tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{
			"iss": "https://idp.example", "aud": aud, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()})
		tok.Header["kid"] = "k"
		s, _ := tok.SignedString(priv)
		return s
	}
	for _, tc := range []struct {
		name string
		aud  []string
		org  string // "" means refused
	}{
		{"acme alone", []string{"vb-acme"}, "acme"},
		{"globex with a foreign audience", []string{"other", "vb-globex"}, "globex"},
		{"both orgs", []string{"vb-acme", "vb-globex"}, ""},
		{"both orgs, other order", []string{"vb-globex", "vb-acme"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := a.Authenticate(context.Background(), &auth.Request{Credential: sign(tc.aud...)})
			if tc.org != "" {
				if err != nil || p.Org != tc.org {
					t.Fatalf("got %v, %v; want org %s", p, err, tc.org)
				}
				return
			}
			var ae *auth.Error
			if !errors.Is(err, auth.ErrUnauthorized) || !errors.As(err, &ae) || ae.Reason != auth.ReasonBackendJWTAmbiguous || ae.Org != "" {
				t.Fatalf("got %v, %v; want unauthorized (backend_jwt_ambiguous, no org)", p, err)
			}
		})
	}
}

// TestReasonLabel: the auth_failures label of a reason is the reason, but
// an auth service's status becomes its class, so labels stay a closed set.
func TestReasonLabel(t *testing.T) {
	for in, want := range map[string]string{
		"unknown_key": "unknown_key", "auth_service_401": "auth_service_4xx", "auth_service_418": "auth_service_4xx",
		"auth_service_599": "auth_service_5xx", "auth_service_302": "auth_service_3xx", "auth_service_unreachable": "auth_service_unreachable",
		"auth_service_4011": "auth_service_4011", "missing_scope:tokens:create": "missing_scope:tokens:create",
	} {
		if got := auth.Reason(in).Label(); got != want {
			t.Errorf("Reason(%q).Label() = %q, want %q", in, got, want)
		}
	}
}

// TestServiceSigningKey: the auth service's signing key is an RSA (2048
// bits or more) or ECDSA P-256 private key, read through keyfile; anything
// else is refused with a message naming the variable.
func TestServiceSigningKey(t *testing.T) {
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	write := func(typ string, der []byte) string {
		path := filepath.Join(t.TempDir(), "key.pem")
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	pkcs8 := func(k any) string {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write("PRIVATE KEY", der)
	}
	ecDER, _ := x509.MarshalECPrivateKey(p256)
	pubDER, _ := x509.MarshalPKIXPublicKey(&rsa2048.PublicKey)
	for _, tc := range []struct {
		name string
		path string
		ok   bool
	}{
		{"RSA 2048, PKCS#8", pkcs8(rsa2048), true},
		{"RSA 2048, PKCS#1", write("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsa2048)), true},
		{"ECDSA P-256, PKCS#8", pkcs8(p256), true},
		{"ECDSA P-256, SEC 1", write("EC PRIVATE KEY", ecDER), true},
		{"RSA 1024", pkcs8(rsa1024), false},
		{"ECDSA P-384", pkcs8(p384), false},
		{"Ed25519", pkcs8(ed), false},
		{"a public key", write("PUBLIC KEY", pubDER), false},
		{"no such file", filepath.Join(t.TempDir(), "nope.pem"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := auth.NewService("http://127.0.0.1:1/auth", tc.path, time.Second)
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "AUTH_SIGNING_KEY_PATH: ") {
				t.Fatalf("error %q does not name the variable", err)
			}
		})
	}
}
