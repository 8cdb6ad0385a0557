package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voicebroker/voicebroker/pkg/token"
)

var flo = map[string]any{"agent": "florencia", "channel": "webrtc"}

// TestMintRedeem is the happy path: a backend mints, a voice server of the
// same org redeems once.
func TestMintRedeem(t *testing.T) {
	b := startBroker(t, newKeys(t), nil)
	r := do(t, "POST", b.URL+"/token", b.keys.acme, map[string]any{
		"agent": "florencia", "channel": "webrtc", "identity": "caller-42", "metadata": map[string]any{"plan": "gold"},
	})
	expect(t, r, http.StatusCreated, "")
	if r.Body["server"] != "http://broker.test" || r.Body["expiresIn"] != 60.0 {
		t.Fatalf("mint body %s", r.Raw)
	}
	tok := r.Body["token"].(string)
	if r.Header.Get("RateLimit-Limit") != "60" || r.Header.Get("RateLimit-Remaining") == "" || r.Header.Get("X-Request-Id") == "" {
		t.Fatalf("headers %v", r.Header)
	}

	r = do(t, "POST", b.URL+"/token/redeem", b.keys.acmeRedeemOnly, map[string]any{"token": tok})
	expect(t, r, http.StatusOK, "")
	want := `{"org":"acme","agent":"florencia","channel":"webrtc","identity":"caller-42","metadata":{"plan":"gold"}}`
	if r.Raw != want+"\n" && r.Raw != want {
		t.Fatalf("redeem body %s, want %s", r.Raw, want)
	}
	expect(t, do(t, "POST", b.URL+"/token/redeem", b.keys.acme, map[string]any{"token": tok}), http.StatusUnauthorized, "token_used")

	// An agent's own server URL is returned as "server".
	r = do(t, "POST", b.URL+"/token", b.keys.acme, map[string]any{"agent": "texter", "channel": "chat"})
	expect(t, r, http.StatusCreated, "")
	if r.Body["server"] != "wss://voice.acme.example" {
		t.Fatalf("server = %v", r.Body["server"])
	}
	// The JWKS publishes the signing key under the token's kid.
	r = do(t, "GET", b.URL+"/.well-known/jwks.json", "", nil)
	if r.Status != 200 || !strings.Contains(r.Raw, b.signingKey().ID()) {
		t.Fatalf("jwks %d %s", r.Status, r.Raw)
	}
	for _, path := range []string{"/", "/healthz", "/readyz"} {
		expect(t, do(t, "GET", b.URL+path, "", nil), http.StatusOK, "")
	}
	if r := do(t, "GET", b.URL+"/metrics", "", nil); r.Status != 200 || !strings.Contains(r.Raw, "voicebroker_tokens_minted_total") {
		t.Fatalf("metrics %d", r.Status)
	}
}

