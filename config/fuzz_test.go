package config_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/voicebroker/voicebroker/config"
)

// FuzzParse: the loader never panics; what it refuses is a
// *ValidationError in the file's words (never a Go type); whatever it
// accepts is self-consistent: every indexed key belongs to a listed org,
// every org has a positive rate, no (issuer, audience) pair is shared by two
// orgs, every LiveKit project has its secret read (never inline), a key and
// a server of its own, and a second parse of the same bytes agrees.
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("orgs:\n  - id: a\n    tier: free\n"))
	f.Add([]byte("orgs: [{id: a, tier: enterprise, rate_per_minute: 1}]"))
	f.Add([]byte("orgs:\n  - &x {id: a, tier: free}\n  - *x\n"))               // alias: duplicate id
	f.Add([]byte("a: &a [*a, *a, *a, *a]"))                                    // recursive alias
	f.Add([]byte(strings.Replace(good, "203.0.113.0/24", "::ffff:0:0/96", 1))) // mapped prefix
	f.Add([]byte("orgs:\n- id: a\n  tier: free\n  agents:\n  - id: b\n    channels: [chat]\n    public: {key_hash: x, allowed_origins: ['https://*.co.uk']}\n"))
	f.Add([]byte("orgs:\n- id: a\n  tier: free\n  agents:\n  - id: b\n    channels: [chat]\n    public: {keys: [{id: k, hash: \"sha256:" + strings.Repeat("a", 64) + "\"}], allowed_origins: ['https://a.example']}\n"))
	f.Add([]byte("orgs:\n  - id: a\n    tier: free\n    colour: red\n"))
	f.Add([]byte("orgs: [{id: a, tier: free, keys: [{id: k, hash: x, scopes: [x], revoked: maybe}]}]"))
	f.Add([]byte("orgs:\n\t- id: a\n"))
	f.Add([]byte("orgs: [{id: a, tier: free, jwt_issuers: [{issuer: 'https://i', audience: v, jwks_url: 'https://i/j', scopes: [tokens:create]}]}, {id: b, tier: free, jwt_issuers: [{issuer: 'HTTPS://I/', audience: v, jwks_url: 'https://i/j', scopes: [tokens:create]}]}]"))
	f.Add([]byte("orgs: [{id: a, tier: free, keys: [{id: k, expires_at: soon}]}]"))
	// Dates the decoder cannot read are blanked in place so that the rest
	// is checked: quoted, escaped, multi-byte and multi-line ones.
	f.Add([]byte("orgs: [{id: a, tier: free, keys: [{id: k, expires_at: 'it''s', revoked: yes}, {id: j, expires_at: \"x\\\"y\"}]}]"))
	f.Add([]byte("orgs:\n  - {id: é, keys: [{expires_at: ü-soon, colour: 1}]}\n  - id: b\n    keys:\n      - expires_at: \"two\n          lines\"\n"))
	f.Add([]byte("orgs: [{id: a, tier: enterprise, rate_per_minute: 1.5}]"))
	f.Add([]byte("orgs: [{id: a, tier: enterprise, rate_per_minute: 0x10}]"))
	f.Add([]byte("orgs: [{id: a, tier: free, allow_demo_rooms: yes}]"))
	f.Add([]byte("orgs: [{id: a, tier: free, keys: [{id: k, hash: 'sha256:" + strings.Repeat("a", 64) + "', scopes: [tokens:create], allowed_ips: [~]}]}]"))
	f.Add([]byte("orgs: [{id: a, tier: free, keys: [{id: k, hash: 'sha256:" + strings.Repeat("a", 64) + "', scopes: [tokens:create], expires_at: 2027-06-01}]}]"))
	f.Add([]byte("orgs: [{id: a, tier: free, agents: [{id: b, channels: [chat, ~]}]}]"))
	f.Add([]byte("orgs: [{id: a, tier: free, agents: [{id: b, !!binary Y2hhbm5lbHM=: [chat]}]}]"))                // a tagged key
	f.Add([]byte("orgs: [{id: a, tier: free, agents: [{id: b, channels: [chat], &k : }]}]"))                      // an empty key
	f.Add([]byte("orgs: [{id: a, tier: free, agents: [{id: b, &k channels: [chat]}, {id: c, *k : [chat, ~]}]}]")) // an alias as a key
	// Org LiveKit projects: an inline secret, a secret from a variable, two
	// orgs with one API key.
	f.Add([]byte("orgs: [{id: a, tier: free, livekit: {url: 'wss://a.example', api_key: k, api_secret: '" + strings.Repeat("s", 40) + "'}}]"))
	f.Add([]byte("orgs: [{id: a, tier: free, livekit: {url: 'wss://a.example', api_key: k, api_secret_env: FUZZ_LK}}]"))
	f.Add([]byte("orgs: [{id: a, tier: free, livekit: {url: 'wss://a', api_key: k, api_secret_env: FUZZ_LK}}, {id: b, tier: free, livekit: {url: 'wss://b', api_key: k, api_secret_env: FUZZ_LK}}]"))
	f.Add([]byte("orgs: [{id: a, tier: free, livekit: {url: 'wss://a', api_key: k, api_secret_env: FUZZ_LK}}, {id: b, tier: free, livekit: {url: 'HTTPS://A:443/', api_key: j, api_secret_env: FUZZ_LK}}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		t.Setenv("FUZZ_LK", strings.Repeat("f", 40))
		ten, err := config.Parse(data)
		if err != nil {
			var ve *config.ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 {
				t.Fatalf("refusal %v is not a *ValidationError with problems", err)
			}
			for _, goWords := range []string{"config.", "unmarshal", "[]string"} {
				if strings.Contains(err.Error(), goWords) {
					t.Fatalf("refusal %q speaks Go", err)
				}
			}
			return
		}
		pairs := map[[2]string]string{}
		lkKeys := map[string]string{}
		lkServers := map[string]string{}
		for _, id := range ten.Orgs() {
			o := ten.Org(id)
			if o == nil || o.ID != id || o.RateLimit() < 1 {
				t.Fatalf("org %q inconsistent", id)
			}
			if l := o.LiveKit; l != nil {
				if len(l.Secret()) < config.MinLiveKitSecret || l.APISecret != "" || lkKeys[l.APIKey] != "" {
					t.Fatalf("org %q: a LiveKit project without a read secret, with an inline one, or with another org's key", id)
				}
				lkKeys[l.APIKey] = id
				server, err := config.LiveKitServer(l.URL)
				if err != nil || lkServers[server] != "" {
					t.Fatalf("org %q: a LiveKit project whose URL is not a server, or another org's server", id)
				}
				lkServers[server] = id
			}
			for i := range o.Keys {
				k := &o.Keys[i]
				if ten.KeyByHash(k.Hash) != k || k.Org() != o {
					t.Fatalf("key %q not indexed to its org", k.ID)
				}
			}
			for i := range o.JWTIssuers {
				is := &o.JWTIssuers[i]
				k := [2]string{strings.ToLower(strings.TrimRight(is.Issuer, "/")), is.Audience}
				if prev, ok := pairs[k]; ok && prev != id {
					t.Fatalf("issuer %q audience %q shared by orgs %q and %q", is.Issuer, is.Audience, prev, id)
				}
				pairs[k] = id
			}
			for i := range o.Agents {
				a := &o.Agents[i]
				if o.Agent(a.ID) != a || len(a.Channels) == 0 {
					t.Fatalf("agent %q inconsistent", a.ID)
				}
				if a.Public != nil && a.Public.KeyHash != "" && ten.PublishableByHash(a.Public.KeyHash) != a {
					t.Fatalf("publishable key of %q not indexed", a.ID)
				}
				if a.Public != nil {
					for _, k := range a.Public.Keys {
						if ten.PublishableByHash(k.Hash) != a {
							t.Fatalf("publishable key %q of %q not indexed", k.ID, a.ID)
						}
					}
				}
			}
		}
		again, err := config.Parse(data)
		if err != nil || len(again.Orgs()) != len(ten.Orgs()) {
			t.Fatal("second parse disagrees")
		}
		agreesWithPlainYAML(t, data, ten)
	})
}

