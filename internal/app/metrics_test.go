package app_test

import (
	"strings"
	"testing"
)

// TestMetricsCountWhatWasDone runs a scripted session and checks that every
// counter operators watch says exactly what happened.
func TestMetricsCountWhatWasDone(t *testing.T) {
	k := newKeys(t)
	b, _ := startWithLiveKit(t, k, map[string]string{"BROKER_PUBLIC_RATE_PER_MINUTE": "1", "BROKER_RELOAD_INTERVAL": "1h"})
	const origin = "https://demo.acme.example"

	t1 := b.mint(t, k.acme, flo)
	t2 := b.mint(t, k.acme, flo)
	t3 := b.mint(t, k.acme, flo)
	expect(t, do(t, "POST", b.URL+"/public/token", k.pk, map[string]any{"agent": "florencia", "channel": "chat"}, "Origin", origin), 201, "")
	expect(t, do(t, "POST", b.URL+"/public/token", k.pk, map[string]any{"agent": "florencia", "channel": "chat"}, "Origin", origin), 429, "rate_limited")
	expect(t, do(t, "POST", b.URL+"/token/redeem", k.acme, map[string]string{"token": t1}), 200, "")
	expect(t, do(t, "POST", b.URL+"/token/redeem", k.acme, map[string]string{"token": t2}), 200, "")
	expect(t, do(t, "POST", b.URL+"/token/redeem", k.acme, map[string]string{"token": t1}), 401, "token_used")
	expect(t, do(t, "POST", b.URL+"/connect", t3, nil), 201, "")
	expect(t, do(t, "POST", b.URL+"/connect", t3, nil), 401, "token_used")
	expect(t, do(t, "POST", b.URL+"/token", "sk_live_"+strings.Repeat("U", 43), flo), 401, "unauthorized")
	expect(t, do(t, "POST", b.URL+"/token", "sk_live_"+strings.Repeat("V", 43), flo), 401, "unauthorized")
	expect(t, do(t, "POST", b.URL+"/token", "", flo), 401, "missing_auth_header")

	b.rewriteTenants(t, tenantsYAML(k, func(y string) string { return y + "\n# touched\n" }), "ok")
	b.rewriteTenants(t, "orgs: [", "error")

	for series, want := range map[string]string{
		`voicebroker_tokens_minted_total{mode="backend",org="acme"}`:    "3",
		`voicebroker_tokens_minted_total{mode="public",org="acme"}`:     "1",
		`voicebroker_tokens_redeemed_total{org="acme",via="redeem"}`:    "2",
		`voicebroker_tokens_redeemed_total{org="acme",via="connect"}`:   "1",
		`voicebroker_tokens_refused_total{reason="token_used"}`:         "2",
		`voicebroker_auth_failures_total{reason="unknown_key"}`:         "2",
		`voicebroker_auth_failures_total{reason="missing_auth_header"}`: "1",
		`voicebroker_rate_limited_total{scope="ip"}`:                    "1",
		// 3 backend mints, the public mint, and the public request refused
		// by its per-IP limit inside the mint's store step.
		`voicebroker_store_duration_seconds_count{op="put_nonce",result="ok"}`: "5",
		// The per-IP limit of the two /connect requests; /public/token's is
		// in its put_nonce.
		`voicebroker_store_duration_seconds_count{op="rate_limit",result="ok"}`:                             "2",
		`voicebroker_store_duration_seconds_count{op="consume_nonce",result="ok"}`:                          "3",
		`voicebroker_store_duration_seconds_count{op="consume_nonce",result="miss"}`:                        "2",
		`voicebroker_livekit_duration_seconds_count{op="create_room",result="ok"}`:                          "", // /connect calls no LiveKit API
		`voicebroker_http_request_duration_seconds_count{method="POST",route="/token",status="201"}`:        "3",
		`voicebroker_http_request_duration_seconds_count{method="POST",route="/token",status="401"}`:        "3",
		`voicebroker_http_request_duration_seconds_count{method="POST",route="/connect",status="201"}`:      "1",
		`voicebroker_http_request_duration_seconds_count{method="POST",route="/public/token",status="429"}`: "1",
		`voicebroker_config_reloads_total{result="ok"}`:                                                     "1",
		`voicebroker_config_reloads_total{result="error"}`:                                                  "1",
	} {
		if got := metric(t, b, series); got != want {
			t.Errorf("%s = %q, want %s", series, got, want)
		}
	}
	if r := do(t, "GET", b.URL+"/metrics", "", nil); !strings.Contains(r.Raw, `voicebroker_build_info{goversion="go`) {
		t.Error("no build info")
	}
}

