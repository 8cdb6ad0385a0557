package config_test

import (
	"strings"
	"testing"

	"github.com/voicebroker/voicebroker/config"
)

// TestPublicRatePerMinute: an agent's public budget is optional, 1 to
// 1000000; anything else is refused and named by its path.
func TestPublicRatePerMinute(t *testing.T) {
	file := func(rate string) string {
		return `orgs:
  - id: acme
    tier: free
    agents:
      - id: bot
        channels: [chat]
        public:
          key_hash: "sha256:` + strings.Repeat("a", 64) + `"
          allowed_origins: [https://demo.acme.example]
` + rate
	}
	for _, tc := range []struct {
		rate string
		want int
	}{{"", 0}, {"          rate_per_minute: 5\n", 5}, {"          rate_per_minute: 1000000\n", 1000000}} {
		ten, err := config.Parse([]byte(file(tc.rate)))
		if err != nil {
			t.Fatalf("%q: %v", tc.rate, err)
		}
		if got := ten.Org("acme").Agent("bot").Public.RatePerMinute; got != tc.want {
			t.Fatalf("%q: rate %d, want %d", tc.rate, got, tc.want)
		}
	}
	for _, bad := range []string{"-1", "1000001", "ten"} {
		_, err := config.Parse([]byte(file("          rate_per_minute: " + bad + "\n")))
		if err == nil {
			t.Fatalf("rate_per_minute %s accepted", bad)
		}
		if n, _ := strings.CutPrefix(bad, "-"); n == "1" || n == "1000001" {
			if !strings.Contains(err.Error(), "orgs[0].agents[0].public.rate_per_minute: ") {
				t.Fatalf("rate_per_minute %s: %v does not name the field", bad, err)
			}
		}
	}
}
