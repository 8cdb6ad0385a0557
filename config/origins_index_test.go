package config_test

import (
	"strings"
	"testing"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/pkg/origins"
)

// TestAllowsOriginIsAnyAgent: the tenants-wide origin check (the CORS
// answer of /public/token and its preflight) allows exactly what some
// public agent's own allowed_origins allow, across orgs, exact origins,
// wildcards and any-port patterns alike.
func TestAllowsOriginIsAnyAgent(t *testing.T) {
	h := func(c string) string { return `"sha256:` + strings.Repeat(c, 64) + `"` }
	ten, err := config.Parse([]byte(`orgs:
  - id: acme
    tier: free
    agents:
      - id: a
        channels: [chat]
        public: {key_hash: ` + h("a") + `, allowed_origins: ["https://a.example", "https://*.wild.example"]}
      - id: b
        channels: [chat]
        public: {key_hash: ` + h("b") + `, allowed_origins: ["http://localhost:*", "https://a.example"]}
  - id: globex
    tier: free
    agents:
      - id: c
        channels: [chat]
        public: {key_hash: ` + h("c") + `, allowed_origins: ["https://globex.example:8443"]}
      - id: d
        channels: [chat]
`))
	if err != nil {
		t.Fatal(err)
	}
	agents := []*config.Agent{ten.Org("acme").Agent("a"), ten.Org("acme").Agent("b"), ten.Org("globex").Agent("c"), ten.Org("globex").Agent("d")}
	for _, tc := range []struct {
		origin string
		want   bool
	}{
		{"https://a.example", true},
		{"https://A.example:443", true},
		{"https://x.wild.example", true},
		{"https://x.y.wild.example", true},
		{"https://wild.example", false},
		{"http://localhost", true},
		{"http://localhost:3000", true},
		{"https://localhost", false},
		{"https://globex.example:8443", true},
		{"https://globex.example", false},
		{"http://a.example", false},
		{"https://evil.example", false},
	} {
		o, err := origins.ParseOrigin(tc.origin)
		if err != nil {
			t.Fatalf("%s: %v", tc.origin, err)
		}
		some := false
		for _, a := range agents {
			some = some || a.Origins().MatchOrigin(o)
		}
		if got := ten.AllowsOrigin(o); got != tc.want || got != some {
			t.Errorf("AllowsOrigin(%s) = %v, want %v (some agent allows it: %v)", tc.origin, got, tc.want, some)
		}
	}
}
