package app_test

import (
	"strings"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/internal/testenv"
)

// TestEmbeddedDemoTenant: with no tenants file in development, the broker
// mints for demo-bot with the printed key, and refuses test keys of no one.
func TestEmbeddedDemoTenant(t *testing.T) {
	a, url := testenv.StartDemoBroker(t)
	r := do(t, "POST", url+"/token", a.DevKeys.Secret, map[string]any{"agent": "demo-bot", "channel": "webrtc"})
	expect(t, r, 201, "")
	expect(t, do(t, "POST", url+"/token/redeem", a.DevKeys.Secret, map[string]any{"token": r.Body["token"]}), 200, "")
	expect(t, do(t, "POST", url+"/token", a.DevKeys.Publishable, flo), 401, "unauthorized")

	// The widget page, at one URL, configured for the demo agent.
	if r := do(t, "GET", url+"/demo/", "", nil); r.Status != 200 || !strings.Contains(r.Raw, "voicebroker demo widget") {
		t.Fatalf("/demo/: %d", r.Status)
	} else if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("/demo/ Content-Security-Policy %q", csp)
	}
	if r := do(t, "GET", url+"/demo/widget.js", "", nil); r.Status != 200 || len(r.Raw) < 100_000 {
		t.Fatalf("/demo/widget.js: %d, %d bytes", r.Status, len(r.Raw))
	}
	if r := do(t, "GET", url+"/demo/THIRD_PARTY_LICENSES.txt", "", nil); r.Status != 200 || !strings.Contains(r.Raw, "livekit-client@") {
		t.Fatalf("/demo/THIRD_PARTY_LICENSES.txt: %d", r.Status)
	}
	if r := do(t, "GET", url+"/demo/config.json", "", nil); r.Body["key"] != a.DevKeys.Publishable || r.Body["agent"] != "demo-bot" {
		t.Fatalf("/demo/config.json: %s", r.Raw)
	}
	// The page's own request: same origin, which the demo agent allows.
	r = do(t, "POST", url+"/public/token", a.DevKeys.Publishable, map[string]any{"agent": "demo-bot", "channel": "webrtc"},
		"Origin", "http://"+strings.Replace(a.Addr(), "127.0.0.1", "localhost", 1))
	expect(t, r, 201, "")
}

// TestNoDemoPageInProduction: /demo is a development convenience only.
func TestNoDemoPageInProduction(t *testing.T) {
	b := startBroker(t, newKeys(t), map[string]string{"BROKER_ENV": "production", "BROKER_REDIS_URL": nextRedisURL(t)})
	expect(t, do(t, "GET", b.URL+"/demo/", "", nil), 404, "not_found")
}

// TestProductionWarnsOfPublicMetrics: a production broker that serves
// /metrics on its main listener (the contract's default) says at start
// that its labels name every org to anyone who can reach it; one with
// BROKER_METRICS_ADDR, or in development, says nothing of it.
func TestProductionWarnsOfPublicMetrics(t *testing.T) {
	started := func(t *testing.T, b *broker) string {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(b.Logs.String(), `"event":"start"`) {
			if time.Now().After(deadline) {
				t.Fatalf("no start line:\n%s", b.Logs.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		return b.Logs.String()
	}
	prod := map[string]string{"BROKER_ENV": "production", "BROKER_REDIS_URL": nextRedisURL(t)}
	if logs := started(t, startBroker(t, newKeys(t), prod)); !strings.Contains(logs, `"event":"metrics.public"`) {
		t.Fatalf("no metrics.public warning in production:\n%s", logs)
	}
	prod["BROKER_METRICS_ADDR"] = "127.0.0.1:0"
	if logs := started(t, startBroker(t, newKeys(t), prod)); strings.Contains(logs, "metrics.public") {
		t.Fatalf("a warning with BROKER_METRICS_ADDR set:\n%s", logs)
	}
	if logs := started(t, startBroker(t, newKeys(t), nil)); strings.Contains(logs, "metrics.public") {
		t.Fatalf("a warning in development:\n%s", logs)
	}
}
