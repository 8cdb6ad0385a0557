package config_test

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/voicebroker/voicebroker/config"
)

const hashA = "sha256:" + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
const hashB = "sha256:" + "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

const good = `
orgs:
  - id: acme
    tier: pro
    allow_demo_rooms: false
    keys:
      - id: prod-v2
        hash: "` + hashA + `"
        scopes: [tokens:create, tokens:redeem, livekit:token, rooms:read, rooms:write]
        allowed_ips: ["203.0.113.0/24", "2001:db8::/32", "198.51.100.7"]
        expires_at: 2027-06-01T00:00:00Z
        revoked: false
    jwt_issuers:
      - issuer: https://auth.acme.example
        audience: voicebroker
        jwks_url: https://auth.acme.example/.well-known/jwks.json
        scopes: [tokens:create]
    agents:
      - id: florencia
        channels: [webrtc, chat]
        server: ""
        public:
          key_hash: "` + hashB + `"
          allowed_origins:
            - https://demo.mysite.com
            - https://*.mysite.com
            - http://localhost:*
  - id: globex
    tier: enterprise
    rate_per_minute: 5000
    agents:
      - id: bot
        channels: [chat]
`

func TestParseGood(t *testing.T) {
	ten, err := config.Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	k := ten.KeyByHash(hashA)
	if k == nil || k.Org().ID != "acme" || !k.HasScope("rooms:write") || k.ExpiresAt == nil {
		t.Fatalf("key = %+v", k)
	}
	for ip, want := range map[string]bool{"203.0.113.9": true, "203.0.114.1": false, "::ffff:203.0.113.9": true,
		"2001:db8::1": true, "198.51.100.7": true, "198.51.100.8": false} {
		if got := k.AllowsIP(netip.MustParseAddr(ip)); got != want {
			t.Errorf("AllowsIP(%s) = %v", ip, got)
		}
	}
	a := ten.PublishableByHash(hashB)
	if a == nil || a.ID != "florencia" || a.Org().ID != "acme" {
		t.Fatalf("publishable = %+v", a)
	}
	if _, ok := a.Origins().Allow("https://x.mysite.com"); !ok {
		t.Fatal("wildcard origin refused")
	}
	if ten.Org("acme").RateLimit() != 300 || ten.Org("globex").RateLimit() != 5000 {
		t.Fatal("rate limits by tier")
	}
	if ten.Org("globex").Agent("bot").HasChannel("webrtc") {
		t.Fatal("chat-only agent offers webrtc")
	}
	if got := ten.Orgs(); len(got) != 2 || got[0] != "acme" {
		t.Fatalf("Orgs() = %v", got)
	}
	if len(ten.Issuers("https://auth.acme.example")) != 1 {
		t.Fatal("issuer not indexed")
	}
}

