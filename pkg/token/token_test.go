package token_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/voicebroker/voicebroker/pkg/token"
)

const iss = "https://broker.example"

var t0 = time.Unix(1_800_000_000, 0)

func fixed(t time.Time) func() time.Time { return func() time.Time { return t } }

func mustKey(t testing.TB, alg token.Algorithm) *token.Key {
	t.Helper()
	k, err := token.GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mint(t testing.TB, k *token.Key, ticket token.Ticket) (string, *token.Claims) {
	t.Helper()
	is, err := token.NewIssuer(k, iss, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	s, c, err := is.WithClock(fixed(t0)).Mint(ticket)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func verifier(t testing.TB, now time.Time, keys ...*token.Key) *token.Verifier {
	t.Helper()
	v, err := token.NewVerifier(iss, keys, fixed(now), token.DefaultLeeway)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

var ticket = token.Ticket{Org: "acme", Agent: "florencia", Channel: "webrtc", Identity: "user-1",
	Metadata: json.RawMessage(`{"plan":"gold"}`)}

func TestRoundTrip(t *testing.T) {
	for _, alg := range []token.Algorithm{token.EdDSA, token.ES256} {
		t.Run(string(alg), func(t *testing.T) {
			k := mustKey(t, alg)
			s, minted := mint(t, k, ticket)
			c, err := verifier(t, t0.Add(30*time.Second), k).Verify(s)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if c.Org != "acme" || c.Agent != "florencia" || c.Channel != "webrtc" || c.Subject != "user-1" ||
				string(c.Metadata) != `{"plan":"gold"}` || c.ID != minted.ID || c.Audience != token.Audience || c.Issuer != iss {
				t.Fatalf("claims = %+v", c)
			}
			if c.ExpiresAt-c.IssuedAt != 60 {
				t.Fatalf("lifetime %d, want 60", c.ExpiresAt-c.IssuedAt)
			}
			h := header(t, s)
			if h["typ"] != token.Type || h["kid"] != k.ID() || h["alg"] != string(alg) {
				t.Fatalf("header = %v", h)
			}
		})
	}
}

func TestNonceIs128Bits(t *testing.T) {
	k := mustKey(t, token.EdDSA)
	seen := map[string]bool{}
	for range 1000 {
		_, c := mint(t, k, ticket)
		raw, err := base64.RawURLEncoding.DecodeString(c.ID)
		if err != nil || len(raw) != 16 {
			t.Fatalf("jti %q is not 16 bytes of base64url", c.ID)
		}
		if seen[c.ID] {
			t.Fatal("nonce repeated")
		}
		seen[c.ID] = true
	}
}

func TestKeyIDIsRFC7638Thumbprint(t *testing.T) {
	// RFC 8037 Appendix A.3: the thumbprint of its Ed25519 example key.
	pub, _ := base64.RawURLEncoding.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	pem := pemOf(t, ed25519.PublicKey(pub))
	k, err := token.ParsePEM(pem)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := k.ID(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"; got != want {
		t.Fatalf("kid = %s, want %s", got, want)
	}
}

func TestRefusals(t *testing.T) {
	k := mustKey(t, token.EdDSA)
	other := mustKey(t, token.EdDSA)
	good, _ := mint(t, k, ticket)
	v := verifier(t, t0.Add(time.Second), k)

	// sign builds a token from scratch with any header, claims and method.
	sign := func(method jwt.SigningMethod, key any, hdr map[string]any, claims jwt.MapClaims) string {
		tok := jwt.NewWithClaims(method, claims)
		for k, v := range hdr {
			tok.Header[k] = v
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	claims := func(mut func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"iss": iss, "aud": token.Audience, "sub": "u", "jti": "abcdefghijklmnopqrstuv",
			"iat": t0.Unix(), "nbf": t0.Unix(), "exp": t0.Add(time.Minute).Unix(),
			"org": "acme", "agent": "florencia", "channel": "webrtc", "metadata": map[string]any{}}
		if mut != nil {
			mut(c)
		}
		return c
	}
	priv := privOf(t, k)
	hdr := map[string]any{"typ": token.Type, "kid": k.ID()}
	pubPEM, _ := k.Public().MarshalPEM()
	ecPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaPriv, _ := rsa.GenerateKey(rand.Reader, 2048)

	parts := strings.Split(good, ".")
	tamperedPayload := func() string {
		raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
		raw = []byte(strings.Replace(string(raw), `"acme"`, `"evil"`, 1))
		return parts[0] + "." + base64.RawURLEncoding.EncodeToString(raw) + "." + parts[2]
	}()
	noneTok := func() string {
		h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"vst+jwt","kid":"` + k.ID() + `"}`))
		return h + "." + parts[1] + "."
	}()

	cases := []struct {
		name string
		tok  string
		now  time.Time
		want error
	}{
		{"good control", good, t0.Add(time.Second), nil},
		{"empty", "", t0, token.ErrInvalid},
		{"garbage", "not.a.jwt", t0, token.ErrInvalid},
		{"oversized", strings.Repeat("a", token.MaxLength+1), t0, token.ErrInvalid},
		{"forged by another key", sign(jwt.SigningMethodEdDSA, privOf(t, other), hdr, claims(nil)), t0, token.ErrInvalid},
		{"forged with another key's kid", sign(jwt.SigningMethodEdDSA, privOf(t, other), map[string]any{"typ": token.Type, "kid": other.ID()}, claims(nil)), t0, token.ErrInvalid},
		{"tampered payload", tamperedPayload, t0, token.ErrInvalid},
		{"tampered signature", parts[0] + "." + parts[1] + "." + flip(parts[2]), t0, token.ErrInvalid},
		{"alg none", noneTok, t0, token.ErrInvalid},
		{"HS256 keyed with the public key PEM", sign(jwt.SigningMethodHS256, pubPEM, hdr, claims(nil)), t0, token.ErrInvalid},
		{"ES256 with an EdDSA kid", sign(jwt.SigningMethodES256, ecPriv, hdr, claims(nil)), t0, token.ErrInvalid},
		{"RS256", sign(jwt.SigningMethodRS256, rsaPriv, hdr, claims(nil)), t0, token.ErrInvalid},
		{"wrong typ", sign(jwt.SigningMethodEdDSA, priv, map[string]any{"typ": "JWT", "kid": k.ID()}, claims(nil)), t0, token.ErrInvalid},
		{"no typ", sign(jwt.SigningMethodEdDSA, priv, map[string]any{"kid": k.ID()}, claims(nil)), t0, token.ErrInvalid},
		{"unknown kid", sign(jwt.SigningMethodEdDSA, priv, map[string]any{"typ": token.Type, "kid": "nope"}, claims(nil)), t0, token.ErrInvalid},
		{"wrong aud", sign(jwt.SigningMethodEdDSA, priv, hdr, claims(func(c jwt.MapClaims) { c["aud"] = "other" })), t0, token.ErrInvalid},
		{"aud array", sign(jwt.SigningMethodEdDSA, priv, hdr, claims(func(c jwt.MapClaims) { c["aud"] = []string{"voice-session"} })), t0, token.ErrInvalid},
		{"wrong iss", sign(jwt.SigningMethodEdDSA, priv, hdr, claims(func(c jwt.MapClaims) { c["iss"] = "https://evil" })), t0, token.ErrInvalid},
		{"no exp", sign(jwt.SigningMethodEdDSA, priv, hdr, claims(func(c jwt.MapClaims) { delete(c, "exp") })), t0, token.ErrInvalid},
		{"no jti", sign(jwt.SigningMethodEdDSA, priv, hdr, claims(func(c jwt.MapClaims) { delete(c, "jti") })), t0, token.ErrInvalid},
		{"no org", sign(jwt.SigningMethodEdDSA, priv, hdr, claims(func(c jwt.MapClaims) { delete(c, "org") })), t0, token.ErrInvalid},
		{"metadata not object", sign(jwt.SigningMethodEdDSA, priv, hdr, claims(func(c jwt.MapClaims) { c["metadata"] = "x" })), t0, token.ErrInvalid},
		{"expired", good, t0.Add(time.Minute + token.DefaultLeeway + time.Second), token.ErrExpired},
		{"within leeway after exp", good, t0.Add(time.Minute + token.DefaultLeeway - time.Second), nil},
		{"not yet valid", good, t0.Add(-token.DefaultLeeway - time.Second), token.ErrInvalid},
		{"iat in the future", sign(jwt.SigningMethodEdDSA, priv, hdr, claims(func(c jwt.MapClaims) { c["iat"] = t0.Add(time.Hour).Unix() })), t0, token.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			vv := v
			if !tc.now.Equal(t0.Add(time.Second)) {
				vv = verifier(t, tc.now, k)
			}
			_, err := vv.Verify(tc.tok)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Verify = %v, want success", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
			if tc.tok != "" && len(tc.tok) > 20 && strings.Contains(err.Error(), tc.tok) {
				t.Fatal("error text contains the token")
			}
		})
	}
}

// TestRotation: a ticket signed by the old key still verifies while the old
// key is listed, and not after it is dropped.
func TestRotation(t *testing.T) {
	oldKey, newKey := mustKey(t, token.ES256), mustKey(t, token.EdDSA)
	s, _ := mint(t, oldKey, ticket)
	if _, err := verifier(t, t0, newKey, oldKey.Public()).Verify(s); err != nil {
		t.Fatalf("old-key ticket refused during rotation: %v", err)
	}
	if _, err := verifier(t, t0, newKey).Verify(s); !errors.Is(err, token.ErrInvalid) {
		t.Fatalf("old-key ticket after rotation: %v, want ErrInvalid", err)
	}
	set := token.NewJWKS(newKey, oldKey, newKey)
	if len(set.Keys) != 2 || set.Keys[0].Kid != newKey.ID() || set.Keys[1].Kid != oldKey.ID() || set.Keys[1].Y == "" {
		t.Fatalf("JWKS = %+v", set)
	}
}

func TestPEMRoundTrip(t *testing.T) {
	for _, alg := range []token.Algorithm{token.EdDSA, token.ES256} {
		k := mustKey(t, alg)
		data, err := k.MarshalPEM()
		if err != nil {
			t.Fatal(err)
		}
		back, err := token.ParsePEM(data)
		if err != nil || back.ID() != k.ID() || !back.Signer() || back.Algorithm() != alg {
			t.Fatalf("%s: PEM round trip: %v", alg, err)
		}
		pubData, _ := k.Public().MarshalPEM()
		pub, err := token.ParsePEM(pubData)
		if err != nil || pub.ID() != k.ID() || pub.Signer() {
			t.Fatalf("%s: public PEM round trip: %v", alg, err)
		}
	}
	rsaPriv, _ := rsa.GenerateKey(rand.Reader, 2048)
	if _, err := token.ParsePEM(pemOf(t, &rsaPriv.PublicKey)); !errors.Is(err, token.ErrUnsupportedKey) {
		t.Fatalf("RSA key accepted: %v", err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := token.ParsePEM(pemOf(t, &p384.PublicKey)); !errors.Is(err, token.ErrUnsupportedKey) {
		t.Fatalf("P-384 key accepted: %v", err)
	}
	if _, err := token.ParsePEM([]byte("not pem")); err == nil {
		t.Fatal("garbage accepted")
	}
	if _, err := token.NewIssuer(k0(t).Public(), iss, time.Minute); err == nil {
		t.Fatal("issuer built from a public key")
	}
}

func k0(t *testing.T) *token.Key { return mustKey(t, token.EdDSA) }