// agreesWithPlainYAML checks an accepted file against a generic YAML 1.2
// reading of it (yaml.v3 into any, which keeps empty items and reads only
// true and false as booleans): every list has as many entries as were
// written, every boolean and whole number is what was written.
func agreesWithPlainYAML(t *testing.T, data []byte, ten *config.Tenants) {
	var doc struct {
		Orgs []map[string]any `yaml:"orgs"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("accepted a file that a plain YAML reading refuses: %v", err)
	}
	ids := ten.Orgs()
	if len(doc.Orgs) != len(ids) {
		t.Fatalf("%d orgs written, %d read", len(doc.Orgs), len(ids))
	}
	same := func(what string, written any, read any) {
		t.Helper()
		if written == nil {
			written = read // absent: the zero value
			if reflect.ValueOf(read).IsZero() {
				return
			}
		}
		if !reflect.DeepEqual(written, read) {
			t.Fatalf("%s: written %#v, read %#v", what, written, read)
		}
	}
	list := func(what string, written any, n int) []any {
		t.Helper()
		l, _ := written.([]any)
		if written != nil && len(l) != n {
			t.Fatalf("%s: %d entries written, %d read", what, len(l), n)
		}
		if written == nil && n != 0 {
			t.Fatalf("%s: none written, %d read", what, n)
		}
		return l
	}
	fields := func(v any) map[string]any { m, _ := v.(map[string]any); return m }
	for i, w := range doc.Orgs {
		o := ten.Org(ids[i])
		same("allow_demo_rooms", w["allow_demo_rooms"], o.AllowDemoRooms)
		same("rate_per_minute", w["rate_per_minute"], o.RatePerMinute)
		for j, kw := range list("keys", w["keys"], len(o.Keys)) {
			k, kf := &o.Keys[j], fields(kw)
			same("revoked", kf["revoked"], k.Revoked)
			list("scopes", kf["scopes"], len(k.Scopes))
			list("allowed_ips", kf["allowed_ips"], len(k.AllowedIPs))
			if k.AllowedIPs != nil && len(k.AllowedIPs) == 0 {
				t.Fatal("accepted an empty allowed_ips list")
			}
		}
		for j, iw := range list("jwt_issuers", w["jwt_issuers"], len(o.JWTIssuers)) {
			list("scopes", fields(iw)["scopes"], len(o.JWTIssuers[j].Scopes))
		}
		for j, aw := range list("agents", w["agents"], len(o.Agents)) {
			a, af := &o.Agents[j], fields(aw)
			list("channels", af["channels"], len(a.Channels))
			same("livekit_agent_shared", af["livekit_agent_shared"], a.LiveKitAgentShared)
			if pw := fields(af["public"]); a.Public != nil {
				same("public.rate_per_minute", pw["rate_per_minute"], a.Public.RatePerMinute)
				list("allowed_origins", pw["allowed_origins"], len(a.Public.AllowedOrigins))
			}
		}
	}
}

// FuzzSecretsJSON: AUTH_API_SECRETS_JSON never panics the loader, an error
// never echoes a secret, and what is accepted agrees with encoding/json
// and holds only secrets that can match.
func FuzzSecretsJSON(f *testing.F) {
	s := strings.Repeat("s", 32)
	f.Add(`[{"id":"acme","secret":"` + s + `"}]`)
	f.Add(`[{"id":"acme","secret":"` + s + `"},{"id":"b","secret":"` + s + `x"}]`)
	f.Add(`[{"id":"acme","id":"b","secret":"` + s + `"}]`)
	f.Add(`[{"ID":"acme","secret":"` + s + `"}]`)
	f.Add(`[{"id":"acme","secret":"sk_` + s + `"}]`)
	f.Add(`[] []`)
	f.Add(`[{"id":"a","secret":"\u0000` + s + `"}]`)
	f.Fuzz(func(t *testing.T, js string) {
		if strings.TrimSpace(js) == "" {
			return // unset
		}
		e, err := config.LoadEnv(func(k string) string {
			if k == "AUTH_API_SECRETS_JSON" {
				return js
			}
			return ""
		})
		if err != nil {
			var ref []struct{ Secret string }
			if json.Unmarshal([]byte(js), &ref) == nil {
				for _, r := range ref {
					if len(r.Secret) >= 8 && strings.Contains(err.Error(), r.Secret) {
						t.Fatalf("error %q echoes a secret", err)
					}
				}
			}
			return
		}
		var ref []struct{ ID, Secret string }
		if err := json.Unmarshal([]byte(js), &ref); err != nil || len(ref) != len(e.AuthAPISecrets) {
			t.Fatalf("accepted %q that encoding/json reads otherwise (%v)", js, err)
		}
		seen := map[string]bool{}
		for i, got := range e.AuthAPISecrets {
			if got.ID != ref[i].ID || got.Secret != ref[i].Secret {
				t.Fatalf("entry %d differs from encoding/json", i)
			}
			if !config.ValidID(got.ID) || len(got.Secret) < 32 || strings.HasPrefix(got.Secret, "sk_") || strings.HasPrefix(got.Secret, "pk_") || seen[got.Secret] {
				t.Fatalf("accepted a secret that cannot match or is ambiguous: entry %d", i)
			}
			for _, c := range []byte(got.Secret) {
				if c <= ' ' || c >= 0x7f {
					t.Fatalf("accepted a secret with byte %#x", c)
				}
			}
			seen[got.Secret] = true
		}
	})
}