func TestParseRefusals(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown field", strings.Replace(good, "revoked: false", "revoked: false\n        color: red", 1), "orgs[0].keys[0].color: unknown field"},
		{"duplicate org", good + "  - id: acme\n    tier: free\n", "duplicate org id"},
		{"duplicate agent", strings.Replace(good, "id: bot", "id: bot\n        channels: [chat]\n      - id: bot", 1), "duplicate agent id"},
		{"bad org id", strings.Replace(good, "id: acme", "id: Acme_Corp", 1), `orgs[0].id: "Acme_Corp"`},
		{"underscore agent", strings.Replace(good, "id: florencia", "id: flo_rencia", 1), "orgs[0].agents[0].id"},
		{"bad hash", strings.Replace(good, hashA, "sha256:XYZ", 1), "orgs[0].keys[0].hash"},
		{"uppercase hash", strings.Replace(good, hashA, strings.ToUpper(hashA), 1), "orgs[0].keys[0].hash"},
		{"same hash twice", strings.Replace(good, hashB, hashA, 1), "listed twice"},
		{"bad cidr", strings.Replace(good, "203.0.113.0/24", "203.0.113.0/33", 1), "orgs[0].keys[0].allowed_ips[0]"},
		{"cidr host bits", strings.Replace(good, "203.0.113.0/24", "203.0.113.5/24", 1), "host bits"},
		{"unknown scope", strings.Replace(good, "rooms:write]", "rooms:admin]", 1), `unknown scope "rooms:admin"`},
		{"no scopes", strings.Replace(good, "scopes: [tokens:create]", "scopes: []", 1), "jwt_issuers[0].scopes"},
		{"unknown tier", strings.Replace(good, "tier: pro", "tier: gold", 1), `unknown tier "gold"`},
		{"rate without enterprise", strings.Replace(good, "tier: pro", "tier: pro\n    rate_per_minute: 10", 1), "only allowed with tier enterprise"},
		{"enterprise without rate", strings.Replace(good, "rate_per_minute: 5000", "rate_per_minute: 0", 1), "required for tier enterprise"},
		{"unknown channel", strings.Replace(good, "[webrtc, chat]", "[webrtc, sip]", 1), `unknown channel "sip"`},
		{"bad origin", strings.Replace(good, "https://*.mysite.com", "https://*.com", 1), "allowed_origins[1]"},
		{"origin with path", strings.Replace(good, "https://demo.mysite.com", "https://demo.mysite.com/app", 1), "allowed_origins[0]"},
		{"issuer with both key sources", strings.Replace(good, "scopes: [tokens:create]", "public_key_file: /x.pem\n        scopes: [tokens:create]", 1), "exactly one of jwks_url"},
		{"bad server", strings.Replace(good, `server: ""`, `server: "not a url"`, 1), "agents[0].server"},
		{"empty", "", "empty"},
		{"too large", "# " + strings.Repeat("x", config.MaxFileSize), "over the 4194304-byte limit"},
		{"no orgs", "orgs: []\n", "at least one org"},
		{"two documents", good + "---\norgs: []\n", "more than one YAML document"},
		{"not yaml", "orgs: [", "not valid YAML"},
		{"wrong type", strings.Replace(good, "revoked: false", "revoked: maybe", 1), "orgs[0].keys[0].revoked: must be true or false"},
		{"duplicate yaml key", strings.Replace(good, "tier: pro", "tier: pro\n    tier: free", 1), "orgs[0].tier: set twice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestValidationListsEveryProblem(t *testing.T) {
	bad := strings.NewReplacer("tier: pro", "tier: gold", "rooms:write]", "rooms:admin]").Replace(good)
	_, err := config.Parse([]byte(bad))
	var ve *config.ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 2 {
		t.Fatalf("err = %v, want 2 problems", err)
	}
}

func TestHolderReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tenants.yaml")
	write := func(s string) {
		// Write then rename, as editors and ConfigMaps do.
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(good)
	var results []bool
	h, err := config.NewHolder(path, nil, func(ok bool) { results = append(results, ok) })
	if err != nil {
		t.Fatal(err)
	}
	first := h.Current()

	if changed, err := h.Reload(false); changed || err != nil {
		t.Fatalf("unchanged file reloaded: %v %v", changed, err)
	}
	write(strings.Replace(good, "revoked: false", "revoked: true", 1))
	if changed, err := h.Reload(false); !changed || err != nil {
		t.Fatalf("changed file not reloaded: %v %v", changed, err)
	}
	if !h.Current().KeyByHash(hashA).Revoked || first.KeyByHash(hashA).Revoked {
		t.Fatal("revocation not swapped in, or old snapshot mutated")
	}
	write("orgs: [") // broken: the previous tenants stay
	if _, err := h.Reload(false); err == nil {
		t.Fatal("broken file accepted")
	}
	if h.Current().KeyByHash(hashA) == nil {
		t.Fatal("broken file replaced the tenants")
	}
	if len(results) != 2 || !results[0] || results[1] {
		t.Fatalf("reload hook results %v, want [true false]", results)
	}
}

func TestDemo(t *testing.T) {
	ten, err := config.Demo(hashA, hashB)
	if err != nil {
		t.Fatal(err)
	}
	a := ten.PublishableByHash(hashB)
	if a == nil || a.ID != config.DemoAgent {
		t.Fatal("demo agent")
	}
	if _, ok := a.Origins().Allow("http://localhost:5173"); !ok {
		t.Fatal("demo agent refuses localhost")
	}
	if _, ok := a.Origins().Allow("http://localhost.evil.com:5173"); ok {
		t.Fatal("demo agent allows localhost.evil.com")
	}
}

// TestHolderStaleClearsWhenFileReturns: a file that vanishes for a moment
// (an editor's rename, a ConfigMap swap) marks the tenants stale; the same
// content coming back must clear it, not be skipped as "unchanged".
func TestHolderStaleClearsWhenFileReturns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenants.yaml")
	if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	var results []bool
	h, err := config.NewHolder(path, nil, func(ok bool) { results = append(results, ok) })
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Reload(false); err == nil {
		t.Fatal("missing file reloaded without error")
	}
	if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	if changed, err := h.Reload(false); !changed || err != nil {
		t.Fatalf("returned file not reloaded: changed=%v err=%v", changed, err)
	}
	if len(results) != 2 || results[0] || !results[1] {
		t.Fatalf("reload hook results %v, want [false true]", results)
	}
}
