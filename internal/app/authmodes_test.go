package app_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/examples/authservice"
	"github.com/voicebroker/voicebroker/internal/app"
	"github.com/voicebroker/voicebroker/internal/testenv"
)

// TestAPISecretMode: Sayna's shared secrets, one per org, compared in
// constant time; from the header or the query.
func TestAPISecretMode(t *testing.T) {
	acmeSecret, globexSecret := strings.Repeat("a1", 20), strings.Repeat("g2", 24)
	b := startBroker(t, newKeys(t), map[string]string{
		"AUTH_API_SECRETS_JSON": fmt.Sprintf(`[{"id":"acme","secret":"%s"},{"id":"globex","secret":"%s"}]`, acmeSecret, globexSecret),
	})
	r := do(t, "POST", b.URL+"/token", acmeSecret, flo)
	expect(t, r, 201, "")
	red := do(t, "POST", b.URL+"/token/redeem", "", map[string]string{"token": r.Body["token"].(string)}, "Authorization", "Bearer "+acmeSecret)
	expect(t, red, 200, "")
	expect(t, do(t, "POST", b.URL+"/token?api_key="+globexSecret, "", map[string]any{"agent": "hank", "channel": "webrtc"}), 201, "")
	// The secret is its org's: globex cannot mint for acme's agent.
	expect(t, do(t, "POST", b.URL+"/token", globexSecret, flo), 404, "unknown_agent")
	expect(t, do(t, "POST", b.URL+"/token", acmeSecret+"x", flo), 401, "unauthorized")
	expect(t, do(t, "POST", b.URL+"/token", acmeSecret[:len(acmeSecret)-1], flo), 401, "unauthorized")
	if strings.Contains(b.Logs.String(), acmeSecret) || strings.Contains(b.Logs.String(), globexSecret) {
		t.Fatal("a secret reached the log")
	}
	// AUTH_API_SECRET alone stands for org "default", which the tenants
	// lack: the broker refuses to start rather than answer 500 on each use.
	cfg := filepath.Join(t.TempDir(), "tenants.yaml")
	writeFile(t, cfg, tenantsYAML(newKeys(t)))
	e, err := config.LoadEnv(func(k string) string {
		return map[string]string{"BROKER_CONFIG": cfg, "AUTH_API_SECRET": acmeSecret}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.New(e, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil ||
		!strings.Contains(err.Error(), `AUTH_API_SECRET: stands for org "default"`) || strings.Contains(err.Error(), acmeSecret) {
		t.Fatalf("start with a secret for a missing org: %v", err)
	}
}

// authPeer is the example auth service on loopback, recording what it saw.
type authPeer struct {
	URL      string
	mu       sync.Mutex
	received []*authservice.Payload
}

func (p *authPeer) last(t *testing.T) *authservice.Payload {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.received) == 0 {
		t.Fatal("the auth service received nothing")
	}
	return p.received[len(p.received)-1]
}

func (p *authPeer) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.received)
}

// startAuthPeer runs authservice.Service with decisions by token.
func startAuthPeer(t *testing.T, pub crypto.PublicKey) *authPeer {
	peer := &authPeer{}
	svc := &authservice.Service{
		PublicKey: pub,
		Received: func(p *authservice.Payload) {
			peer.mu.Lock()
			peer.received = append(peer.received, p)
			peer.mu.Unlock()
		},
		Decide: func(p *authservice.Payload) authservice.Decision {
			switch p.AuthData.Token {
			case "user-acme":
				return authservice.Decision{Status: 200, Body: map[string]string{"auth_id": "acme"}}
			case "user-no-org":
				return authservice.Decision{Status: 200}
			case "user-unknown-org":
				return authservice.Decision{Status: 200, Body: map[string]string{"auth_id": "initech"}}
			case "user-forbidden":
				return authservice.Decision{Status: 403}
			case "user-teapot":
				return authservice.Decision{Status: 418}
			case "user-boom":
				return authservice.Decision{Status: 500}
			case "user-down":
				return authservice.Decision{Status: 503}
			case "user-dup":
				// auth_id twice: encoding/json alone would take the last.
				return authservice.Decision{Status: 200, Body: json.RawMessage(`{"auth_id":"acme","auth_id":"globex"}`)}
			case "user-case":
				return authservice.Decision{Status: 200, Body: json.RawMessage(`{"AUTH_ID":"globex"}`)}
			case "user-huge":
				// Over 64 KiB: cut short, it would name no org.
				return authservice.Decision{Status: 200, Body: map[string]string{"pad": strings.Repeat("p", 64<<10), "auth_id": "acme"}}
			case "user-slow":
				return authservice.Decision{Status: 200, Body: map[string]string{"auth_id": "acme"}, Delay: 3 * time.Second}
			}
			return authservice.Decision{Status: 401}
		},
	}
	srv := httptest.NewServer(svc)
	t.Cleanup(srv.Close)
	peer.URL = srv.URL + "/auth"
	return peer
}