// TestMetricsOwnListener: with BROKER_METRICS_ADDR, /metrics (whose series
// carry org ids) is served on that listener only: the public listener
// answers 404 not_found there however it is spelled, and the metrics
// listener serves nothing else. Both stop together at shutdown.
func TestMetricsOwnListener(t *testing.T) {
	k := newKeys(t)
	b := startBroker(t, k, map[string]string{"BROKER_METRICS_ADDR": "127.0.0.1:0"})
	maddr := b.app.MetricsAddr()
	if maddr == "" || maddr == b.app.Addr() {
		t.Fatalf("MetricsAddr() = %q (main %q)", maddr, b.app.Addr())
	}
	mURL := "http://" + maddr
	b.mint(t, k.acme, flo)

	r := do(t, "GET", mURL+"/metrics", "", nil)
	if r.Status != 200 || !strings.Contains(r.Raw, `voicebroker_tokens_minted_total{mode="backend",org="acme"} 1`) ||
		!strings.Contains(r.Raw, "voicebroker_build_info{") {
		t.Fatalf("metrics listener /metrics: %d\n%s", r.Status, r.Raw)
	}
	if r := do(t, "HEAD", mURL+"/metrics", "", nil); r.Status != 200 {
		t.Errorf("metrics listener HEAD /metrics: %d", r.Status)
	}
	for _, path := range []string{"/metrics", "/metrics/", "/Metrics", "/METRICS", "/metrics?format=text", "/metrics%2f", "/./metrics", "/metrics/..", "//metrics"} {
		for _, method := range []string{"GET", "HEAD"} {
			r := do(t, method, b.URL+path, "", nil)
			if r.Status != 404 || strings.Contains(r.Raw, "voicebroker_") || strings.Contains(r.Raw, "acme") {
				t.Errorf("public listener %s %s: %d %s", method, path, r.Status, r.Raw)
			}
			if method == "GET" && r.code() != "not_found" {
				t.Errorf("public listener GET %s: %s, want not_found in the contract's shape", path, r.Raw)
			}
		}
	}
	for _, path := range []string{"/", "/healthz", "/token", "/.well-known/jwks.json", "/metrics/", "/debug/pprof/"} {
		if r := do(t, "GET", mURL+path, "", nil); r.Status != 404 || r.code() != "not_found" {
			t.Errorf("metrics listener GET %s: %d %s", path, r.Status, r.Raw)
		}
	}
	expect(t, do(t, "POST", mURL+"/metrics", "", nil), 405, "method_not_allowed")
	expect(t, do(t, "POST", mURL+"/token", k.acme, flo), 404, "not_found")
	// The public routes still work and are still observed.
	expect(t, do(t, "GET", b.URL+"/healthz", "", nil), 200, "")

	b.stop()
	for _, u := range []string{b.URL, mURL} {
		if _, err := tryDo("GET", u+"/metrics", "", nil); err == nil {
			t.Errorf("%s still answers after shutdown", u)
		}
	}
}

// TestMetricsOnMainListenerByDefault is the control: without
// BROKER_METRICS_ADDR, /metrics is on the main listener and there is no
// other.
func TestMetricsOnMainListenerByDefault(t *testing.T) {
	b := startBroker(t, newKeys(t), nil)
	if b.app.MetricsAddr() != "" {
		t.Fatalf("MetricsAddr() = %q", b.app.MetricsAddr())
	}
	if r := do(t, "GET", b.URL+"/metrics", "", nil); r.Status != 200 || !strings.Contains(r.Raw, "voicebroker_build_info{") {
		t.Fatalf("/metrics: %d", r.Status)
	}
}
