package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/voicebroker/voicebroker/config"
)

// TestYAMLErrorsNamePaths: a file that does not decode is reported by
// field path and reason in the file's words, never by a Go type; the line
// follows as extra help.
func TestYAMLErrorsNamePaths(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"typo in a key field", strings.Replace(good, "scopes: [tokens:create, tokens:redeem", "scope: [tokens:create, tokens:redeem", 1),
			"orgs[0].keys[0].scope: unknown field; expected one of id, hash, scopes"},
		{"typo in an org field", strings.Replace(good, "allow_demo_rooms: false", "allow_demo_room: false", 1),
			"orgs[0].allow_demo_room: unknown field"},
		{"typo in the second org", strings.Replace(good, "rate_per_minute: 5000", "rate_per_min: 5000", 1),
			"orgs[1].rate_per_min: unknown field"},
		{"typo in an agent", strings.Replace(good, `server: ""`, `servr: ""`, 1),
			"orgs[0].agents[0].servr: unknown field; expected one of id, channels, server, public"},
		{"typo under public", strings.Replace(good, "allowed_origins:", "allowed_origin:", 1),
			"orgs[0].agents[0].public.allowed_origin: unknown field"},
		{"typo in an issuer", strings.Replace(good, "jwks_url:", "jwks:", 1),
			"orgs[0].jwt_issuers[0].jwks: unknown field"},
		{"top-level typo", "org:\n  - id: a\n    tier: free\n", "org: unknown field; expected one of orgs"},
		{"bool", strings.Replace(good, "revoked: false", "revoked: nope", 1),
			`orgs[0].keys[0].revoked: must be true or false, not "nope"`},
		{"number", strings.Replace(good, "rate_per_minute: 5000", "rate_per_minute: lots", 1),
			`orgs[1].rate_per_minute: must be a whole number, not "lots"`},
		{"time", strings.Replace(good, "expires_at: 2027-06-01T00:00:00Z", "expires_at: next tuesday", 1),
			"orgs[0].keys[0].expires_at: must be a date and time"},
		{"list where a string goes", strings.Replace(good, "tier: pro", "tier: [pro]", 1),
			"orgs[0].tier: must be a string, not a list"},
		{"mapping where a list goes", strings.Replace(good, "channels: [chat]", "channels: {chat: true}", 1),
			"orgs[1].agents[0].channels: must be a list of strings, not a mapping"},
		{"scalar where a mapping goes", strings.Replace(good, "    public:\n", "    public: yes\n    x:\n", 1),
			"orgs[0].agents[0].public: must be a mapping of fields"},
		{"orgs not a list", "orgs: acme\n", `orgs: must be a list, not "acme"`},
		{"file not a mapping", "just words\n", "(top level): must be a mapping with the key orgs"},
		{"flow style", "orgs: [{id: a, tier: free, colour: red}]\n", "orgs[0].colour: unknown field"},
		{"long value", strings.Replace(good, "revoked: false", "revoked: definitely-not-a-bool", 1), "orgs[0].keys[0].revoked: must be true or false"},
		{"duplicate key", strings.Replace(good, "id: florencia", "id: florencia\n        id: flo", 1), "orgs[0].agents[0].id: set twice in one mapping, first at line"},
		{"merged anchor", "base: &b {tier: free}\norgs: [{id: a, <<: *b, colour: x}]\n", "base: unknown field"},
		{"syntax error", strings.Replace(good, "    tier: pro", "    tier: pro\n   bad: [", 1), "not valid YAML at line"},
		{"tab indentation", "orgs:\n\t- id: a\n", "tabs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tc.yaml))
			var ve *config.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want a *ValidationError", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) {
				t.Fatalf("error %q does not say %q", msg, tc.want)
			}
			for _, goWords := range []string{"config.", "!!", "unmarshal", "[]string", "time.Time", "yaml:"} {
				if strings.Contains(msg, goWords) {
					t.Fatalf("error %q speaks Go (%q)", msg, goWords)
				}
			}
		})
	}
}

// TestSyntaxErrorNamesNearestField: a syntax error says after which field
// it sits, and its line.
func TestSyntaxErrorNamesNearestField(t *testing.T) {
	y := "orgs:\n  - id: acme\n    tier: free\n    keys:\n      - id: k\n        hash: \"sha256:x\n"
	_, err := config.Parse([]byte(y))
	if err == nil || !strings.Contains(err.Error(), "after orgs[0].keys[0].id") {
		t.Fatalf("err = %v", err)
	}
}