func writeKeyPair(t *testing.T, priv crypto.Signer) (path string) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	path = t.TempDir() + "/auth_private_key.pem"
	writeFile(t, path, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
	return path
}

// TestDelegatedMode: every row of the mapping table in Sayna's
// authentication docs against the real example auth service, the header
// filter, the signed body, no caching.
func TestDelegatedMode(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	peer := startAuthPeer(t, &rsaKey.PublicKey)
	b := startBroker(t, newKeys(t), map[string]string{
		"AUTH_SERVICE_URL": peer.URL, "AUTH_SIGNING_KEY_PATH": writeKeyPair(t, rsaKey), "AUTH_TIMEOUT_SECONDS": "1",
	})
	for _, tc := range []struct {
		token  string
		status int
		code   string
	}{
		{"user-acme", 201, ""},
		{"user-nobody", 401, "auth_service_error"},
		{"user-forbidden", 401, "auth_service_error"},
		{"user-teapot", 401, "auth_service_error"},
		{"user-boom", 502, "auth_service_error"},
		{"user-down", 502, "auth_service_error"},
		{"user-no-org", 500, "config_error"}, // two orgs: the service must name one
		{"user-unknown-org", 500, "config_error"},
		{"user-dup", 502, "auth_service_error"},  // a failed answer, not the first or last org
		{"user-case", 502, "auth_service_error"}, // AUTH_ID is not auth_id
		{"user-huge", 502, "auth_service_error"}, // over 64 KiB, not 500 config_error
	} {
		t.Run(tc.token, func(t *testing.T) {
			expect(t, do(t, "POST", b.URL+"/token", tc.token, flo), tc.status, tc.code)
		})
	}
	t.Run("slow past the timeout", func(t *testing.T) {
		start := time.Now()
		expect(t, do(t, "POST", b.URL+"/token", "user-slow", flo), 503, "auth_service_unavailable")
		if d := time.Since(start); d > 2500*time.Millisecond {
			t.Fatalf("took %v with AUTH_TIMEOUT_SECONDS=1", d)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		dead := startBroker(t, newKeys(t), map[string]string{
			"AUTH_SERVICE_URL":      fmt.Sprintf("http://127.0.0.1:%d/auth", testenv.FreePort(t)),
			"AUTH_SIGNING_KEY_PATH": writeKeyPair(t, rsaKey),
		})
		expect(t, do(t, "POST", dead.URL+"/token", "user-acme", flo), 503, "auth_service_unavailable")
	})

	t.Run("filtered headers and the signed body", func(t *testing.T) {
		body := `{"agent":"florencia","channel":"chat","metadata":{"ticket":"T-1","n":[1,2]}}`
		r := do(t, "POST", b.URL+"/token?x=1", "user-acme", body,
			"Cookie", "session=abc", "X-Forwarded-For", "10.0.0.1", "X-Forwarded-Proto", "https", "X-Sayna-Trace", "t",
			"X-Real-IP", "10.0.0.2", "X-Custom", "kept", "User-Agent", "vb-test")
		expect(t, r, 201, "")
		p := peer.last(t)
		h := p.AuthData.RequestHeaders
		for _, gone := range []string{"authorization", "cookie", "x-forwarded-for", "x-forwarded-proto", "x-sayna-trace", "x-real-ip", "host"} {
			if _, ok := h[gone]; ok {
				t.Errorf("header %s reached the auth service", gone)
			}
		}
		if h["x-custom"] != "kept" || h["user-agent"] != "vb-test" || h["content-type"] != "application/json" {
			t.Errorf("headers %v", h)
		}
		if p.Sub != "sayna-auth" || p.EXP-p.IAT != 300 || p.AuthData.Token != "user-acme" ||
			p.AuthData.RequestPath != "/token" || p.AuthData.RequestMethod != "POST" {
			t.Errorf("payload %+v", p)
		}
		if string(p.AuthData.RequestBody) != body {
			t.Errorf("signed body %s, sent %s", p.AuthData.RequestBody, body)
		}
		// The handler used the same bytes: the ticket carries that metadata.
		red := do(t, "POST", b.URL+"/token/redeem", "user-acme", map[string]string{"token": r.Body["token"].(string)})
		expect(t, red, 200, "")
		md, _ := json.Marshal(red.Body["metadata"])
		if string(md) != `{"n":[1,2],"ticket":"T-1"}` {
			t.Errorf("metadata %s", md)
		}
	})
	t.Run("never cached", func(t *testing.T) {
		n := peer.count()
		do(t, "POST", b.URL+"/token", "user-acme", flo)
		do(t, "POST", b.URL+"/token", "user-acme", flo)
		if peer.count() != n+2 {
			t.Fatalf("the auth service saw %d of 2 requests", peer.count()-n)
		}
	})
	t.Run("precedence", func(t *testing.T) {
		q := b.URL + "/token?api_key="
		expect(t, do(t, "POST", q+"user-acme", "", flo), 201, "")                               // query only
		expect(t, do(t, "POST", b.URL+"/token", "user-acme", flo), 201, "")                     // header only
		expect(t, do(t, "POST", q+"user-acme", "user-nobody", flo), 401, "auth_service_error")  // both: header wins
		expect(t, do(t, "POST", q+"user-acme", "", flo, "Authorization", "Bearer"), 201, "")    // bad header, good query
		expect(t, do(t, "POST", q+"user-acme", "", flo, "Authorization", "Token x y"), 201, "") // bad header, good query
		if p := peer.last(t); p.AuthData.Token != "user-acme" {
			t.Fatalf("forwarded token %q", p.AuthData.Token)
		}
		// sk_ keys are decided locally, never sent to the service.
		n := peer.count()
		expect(t, do(t, "POST", b.URL+"/token", b.keys.acme, flo), 201, "")
		expect(t, do(t, "POST", b.URL+"/token", "sk_live_"+strings.Repeat("Q", 43), flo), 401, "unauthorized")
		if peer.count() != n {
			t.Fatal("an sk_ key was forwarded to the auth service")
		}
	})
}

// TestDelegatedModeES256: an ECDSA P-256 signing key makes ES256 JWTs.
func TestDelegatedModeES256(t *testing.T) {
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	peer := startAuthPeer(t, &ecKey.PublicKey)
	b := startBroker(t, newKeys(t), map[string]string{"AUTH_SERVICE_URL": peer.URL, "AUTH_SIGNING_KEY_PATH": writeKeyPair(t, ecKey)})
	expect(t, do(t, "POST", b.URL+"/token", "user-acme", flo), 201, "")
}

// TestAuthNotRequired: in development, AUTH_REQUIRED=false lets a request
// without credential through as the only org, with a warning each time.
func TestAuthNotRequired(t *testing.T) {
	k := newKeys(t)
	oneOrg := filepath.Join(t.TempDir(), "tenants.yaml")
	writeFile(t, oneOrg, tenantsYAML(k, func(y string) string { return y[:strings.Index(y, "  - id: globex")] }))
	b := startBroker(t, k, map[string]string{"AUTH_REQUIRED": "false", "BROKER_CONFIG": oneOrg})
	expect(t, do(t, "POST", b.URL+"/token", "", flo), 201, "")
	expect(t, do(t, "POST", b.URL+"/token", "sk_live_"+strings.Repeat("Q", 43), flo), 401, "unauthorized") // a credential is still checked
	if n := strings.Count(b.Logs.String(), `"event":"auth.skipped"`); n != 1 {
		t.Fatalf("%d per-request warnings, want 1", n)
	}
	if !strings.Contains(b.Logs.String(), `"event":"auth.disabled"`) {
		t.Fatal("no start-up warning")
	}
}

// TestAuthNotRequiredNeedsItsOrg: with AUTH_REQUIRED=false a request
// without a credential stands for the only org, or org "default" when
// there are several. A tenants file with several orgs and no "default"
// would answer every such request 500, so a reload to one is refused (the
// start is refused too: cmd/broker's TestStartupMistakes) and the tenants
// in force keep serving; one with a "default" org is taken, and requests
// then stand for it.
func TestAuthNotRequiredNeedsItsOrg(t *testing.T) {
	k := newKeys(t)
	oneOrg := filepath.Join(t.TempDir(), "tenants.yaml")
	writeFile(t, oneOrg, tenantsYAML(k, func(y string) string { return y[:strings.Index(y, "  - id: globex")] }))
	b := startBroker(t, k, map[string]string{"AUTH_REQUIRED": "false", "BROKER_CONFIG": oneOrg, "BROKER_RELOAD_INTERVAL": "1h"})
	redeemAs := func(org string) {
		t.Helper()
		tok := b.mint(t, "", flo)
		r := do(t, "POST", b.URL+"/token/redeem", "", map[string]string{"token": tok})
		expect(t, r, 200, "")
		if r.Body["org"] != org {
			t.Fatalf("a request without a credential stood for org %v, want %q", r.Body["org"], org)
		}
	}
	redeemAs("acme")

	for name, file := range map[string]string{
		"two orgs":            tenantsYAML(k),
		"a near-miss name":    tenantsYAML(k, func(y string) string { return strings.Replace(y, "id: globex", "id: default-org", 1) }),
		"three orgs":          tenantsYAML(k) + "  - id: initech\n    tier: free\n",
		"default as an agent": tenantsYAML(k, func(y string) string { return strings.Replace(y, "id: hank", "id: default", 1) }),
	} {
		b.rewriteTenants(t, file, "error")
		if !strings.Contains(b.Logs.String(), "AUTH_REQUIRED: false lets a request without a credential through") {
			t.Fatalf("%s: the refused reload does not say why:\n%s", name, b.Logs.String())
		}
		redeemAs("acme") // the tenants in force still serve
	}

	b.rewriteTenants(t, tenantsYAML(k, func(y string) string {
		y = strings.Replace(y, "id: globex", "id: default", 1)
		return strings.Replace(y, "id: hank", "id: florencia\n        livekit_agent_name: default-florencia", 1)
	}), "ok")
	redeemAs("default")
}

// issuerKeys are the backends' signing keys of TestBackendJWT.
type issuerKeys struct {
	rsa *rsa.PrivateKey
	ec  *ecdsa.PrivateKey
	ed  ed25519.PrivateKey
}

// TestBackendJWT: an org's jwt_issuers sign their own short JWTs: RS256 from
// a PEM file, ES256 and EdDSA from a JWKS URL; HS256, none, expired,
// over-long, wrong issuer or audience are refused; the issuer's scopes apply.
func TestBackendJWT(t *testing.T) {
	var ik issuerKeys
	ik.rsa, _ = rsa.GenerateKey(rand.Reader, 2048)
	ik.ec, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ik.ed, _ = ed25519.GenerateKey(rand.Reader)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x, y := ik.ec.PublicKey.X.FillBytes(make([]byte, 32)), ik.ec.PublicKey.Y.FillBytes(make([]byte, 32))
		json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{
			{"kty": "EC", "crv": "P-256", "kid": "ec-1", "x": b64(x), "y": b64(y), "use": "sig"},
			{"kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "x": b64(ik.ed.Public().(ed25519.PublicKey))},
		}})
	}))
	defer jwks.Close()
	pubDER, _ := x509.MarshalPKIXPublicKey(&ik.rsa.PublicKey)
	pemFile := t.TempDir() + "/backend.pem"
	writeFile(t, pemFile, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})))

	k := newKeys(t)
	b := startBroker(t, k, nil)
	b.rewriteTenants(t, tenantsYAML(k, func(y string) string {
		return strings.Replace(y, "    agents:\n      - id: florencia", fmt.Sprintf(`    jwt_issuers:
      - issuer: https://auth.acme.example
        audience: voicebroker
        public_key_file: %s
        scopes: [tokens:create]
      - issuer: https://idp.acme.example
        audience: voicebroker
        jwks_url: %s
        scopes: [tokens:create, tokens:redeem]
    agents:
      - id: florencia`, pemFile, jwks.URL), 1)
	}), "ok")

	now := time.Now()
	claims := func(iss, aud string, iat, exp time.Time) jwt.MapClaims {
		return jwt.MapClaims{"iss": iss, "aud": aud, "sub": "svc", "iat": iat.Unix(), "exp": exp.Unix()}
	}
	sign := func(m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
		tok := jwt.NewWithClaims(m, c)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	signHeader := func(m jwt.SigningMethod, key any, header map[string]any, c jwt.MapClaims) string {
		tok := jwt.NewWithClaims(m, c)
		for name, v := range header {
			tok.Header[name] = v
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	with := func(c jwt.MapClaims, name string, v any) jwt.MapClaims {
		out := jwt.MapClaims{name: v}
		for n, x := range c {
			if n != name {
				out[n] = x
			}
		}
		return out
	}
	without := func(c jwt.MapClaims, name string) jwt.MapClaims {
		out := jwt.MapClaims{}
		for n, x := range c {
			if n != name {
				out[n] = x
			}
		}
		return out
	}
	pemIss, jwksIss := "https://auth.acme.example", "https://idp.acme.example"
	good := claims(pemIss, "voicebroker", now, now.Add(10*time.Minute))
	goodJWKS := claims(jwksIss, "voicebroker", now, now.Add(10*time.Minute))
	noneTok := func(c jwt.MapClaims) string {
		s, _ := jwt.NewWithClaims(jwt.SigningMethodNone, c).SignedString(jwt.UnsafeAllowNoneSignatureType)
		return s
	}
	noExp := jwt.MapClaims{"iss": pemIss, "aud": "voicebroker", "iat": now.Unix()}

	for _, tc := range []struct {
		name   string
		tok    string
		status int
		code   string
	}{
		{"RS256 from a PEM file", sign(jwt.SigningMethodRS256, ik.rsa, "", good), 201, ""},
		{"ES256 from the JWKS", sign(jwt.SigningMethodES256, ik.ec, "ec-1", goodJWKS), 201, ""},
		{"EdDSA from the JWKS", sign(jwt.SigningMethodEdDSA, ik.ed, "ed-1", goodJWKS), 201, ""},
		{"HS256", sign(jwt.SigningMethodHS256, []byte("shared-secret-shared-secret-0123"), "", good), 401, "unauthorized"},
		{"HS256 keyed with the public PEM", sign(jwt.SigningMethodHS256, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), "", good), 401, "unauthorized"},
		{"alg none", noneTok(good), 401, "unauthorized"},
		{"expired", sign(jwt.SigningMethodRS256, ik.rsa, "", claims(pemIss, "voicebroker", now.Add(-20*time.Minute), now.Add(-10*time.Minute))), 401, "unauthorized"},
		{"lifetime over an hour", sign(jwt.SigningMethodRS256, ik.rsa, "", claims(pemIss, "voicebroker", now, now.Add(61*time.Minute))), 401, "unauthorized"},
		{"no exp", sign(jwt.SigningMethodRS256, ik.rsa, "", noExp), 401, "unauthorized"},
		{"wrong audience", sign(jwt.SigningMethodRS256, ik.rsa, "", claims(pemIss, "someone-else", now, now.Add(time.Minute))), 401, "unauthorized"},
		{"unknown issuer", sign(jwt.SigningMethodRS256, ik.rsa, "", claims("https://evil.example", "voicebroker", now, now.Add(time.Minute))), 401, "unauthorized"},
		{"issuer's key, other issuer's name", sign(jwt.SigningMethodES256, ik.ec, "ec-1", good), 401, "unauthorized"},
		{"unknown kid", sign(jwt.SigningMethodES256, ik.ec, "nope", goodJWKS), 401, "unauthorized"},
		{"within the 30 s leeway", sign(jwt.SigningMethodRS256, ik.rsa, "", claims(pemIss, "voicebroker", now.Add(-10*time.Minute), now.Add(-20*time.Second))), 201, ""},
		// Read strictly: dates are numbers, no crit, no case variants.
		{"exp a string", sign(jwt.SigningMethodRS256, ik.rsa, "", with(good, "exp", fmt.Sprint(now.Add(10*time.Minute).Unix()))), 401, "unauthorized"},
		{"iat a string", sign(jwt.SigningMethodES256, ik.ec, "ec-1", with(goodJWKS, "iat", fmt.Sprint(now.Unix()))), 401, "unauthorized"},
		{"a crit header", signHeader(jwt.SigningMethodRS256, ik.rsa, map[string]any{"crit": []string{"x-ext"}, "x-ext": true}, good), 401, "unauthorized"},
		{"exp and EXP", sign(jwt.SigningMethodRS256, ik.rsa, "", with(good, "EXP", now.Add(50*time.Minute).Unix())), 401, "unauthorized"},
		{"Aud in another case", sign(jwt.SigningMethodEdDSA, ik.ed, "ed-1", with(without(goodJWKS, "aud"), "Aud", "voicebroker")), 401, "unauthorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expect(t, do(t, "POST", b.URL+"/token", tc.tok, flo), tc.status, tc.code)
		})
	}
	// The PEM issuer has only tokens:create.
	ticket := b.mint(t, sign(jwt.SigningMethodRS256, ik.rsa, "", good), flo)
	expect(t, do(t, "POST", b.URL+"/token/redeem", sign(jwt.SigningMethodRS256, ik.rsa, "", good), map[string]string{"token": ticket}), 403, "insufficient_scope")
	expect(t, do(t, "POST", b.URL+"/token/redeem", sign(jwt.SigningMethodEdDSA, ik.ed, "ed-1", goodJWKS), map[string]string{"token": ticket}), 200, "")
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