// TestErrorTable drives every row of contract §5 that the foundation owns
// through the real server, and checks that no refused mint stored a nonce.
func TestErrorTable(t *testing.T) {
	redisURL := nextRedisURL(t)
	b := startBroker(t, newKeys(t), map[string]string{"BROKER_REDIS_URL": redisURL})
	opt, _ := redis.ParseURL(redisURL)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	rdb.FlushDB(ctx)
	nonces := func() int {
		keys, err := rdb.Keys(ctx, "vb:n:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		return len(keys)
	}
	k := b.keys
	big := strings.Repeat("x", 2100)
	cases := []struct {
		name   string
		path   string
		cred   string
		body   any
		hdr    []string
		status int
		code   string
	}{
		{"no credential", "/token", "", flo, nil, 401, "missing_auth_header"},
		{"malformed header", "/token", "", flo, []string{"Authorization", "Basic abc"}, 401, "invalid_auth_header"},
		{"bearer without credential", "/token", "", flo, []string{"Authorization", "Bearer "}, 401, "invalid_auth_header"},
		{"two authorization headers", "/token", "", flo, []string{"Authorization", "Bearer " + k.acme, "Authorization", "Bearer " + k.acme}, 401, "invalid_auth_header"},
		{"unknown key", "/token", "sk_live_" + strings.Repeat("A", 43), flo, nil, 401, "unauthorized"},
		{"short key", "/token", "sk_live_abc", flo, nil, 401, "unauthorized"},
		{"not a key", "/token", "hunter2", flo, nil, 401, "unauthorized"},
		{"publishable key at /token", "/token", k.pk, flo, nil, 401, "unauthorized"},
		{"revoked key", "/token", k.acmeRevoked, flo, nil, 401, "unauthorized"},
		{"expired key", "/token", k.acmeExpired, flo, nil, 401, "unauthorized"},
		{"ip not allowed", "/token", k.acmeIPOnly, flo, nil, 403, "ip_not_allowed"},
		{"scope missing", "/token", k.acmeRedeemOnly, flo, nil, 403, "insufficient_scope"},
		{"empty body", "/token", k.acme, "", nil, 400, "invalid_request"},
		{"malformed JSON", "/token", k.acme, `{"agent":`, nil, 400, "invalid_request"},
		{"JSON array", "/token", k.acme, `[1,2]`, nil, 400, "invalid_request"},
		{"trailing data", "/token", k.acme, `{"agent":"florencia","channel":"webrtc"} {}`, nil, 400, "invalid_request"},
		{"agent wrong type", "/token", k.acme, `{"agent":7,"channel":"webrtc"}`, nil, 400, "invalid_request"},
		{"metadata wrong type", "/token", k.acme, `{"agent":"florencia","channel":"webrtc","metadata":"x"}`, nil, 400, "invalid_request"},
		{"metadata array", "/token", k.acme, `{"agent":"florencia","channel":"webrtc","metadata":[1]}`, nil, 400, "invalid_request"},
		{"metadata over 2 KiB", "/token", k.acme, map[string]any{"agent": "florencia", "channel": "webrtc", "metadata": map[string]any{"x": big}}, nil, 400, "invalid_request"},
		{"unknown field", "/token", k.acme, `{"agent":"florencia","channel":"webrtc","room":"x"}`, nil, 400, "invalid_request"},
		{"missing agent", "/token", k.acme, `{"channel":"webrtc"}`, nil, 400, "invalid_request"},
		{"unknown channel", "/token", k.acme, `{"agent":"florencia","channel":"sip"}`, nil, 400, "invalid_request"},
		{"channel the agent lacks", "/token", k.acme, `{"agent":"texter","channel":"webrtc"}`, nil, 400, "invalid_request"},
		{"identity empty", "/token", k.acme, `{"agent":"florencia","channel":"webrtc","identity":""}`, nil, 400, "invalid_request"},
		{"identity too long", "/token", k.acme, map[string]any{"agent": "florencia", "channel": "webrtc", "identity": strings.Repeat("i", 129)}, nil, 400, "invalid_request"},
		{"identity control char", "/token", k.acme, `{"agent":"florencia","channel":"webrtc","identity":"a\u0000b"}`, nil, 400, "invalid_request"},
		{"unknown agent", "/token", k.acme, `{"agent":"nobody","channel":"webrtc"}`, nil, 404, "unknown_agent"},
		{"another org's agent", "/token", k.acme, `{"agent":"hank","channel":"webrtc"}`, nil, 404, "unknown_agent"},
		{"body over 16 KiB", "/token", k.acme, `{"agent":"florencia","channel":"webrtc","metadata":{"x":"` + strings.Repeat("y", 17<<10) + `"}}`, nil, 413, "payload_too_large"},
		{"redeem without token", "/token/redeem", k.acme, `{}`, nil, 400, "invalid_request"},
		{"redeem garbage", "/token/redeem", k.acme, `{"token":"abc.def.ghi"}`, nil, 401, "token_invalid"},
		{"redeem wrong scope", "/token/redeem", k.acmeExpired, `{"token":"x"}`, nil, 401, "unauthorized"},
		{"unknown path", "/nope", "", nil, nil, 404, "not_found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := nonces()
			r := do(t, "POST", b.URL+tc.path, tc.cred, tc.body, tc.hdr...)
			expect(t, r, tc.status, tc.code)
			if after := nonces(); after != before {
				t.Fatalf("a refused request stored %d nonce(s)", after-before)
			}
			if tc.cred != "" && strings.Contains(r.Raw, tc.cred) {
				t.Fatal("the response echoes the credential")
			}
		})
	}

	t.Run("method not allowed", func(t *testing.T) {
		expect(t, do(t, "GET", b.URL+"/token", k.acme, nil), 405, "method_not_allowed")
	})
	t.Run("huge headers", func(t *testing.T) {
		r := do(t, "POST", b.URL+"/token", k.acme, flo, "X-Junk", strings.Repeat("j", 40<<10))
		if r.Status != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("status %d, want 431", r.Status)
		}
	})
	t.Run("oversized credential", func(t *testing.T) {
		r := do(t, "POST", b.URL+"/token", "sk_live_"+strings.Repeat("A", 9000), flo)
		expect(t, r, 401, "invalid_auth_header")
	})
	t.Run("success stores exactly one nonce", func(t *testing.T) {
		before := nonces()
		b.mint(t, k.acme, flo)
		if nonces() != before+1 {
			t.Fatal("mint did not store its nonce")
		}
	})
}

