package config_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/voicebroker/voicebroker/config"
)

// TestLiveKitSecretLength: the LiveKit tokens are HS256 JWTs signed with
// LIVEKIT_API_SECRET, so a secret under 32 characters (which
// livekit-server itself refuses outside --dev) is refused, naming the
// variable and never echoing the value.
func TestLiveKitSecretLength(t *testing.T) {
	for _, secret := range []string{"secret", "s", strings.Repeat("x", 31), "  " + strings.Repeat("y", 30) + "  ", "ünïcödé-sëcrét-1234"} {
		_, err := config.LoadEnv(env(map[string]string{"LIVEKIT_URL": "ws://127.0.0.1:7880", "LIVEKIT_API_KEY": "devkey", "LIVEKIT_API_SECRET": secret}))
		if err == nil || !strings.Contains(err.Error(), "LIVEKIT_API_SECRET: shorter than 32 characters") {
			t.Errorf("a %d-byte secret: err = %v", len(secret), err)
			continue
		}
		if len(secret) >= 8 && strings.Contains(err.Error(), strings.TrimSpace(secret)) {
			t.Errorf("the error echoes the secret: %v", err)
		}
	}
	for _, secret := range []string{strings.Repeat("x", 32), "vb-test-secret-0123456789abcdef0123456789"} {
		e, err := config.LoadEnv(env(map[string]string{"LIVEKIT_URL": "ws://127.0.0.1:7880", "LIVEKIT_API_KEY": "devkey", "LIVEKIT_API_SECRET": secret}))
		if err != nil || !e.LiveKitConfigured() {
			t.Errorf("a %d-byte secret refused: %v", len(secret), err)
		}
	}
}

// TestTrustedProxiesNotTheInternet: a trusted-proxy range that holds
// addresses of the public internet would let any client there choose its
// own address in X-Forwarded-For, so it is refused; private ranges of any
// width, single addresses and real proxy ranges are taken, IPv4-mapped
// ones as IPv4 (client addresses are compared unmapped).
func TestTrustedProxiesNotTheInternet(t *testing.T) {
	for _, bad := range []string{"0.0.0.0/0", "::/0", "0.0.0.0/1", "128.0.0.0/1", "8.0.0.0/7", "2000::/3", "2001::/16", "2001:c00::/23",
		"::ffff:0.0.0.0/96", "::ffff:0:0/100", "::/8", "10.0.0.0/8,0.0.0.0/0"} {
		_, err := config.LoadEnv(env(map[string]string{"BROKER_TRUSTED_PROXIES": bad}))
		if err == nil || !strings.Contains(err.Error(), "BROKER_TRUSTED_PROXIES: ") || !strings.Contains(err.Error(), "too wide to trust") {
			t.Errorf("%s: err = %v", bad, err)
		}
	}
	for _, bad := range []string{"10.0.0.1/8", "fe80::1%eth0", "10.0.0.0/33"} {
		if _, err := config.LoadEnv(env(map[string]string{"BROKER_TRUSTED_PROXIES": bad})); err == nil || !strings.Contains(err.Error(), "BROKER_TRUSTED_PROXIES") {
			t.Errorf("%s: err = %v", bad, err)
		}
	}
	for good, want := range map[string]string{
		"10.0.0.0/8": "10.0.0.0/8", "172.16.0.0/12": "172.16.0.0/12", "203.0.113.7": "203.0.113.7/32",
		"fc00::/7": "fc00::/7", "fd00::/8": "fd00::/8", "fe80::/10": "fe80::/10", "2606:4700::/32": "2606:4700::/32",
		"2a06:98c0::/29": "2a06:98c0::/29", "2600:9000::/28": "2600:9000::/28", "::1": "::1/128",
		"::ffff:10.0.0.0/104": "10.0.0.0/8", "::ffff:192.0.2.1": "192.0.2.1/32",
	} {
		e, err := config.LoadEnv(env(map[string]string{"BROKER_TRUSTED_PROXIES": good}))
		if err != nil {
			t.Errorf("%s refused: %v", good, err)
			continue
		}
		if len(e.TrustedProxies) != 1 || e.TrustedProxies[0] != netip.MustParsePrefix(want) {
			t.Errorf("%s read as %v, want %s", good, e.TrustedProxies, want)
		}
	}
}

// TestMetricsAddr: BROKER_METRICS_ADDR is read, checked as host:port and
// kept apart from BROKER_ADDR.
func TestMetricsAddr(t *testing.T) {
	e, err := config.LoadEnv(env(map[string]string{"BROKER_METRICS_ADDR": "127.0.0.1:9090"}))
	if err != nil || e.MetricsAddr != "127.0.0.1:9090" {
		t.Fatalf("MetricsAddr = %q, %v", e.MetricsAddr, err)
	}
	if e, err := config.LoadEnv(env(nil)); err != nil || e.MetricsAddr != "" {
		t.Fatalf("default MetricsAddr = %q, %v", e.MetricsAddr, err)
	}
	for _, tc := range []struct{ addr, metrics string }{
		{"", "localhost"},
		{"", "9090"},
		{"", "127.0.0.1:http"},
		{"", "127.0.0.1:70000"},
		{"", "[::1:9090"},
		{"", ":8080"},
		{":8080", "127.0.0.1:8080"},
		{"127.0.0.1:8080", "0.0.0.0:8080"},
		{"127.0.0.1:8080", "127.0.0.1:8080"},
		{"[::]:9000", "[::]:9000"},
	} {
		vars := map[string]string{"BROKER_METRICS_ADDR": tc.metrics}
		if tc.addr != "" {
			vars["BROKER_ADDR"] = tc.addr
		}
		_, err := config.LoadEnv(env(vars))
		if err == nil || !strings.Contains(err.Error(), "BROKER_METRICS_ADDR: ") {
			t.Errorf("BROKER_ADDR=%q BROKER_METRICS_ADDR=%q: err = %v", tc.addr, tc.metrics, err)
		}
	}
	for _, tc := range []struct{ addr, metrics string }{
		{"127.0.0.1:0", "127.0.0.1:0"},
		{"127.0.0.1:8080", "127.0.0.2:8080"},
		{":8080", ":9090"},
	} {
		if _, err := config.LoadEnv(env(map[string]string{"BROKER_ADDR": tc.addr, "BROKER_METRICS_ADDR": tc.metrics})); err != nil {
			t.Errorf("BROKER_ADDR=%q BROKER_METRICS_ADDR=%q refused: %v", tc.addr, tc.metrics, err)
		}
	}
}
