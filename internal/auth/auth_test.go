package auth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
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
