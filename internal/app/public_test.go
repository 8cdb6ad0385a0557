package app_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestPublicToken: a publishable key from an allowed origin gets a ticket
// bound to that origin; everything else is refused with the contract's code
// and nothing is minted.
func TestPublicToken(t *testing.T) {
	b := startBroker(t, newKeys(t), map[string]string{"BROKER_PUBLIC_RATE_PER_MINUTE": "1000"})
	k := b.keys
	const allowed = "https://demo.acme.example"
	body := map[string]any{"agent": "florencia", "channel": "webrtc"}
	r := do(t, "POST", b.URL+"/public/token", k.pk, body, "Origin", allowed)
	expect(t, r, 201, "")
	if r.Header.Get("Access-Control-Allow-Origin") != allowed || !strings.Contains(r.Header.Get("Vary"), "Origin") {
		t.Fatalf("CORS headers %v", r.Header)
	}
	ticket := r.Body["token"].(string)
	red := do(t, "POST", b.URL+"/token/redeem", k.acme, map[string]string{"token": ticket})
	expect(t, red, 200, "")
	if red.Body["origin"] != allowed || !strings.HasPrefix(red.Body["identity"].(string), "user-") {
		t.Fatalf("redeemed %s", red.Raw)
	}
	// The canonical form of an equivalent origin is what the ticket carries.
	r = do(t, "POST", b.URL+"/public/token", k.pk, body, "Origin", "https://DEMO.acme.example:443")
	expect(t, r, 201, "")

	minted := func() string { return metric(t, b, `voicebroker_tokens_minted_total{mode="public",org="acme"}`) }
	before := minted()
	for _, tc := range []struct {
		name   string
		cred   string
		body   any
		hdr    []string
		status int
		code   string
	}{
		{"no origin", k.pk, body, nil, 403, "origin_not_allowed"},
		{"null origin", k.pk, body, []string{"Origin", "null"}, 403, "origin_not_allowed"},
		{"other origin", k.pk, body, []string{"Origin", "https://evil.example"}, 403, "origin_not_allowed"},
		{"suffix trick", k.pk, body, []string{"Origin", "https://demo.acme.example.evil.com"}, 403, "origin_not_allowed"},
		{"scheme downgrade", k.pk, body, []string{"Origin", "http://demo.acme.example"}, 403, "origin_not_allowed"},
		{"origin with path", k.pk, body, []string{"Origin", allowed + "/"}, 403, "origin_not_allowed"},
		{"no key", "", body, []string{"Origin", allowed}, 401, "missing_auth_header"},
		{"secret key", k.acme, body, []string{"Origin", allowed}, 401, "unauthorized"},
		{"unknown publishable key", "pk_live_" + strings.Repeat("Z", 43), body, []string{"Origin", allowed}, 401, "unauthorized"},
		{"agent without public mode", k.pk, map[string]any{"agent": "texter", "channel": "chat"}, []string{"Origin", allowed}, 401, "unauthorized"},
		{"unknown channel", k.pk, map[string]any{"agent": "florencia", "channel": "sip"}, []string{"Origin", allowed}, 400, "invalid_request"},
		{"metadata not accepted", k.pk, map[string]any{"agent": "florencia", "channel": "chat", "metadata": map[string]any{}}, []string{"Origin", allowed}, 400, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, "POST", b.URL+"/public/token", tc.cred, tc.body, tc.hdr...)
			expect(t, r, tc.status, tc.code)
			if acao := r.Header.Get("Access-Control-Allow-Origin"); tc.code == "origin_not_allowed" && acao != "" {
				t.Fatalf("refused origin got Access-Control-Allow-Origin %q", acao)
			}
		})
	}
	if before != "2" {
		t.Fatalf("minted counter %q before the refusals, want 2", before)
	}
	if after := minted(); after != before {
		t.Fatalf("refused requests minted tickets: %s -> %s", before, after)
	}
}

// TestPublicTokenProduction: a pk_test_ key is refused in production.
func TestPublicTokenProduction(t *testing.T) {
	k := newKeys(t)
	k.pk = strings.Replace(k.pk, "pk_live_", "pk_test_", 1)
	b := startBroker(t, k, map[string]string{"BROKER_ENV": "production", "BROKER_REDIS_URL": nextRedisURL(t)})
	expect(t, do(t, "POST", b.URL+"/public/token", k.pk, map[string]any{"agent": "florencia", "channel": "webrtc"},
		"Origin", "https://demo.acme.example"), 401, "unauthorized")
}

