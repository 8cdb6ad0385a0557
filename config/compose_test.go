package config_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/voicebroker/voicebroker/config"
)

func hashOf(s string) string {
	// Any 64 lowercase hex digits will do for a test hash.
	h := fmt.Sprintf("%064x", []byte(s))
	return "sha256:" + h[len(h)-64:]
}

// manyOrgs returns a file of n orgs in id order, each with keys, agents
// (one with several publishable keys) and an issuer shared by name with
// the others but with its own audience.
func manyOrgs(n int) *config.File {
	f := &config.File{}
	for i := range n {
		id := fmt.Sprintf("org-%03d", i)
		o := config.Org{ID: id, Tier: config.TierPro, AllowDemoRooms: i%2 == 0}
		for k := range 3 {
			o.Keys = append(o.Keys, config.Key{ID: fmt.Sprintf("k%d", k), Hash: hashOf(fmt.Sprintf("sk-%d-%d", i, k)),
				Scopes: []config.Scope{config.ScopeTokensCreate}, AllowedIPs: []string{"10.0.0.0/8"}, Revoked: k == 2})
		}
		o.JWTIssuers = []config.JWTIssuer{{Issuer: "https://auth.example", Audience: id,
			JWKSURL: "https://auth.example/jwks.json", Scopes: []config.Scope{config.ScopeTokensCreate}}}
		o.Agents = []config.Agent{
			{ID: "bot", Channels: []config.Channel{config.ChannelChat}, LiveKitAgentName: id + "-bot"},
			{ID: "web", Channels: []config.Channel{config.ChannelWebRTC}, LiveKitAgentName: "shared-web", LiveKitAgentShared: true, Public: &config.Public{
				Keys:           []config.PublishableKey{{ID: "a", Hash: hashOf(fmt.Sprintf("pk-%d-a", i))}, {ID: "b", Hash: hashOf(fmt.Sprintf("pk-%d-b", i))}},
				AllowedOrigins: []string{"https://*.example.com"}}},
			{ID: "old", Channels: []config.Channel{config.ChannelWebRTC}, LiveKitAgentName: id + "-old", Public: &config.Public{
				KeyHash: hashOf(fmt.Sprintf("pk-%d-old", i)), AllowedOrigins: []string{"http://localhost:*"}}},
		}
		f.Orgs = append(f.Orgs, o)
	}
	return f
}

