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
