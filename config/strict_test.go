package config_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/config"
)

// TestStrictValueTypes: every value yaml.v3 would convert or drop without
// a word is refused, naming its field path: numbers with fractions,
// exponents, other bases or signs into whole numbers; YAML 1.1 booleans
// and quoted ones; empty values in any field; empty list items (which
// would vanish); dates without a zone or in another layout; explicit tags.
func TestStrictValueTypes(t *testing.T) {
	r := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("%q not in the good file", old)
		}
		return strings.Replace(good, old, new, 1)
	}
	const notWhole = `orgs[1].rate_per_minute: must be a whole number, not `
	cases := []struct {
		name, yaml, want string
	}{
		// Numbers into whole numbers.
		{"fraction", r("rate_per_minute: 5000", "rate_per_minute: 1.5"), notWhole + `"1.5"`},
		{"fraction .0", r("rate_per_minute: 5000", "rate_per_minute: 5000.0"), notWhole + `"5000.0"`},
		{"exponent", r("rate_per_minute: 5000", "rate_per_minute: 5e3"), notWhole + `"5e3"`},
		{"hex", r("rate_per_minute: 5000", "rate_per_minute: 0x1388"), notWhole + `"0x1388"`},
		{"octal 0o", r("rate_per_minute: 5000", "rate_per_minute: 0o11610"), notWhole + `"0o11610"`},
		{"leading zero (YAML 1.1 octal)", r("rate_per_minute: 5000", "rate_per_minute: 012"), notWhole + `"012"`},
		{"underscores", r("rate_per_minute: 5000", "rate_per_minute: 5_000"), notWhole + `"5_000"`},
		{"plus sign", r("rate_per_minute: 5000", "rate_per_minute: +5000"), notWhole + `"+5000"`},
		{"quoted number", r("rate_per_minute: 5000", `rate_per_minute: "5000"`), notWhole + `"5000"`},
		{"overflow", r("rate_per_minute: 5000", "rate_per_minute: 99999999999999999999"), notWhole + `"99999999999999999999"`},
		{"infinity", r("rate_per_minute: 5000", "rate_per_minute: .inf"), notWhole + `".inf"`},
		{"public rate fraction", r("          allowed_origins:", "          rate_per_minute: 2.5\n          allowed_origins:"),
			`orgs[0].agents[0].public.rate_per_minute: must be a whole number, not "2.5"`},
		// Booleans.
		{"yes", r("allow_demo_rooms: false", "allow_demo_rooms: yes"), `orgs[0].allow_demo_rooms: must be true or false, not "yes" (YAML 1.1`},
		{"off", r("allow_demo_rooms: false", "allow_demo_rooms: off"), `orgs[0].allow_demo_rooms: must be true or false, not "off"`},
		{"on", r("revoked: false", "revoked: on"), `orgs[0].keys[0].revoked: must be true or false, not "on"`},
		{"y", r("revoked: false", "revoked: y"), `orgs[0].keys[0].revoked: must be true or false, not "y"`},
		{"No", r("revoked: false", "revoked: No"), `orgs[0].keys[0].revoked: must be true or false, not "No"`},
		{"True", r("allow_demo_rooms: false", "allow_demo_rooms: True"), `orgs[0].allow_demo_rooms: must be true or false, not "True"`},
		{"FALSE", r("revoked: false", "revoked: FALSE"), `orgs[0].keys[0].revoked: must be true or false, not "FALSE"`},
		{"quoted true", r("allow_demo_rooms: false", `allow_demo_rooms: "true"`), `orgs[0].allow_demo_rooms: must be true or false, not "true" (unquoted)`},
		{"number as bool", r("revoked: false", "revoked: 1"), `orgs[0].keys[0].revoked: must be true or false, not "1"`},
		{"shared agent on", r(`server: ""`, "server: \"\"\n        livekit_agent_shared: on"), `orgs[0].agents[0].livekit_agent_shared: must be true or false`},
		// Empty values in fields.
		{"null server", r(`server: ""`, "server: null"), "orgs[0].agents[0].server: empty"},
		{"bare server", r(`server: ""`, "server:"), "orgs[0].agents[0].server: empty"},
		{"null expiry", r("expires_at: 2027-06-01T00:00:00Z", "expires_at: ~"), "orgs[0].keys[0].expires_at: empty"},
		{"bare expiry", r("expires_at: 2027-06-01T00:00:00Z", "expires_at:"), "orgs[0].keys[0].expires_at: empty"},
		{"null bool", r("revoked: false", "revoked: null"), "orgs[0].keys[0].revoked: empty"},
		{"null rate", r("rate_per_minute: 5000", "rate_per_minute: ~"), "orgs[1].rate_per_minute: empty"},
		{"null public", r("        public:\n", "        public: ~\n        x_public:\n"), "orgs[0].agents[0].public: empty"},
		{"null allowed_ips", r(`allowed_ips: ["203.0.113.0/24", "2001:db8::/32", "198.51.100.7"]`, "allowed_ips: null"), "orgs[0].keys[0].allowed_ips: empty"},
		{"null keys", r("    keys:\n", "    keys: ~\n    x_keys:\n"), "orgs[0].keys: empty"},
		{"null orgs", "orgs: ~\n", "orgs: empty"},
		{"null jwks_url", r("jwks_url: https://auth.acme.example/.well-known/jwks.json", "jwks_url: NULL\n        public_key_file: /nonexistent.pem"), "orgs[0].jwt_issuers[0].jwks_url: empty"},
		// Empty list items, which the decoder would drop.
		{"null origin", r("            - https://demo.mysite.com\n", "            - null\n            - https://demo.mysite.com\n"),
			"orgs[0].agents[0].public.allowed_origins[0]: an empty list item"},
		{"only null origins", r("            - https://demo.mysite.com\n            - https://*.mysite.com\n            - http://localhost:*\n", "            - ~\n"),
			"orgs[0].agents[0].public.allowed_origins[0]: an empty list item"},
		{"null scope", r("scopes: [tokens:create]", "scopes: [tokens:create, ~]"), "orgs[0].jwt_issuers[0].scopes[1]: an empty list item"},
		{"null channel", r("channels: [chat]", "channels: [chat, null]"), "orgs[1].agents[0].channels[1]: an empty list item"},
		{"null allowed ip", r(`allowed_ips: ["203.0.113.0/24", "2001:db8::/32", "198.51.100.7"]`, "allowed_ips: [~]"), "orgs[0].keys[0].allowed_ips[0]: an empty list item"},
		{"null key item", r("    keys:\n", "    keys:\n      - ~\n"), "orgs[0].keys[0]: an empty list item"},
		{"null org item", strings.Replace(good, "orgs:\n", "orgs:\n  - null\n", 1), "orgs[0]: an empty list item"},
		{"empty allowed_ips", r(`allowed_ips: ["203.0.113.0/24", "2001:db8::/32", "198.51.100.7"]`, "allowed_ips: []"),
			"orgs[0].keys[0].allowed_ips: an empty list would allow every address"},
		// Dates.
		{"date only", r("expires_at: 2027-06-01T00:00:00Z", "expires_at: 2027-06-01"), `orgs[0].keys[0].expires_at: must be a date and time such as 2027-06-01T00:00:00Z (RFC 3339`},
		{"space, no zone", r("expires_at: 2027-06-01T00:00:00Z", "expires_at: 2027-06-01 10:00:00"), `orgs[0].keys[0].expires_at: must be a date and time`},
		{"no zone", r("expires_at: 2027-06-01T00:00:00Z", "expires_at: 2027-06-01T10:00:00"), `orgs[0].keys[0].expires_at: must be a date and time`},
		{"short fields", r("expires_at: 2027-06-01T00:00:00Z", "expires_at: 2027-6-1T1:2:3Z"), `orgs[0].keys[0].expires_at: must be a date and time`},
		{"lowercase t", r("expires_at: 2027-06-01T00:00:00Z", "expires_at: 2027-06-01t00:00:00z"), `orgs[0].keys[0].expires_at: must be a date and time`},
		{"epoch number", r("expires_at: 2027-06-01T00:00:00Z", "expires_at: 1811808000"), `orgs[0].keys[0].expires_at: must be a date and time`},
		{"quoted date only", r("expires_at: 2027-06-01T00:00:00Z", `expires_at: "2027-06-01"`), `orgs[0].keys[0].expires_at: must be a date and time`},
		// Tags.
		{"binary id", r("id: florencia", "id: !!binary Zmxvcg=="), "orgs[0].agents[0].id: YAML tags such as !!binary are not accepted"},
		{"int tag", r("rate_per_minute: 5000", "rate_per_minute: !!int 5000"), "orgs[1].rate_per_minute: YAML tags"},
		{"bool tag", r("revoked: false", `revoked: !!bool "false"`), "orgs[0].keys[0].revoked: YAML tags"},
		{"custom tag", r("tier: pro", "tier: !gold pro"), "orgs[0].tier: YAML tags"},
		// Tags on keys: !!binary would read base64 as a field's name, and a
		// plain YAML reading would not see that field at all.
		{"binary key", r("channels: [chat]", "!!binary Y2hhbm5lbHM=: [chat]"), "orgs[1].agents[0]: YAML tags such as !!binary are not accepted on keys"},
		{"str key", r("tier: pro", "!!str tier: pro"), "orgs[0]: YAML tags such as !!str are not accepted on keys"},
		// Empty keys, which the decoder drops with their values.
		{"null key", r("tier: pro", "tier: pro\n    ~: enterprise"), "orgs[0]: an empty key"},
		{"anchored empty key", r("channels: [chat]", "channels: [chat]\n        &k : #"), "orgs[1].agents[0]: an empty key"},
		{"aliased null key", "n: &n null\norgs: [{id: a, tier: free, *n : x}]\n", "orgs[0]: an empty key"},
		// An alias as a key is the field it names, checked as such.
		{"aliased key, yes", "orgs: [{id: a, tier: free, &d allow_demo_rooms: false}, {id: b, tier: free, *d : yes}]\n", "orgs[1].allow_demo_rooms: must be true or false"},
		{"aliased key, fraction", "orgs: [{id: a, tier: enterprise, &r rate_per_minute: 5}, {id: b, tier: enterprise, *r : 1.5}]\n", `orgs[1].rate_per_minute: must be a whole number, not "1.5"`},
		{"aliased key, empty item", "orgs: [{id: a, tier: free, agents: [{id: b, &k channels: [chat]}, {id: c, *k : [chat, ~]}]}]\n", "orgs[0].agents[1].channels[1]: an empty list item"},
		{"tagged merge key", "base: &b {tier: free}\norgs: [{id: a, !!merge <<: *b}]\n", "orgs[0]: YAML tags such as !!merge are not accepted on keys"},
		// Through a merge key and an alias.
		{"merged yes", "base: &b {tier: free, allow_demo_rooms: yes}\norgs: [{id: a, <<: *b}]\n", "orgs[0].allow_demo_rooms: must be true or false"},
		{"aliased fraction", "x: &r 1.5\norgs: [{id: a, tier: enterprise, rate_per_minute: *r}]\n", `orgs[0].rate_per_minute: must be a whole number, not "1.5"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tc.yaml))
			var ve *config.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want a *ValidationError", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
			for _, goWords := range []string{"config.", "!!null", "!!float", "unmarshal", "[]string", "time.Time", "yaml:", "reflect"} {
				if strings.Contains(err.Error(), goWords) {
					t.Fatalf("error %q speaks Go (%q)", err, goWords)
				}
			}
		})
	}
}

// TestStrictValuesAcceptPlainOnes is the control: plain values of each
// kind still parse, to the value written.
func TestStrictValuesAcceptPlainOnes(t *testing.T) {
	cases := []struct {
		name, old, new string
		check          func(*config.Tenants) bool
	}{
		{"true", "allow_demo_rooms: false", "allow_demo_rooms: true", func(t *config.Tenants) bool { return t.Org("acme").AllowDemoRooms }},
		{"zero rate", "          allowed_origins:", "          rate_per_minute: 0\n          allowed_origins:", func(t *config.Tenants) bool {
			return t.Org("acme").Agent("florencia").Public.RatePerMinute == 0
		}},
		{"big rate", "rate_per_minute: 5000", "rate_per_minute: 1000000", func(t *config.Tenants) bool { return t.Org("globex").RateLimit() == 1_000_000 }},
		{"offset", "expires_at: 2027-06-01T00:00:00Z", "expires_at: 2027-06-01T02:00:00+02:00", func(t *config.Tenants) bool {
			return t.KeyByHash(hashA).ExpiresAt.Equal(time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC))
		}},
		{"quoted", "expires_at: 2027-06-01T00:00:00Z", `expires_at: "2027-06-01T00:00:00.5Z"`, func(t *config.Tenants) bool {
			return t.KeyByHash(hashA).ExpiresAt.Equal(time.Date(2027, 6, 1, 0, 0, 0, 5e8, time.UTC))
		}},
		{"numeric-looking string", "id: florencia", "id: 2027", func(t *config.Tenants) bool { return t.Org("acme").Agent("2027") != nil }},
		{"empty string", `server: ""`, `server: ''`, func(t *config.Tenants) bool { return t.Org("acme").Agent("florencia").Server == "" }},
		{"no allowed_ips", `        allowed_ips: ["203.0.113.0/24", "2001:db8::/32", "198.51.100.7"]` + "\n", "", func(t *config.Tenants) bool {
			return t.KeyByHash(hashA).AllowedIPs == nil
		}},
		{"null-named scalar in quotes", "id: florencia", `id: "null"`, func(t *config.Tenants) bool { return t.Org("acme").Agent("null") != nil }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(good, tc.old) {
				t.Fatalf("%q not in the good file", tc.old)
			}
			ten, err := config.Parse([]byte(strings.Replace(good, tc.old, tc.new, 1)))
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(ten) {
				t.Fatal("parsed to another value")
			}
		})
	}
}

// TestStrictValuesListEveryProblem: strict and decoder problems come
// together, each once.
func TestStrictValuesListEveryProblem(t *testing.T) {
	bad := strings.NewReplacer("rate_per_minute: 5000", "rate_per_minute: 1.5", "revoked: false", "revoked: yes",
		"allow_demo_rooms: false", "allow_demo_rooms: [x]", "tier: pro", "tier: pro\n    colour: red").Replace(good)
	_, err := config.Parse([]byte(bad))
	var ve *config.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"orgs[1].rate_per_minute:", "orgs[0].keys[0].revoked:", "orgs[0].allow_demo_rooms: must be true or false, not a list", "orgs[0].colour: unknown field"} {
		n := 0
		for _, p := range ve.Problems {
			if strings.HasPrefix(p, want) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%q reported %d times in %q", want, n, ve.Problems)
		}
	}
}

// TestJWKSURLNeedsHTTPS: the keys fetched from a JWKS URL decide which JWTs
// are believed, so plain http is refused except on loopback hosts.
func TestJWKSURLNeedsHTTPS(t *testing.T) {
	const at = "jwks_url: https://auth.acme.example/.well-known/jwks.json"
	for url, ok := range map[string]bool{
		"https://auth.acme.example/jwks":      true,
		"HTTPS://auth.acme.example/jwks":      true,
		"http://localhost:8080/jwks":          true,
		"http://LOCALHOST/jwks":               true,
		"http://127.0.0.1:9000/jwks":          true,
		"http://127.10.0.1/jwks":              true,
		"http://[::1]:9000/jwks":              true,
		"http://auth.acme.example/jwks":       false,
		"HTTP://auth.acme.example/jwks":       false,
		"http://10.0.0.5/jwks":                false,
		"http://0.0.0.0/jwks":                 false,
		"http://127.0.0.1.nip.io/jwks":        false,
		"http://localhost.evil.example/jwks":  false,
		"http://0177.0.0.1/jwks":              false,
		"http://2130706433/jwks":              false,
		"http://[fe80::1%25lo]/jwks":          false,
		"ftp://auth.acme.example/jwks":        false,
		"https://user:pw@auth.acme.example/j": false,
		"https:///jwks":                       false,
		"//auth.acme.example/jwks":            false,
	} {
		t.Run(url, func(t *testing.T) {
			_, err := config.Parse([]byte(strings.Replace(good, at, "jwks_url: '"+url+"'", 1)))
			switch {
			case ok && err != nil:
				t.Fatalf("refused: %v", err)
			case !ok && (err == nil || !strings.Contains(err.Error(), "orgs[0].jwt_issuers[0].jwks_url: ")):
				t.Fatalf("err = %v, want a refusal naming orgs[0].jwt_issuers[0].jwks_url", err)
			case !ok && strings.Contains(err.Error(), "pw"):
				t.Fatalf("error echoes the URL's password: %v", err)
			}
		})
	}
}

// TestStrictValuesWithABadDate: a date the decoder gives up on does not
// hide the other loosely written values.
func TestStrictValuesWithABadDate(t *testing.T) {
	bad := strings.NewReplacer("rate_per_minute: 5000", "rate_per_minute: 1.5", "expires_at: 2027-06-01T00:00:00Z", "expires_at: 2027-06-01T00:00:00").Replace(good)
	_, err := config.Parse([]byte(bad))
	if err == nil || !strings.Contains(err.Error(), "orgs[1].rate_per_minute: must be a whole number") || strings.Count(err.Error(), "orgs[0].keys[0].expires_at: ") != 1 {
		t.Fatalf("err = %v", err)
	}
}