func parts(t *testing.T, f *config.File) []*config.Tenants {
	t.Helper()
	var ps []*config.Tenants
	for _, o := range f.Orgs {
		p, err := config.Build(&config.File{Orgs: []config.Org{o}})
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	return ps
}

// Compose of orgs built one by one must equal Build of the whole file,
// every index included: a new index in Tenants that Replace does not
// carry over fails here.
func TestComposeEqualsBuild(t *testing.T) {
	whole, err := config.Build(manyOrgs(5))
	if err != nil {
		t.Fatal(err)
	}
	composed, err := config.Compose(parts(t, manyOrgs(5))...)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(whole, composed) {
		t.Fatal("Compose differs from Build")
	}
}

func TestReplaceChangesOneOrg(t *testing.T) {
	f := manyOrgs(4)
	base, err := config.Compose(parts(t, f)...)
	if err != nil {
		t.Fatal(err)
	}
	revokedHash := f.Orgs[1].Keys[0].Hash
	oldPK := f.Orgs[1].Agents[1].Public.Keys[0].Hash

	changed := manyOrgs(4).Orgs[1]
	changed.Keys[0].Revoked = true
	changed.Agents[1].Public.Keys = changed.Agents[1].Public.Keys[1:]
	changed.JWTIssuers = nil
	part, err := config.Build(&config.File{Orgs: []config.Org{changed}})
	if err != nil {
		t.Fatal(err)
	}
	next, err := base.Replace(map[string]*config.Tenants{"org-001": part, "org-003": nil, "org-009": parts(t, manyOrgs(10))[9]})
	if err != nil {
		t.Fatal(err)
	}
	if k := next.KeyByHash(revokedHash); k == nil || !k.Revoked {
		t.Fatalf("key after replace = %+v", k)
	}
	if next.PublishableByHash(oldPK) != nil {
		t.Fatal("a publishable key taken out of the org still opens it")
	}
	if next.Org("org-003") != nil || next.KeyByHash(f.Orgs[3].Keys[0].Hash) != nil {
		t.Fatal("removed org still present")
	}
	if got := strings.Join(next.Orgs(), ","); got != "org-000,org-001,org-002,org-009" {
		t.Fatalf("orgs = %s", got)
	}
	for _, r := range next.Issuers("https://auth.example") {
		if r.Org.ID == "org-001" || r.Org.ID == "org-003" {
			t.Fatalf("issuer of %s still registered", r.Org.ID)
		}
	}
	// The base snapshot is untouched: readers holding it see no change.
	if k := base.KeyByHash(revokedHash); k == nil || k.Revoked {
		t.Fatal("Replace changed its receiver")
	}
	if base.Org("org-003") == nil || len(base.Issuers("https://auth.example")) != 4 {
		t.Fatal("Replace changed its receiver")
	}
}

func TestReplaceLeavesOutConflicts(t *testing.T) {
	f := manyOrgs(2)
	base, err := config.Compose(parts(t, f)...)
	if err != nil {
		t.Fatal(err)
	}
	thief := config.Org{ID: "thief", Tier: config.TierFree,
		Keys: []config.Key{{ID: "k", Hash: f.Orgs[0].Keys[0].Hash, Scopes: []config.Scope{config.ScopeTokensCreate}}}}
	issuer := config.Org{ID: "issuer", Tier: config.TierFree, JWTIssuers: []config.JWTIssuer{{Issuer: "https://auth.example",
		Audience: "org-000", JWKSURL: "https://x.example/jwks", Scopes: []config.Scope{config.ScopeTokensCreate}}}}
	pub := config.Org{ID: "pub", Tier: config.TierFree, Agents: []config.Agent{{ID: "a", Channels: []config.Channel{config.ChannelChat},
		Public: &config.Public{KeyHash: f.Orgs[1].Keys[1].Hash, AllowedOrigins: []string{"https://x.example"}}}}}
	// The same issuer spelled otherwise is the same issuer.
	spelled := config.Org{ID: "spelled", Tier: config.TierFree, JWTIssuers: []config.JWTIssuer{{Issuer: "HTTPS://AUTH.example:443/",
		Audience: "org-001", JWKSURL: "https://x.example/jwks", Scopes: []config.Scope{config.ScopeTokensCreate}}}}
	// A LiveKit agent name of another org's agent: refused unless both share.
	name := config.Org{ID: "name", Tier: config.TierFree, Agents: []config.Agent{{ID: "org-000-bot", Channels: []config.Channel{config.ChannelChat}}}}
	shared := config.Org{ID: "shared", Tier: config.TierFree, Agents: []config.Agent{{ID: "w", Channels: []config.Channel{config.ChannelChat},
		LiveKitAgentName: "shared-web", LiveKitAgentShared: true}}}
	unshared := config.Org{ID: "unshared", Tier: config.TierFree, Agents: []config.Agent{{ID: "w", Channels: []config.Channel{config.ChannelChat},
		LiveKitAgentName: "shared-web"}}}
	ps := parts(t, &config.File{Orgs: []config.Org{thief, issuer, pub, spelled, name, shared, unshared}})
	next, err := base.Replace(map[string]*config.Tenants{"thief": ps[0], "issuer": ps[1], "pub": ps[2], "spelled": ps[3],
		"name": ps[4], "shared": ps[5], "unshared": ps[6]})
	var ve *config.ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 6 {
		t.Fatalf("err = %v", err)
	}
	if next.Org("shared") == nil {
		t.Fatal("an agent sharing a shared LiveKit agent name was refused")
	}
	for _, want := range []string{`org "thief": keys[0].hash`, `org "issuer": jwt_issuers[0]`, `org "pub": agents[0].public`,
		`org "spelled": jwt_issuers[0]`, `org "name": agents[0].livekit_agent_name`, `org "unshared": agents[0].livekit_agent_name`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q not in %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "sha256:") {
		t.Fatal("a hash in the error text")
	}
	if next.Org("thief") != nil || next.Org("issuer") != nil || next.Org("pub") != nil {
		t.Fatal("a conflicting org got in")
	}
	if k := next.KeyByHash(f.Orgs[0].Keys[0].Hash); k == nil || k.Org().ID != "org-000" {
		t.Fatal("the first owner lost its key")
	}
	// A hash moving between two orgs changed in one call is no conflict.
	a, b := manyOrgs(2).Orgs[0], manyOrgs(2).Orgs[1]
	a.Keys[0].Hash, b.Keys[0].Hash = b.Keys[0].Hash, a.Keys[0].Hash
	ps = parts(t, &config.File{Orgs: []config.Org{a, b}})
	if _, err := base.Replace(map[string]*config.Tenants{"org-000": ps[0], "org-001": ps[1]}); err != nil {
		t.Fatal(err)
	}
	// A part filed under another id is refused.
	if _, err := base.Replace(map[string]*config.Tenants{"org-005": ps[0]}); err == nil {
		t.Fatal("a part under the wrong id was accepted")
	}
}

func TestPublishableKeysList(t *testing.T) {
	h1, h2 := hashOf("one"), hashOf("two")
	ten, err := config.Parse([]byte(`
orgs:
  - id: acme
    tier: free
    agents:
      - id: web
        channels: [webrtc]
        public:
          keys:
            - {id: current, hash: "` + h1 + `"}
            - {id: next, hash: "` + h2 + `"}
          allowed_origins: [https://a.example]
      - id: revoked
        channels: [webrtc]
        public:
          keys: []
          allowed_origins: [https://a.example]
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{h1, h2} {
		if a := ten.PublishableByHash(h); a == nil || a.ID != "web" || !a.Public.HasKey(h) {
			t.Fatalf("key %s opens %+v", h, a)
		}
	}
	if web := ten.Org("acme").Agent("web"); web.Public.HasKey(hashOf("three")) || web.Public.HasKey("") {
		t.Fatal("HasKey admits a key that is not listed")
	}
	if ten.Org("acme").Agent("revoked").Public.HasKey("") {
		t.Fatal("an empty key list admits the empty hash")
	}
	cases := map[string]string{
		"no key":        "public:\n          allowed_origins: [https://a.example]",
		"bad hash":      "public:\n          keys: [{id: a, hash: nope}]\n          allowed_origins: [https://a.example]",
		"dup id":        "public:\n          keys: [{id: a, hash: \"" + h1 + "\"}, {id: a, hash: \"" + h2 + "\"}]\n          allowed_origins: [https://a.example]",
		"dup hash":      "public:\n          key_hash: \"" + h1 + "\"\n          keys: [{id: a, hash: \"" + h1 + "\"}]\n          allowed_origins: [https://a.example]",
		"bad id":        "public:\n          keys: [{id: A, hash: \"" + h1 + "\"}]\n          allowed_origins: [https://a.example]",
		"unknown field": "public:\n          keys: [{id: a, hash: \"" + h1 + "\", revoked: true}]\n          allowed_origins: [https://a.example]",
	}
	want := map[string]string{
		"no key": "orgs[0].agents[0].public.key_hash", "bad hash": "public.keys[0].hash", "dup id": "public.keys[1].id",
		"dup hash": "public.keys[0].hash", "bad id": "public.keys[0].id", "unknown field": "revoked",
	}
	for name, stanza := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := config.Parse([]byte("orgs:\n  - id: acme\n    tier: free\n    agents:\n      - id: web\n        channels: [webrtc]\n        " + stanza + "\n"))
			if err == nil || !strings.Contains(err.Error(), want[name]) {
				t.Fatalf("err = %v, want %q", err, want[name])
			}
		})
	}
}

// A change to one org costs the same whatever the number of other orgs'
// JWT issuers: the (issuer, audience) rule spanning orgs looks the changed
// org's pairs up in an index, where it canonicalised every issuer of the
// registry again at each change (a registry of many orgs with issuers then
// took minutes to load, as each org added was checked against all before
// it). Measured in allocations, which do not depend on the machine's load.
func TestReplaceCostDoesNotGrowWithIssuers(t *testing.T) {
	// Orgs with issuers only: what else a change costs (the LiveKit agent
	// names are gathered once per change) is not measured here.
	withIssuers := func(n int) *config.File {
		f := &config.File{}
		for i := range n {
			id := fmt.Sprintf("org-%04d", i)
			f.Orgs = append(f.Orgs, config.Org{ID: id, Tier: config.TierPro, JWTIssuers: []config.JWTIssuer{{
				Issuer: fmt.Sprintf("https://auth%d.example", i), Audience: "voicebroker",
				JWKSURL: "https://auth.example/jwks.json", Scopes: []config.Scope{config.ScopeTokensCreate}}}})
		}
		return f
	}
	cost := func(n int) float64 {
		base, err := config.Compose(parts(t, withIssuers(n))...)
		if err != nil {
			t.Fatal(err)
		}
		changed := parts(t, withIssuers(n))[n/2]
		return testing.AllocsPerRun(20, func() {
			if _, err := base.Replace(map[string]*config.Tenants{changed.Orgs()[0]: changed}); err != nil {
				t.Fatal(err)
			}
		})
	}
	small, large := cost(100), cost(2000)
	// Copying the indexes' maps costs a few allocations per thousand
	// entries; canonicalising 1,900 more issuers costs thousands.
	if large-small > 300 {
		t.Fatalf("a one-org change costs %.0f allocations among 100 orgs, %.0f among 2,000", small, large)
	}
	// The rule still holds: another org's pair, spelled otherwise, is refused.
	base, err := config.Compose(parts(t, manyOrgs(3))...)
	if err != nil {
		t.Fatal(err)
	}
	thief := config.Org{ID: "thief", Tier: config.TierFree, JWTIssuers: []config.JWTIssuer{{Issuer: "HTTPS://AUTH.EXAMPLE:443", Audience: "org-001",
		JWKSURL: "https://evil.example/jwks.json", Scopes: []config.Scope{config.ScopeTokensCreate}}}}
	part, err := config.Build(&config.File{Orgs: []config.Org{thief}})
	if err != nil {
		t.Fatal(err)
	}
	next, err := base.Replace(map[string]*config.Tenants{"thief": part})
	if err == nil || next.Org("thief") != nil || !strings.Contains(err.Error(), `already trusted by org "org-001"`) {
		t.Fatalf("thief's pair: %v", err)
	}
	// Once org-001 is gone (or trusts the pair no more), the pair is free.
	next, err = base.Replace(map[string]*config.Tenants{"org-001": nil})
	if err != nil {
		t.Fatal(err)
	}
	if next, err = next.Replace(map[string]*config.Tenants{"thief": part}); err != nil || next.Org("thief") == nil {
		t.Fatalf("a freed pair: %v", err)
	}
}