// TestCredentialPrecedence: header first; a malformed header falls back to
// api_key (as in Sayna's authentication docs); a well-formed but wrong
// header does not.
func TestCredentialPrecedence(t *testing.T) {
	b := startBroker(t, newKeys(t), nil)
	k := b.keys
	q := "/token?api_key="
	expect(t, do(t, "POST", b.URL+q+k.acme, "", flo), 201, "")
	expect(t, do(t, "POST", b.URL+q+k.acme, "", flo, "Authorization", "Token nope"), 201, "")
	expect(t, do(t, "POST", b.URL+q+k.acme, "sk_live_"+strings.Repeat("B", 43), flo), 401, "unauthorized")
	expect(t, do(t, "POST", b.URL+q+"nope", k.acme, flo), 201, "")
	expect(t, do(t, "POST", b.URL+q, "", flo), 401, "invalid_auth_header")
	expect(t, do(t, "POST", b.URL+q+k.acme+"&api_key="+k.acme, "", flo), 401, "invalid_auth_header")
	expect(t, do(t, "POST", b.URL+"/token", "", flo, "Authorization", "bearer "+k.acme), 201, "")
}

// TestTestKeysInProduction: a listed sk_test_ key works in development and
// is refused in production.
func TestTestKeysInProduction(t *testing.T) {
	k := newKeys(t)
	dev := startBroker(t, k, nil)
	expect(t, do(t, "POST", dev.URL+"/token", k.acmeTest, flo), 201, "")
	prod := startBroker(t, k, map[string]string{"BROKER_ENV": "production", "BROKER_REDIS_URL": nextRedisURL(t)})
	expect(t, do(t, "POST", prod.URL+"/token", k.acmeTest, flo), 401, "unauthorized")
	expect(t, do(t, "POST", prod.URL+"/token", k.acme, flo), 201, "")
}

// TestRedeemRefusals: forged and misdirected tickets over HTTP, each with
// its code, and none of them burns a genuine nonce.
func TestRedeemRefusals(t *testing.T) {
	b := startBroker(t, newKeys(t), nil)
	k := b.keys
	key := b.signingKey()
	now := time.Now()
	forge := func(iss string, at time.Time, tk token.Ticket) string {
		is, err := token.NewIssuer(key, iss, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		s, _, err := is.WithClock(func() time.Time { return at }).Mint(tk)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	acmeTicket := token.Ticket{Org: "acme", Agent: "florencia", Channel: "webrtc", Identity: "u"}
	other, _ := token.GenerateKey(token.EdDSA)
	otherIssuer, _ := token.NewIssuer(other, "http://broker.test", time.Minute)
	foreign, _, _ := otherIssuer.Mint(acmeTicket)
	genuine := b.mint(t, k.acme, flo)

	cases := []struct {
		name, cred, tok string
		status          int
		code            string
	}{
		{"expired", k.acme, forge("http://broker.test", now.Add(-2*time.Minute), acmeTicket), 401, "token_expired"},
		{"not yet valid", k.acme, forge("http://broker.test", now.Add(time.Minute), acmeTicket), 401, "token_invalid"},
		{"wrong issuer", k.acme, forge("http://evil.test", now, acmeTicket), 401, "token_invalid"},
		{"signed by an unknown key", k.acme, foreign, 401, "token_invalid"},
		{"another org's ticket", k.globex, genuine, 401, "token_invalid"},
		{"agent not in org", k.acme, forge("http://broker.test", now, token.Ticket{Org: "acme", Agent: "ghost", Channel: "chat"}), 404, "unknown_agent"},
		{"never stored", k.acme, forge("http://broker.test", now, acmeTicket), 401, "token_used"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, "POST", b.URL+"/token/redeem", tc.cred, map[string]string{"token": tc.tok})
			expect(t, r, tc.status, tc.code)
			if strings.Contains(r.Raw, tc.tok) {
				t.Fatal("response echoes the token")
			}
		})
	}
	// The genuine ticket survived the other org's attempt.
	expect(t, do(t, "POST", b.URL+"/token/redeem", k.acme, map[string]string{"token": genuine}), 200, "")
}

