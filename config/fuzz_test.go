package config_test

import (
	"strings"
	"testing"

	"github.com/voicebroker/voicebroker/config"
)

// FuzzParse: the loader never panics, and whatever it accepts is
// self-consistent: every indexed key belongs to a listed org, every org has
// a positive rate, and a second parse of the same bytes agrees.
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("orgs:\n  - id: a\n    tier: free\n"))
	f.Add([]byte("orgs: [{id: a, tier: enterprise, rate_per_minute: 1}]"))
	f.Add([]byte("orgs:\n  - &x {id: a, tier: free}\n  - *x\n"))               // alias: duplicate id
	f.Add([]byte("a: &a [*a, *a, *a, *a]"))                                    // recursive alias
	f.Add([]byte(strings.Replace(good, "203.0.113.0/24", "::ffff:0:0/96", 1))) // mapped prefix
	f.Add([]byte("orgs:\n- id: a\n  tier: free\n  agents:\n  - id: b\n    channels: [chat]\n    public: {key_hash: x, allowed_origins: ['https://*.co.uk']}\n"))
	f.Add([]byte("orgs:\n- id: a\n  tier: free\n  agents:\n  - id: b\n    channels: [chat]\n    public: {keys: [{id: k, hash: \"sha256:" + strings.Repeat("a", 64) + "\"}], allowed_origins: ['https://a.example']}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ten, err := config.Parse(data)
		if err != nil {
			return
		}
		for _, id := range ten.Orgs() {
			o := ten.Org(id)
			if o == nil || o.ID != id || o.RateLimit() < 1 {
				t.Fatalf("org %q inconsistent", id)
			}
			for i := range o.Keys {
				k := &o.Keys[i]
				if ten.KeyByHash(k.Hash) != k || k.Org() != o {
					t.Fatalf("key %q not indexed to its org", k.ID)
				}
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
	})
}