// TestCORSPreflight: the exact origin back (never *), Vary, methods,
// headers and max age for an allowed origin; 403 and no CORS headers
// otherwise. /connect accepts any real origin: the ticket is the credential.
func TestCORSPreflight(t *testing.T) {
	b := startBroker(t, newKeys(t), nil)
	pre := func(path, origin string) response {
		return do(t, "OPTIONS", b.URL+path, "", nil, "Origin", origin,
			"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,content-type")
	}
	r := pre("/public/token", "https://demo.acme.example")
	if r.Status != http.StatusNoContent || r.Header.Get("Access-Control-Allow-Origin") != "https://demo.acme.example" ||
		!strings.Contains(r.Header.Get("Access-Control-Allow-Methods"), "POST") ||
		!strings.Contains(strings.ToLower(r.Header.Get("Access-Control-Allow-Headers")), "authorization") ||
		r.Header.Get("Access-Control-Max-Age") == "" || !strings.Contains(strings.Join(r.Header.Values("Vary"), ","), "Origin") ||
		r.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("allowed preflight: %d %v", r.Status, r.Header)
	}
	for _, o := range []string{"https://evil.example", "null", "", "https://demo.acme.example.evil.com", "https://*.acme.example"} {
		r := pre("/public/token", o)
		expect(t, r, 403, "origin_not_allowed")
		for h := range r.Header {
			if strings.HasPrefix(h, "Access-Control-") {
				t.Fatalf("origin %q: refused preflight carries %s", o, h)
			}
		}
	}
	if r := pre("/connect", "https://any.example"); r.Status != 204 || r.Header.Get("Access-Control-Allow-Origin") != "https://any.example" {
		t.Fatalf("connect preflight: %d %v", r.Status, r.Header)
	}
	expect(t, pre("/connect", "null"), 403, "origin_not_allowed")
}

// TestPublicPerIPLimit: BROKER_PUBLIC_RATE_PER_MINUTE per client IP; a
// spoofed X-Forwarded-For from an untrusted peer does not reset it.
func TestPublicPerIPLimit(t *testing.T) {
	b := startBroker(t, newKeys(t), map[string]string{"BROKER_PUBLIC_RATE_PER_MINUTE": "3"})
	body := map[string]any{"agent": "florencia", "channel": "chat"}
	for i := range 3 {
		expect(t, do(t, "POST", b.URL+"/public/token", b.keys.pk, body, "Origin", "https://demo.acme.example", "X-Forwarded-For", "198.51.100."+string(rune('1'+i))), 201, "")
	}
	r := do(t, "POST", b.URL+"/public/token", b.keys.pk, body, "Origin", "https://demo.acme.example", "X-Forwarded-For", "203.0.113.99")
	expect(t, r, 429, "rate_limited")
	if r.Header.Get("Retry-After") == "" || r.Header.Get("Access-Control-Allow-Origin") == "" {
		t.Fatalf("429 headers %v", r.Header)
	}
}

// metric reads one sample from /metrics ("" when absent).
func metric(t *testing.T, b *broker, series string) string {
	t.Helper()
	r := do(t, "GET", b.URL+"/metrics", "", nil)
	for _, line := range strings.Split(r.Raw, "\n") {
		if strings.HasPrefix(line, series+" ") {
			return strings.TrimPrefix(line, series+" ")
		}
	}
	return ""
}

// TestPublicTokenOneStoreStep: a public mint is one store call, its per-IP
// limit counted inside it; over the limit, the answer is still 429 with the
// IP limit's headers, before the key or the origin is looked at.
func TestPublicTokenOneStoreStep(t *testing.T) {
	b := startBroker(t, newKeys(t), map[string]string{"BROKER_PUBLIC_RATE_PER_MINUTE": "2"})
	body := map[string]any{"agent": "florencia", "channel": "chat"}
	const origin = "https://demo.acme.example"
	for range 2 {
		expect(t, do(t, "POST", b.URL+"/public/token", b.keys.pk, body, "Origin", origin), 201, "")
	}
	if got := metric(t, b, `voicebroker_store_duration_seconds_count{op="put_nonce",result="ok"}`); got != "2" {
		t.Fatalf("put_nonce calls %q, want 2", got)
	}
	if got := metric(t, b, `voicebroker_store_duration_seconds_count{op="rate_limit",result="ok"}`); got != "" {
		t.Fatalf("rate_limit calls %q, want none: the per-IP limit is counted in the mint's store step", got)
	}
	r := do(t, "POST", b.URL+"/public/token", b.keys.pk, body, "Origin", origin)
	expect(t, r, 429, "rate_limited")
	if r.Header.Get("Retry-After") == "" || r.Header.Get("RateLimit-Limit") != "2" || r.Header.Get("RateLimit-Remaining") != "0" {
		t.Fatalf("429 headers %v, want the per-IP limit's", r.Header)
	}
	// Over the IP limit, a wrong key or origin is 429 too, as before any check.
	expect(t, do(t, "POST", b.URL+"/public/token", "pk_live_"+strings.Repeat("Z", 43), body, "Origin", origin), 429, "rate_limited")
	expect(t, do(t, "POST", b.URL+"/public/token", b.keys.pk, body, "Origin", "https://evil.example"), 429, "rate_limited")
	if got := metric(t, b, `voicebroker_rate_limited_total{scope="ip"}`); got != "3" {
		t.Fatalf("rate_limited{scope=ip} %q, want 3", got)
	}
	if got := metric(t, b, `voicebroker_rate_limited_total{scope="public"}`); got != "" {
		t.Fatalf("rate_limited{scope=public} %q: the agent's budget must not refuse what the IP limit refused", got)
	}
}