// TestRateLimit: the free tier allows 60 a minute, then 429 with headers;
// another org is unaffected.
func TestRateLimit(t *testing.T) {
	for _, store := range []string{"memory", "redis"} {
		t.Run(store, func(t *testing.T) {
			vars := map[string]string{}
			if store == "redis" {
				vars["BROKER_REDIS_URL"] = nextRedisURL(t)
			}
			b := startBroker(t, newKeys(t), vars)
			for i := range 60 {
				r := do(t, "POST", b.URL+"/token", b.keys.acme, flo)
				if r.Status != 201 {
					t.Fatalf("request %d: %d %s", i, r.Status, r.Raw)
				}
			}
			r := do(t, "POST", b.URL+"/token", b.keys.acme, flo)
			expect(t, r, 429, "rate_limited")
			ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
			if err != nil || ra < 1 || ra > 2 {
				t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
			}
			if r.Header.Get("RateLimit-Limit") != "60" || r.Header.Get("RateLimit-Remaining") != "0" || r.Header.Get("RateLimit-Reset") == "" {
				t.Fatalf("RateLimit headers %v", r.Header)
			}
			expect(t, do(t, "POST", b.URL+"/token", b.keys.globex, map[string]any{"agent": "hank", "channel": "webrtc"}), 201, "")
		})
	}
}

// TestReload: revocation, scope and IP changes in the tenants file take
// effect on the next request after a reload (SIGHUP, and the file poller),
// and a broken file keeps the old tenants.
func TestReload(t *testing.T) {
	k := newKeys(t)
	b := startBroker(t, k, map[string]string{"BROKER_RELOAD_INTERVAL": "1h"}) // reloads on SIGHUP only
	expect(t, do(t, "POST", b.URL+"/token", k.acme, flo), 201, "")

	// Revoke the main key.
	b.rewriteTenants(t, tenantsYAML(k, func(y string) string {
		return strings.Replace(y, "      - id: main\n", "      - id: main\n        revoked: true\n", 1)
	}), "ok")
	expect(t, do(t, "POST", b.URL+"/token", k.acme, flo), 401, "unauthorized")

	// A broken file: refused, and the revocation stays in force.
	b.rewriteTenants(t, "orgs: [", "error")
	expect(t, do(t, "POST", b.URL+"/token", k.acme, flo), 401, "unauthorized")
	if !strings.Contains(b.Logs.String(), `"result":"error"`) {
		t.Fatal("the bad reload was not logged")
	}

	// Unrevoke but drop tokens:create: scope refusal.
	b.rewriteTenants(t, tenantsYAML(k, func(y string) string {
		return strings.Replace(y, "scopes: [tokens:create, tokens:redeem, livekit:token", "scopes: [tokens:redeem, livekit:token", 1)
	}), "ok")
	expect(t, do(t, "POST", b.URL+"/token", k.acme, flo), 403, "insufficient_scope")

	// Widen the office key's allowed_ips to loopback.
	b.rewriteTenants(t, tenantsYAML(k, func(y string) string { return strings.Replace(y, `["10.0.0.0/8"]`, `["127.0.0.0/8"]`, 1) }), "ok")
	expect(t, do(t, "POST", b.URL+"/token", k.acmeIPOnly, flo), 201, "")

	// Remove a key entirely, through the file poller this time.
	b2 := startBroker(t, k, nil)
	expect(t, do(t, "POST", b2.URL+"/token", k.acme, flo), 201, "")
	b2.rewriteTenants(t, tenantsYAML(k, func(y string) string {
		return strings.Replace(y, `hash: "`+hashOf(k.acme)+`"`, `hash: "`+hashOf(k.pk+"x")+`"`, 1)
	}), "ok")
	expect(t, do(t, "POST", b2.URL+"/token", k.acme, flo), 401, "unauthorized")
}

// TestTrustedProxy: X-Forwarded-For counts only from a trusted peer.
func TestTrustedProxy(t *testing.T) {
	k := newKeys(t)
	direct := startBroker(t, k, nil)
	expect(t, do(t, "POST", direct.URL+"/token", k.acmeIPOnly, flo, "X-Forwarded-For", "10.1.2.3"), 403, "ip_not_allowed")
	proxied := startBroker(t, k, map[string]string{"BROKER_TRUSTED_PROXIES": "127.0.0.0/8"})
	expect(t, do(t, "POST", proxied.URL+"/token", k.acmeIPOnly, flo, "X-Forwarded-For", "10.1.2.3"), 201, "")
	// The right-most untrusted entry wins: a client-supplied left entry is ignored.
	expect(t, do(t, "POST", proxied.URL+"/token", k.acmeIPOnly, flo, "X-Forwarded-For", "10.9.9.9, 192.0.2.1"), 403, "ip_not_allowed")
	expect(t, do(t, "POST", proxied.URL+"/token", k.acmeIPOnly, flo, "X-Forwarded-For", "192.0.2.1, 10.9.9.9, 127.0.0.1"), 201, "")
}

func decode(t testing.TB, raw string) map[string]any {
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatal(err)
	}
	return m
}
