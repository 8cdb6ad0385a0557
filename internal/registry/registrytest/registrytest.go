// Package registrytest is the conformance suite every tenant registry
// passes: the file (read-only), the in-memory development registry and
// PostgreSQL. What the request path and the admin API rely on is written
// here once.
package registrytest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/apikey"
	"github.com/voicebroker/voicebroker/internal/registry"
)

// Factory returns a new registry holding seed, a checked tenants file
// (for a writable registry: an empty one into which seed was imported).
// It registers its own cleanup.
type Factory func(t *testing.T, seed *config.File) registry.Registry

// Options say what the registry under test is.
type Options struct {
	// ReadOnly: every write must return registry.ErrReadOnly.
	ReadOnly bool
	// Elapse makes d pass, for r, in the quarantine of deleted org ids
	// (registry.IDQuarantine): a fake clock moved on, or the deletion
	// times moved back. A writable registry must have it.
	Elapse func(t testing.TB, r registry.Registry, d time.Duration)
}

// Keys of the seed: secrets whose hashes the seed lists, so the suite can
// present them as a client would.
var (
	KeyActive  = "sk_live_" + strings.Repeat("A1", 22)
	KeyRevoked = "sk_live_" + strings.Repeat("B2", 22)
	KeyGlobex  = "sk_test_" + strings.Repeat("C3", 22)
	PubSingle  = "pk_live_" + strings.Repeat("D4", 22)
	PubA       = "pk_live_" + strings.Repeat("E5", 22)
	PubB       = "pk_live_" + strings.Repeat("F6", 22)
)

// SeedYAML is the tenants file every registry starts from.
var SeedYAML = `
orgs:
  - id: acme
    tier: pro
    allow_demo_rooms: true
    keys:
      - id: backend
        hash: "` + apikey.Hash(KeyActive) + `"
        scopes: [tokens:create, tokens:redeem]
        allowed_ips: ["203.0.113.0/24"]
        expires_at: 2031-06-01T00:00:00Z
      - id: old
        hash: "` + apikey.Hash(KeyRevoked) + `"
        scopes: [tokens:create]
        revoked: true
    jwt_issuers:
      - issuer: https://auth.acme.example
        audience: voicebroker
        jwks_url: https://auth.acme.example/.well-known/jwks.json
        scopes: [tokens:create]
    agents:
      - id: florencia
        channels: [webrtc, chat]
        public:
          key_hash: "` + apikey.Hash(PubSingle) + `"
          allowed_origins: [https://demo.acme.example, "https://*.acme.example"]
      - id: web
        channels: [webrtc]
        server: https://voice.acme.example
        public:
          keys:
            - {id: a, hash: "` + apikey.Hash(PubA) + `"}
            - {id: b, hash: "` + apikey.Hash(PubB) + `"}
          allowed_origins: ["http://localhost:*"]
      - id: bot
        channels: [chat]
  - id: globex
    tier: enterprise
    rate_per_minute: 5000
    keys:
      - id: ops
        hash: "` + apikey.Hash(KeyGlobex) + `"
        scopes: [rooms:read]
`

// Seed returns SeedYAML as a checked file.
func Seed(t testing.TB) *config.File {
	t.Helper()
	f, err := registry.ParseFile([]byte(SeedYAML))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// Run runs the whole suite against registries from newReg.
func Run(t *testing.T, newReg Factory, opt Options) {
	t.Run("Snapshot", func(t *testing.T) { testSnapshot(t, newReg(t, Seed(t))) })
	t.Run("Reads", func(t *testing.T) { testReads(t, newReg(t, Seed(t))) })
	t.Run("Export", func(t *testing.T) { testExport(t, newReg, opt) })
	t.Run("Used", func(t *testing.T) { testUsed(t, newReg(t, Seed(t))) })
	t.Run("LiveKitFromFile", func(t *testing.T) { testLiveKitFromFile(t, newReg, opt) })
	if opt.ReadOnly {
		t.Run("ReadOnly", func(t *testing.T) { testReadOnly(t, newReg(t, Seed(t))) })
		return
	}
	t.Run("Orgs", func(t *testing.T) { testOrgs(t, newReg(t, Seed(t))) })
	t.Run("Keys", func(t *testing.T) { testKeys(t, newReg(t, Seed(t))) })
	t.Run("Agents", func(t *testing.T) { testAgents(t, newReg(t, Seed(t))) })
	t.Run("PublishableKeys", func(t *testing.T) { testPublishableKeys(t, newReg(t, Seed(t))) })
	t.Run("JWTIssuers", func(t *testing.T) { testIssuers(t, newReg(t, Seed(t))) })
	t.Run("LiveKit", func(t *testing.T) { testLiveKit(t, newReg(t, Seed(t))) })
	t.Run("Audit", func(t *testing.T) { testAudit(t, newReg(t, Seed(t))) })
	t.Run("ConcurrentCreates", func(t *testing.T) { testConcurrentCreates(t, newReg(t, Seed(t))) })
	t.Run("KeyLimit", func(t *testing.T) { testKeyLimit(t, newReg(t, Seed(t))) })
	t.Run("Import", func(t *testing.T) { testImport(t, newReg, newReg(t, Seed(t))) })
	t.Run("Quarantine", func(t *testing.T) { testQuarantine(t, newReg(t, Seed(t)), opt) })
}

// WaitFor waits until cond holds for the registry's tenants (a write is in
// force on the replica that made it within about a second; the PostgreSQL
// registry applies it asynchronously). It waits on Changed, never sleeps.
func WaitFor(t testing.TB, r registry.Reader, what string, cond func(*config.Tenants) bool) {
	t.Helper()
	WaitWithin(t, r, 5*time.Second, what, cond)
}

// WaitWithin waits up to d until cond holds for the registry's tenants,
// and returns how long it took.
func WaitWithin(t testing.TB, r registry.Reader, d time.Duration, what string, cond func(*config.Tenants) bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		ch := r.Changed()
		if cond(r.Current()) {
			return time.Since(start)
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("not within %s: %s", d, what)
		}
	}
}

// agentOf is the agent, or nil when it or its org is missing.
func agentOf(t *config.Tenants, org, agent string) *config.Agent {
	if o := t.Org(org); o != nil {
		return o.Agent(agent)
	}
	return nil
}

// HasSeed reports whether the tenants hold the whole seed (for factories
// whose registry applies an import asynchronously).
func HasSeed(t *config.Tenants) bool {
	return t.KeyByHash(apikey.Hash(KeyGlobex)) != nil && t.KeyByHash(apikey.Hash(KeyActive)) != nil &&
		t.PublishableByHash(apikey.Hash(PubB)) != nil && agentOf(t, "acme", "bot") != nil
}

func ctxAs(subject, requestID string) context.Context {
	return registry.WithActor(context.Background(), registry.Actor{Subject: subject, RequestID: requestID})
}

// clean fails if an error text, or any JSON the registry returns, holds a
// key, a hash or a secret.
func clean(t testing.TB, what string, v any, secrets ...string) {
	t.Helper()
	var s string
	switch x := v.(type) {
	case nil:
		return
	case error:
		s = x.Error()
	default:
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		s = string(b)
	}
	for _, bad := range append([]string{"sha256:", "sk_live_", "sk_test_", "pk_live_", "pk_test_"}, secrets...) {
		if bad != "" && strings.Contains(s, bad) {
			t.Fatalf("%s holds %q: %s", what, bad, s)
		}
	}
}

func wantErr(t testing.TB, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: err = %v, want %v", what, err, target)
	}
	clean(t, what, err)
}

// wantInvalid checks a *registry.ValidationError naming each field.
func wantInvalid(t testing.TB, err error, what string, fields ...string) {
	t.Helper()
	var ve *registry.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("%s: err = %v, want a validation error", what, err)
	}
	clean(t, what, err)
	for _, f := range fields {
		if !slices.ContainsFunc(ve.Problems, func(p string) bool { return strings.HasPrefix(p, f+":") }) {
			t.Fatalf("%s: no problem names %q: %q", what, f, ve.Problems)
		}
	}
}

// must(f())(t) is f's value, or t fails with f's error.
func must[T any](v T, err error) func(testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func testSnapshot(t *testing.T, r registry.Registry) {
	snap := r.Snapshot()
	ten := snap.Tenants
	if ten == nil || r.Current() == nil {
		t.Fatal("no tenants")
	}
	if err := r.Check(); err != nil {
		t.Fatalf("Check = %v", err)
	}
	if age := r.Age(); age < 0 || age > time.Minute {
		t.Fatalf("Age = %v", age)
	}
	if got := strings.Join(slices.Sorted(slices.Values(ten.Orgs())), ","); got != "acme,globex" {
		t.Fatalf("orgs = %s", got)
	}
	k := ten.KeyByHash(apikey.Hash(KeyActive))
	if k == nil || k.Org().ID != "acme" || k.ID != "backend" || k.Revoked || !k.HasScope(config.ScopeTokensRedeem) ||
		k.ExpiresAt == nil || !k.ExpiresAt.Equal(time.Date(2031, 6, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("active key = %+v", k)
	}
	if k := ten.KeyByHash(apikey.Hash(KeyRevoked)); k == nil || !k.Revoked {
		t.Fatalf("revoked key = %+v", k)
	}
	if k := ten.KeyByHash(apikey.Hash(KeyGlobex)); k == nil || k.Org().ID != "globex" {
		t.Fatalf("globex key = %+v", k)
	}
	if ten.Org("globex").RateLimit() != 5000 || ten.Org("acme").RateLimit() != 300 || !ten.Org("acme").AllowDemoRooms {
		t.Fatal("org settings lost")
	}
	for key, agent := range map[string]string{PubSingle: "florencia", PubA: "web", PubB: "web"} {
		if a := ten.PublishableByHash(apikey.Hash(key)); a == nil || a.ID != agent || a.Org().ID != "acme" {
			t.Fatalf("publishable key of %s opens %+v", agent, a)
		}
	}
	if ten.PublishableByHash(apikey.Hash(KeyActive)) != nil || ten.KeyByHash(apikey.Hash(PubA)) != nil {
		t.Fatal("a secret key opens public mode, or the reverse")
	}
	if a := ten.Org("acme").Agent("web"); a == nil || a.Server != "https://voice.acme.example" || !a.HasChannel("webrtc") || a.HasChannel("chat") {
		t.Fatalf("agent web = %+v", a)
	}
	if refs := ten.Issuers("https://auth.acme.example"); len(refs) != 1 || refs[0].Org.ID != "acme" || refs[0].Audience != "voicebroker" {
		t.Fatalf("issuers = %+v", refs)
	}
	if snap.LiveKit("acme") != nil {
		t.Fatal("a LiveKit project nobody set")
	}
}

func testReads(t *testing.T, r registry.Registry) {
	ctx := context.Background()
	o := must(r.GetOrg(ctx, "globex"))(t)
	if o.ID != "globex" || o.Tier != "enterprise" || o.RatePerMinute != 5000 || o.AllowDemoRooms {
		t.Fatalf("org = %+v", o)
	}
	for _, id := range []string{"nope", "", "ACME", "../acme", strings.Repeat("a", 500)} {
		_, err := r.GetOrg(ctx, id)
		wantErr(t, err, registry.ErrNotFound, "GetOrg "+id)
	}
	page, next, err := r.ListOrgs(ctx, registry.Page{Limit: 1})
	if err != nil || len(page) != 1 || page[0].ID != "acme" || next == "" {
		t.Fatalf("page 1 = %+v %q %v", page, next, err)
	}
	page, next, err = r.ListOrgs(ctx, registry.Page{Limit: 1, Cursor: next})
	if err != nil || len(page) != 1 || page[0].ID != "globex" || next != "" {
		t.Fatalf("page 2 = %+v %q %v", page, next, err)
	}
	if all, next, err := r.ListOrgs(ctx, registry.Page{}); err != nil || len(all) != 2 || next != "" {
		t.Fatalf("all = %+v %q %v", all, next, err)
	}
	_, _, err = r.ListOrgs(ctx, registry.Page{Cursor: "not a cursor!"})
	wantInvalid(t, err, "bad cursor", "cursor")
	_, _, err = r.ListOrgs(ctx, registry.Page{Limit: registry.MaxPage + 1})
	wantInvalid(t, err, "bad limit", "limit")

	keys := must(r.ListKeys(ctx, "acme"))(t)
	clean(t, "ListKeys", keys)
	if len(keys) != 2 || keys[0].ID != "backend" || keys[1].ID != "old" {
		t.Fatalf("keys = %+v", keys)
	}
	if keys[0].RevokedAt != nil || keys[1].RevokedAt == nil || keys[0].ExpiresAt == nil ||
		!slices.Equal(keys[0].AllowedIPs, []string{"203.0.113.0/24"}) || !slices.Equal(keys[0].Scopes, []string{"tokens:create", "tokens:redeem"}) {
		t.Fatalf("keys = %+v", keys)
	}
	_, err = r.ListKeys(ctx, "nope")
	wantErr(t, err, registry.ErrNotFound, "ListKeys of no org")

	web := must(r.GetAgent(ctx, "acme", "web"))(t)
	clean(t, "GetAgent", web)
	if web.Spec.Public == nil || web.Spec.Public.KeyHash != "" || len(web.Spec.Public.Keys) != 0 ||
		len(web.PublishableKeys) != 2 || web.PublishableKeys[0].ID != "a" || web.PublishableKeys[1].ID != "b" {
		t.Fatalf("agent web = %+v", web)
	}
	flo := must(r.GetAgent(ctx, "acme", "florencia"))(t)
	if len(flo.PublishableKeys) != 1 || flo.PublishableKeys[0].ID != registry.DefaultPublishableKeyID {
		t.Fatalf("agent florencia = %+v", flo)
	}
	_, err = r.GetAgent(ctx, "acme", "nope")
	wantErr(t, err, registry.ErrNotFound, "GetAgent")
	_, err = r.GetAgent(ctx, "globex", "web")
	wantErr(t, err, registry.ErrNotFound, "GetAgent of another org")
	agents := must(r.ListAgents(ctx, "acme"))(t)
	if len(agents) != 3 || agents[0].Spec.ID != "florencia" || agents[2].Spec.ID != "bot" {
		t.Fatalf("agents = %+v", agents)
	}
	clean(t, "ListAgents", agents)
	iss := must(r.GetJWTIssuers(ctx, "acme"))(t)
	if len(iss) != 1 || iss[0].Issuer != "https://auth.acme.example" {
		t.Fatalf("issuers = %+v", iss)
	}
	if iss := must(r.GetJWTIssuers(ctx, "globex"))(t); iss == nil || len(iss) != 0 {
		t.Fatalf("globex issuers = %#v", iss)
	}
	_, err = r.GetLiveKit(ctx, "acme")
	wantErr(t, err, registry.ErrNotFound, "GetLiveKit")
	ev, _, err := r.Audit(ctx, registry.AuditQuery{Page: registry.Page{Cursor: "x"}})
	wantInvalid(t, err, "audit cursor", "cursor")
	if ev != nil {
		t.Fatal("events with an error")
	}
}

// exported returns the registry as tenants file text.
func exported(t testing.TB, r registry.Registry) []byte {
	t.Helper()
	f := must(r.Export(context.Background()))(t)
	b := must(registry.MarshalFile(f))(t)
	if _, err := config.Parse(b); err != nil {
		t.Fatalf("the export is not a valid tenants file: %v\n%s", err, b)
	}
	return b
}

func testExport(t *testing.T, newReg Factory, opt Options) {
	r := newReg(t, Seed(t))
	out := exported(t, r)
	for _, want := range []string{"id: acme", "revoked: true", "rate_per_minute: 5000", "expires_at: 2031-06-01T00:00:00Z", "id: default"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("export lacks %q:\n%s", want, out)
		}
	}
	// The export, loaded into another registry, exports the same again.
	f, err := registry.ParseFile(out)
	if err != nil {
		t.Fatal(err)
	}
	again := exported(t, newReg(t, f))
	if string(again) != string(out) {
		t.Fatalf("export of the re-imported export differs:\n%s\n---\n%s", out, again)
	}
	if opt.ReadOnly {
		return
	}
	// Importing the export into the registry it came from changes nothing.
	rep := must(r.Import(ctxAs("test", ""), f))(t)
	if len(rep.Created)+len(rep.Changed) != 0 || len(rep.Unchanged) != 2 {
		t.Fatalf("re-import of the export: %+v", rep)
	}
	// An agent whose publishable keys were all deleted keeps its public
	// mode through a round trip.
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		if err := r.DeletePublishableKey(ctx, "acme", "web", id); err != nil {
			t.Fatal(err)
		}
	}
	out = exported(t, r)
	if !strings.Contains(string(out), "keys: []") {
		t.Fatalf("export lacks the empty key list:\n%s", out)
	}
	f, err = registry.ParseFile(out)
	if err != nil {
		t.Fatal(err)
	}
	r2 := newReg(t, f)
	if a := must(r2.GetAgent(ctx, "acme", "web"))(t); a.Spec.Public == nil || len(a.PublishableKeys) != 0 {
		t.Fatalf("web after the round trip = %+v", a)
	}
	if again := exported(t, r2); string(again) != string(out) {
		t.Fatalf("round trip differs:\n%s\n---\n%s", out, again)
	}
}

// flushUsage makes a registry that batches last_used_at write now.
func flushUsage(t testing.TB, r registry.Registry) {
	t.Helper()
	if f, ok := r.(interface{ FlushUsage(context.Context) error }); ok {
		if err := f.FlushUsage(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func testUsed(t *testing.T, r registry.Registry) {
	ctx := context.Background()
	before := time.Now().Add(-time.Second)
	r.Used("acme", "backend")
	r.Used("nope", "nope") // an unknown key is ignored
	flushUsage(t, r)
	keys := must(r.ListKeys(ctx, "acme"))(t)
	first := keys[0].LastUsedAt
	if first == nil || first.Before(before) || keys[1].LastUsedAt != nil {
		t.Fatalf("after a use: %+v", keys)
	}
	// Another use within the minute writes nothing.
	r.Used("acme", "backend")
	flushUsage(t, r)
	keys = must(r.ListKeys(ctx, "acme"))(t)
	if keys[0].LastUsedAt == nil || !keys[0].LastUsedAt.Equal(*first) {
		t.Fatalf("a second use within a minute moved last_used_at: %v -> %v", first, keys[0].LastUsedAt)
	}
}

func testReadOnly(t *testing.T, r registry.Registry) {
	ctx := context.Background()
	errs := map[string]error{}
	_, errs["CreateOrg"] = r.CreateOrg(ctx, registry.OrgSpec{ID: "new", Tier: "free"})
	_, errs["UpdateOrg"] = r.UpdateOrg(ctx, "acme", registry.OrgPatch{})
	errs["DeleteOrg"] = r.DeleteOrg(ctx, "acme")
	_, _, errs["PutAgent"] = r.PutAgent(ctx, "acme", config.Agent{ID: "x", Channels: []config.Channel{"chat"}})
	errs["DeleteAgent"] = r.DeleteAgent(ctx, "acme", "bot")
	_, _, errs["CreatePublishableKey"] = r.CreatePublishableKey(ctx, "acme", "web", "")
	errs["DeletePublishableKey"] = r.DeletePublishableKey(ctx, "acme", "web", "a")
	_, _, errs["CreateKey"] = r.CreateKey(ctx, "acme", registry.KeySpec{ID: "x", Scopes: []string{"tokens:create"}})
	errs["RevokeKey"] = r.RevokeKey(ctx, "acme", "backend")
	_, errs["PutJWTIssuers"] = r.PutJWTIssuers(ctx, "acme", nil)
	_, errs["PutLiveKit"] = r.PutLiveKit(ctx, "acme", registry.LiveKitSpec{URL: "wss://x.example", APIKey: "k", APISecret: strings.Repeat("s", 40)})
	errs["DeleteLiveKit"] = r.DeleteLiveKit(ctx, "acme")
	_, errs["Import"] = r.Import(ctx, Seed(t))
	for name, err := range errs {
		wantErr(t, err, registry.ErrReadOnly, name)
	}
	if k := r.Current().KeyByHash(apikey.Hash(KeyActive)); k == nil || k.Revoked {
		t.Fatal("a refused write changed the tenants")
	}
}

func testOrgs(t *testing.T, r registry.Registry) {
	ctx := ctxAs("admin:test", "req-orgs")
	o := must(r.CreateOrg(ctx, registry.OrgSpec{ID: "initech", Tier: "free", AllowDemoRooms: true}))(t)
	if o.ID != "initech" || o.Tier != "free" || o.CreatedAt.IsZero() || o.UpdatedAt.IsZero() {
		t.Fatalf("created = %+v", o)
	}
	WaitFor(t, r, "new org in force", func(t *config.Tenants) bool { return t.Org("initech") != nil })
	if got := must(r.GetOrg(ctx, "initech"))(t); got.ID != "initech" || !got.AllowDemoRooms || !got.CreatedAt.Equal(o.CreatedAt) {
		t.Fatalf("GetOrg = %+v, created %+v", got, o)
	}
	_, err := r.CreateOrg(ctx, registry.OrgSpec{ID: "acme", Tier: "free"})
	wantErr(t, err, registry.ErrConflict, "CreateOrg of an existing id")

	_, err = r.CreateOrg(ctx, registry.OrgSpec{ID: "Bad Id", Tier: "gold"})
	wantInvalid(t, err, "bad org", "id", "tier")
	_, err = r.CreateOrg(ctx, registry.OrgSpec{ID: "big", Tier: "enterprise"})
	wantInvalid(t, err, "enterprise without rate", "rate_per_minute")
	_, err = r.CreateOrg(ctx, registry.OrgSpec{ID: "small", Tier: "free", RatePerMinute: 10})
	wantInvalid(t, err, "rate without enterprise", "rate_per_minute")

	ent, rate := "enterprise", 2000
	up := must(r.UpdateOrg(ctx, "initech", registry.OrgPatch{Tier: &ent, RatePerMinute: &rate}))(t)
	if up.Tier != "enterprise" || up.RatePerMinute != 2000 || !up.AllowDemoRooms || up.UpdatedAt.Before(o.UpdatedAt) {
		t.Fatalf("updated = %+v", up)
	}
	WaitFor(t, r, "new rate in force", func(t *config.Tenants) bool {
		return t.Org("initech") != nil && t.Org("initech").RateLimit() == 2000
	})
	// Back to pro drops the rate that only enterprise may have.
	pro := "pro"
	if up := must(r.UpdateOrg(ctx, "initech", registry.OrgPatch{Tier: &pro}))(t); up.RatePerMinute != 0 || up.Tier != "pro" {
		t.Fatalf("updated = %+v", up)
	}
	_, err = r.UpdateOrg(ctx, "initech", registry.OrgPatch{Tier: &ent})
	wantInvalid(t, err, "enterprise without rate", "rate_per_minute")
	_, err = r.UpdateOrg(ctx, "nope", registry.OrgPatch{Tier: &pro})
	wantErr(t, err, registry.ErrNotFound, "UpdateOrg of no org")

	// Deleting an org stops its keys at once and forgets everything in it.
	if err := r.DeleteOrg(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, r, "deleted org's key refused", func(t *config.Tenants) bool {
		return t.KeyByHash(apikey.Hash(KeyActive)) == nil && t.PublishableByHash(apikey.Hash(PubA)) == nil && t.Org("acme") == nil &&
			len(t.Issuers("https://auth.acme.example")) == 0
	})
	_, err = r.GetOrg(ctx, "acme")
	wantErr(t, err, registry.ErrNotFound, "GetOrg of a deleted org")
	wantErr(t, r.DeleteOrg(ctx, "acme"), registry.ErrNotFound, "DeleteOrg twice")
	// The id cannot be used again at once (testQuarantine has the rest).
	_, err = r.CreateOrg(ctx, registry.OrgSpec{ID: "acme", Tier: "free"})
	wantErr(t, err, registry.ErrConflict, "CreateOrg of an id just deleted")
}

// quarantineMessage matches the text of registry.Quarantined.
var quarantineMessage = regexp.MustCompile(`the id was deleted at (\S+); it can be used again from (\S+): tokens issued for the old org's rooms may still be live until then`)

// testQuarantine: a deleted org id cannot be created again, by CreateOrg
// or Import, for registry.IDQuarantine (LiveKit rooms and room tokens name
// an org by its id only: a new org under it would inherit the old one's
// rooms); other ids are not held up; once the quarantine has passed the id
// makes a new, empty org; a second deletion quarantines it again.
func testQuarantine(t *testing.T, r registry.Registry, opt Options) {
	if opt.Elapse == nil {
		t.Fatal("registrytest.Options.Elapse is needed for a writable registry")
	}
	ctx := ctxAs("admin:test", "req-quarantine")
	parse := func(yaml string) *config.File {
		t.Helper()
		f, err := registry.ParseFile([]byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	refused := func(what string, err error) {
		t.Helper()
		wantErr(t, err, registry.ErrConflict, what)
		m := quarantineMessage.FindStringSubmatch(err.Error())
		if m == nil || !strings.Contains(err.Error(), `"acme"`) {
			t.Fatalf("%s: the message does not say why and until when: %v", what, err)
		}
		deleted, err1 := time.Parse(time.RFC3339, m[1])
		free, err2 := time.Parse(time.RFC3339, m[2])
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: times in %q: %v %v", what, m[0], err1, err2)
		}
		if d := free.Sub(deleted); d < registry.IDQuarantine || d > registry.IDQuarantine+time.Second {
			t.Fatalf("%s: free %v after the deletion, want %v", what, d, registry.IDQuarantine)
		}
	}

	if err := r.DeleteOrg(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	_, err := r.CreateOrg(ctx, registry.OrgSpec{ID: "acme", Tier: "free"})
	refused("CreateOrg of an id just deleted", err)
	// An import cannot create it either, and imports nothing of the file.
	_, err = r.Import(ctx, parse("orgs:\n  - {id: newco, tier: free}\n  - {id: acme, tier: pro}\n"))
	refused("Import of an id just deleted", err)
	if _, err := r.GetOrg(ctx, "newco"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("a refused import created newco: %v", err)
	}
	// Other ids are not held up.
	must(r.CreateOrg(ctx, registry.OrgSpec{ID: "hooli", Tier: "free"}))(t)

	// A minute before its end the quarantine still holds...
	opt.Elapse(t, r, registry.IDQuarantine-time.Minute)
	_, err = r.CreateOrg(ctx, registry.OrgSpec{ID: "acme", Tier: "free"})
	refused("CreateOrg a minute before the quarantine ends", err)
	// ...and once it has passed, the id makes a new org, empty.
	opt.Elapse(t, r, time.Minute)
	must(r.CreateOrg(ctx, registry.OrgSpec{ID: "acme", Tier: "free"}))(t)
	if keys := must(r.ListKeys(ctx, "acme"))(t); len(keys) != 0 {
		t.Fatalf("a recreated org has keys %+v", keys)
	}
	if agents := must(r.ListAgents(ctx, "acme"))(t); len(agents) != 0 {
		t.Fatalf("a recreated org has agents %+v", agents)
	}
	WaitFor(t, r, "the new acme in force, empty", func(t *config.Tenants) bool {
		return t.Org("acme") != nil && t.Org("acme").Tier == "free" && t.KeyByHash(apikey.Hash(KeyActive)) == nil
	})

	// An import may create an id whose quarantine has passed.
	if err := r.DeleteOrg(ctx, "globex"); err != nil {
		t.Fatal(err)
	}
	_, err = r.Import(ctx, parse("orgs:\n  - {id: globex, tier: free}\n"))
	wantErr(t, err, registry.ErrConflict, "Import of globex just deleted")
	opt.Elapse(t, r, registry.IDQuarantine)
	if rep := must(r.Import(ctx, parse("orgs:\n  - {id: globex, tier: free}\n")))(t); !slices.Equal(rep.Created, []string{"globex"}) {
		t.Fatalf("import after the quarantine = %+v", rep)
	}

	// Deleted again, the id is quarantined again, from the new deletion.
	if err := r.DeleteOrg(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	_, err = r.CreateOrg(ctx, registry.OrgSpec{ID: "acme", Tier: "free"})
	refused("CreateOrg of an id deleted a second time", err)
}

func testKeys(t *testing.T, r registry.Registry) {
	ctx := ctxAs("admin:test", "req-keys")
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	view, secret, err := r.CreateKey(ctx, "acme", registry.KeySpec{ID: "ci", Scopes: []string{"tokens:create", "rooms:read"},
		AllowedIPs: []string{"10.0.0.0/8"}, ExpiresAt: &exp})
	if err != nil {
		t.Fatal(err)
	}
	if kind, env, err := apikey.Parse(secret); err != nil || kind != apikey.Secret || env != apikey.Live {
		t.Fatalf("key %q: %v %v %v", secret[:8], kind, env, err)
	}
	clean(t, "the new key's view", view)
	if view.ID != "ci" || view.CreatedAt.IsZero() || view.RevokedAt != nil || view.ExpiresAt == nil || !view.ExpiresAt.Equal(exp) {
		t.Fatalf("view = %+v", view)
	}
	WaitFor(t, r, "new key in force", func(t *config.Tenants) bool {
		k := t.KeyByHash(apikey.Hash(secret))
		return k != nil && k.Org().ID == "acme" && k.ID == "ci" && k.HasScope("rooms:read") && !k.Revoked
	})
	keys := must(r.ListKeys(ctx, "acme"))(t)
	clean(t, "ListKeys", keys, secret)
	if len(keys) != 3 || keys[2].ID != "ci" {
		t.Fatalf("keys = %+v", keys)
	}

	_, testKey, err := r.CreateKey(ctx, "acme", registry.KeySpec{ID: "staging", Scopes: []string{"tokens:create"}, Env: apikey.Test})
	if err != nil || !strings.HasPrefix(testKey, "sk_test_") {
		t.Fatalf("test key: %v", err)
	}
	_, _, err = r.CreateKey(ctx, "acme", registry.KeySpec{ID: "ci", Scopes: []string{"tokens:create"}})
	wantErr(t, err, registry.ErrConflict, "CreateKey of an existing id")
	_, _, err = r.CreateKey(ctx, "acme", registry.KeySpec{ID: "old", Scopes: []string{"tokens:create"}})
	wantErr(t, err, registry.ErrConflict, "CreateKey of a revoked key's id")
	_, _, err = r.CreateKey(ctx, "nope", registry.KeySpec{ID: "x", Scopes: []string{"tokens:create"}})
	wantErr(t, err, registry.ErrNotFound, "CreateKey in no org")
	_, _, err = r.CreateKey(ctx, "acme", registry.KeySpec{ID: "x", Scopes: []string{"tokens:create", "admin:all"},
		AllowedIPs: []string{"10.0.0.1/8", "nope"}})
	wantInvalid(t, err, "bad key", "scopes[1]", "allowed_ips[0]", "allowed_ips[1]")
	_, _, err = r.CreateKey(ctx, "acme", registry.KeySpec{ID: "", Scopes: nil})
	wantInvalid(t, err, "empty key", "id", "scopes")
	_, _, err = r.CreateKey(ctx, "acme", registry.KeySpec{ID: "x", Scopes: []string{"tokens:create"}, Env: "prod"})
	wantInvalid(t, err, "bad env", "env")
	many := make([]string, registry.MaxAllowedIPs+1)
	for i := range many {
		many[i] = fmt.Sprintf("10.0.%d.%d", i/256, i%256)
	}
	_, _, err = r.CreateKey(ctx, "acme", registry.KeySpec{ID: "x", Scopes: []string{"tokens:create"}, AllowedIPs: many})
	wantInvalid(t, err, "too many ips", "allowed_ips")

	// Another org's key of the same id is another key.
	_, globexCI, err := r.CreateKey(ctx, "globex", registry.KeySpec{ID: "ci", Scopes: []string{"rooms:read"}})
	if err != nil {
		t.Fatal(err)
	}
	WaitFor(t, r, "globex's key ci in force", func(t *config.Tenants) bool { return t.KeyByHash(apikey.Hash(globexCI)) != nil })

	// Revocation is in force at once and kept in the list.
	if err := r.RevokeKey(ctx, "acme", "ci"); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, r, "revoked key refused", func(t *config.Tenants) bool {
		k := t.KeyByHash(apikey.Hash(secret))
		return k != nil && k.Revoked
	})
	keys = must(r.ListKeys(ctx, "acme"))(t)
	if keys[2].RevokedAt == nil {
		t.Fatalf("revoked key listed as %+v", keys[2])
	}
	if k := r.Current().KeyByHash(apikey.Hash(globexCI)); k == nil || k.Revoked || k.Org().ID != "globex" {
		t.Fatal("revoking acme's key ci touched globex's key ci")
	}
	if gk := must(r.ListKeys(ctx, "globex"))(t); len(gk) != 2 || gk[1].ID != "ci" || gk[1].RevokedAt != nil {
		t.Fatalf("globex's keys after acme's ci was revoked: %+v", gk)
	}
	revokedAt := *keys[2].RevokedAt
	if err := r.RevokeKey(ctx, "acme", "ci"); err != nil {
		t.Fatalf("revoking twice: %v", err)
	}
	if keys = must(r.ListKeys(ctx, "acme"))(t); !keys[2].RevokedAt.Equal(revokedAt) {
		t.Fatal("revoking twice moved revoked_at")
	}
	wantErr(t, r.RevokeKey(ctx, "acme", "nope"), registry.ErrNotFound, "RevokeKey of no key")
	wantErr(t, r.RevokeKey(ctx, "globex", "backend"), registry.ErrNotFound, "RevokeKey of another org's key")
	if k := r.Current().KeyByHash(apikey.Hash(KeyActive)); k == nil || k.Revoked {
		t.Fatal("revoking another org's key id touched acme's key")
	}
}

func testAgents(t *testing.T, r registry.Registry) {
	ctx := ctxAs("admin:test", "req-agents")
	a, created, err := r.PutAgent(ctx, "globex", config.Agent{ID: "helper", Channels: []config.Channel{"chat"}})
	if err != nil || !created || a.Spec.ID != "helper" || a.CreatedAt.IsZero() {
		t.Fatalf("created = %+v %v %v", a, created, err)
	}
	WaitFor(t, r, "new agent in force", func(t *config.Tenants) bool {
		return agentOf(t, "globex", "helper") != nil && agentOf(t, "globex", "helper").HasChannel("chat")
	})
	a, created, err = r.PutAgent(ctx, "globex", config.Agent{ID: "helper", Channels: []config.Channel{"webrtc"}, Server: "wss://voice.globex.example",
		Public: &config.Public{AllowedOrigins: []string{"https://globex.example"}}})
	if err != nil || created || a.Spec.Server != "wss://voice.globex.example" || a.Spec.Public == nil || len(a.PublishableKeys) != 0 {
		t.Fatalf("replaced = %+v %v %v", a, created, err)
	}
	WaitFor(t, r, "replaced agent in force", func(t *config.Tenants) bool {
		ag := agentOf(t, "globex", "helper")
		return ag != nil && ag.HasChannel("webrtc") && !ag.HasChannel("chat")
	})
	_, _, err = r.PutAgent(ctx, "globex", config.Agent{ID: "bad_id", Channels: []config.Channel{"video", "chat", "chat"}, Server: "ftp://x",
		Public: &config.Public{AllowedOrigins: []string{"https://*.com"}}})
	wantInvalid(t, err, "bad agent", "id", "channels[0]", "channels[2]", "server", "public.allowed_origins[0]")
	_, _, err = r.PutAgent(ctx, "globex", config.Agent{ID: "x", Channels: []config.Channel{"chat"},
		Public: &config.Public{KeyHash: apikey.Hash(PubA), AllowedOrigins: []string{"https://globex.example"}}})
	wantInvalid(t, err, "agent with a key hash", "public.key_hash")
	_, _, err = r.PutAgent(ctx, "nope", config.Agent{ID: "x", Channels: []config.Channel{"chat"}})
	wantErr(t, err, registry.ErrNotFound, "PutAgent in no org")
	// LiveKit agent names cross orgs: acme's florencia takes the name
	// "florencia", so globex's agent of that id needs a name of its own;
	// sharing takes every agent that uses the name.
	_, _, err = r.PutAgent(ctx, "globex", config.Agent{ID: "florencia", Channels: []config.Channel{"chat"}})
	wantErr(t, err, registry.ErrConflict, "another org's LiveKit agent name")
	_, _, err = r.PutAgent(ctx, "globex", config.Agent{ID: "helper", Channels: []config.Channel{"chat"}, LiveKitAgentName: "florencia", LiveKitAgentShared: true})
	wantErr(t, err, registry.ErrConflict, "sharing a name another org does not share")
	if ag := agentOf(r.Current(), "globex", "helper"); ag == nil || ag.LiveKitName() != "helper" {
		t.Fatal("a refused write changed the agent")
	}
	must3(t)(r.PutAgent(ctx, "globex", config.Agent{ID: "florencia", Channels: []config.Channel{"chat"}, LiveKitAgentName: "globex-florencia"}))
	WaitFor(t, r, "an agent under its own LiveKit name", func(t *config.Tenants) bool {
		ag := agentOf(t, "globex", "florencia")
		return ag != nil && ag.LiveKitName() == "globex-florencia"
	})

	// Replacing an agent keeps its publishable keys; taking its public
	// mode away deletes them.
	_, _, err = r.PutAgent(ctx, "acme", config.Agent{ID: "web", Channels: []config.Channel{"webrtc", "chat"},
		Public: &config.Public{AllowedOrigins: []string{"https://new.acme.example"}}})
	if err != nil {
		t.Fatal(err)
	}
	WaitFor(t, r, "replaced agent keeps its keys", func(t *config.Tenants) bool {
		ag := t.PublishableByHash(apikey.Hash(PubA))
		return ag != nil && ag.HasChannel("chat")
	})
	if got := must(r.GetAgent(ctx, "acme", "web"))(t); len(got.PublishableKeys) != 2 {
		t.Fatalf("keys after replace = %+v", got.PublishableKeys)
	}
	must3(t)(r.PutAgent(ctx, "acme", config.Agent{ID: "web", Channels: []config.Channel{"webrtc"}}))
	WaitFor(t, r, "agent without public mode", func(t *config.Tenants) bool {
		return t.PublishableByHash(apikey.Hash(PubA)) == nil && t.PublishableByHash(apikey.Hash(PubB)) == nil
	})
	if got := must(r.GetAgent(ctx, "acme", "web"))(t); len(got.PublishableKeys) != 0 || got.Spec.Public != nil {
		t.Fatalf("agent = %+v", got)
	}
	// Public mode again does not bring the deleted keys back.
	must3(t)(r.PutAgent(ctx, "acme", config.Agent{ID: "web", Channels: []config.Channel{"webrtc"}, Public: &config.Public{AllowedOrigins: []string{"https://a.example"}}}))
	WaitFor(t, r, "public mode again", func(t *config.Tenants) bool { return agentOf(t, "acme", "web").Public != nil })
	if r.Current().PublishableByHash(apikey.Hash(PubA)) != nil {
		t.Fatal("a deleted publishable key came back")
	}

	if err := r.DeleteAgent(ctx, "acme", "florencia"); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, r, "deleted agent gone", func(t *config.Tenants) bool {
		return agentOf(t, "acme", "florencia") == nil && t.PublishableByHash(apikey.Hash(PubSingle)) == nil
	})
	// globex's agent of the same id stays.
	if agentOf(r.Current(), "globex", "florencia") == nil {
		t.Fatal("deleting acme/florencia deleted globex/florencia")
	}
	if got, err := r.GetAgent(ctx, "globex", "florencia"); err != nil || got.Spec.LiveKitName() != "globex-florencia" {
		t.Fatalf("globex/florencia after acme's was deleted: %+v %v", got, err)
	}
	wantErr(t, r.DeleteAgent(ctx, "acme", "florencia"), registry.ErrNotFound, "DeleteAgent twice")
	wantErr(t, r.DeleteAgent(ctx, "globex", "bot"), registry.ErrNotFound, "DeleteAgent of another org's agent")
	if agentOf(r.Current(), "acme", "bot") == nil {
		t.Fatal("deleting globex/bot deleted acme/bot")
	}
}

func must3(t testing.TB) func(registry.Agent, bool, error) {
	return func(_ registry.Agent, _ bool, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
}

// PubGlobexA is the publishable key "a" of globex's agent "web" that
// testPublishableKeys imports: the same agent and key ids as acme's.
var PubGlobexA = "pk_live_" + strings.Repeat("G7", 22)

func testPublishableKeys(t *testing.T, r registry.Registry) {
	ctx := ctxAs("admin:test", "req-pk")
	// globex gets an agent "web" with a key "a", as acme has: a change to
	// one org's must never reach the other's.
	f, err := registry.ParseFile([]byte(`
orgs:
  - id: globex
    tier: enterprise
    rate_per_minute: 5000
    keys:
      - id: ops
        hash: "` + apikey.Hash(KeyGlobex) + `"
        scopes: [rooms:read]
    agents:
      - id: web
        channels: [webrtc]
        livekit_agent_name: globex-web
        public:
          keys:
            - {id: a, hash: "` + apikey.Hash(PubGlobexA) + `"}
          allowed_origins: ["https://globex.example"]
`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Import(ctx, f); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, r, "globex's web/a in force", func(t *config.Tenants) bool {
		a := t.PublishableByHash(apikey.Hash(PubGlobexA))
		return a != nil && a.ID == "web"
	})
	pk, key, err := r.CreatePublishableKey(ctx, "acme", "web", "")
	if err != nil {
		t.Fatal(err)
	}
	if kind, env, err := apikey.Parse(key); err != nil || kind != apikey.Publishable || env != apikey.Live {
		t.Fatalf("publishable key: %v %v %v", kind, env, err)
	}
	if !config.ValidID(pk.ID) || pk.CreatedAt.IsZero() {
		t.Fatalf("pk = %+v", pk)
	}
	clean(t, "publishable key view", pk)
	// The new key and the earlier ones all open the agent (rotation).
	WaitFor(t, r, "new publishable key in force", func(t *config.Tenants) bool {
		a := t.PublishableByHash(apikey.Hash(key))
		return a != nil && a.ID == "web" && t.PublishableByHash(apikey.Hash(PubA)) != nil
	})
	if a := must(r.GetAgent(ctx, "acme", "web"))(t); len(a.PublishableKeys) != 3 || a.PublishableKeys[2].ID != pk.ID {
		t.Fatalf("agent keys = %+v", a.PublishableKeys)
	}
	_, testKey, err := r.CreatePublishableKey(ctx, "acme", "web", apikey.Test)
	if err != nil || !strings.HasPrefix(testKey, "pk_test_") {
		t.Fatalf("test publishable key: %v", err)
	}
	if err := r.DeletePublishableKey(ctx, "acme", "web", "a"); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, r, "deleted publishable key refused", func(t *config.Tenants) bool {
		return t.PublishableByHash(apikey.Hash(PubA)) == nil && t.PublishableByHash(apikey.Hash(PubB)) != nil && t.PublishableByHash(apikey.Hash(key)) != nil
	})
	wantErr(t, r.DeletePublishableKey(ctx, "acme", "web", "a"), registry.ErrNotFound, "delete twice")
	if r.Current().PublishableByHash(apikey.Hash(PubGlobexA)) == nil {
		t.Fatal("deleting acme's web/a deleted globex's web/a")
	}
	if a := must(r.GetAgent(ctx, "globex", "web"))(t); len(a.PublishableKeys) != 1 || a.PublishableKeys[0].ID != "a" {
		t.Fatalf("globex's web after acme's web/a was deleted: %+v", a.PublishableKeys)
	}
	wantErr(t, r.DeletePublishableKey(ctx, "acme", "florencia", "b"), registry.ErrNotFound, "another agent's key")
	wantErr(t, r.DeletePublishableKey(ctx, "globex", "web", "b"), registry.ErrNotFound, "another org's agent")
	_, _, err = r.CreatePublishableKey(ctx, "acme", "bot", "")
	wantInvalid(t, err, "agent without public mode", "public")
	_, _, err = r.CreatePublishableKey(ctx, "acme", "nope", "")
	wantErr(t, err, registry.ErrNotFound, "no agent")
	_, _, err = r.CreatePublishableKey(ctx, "acme", "web", "prod")
	wantInvalid(t, err, "bad env", "env")
	for range registry.MaxPublicKeys - 3 {
		if _, _, err := r.CreatePublishableKey(ctx, "acme", "web", ""); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err = r.CreatePublishableKey(ctx, "acme", "web", "")
	wantInvalid(t, err, "too many publishable keys", "publishable keys")

	// Taking acme's web out of public mode, then deleting it, leaves
	// globex's web and its key.
	must3(t)(r.PutAgent(ctx, "acme", config.Agent{ID: "web", Channels: []config.Channel{"webrtc"}}))
	WaitFor(t, r, "acme's web without public mode", func(t *config.Tenants) bool {
		a := agentOf(t, "acme", "web")
		return a != nil && a.Public == nil
	})
	if err := r.DeleteAgent(ctx, "acme", "web"); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, r, "acme's web gone", func(t *config.Tenants) bool { return agentOf(t, "acme", "web") == nil })
	if a := r.Current().PublishableByHash(apikey.Hash(PubGlobexA)); a == nil || agentOf(r.Current(), "globex", "web") == nil {
		t.Fatal("replacing or deleting acme's web touched globex's web")
	}
	if a := must(r.GetAgent(ctx, "globex", "web"))(t); len(a.PublishableKeys) != 1 {
		t.Fatalf("globex's web keys = %+v", a.PublishableKeys)
	}
}

func testIssuers(t *testing.T, r registry.Registry) {
	ctx := ctxAs("admin:test", "req-iss")
	list := []config.JWTIssuer{
		{Issuer: "https://auth.globex.example", Audience: "voicebroker", JWKSURL: "https://auth.globex.example/jwks", Scopes: []config.Scope{"tokens:create"}},
		{Issuer: "https://auth.acme.example", Audience: "globex", JWKSURL: "https://auth.acme.example/jwks", Scopes: []config.Scope{"rooms:read"}},
	}
	got := must(r.PutJWTIssuers(ctx, "globex", list))(t)
	if len(got) != 2 || got[1].Audience != "globex" {
		t.Fatalf("put = %+v", got)
	}
	WaitFor(t, r, "issuers in force", func(t *config.Tenants) bool {
		return len(t.Issuers("https://auth.globex.example")) == 1 && len(t.Issuers("https://auth.acme.example")) == 2
	})
	if got := must(r.GetJWTIssuers(ctx, "globex"))(t); len(got) != 2 || got[0].Issuer != "https://auth.globex.example" {
		t.Fatalf("get = %+v", got)
	}
	// Another org's issuer and audience pair.
	_, err := r.PutJWTIssuers(ctx, "globex", []config.JWTIssuer{{Issuer: "https://auth.acme.example", Audience: "voicebroker",
		JWKSURL: "https://evil.example/jwks", Scopes: []config.Scope{"tokens:create"}}})
	wantErr(t, err, registry.ErrConflict, "another org's issuer")
	_, err = r.PutJWTIssuers(ctx, "globex", []config.JWTIssuer{{Issuer: "HTTPS://AUTH.ACME.EXAMPLE:443/", Audience: "voicebroker",
		JWKSURL: "https://evil.example/jwks", Scopes: []config.Scope{"tokens:create"}}})
	wantErr(t, err, registry.ErrConflict, "another org's issuer, spelled otherwise")
	_, err = r.PutJWTIssuers(ctx, "globex", []config.JWTIssuer{
		{Issuer: "", Audience: "a", JWKSURL: "ftp://x", Scopes: []config.Scope{"nope"}},
		{Issuer: "https://i.example", Audience: "a", JWKSURL: "https://i.example/jwks", Scopes: []config.Scope{"tokens:create"}},
		{Issuer: "https://i.example", Audience: "a", JWKSURL: "https://i.example/jwks", Scopes: []config.Scope{"tokens:create"}},
	})
	wantInvalid(t, err, "bad issuers", "jwt_issuers[0].issuer", "jwt_issuers[0].jwks_url", "jwt_issuers[0].scopes[0]", "jwt_issuers[2]")
	_, err = r.PutJWTIssuers(ctx, "globex", []config.JWTIssuer{{Issuer: "https://i.example", Audience: "a", PublicKeyFile: "/dev/zero", Scopes: []config.Scope{"tokens:create"}}})
	wantInvalid(t, err, "issuer key file through the API", "jwt_issuers[0].public_key_file")
	_, err = r.PutJWTIssuers(ctx, "nope", nil)
	wantErr(t, err, registry.ErrNotFound, "issuers of no org")
	if got := must(r.PutJWTIssuers(ctx, "globex", nil))(t); len(got) != 0 {
		t.Fatalf("cleared = %+v", got)
	}
	WaitFor(t, r, "issuers cleared", func(t *config.Tenants) bool {
		return len(t.Issuers("https://auth.globex.example")) == 0 && len(t.Issuers("https://auth.acme.example")) == 1
	})
}

func testLiveKit(t *testing.T, r registry.Registry) {
	ctx := ctxAs("admin:test", "req-lk")
	secret := "lk-secret-" + strings.Repeat("z", 30)
	lk, err := r.PutLiveKit(ctx, "acme", registry.LiveKitSpec{URL: "wss://acme.livekit.example", APIKey: "APIacme", APISecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	clean(t, "PutLiveKit", lk, secret)
	if !lk.SecretSet || lk.APIKey != "APIacme" || lk.URL != "wss://acme.livekit.example" {
		t.Fatalf("put = %+v", lk)
	}
	WaitFor(t, r, "LiveKit project in force", func(*config.Tenants) bool {
		p := r.Snapshot().LiveKit("acme")
		return p != nil && p.APISecret.Reveal() == secret && p.URL == "wss://acme.livekit.example"
	})
	if p := r.Snapshot().LiveKitByAPIKey("APIacme"); p == nil || p.Org != "acme" {
		t.Fatalf("by API key = %+v", p)
	}
	if s := fmt.Sprintf("%v %+v %#v", r.Snapshot().LiveKit("acme"), *r.Snapshot().LiveKit("acme"), r.Snapshot().LiveKit("acme").APISecret); strings.Contains(s, secret) {
		t.Fatalf("the secret prints: %s", s)
	}
	got := must(r.GetLiveKit(ctx, "acme"))(t)
	clean(t, "GetLiveKit", got, secret)
	if !got.SecretSet || got.APIKey != "APIacme" {
		t.Fatalf("get = %+v", got)
	}
	_, err = r.PutLiveKit(ctx, "globex", registry.LiveKitSpec{URL: "wss://x.example", APIKey: "APIacme", APISecret: strings.Repeat("q", 32)})
	wantErr(t, err, registry.ErrConflict, "another org's API key")
	// Another key of acme's LiveKit server, however its URL is spelt,
	// would sign tokens for acme's rooms.
	for _, url := range []string{"wss://acme.livekit.example", "https://ACME.livekit.example:443/rtc?x=1"} {
		_, err = r.PutLiveKit(ctx, "globex", registry.LiveKitSpec{URL: url, APIKey: "APIglobex", APISecret: strings.Repeat("q", 32)})
		wantErr(t, err, registry.ErrConflict, "another org's LiveKit server "+url)
		if !strings.Contains(err.Error(), "livekit.url: the same LiveKit server (acme.livekit.example:443)") ||
			!strings.Contains(err.Error(), "so each org's project must be a server of its own") {
			t.Fatalf("another org's LiveKit server %s: %v", url, err)
		}
	}
	if r.Snapshot().LiveKit("globex") != nil {
		t.Fatal("globex got a project on acme's server")
	}
	// Another port of the host is another server; acme may move its own
	// project on its server.
	must(r.PutLiveKit(ctx, "globex", registry.LiveKitSpec{URL: "wss://acme.livekit.example:7443", APIKey: "APIglobex", APISecret: strings.Repeat("q", 32)}))(t)
	must(r.PutLiveKit(ctx, "acme", registry.LiveKitSpec{URL: "https://acme.livekit.example/", APIKey: "APIacme", APISecret: secret}))(t)
	must(r.PutLiveKit(ctx, "acme", registry.LiveKitSpec{URL: "wss://acme.livekit.example", APIKey: "APIacme", APISecret: secret}))(t)
	if err := r.DeleteLiveKit(ctx, "globex"); err != nil {
		t.Fatal(err)
	}
	_, err = r.PutLiveKit(ctx, "globex", registry.LiveKitSpec{URL: "ftp://x", APIKey: "has space", APISecret: "short " + secret[:10]})
	wantInvalid(t, err, "bad project", "url", "api_key", "api_secret")
	clean(t, "bad project", err, secret[:10])
	_, err = r.PutLiveKit(ctx, "nope", registry.LiveKitSpec{URL: "wss://x.example", APIKey: "k", APISecret: strings.Repeat("q", 32)})
	wantErr(t, err, registry.ErrNotFound, "no org")

	if err := r.DeleteLiveKit(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, r, "LiveKit project gone", func(*config.Tenants) bool { return r.Snapshot().LiveKit("acme") == nil })
	_, err = r.GetLiveKit(ctx, "acme")
	wantErr(t, err, registry.ErrNotFound, "deleted project")
	wantErr(t, r.DeleteLiveKit(ctx, "acme"), registry.ErrNotFound, "delete twice")
	// Its API key is free again.
	if _, err := r.PutLiveKit(ctx, "globex", registry.LiveKitSpec{URL: "wss://x.example", APIKey: "APIacme", APISecret: strings.Repeat("q", 32)}); err != nil {
		t.Fatal(err)
	}
}

func testAudit(t *testing.T, r registry.Registry) {
	ctx := context.Background()
	before, _, err := r.Audit(ctx, registry.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	must(r.CreateOrg(ctxAs("admin:a1", "req-1"), registry.OrgSpec{ID: "initech", Tier: "free"}))(t)
	_, secret, err := r.CreateKey(ctxAs("org:initech/key:x", "req-2"), "initech", registry.KeySpec{ID: "k", Scopes: []string{"tokens:create"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.RevokeKey(ctxAs("admin:a1", "req-3"), "initech", "k"); err != nil {
		t.Fatal(err)
	}
	lkSecret := strings.Repeat("L", 40)
	must(r.PutLiveKit(ctxAs("admin:a1", "req-4"), "acme", registry.LiveKitSpec{URL: "wss://x.example", APIKey: "K1", APISecret: lkSecret}))(t)
	_, pk, err := r.CreatePublishableKey(ctxAs("admin:a1", "req-5"), "acme", "web", "")
	if err != nil {
		t.Fatal(err)
	}
	// A refused write records nothing.
	r.CreateOrg(ctxAs("admin:a1", "req-x"), registry.OrgSpec{ID: "initech", Tier: "free"})

	all, _, err := r.Audit(ctx, registry.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	clean(t, "audit events", all, secret, pk, lkSecret)
	if len(all) != len(before)+5 {
		t.Fatalf("%d events after 5 changes on top of %d: %+v", len(all), len(before), all)
	}
	want := []struct {
		actor, req, org string
		action          registry.Action
		target          string
	}{
		{"admin:a1", "req-5", "acme", registry.ActionPubKeyCreate, "agents/web/publishable-keys/"},
		{"admin:a1", "req-4", "acme", registry.ActionLiveKitPut, "livekit"},
		{"admin:a1", "req-3", "initech", registry.ActionKeyRevoke, "keys/k"},
		{"org:initech/key:x", "req-2", "initech", registry.ActionKeyCreate, "keys/k"},
		{"admin:a1", "req-1", "initech", registry.ActionOrgCreate, ""},
	}
	for i, w := range want {
		e := all[i]
		if e.Actor != w.actor || e.RequestID != w.req || e.Org != w.org || e.Action != w.action || !strings.HasPrefix(e.Target, w.target) ||
			e.At.IsZero() || time.Since(e.At) > time.Minute || e.ID == 0 {
			t.Fatalf("event %d = %+v, want %+v", i, e, w)
		}
	}
	if all[3].Detail["scopes"] == nil {
		t.Fatalf("key.create detail = %v", all[3].Detail)
	}
	// One org's events, a page at a time, newest first.
	p1, next, err := r.Audit(ctx, registry.AuditQuery{Org: "initech", Page: registry.Page{Limit: 2}})
	if err != nil || len(p1) != 2 || next == "" || p1[0].Action != registry.ActionKeyRevoke || p1[1].Action != registry.ActionKeyCreate {
		t.Fatalf("page 1 = %+v %q %v", p1, next, err)
	}
	p2, next, err := r.Audit(ctx, registry.AuditQuery{Org: "initech", Page: registry.Page{Limit: 2, Cursor: next}})
	if err != nil || len(p2) != 1 || next != "" || p2[0].Action != registry.ActionOrgCreate {
		t.Fatalf("page 2 = %+v %q %v", p2, next, err)
	}
	// The trail outlives the org.
	if err := r.DeleteOrg(ctxAs("admin:a1", "req-6"), "initech"); err != nil {
		t.Fatal(err)
	}
	ev, _, err := r.Audit(ctx, registry.AuditQuery{Org: "initech"})
	if err != nil || len(ev) != 4 || ev[0].Action != registry.ActionOrgDelete {
		t.Fatalf("after delete = %+v %v", ev, err)
	}
	if ev, _, _ := r.Audit(ctx, registry.AuditQuery{Org: "nope"}); len(ev) != 0 {
		t.Fatalf("events of no org = %+v", ev)
	}
}

func testConcurrentCreates(t *testing.T, r registry.Registry) {
	const n = 8
	ctx := ctxAs("admin:test", "req-race")
	type result struct {
		what string
		err  error
	}
	results := make(chan result, 4*n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(4)
		go func() {
			defer wg.Done()
			_, err := r.CreateOrg(ctx, registry.OrgSpec{ID: "race", Tier: "free"})
			results <- result{"org", err}
		}()
		go func() {
			defer wg.Done()
			_, _, err := r.CreateKey(ctx, "acme", registry.KeySpec{ID: "race", Scopes: []string{"tokens:create"}})
			results <- result{"key", err}
		}()
		go func() {
			defer wg.Done()
			_, created, err := r.PutAgent(ctx, "globex", config.Agent{ID: "race", Channels: []config.Channel{"chat"}})
			if err == nil && !created {
				err = registry.ErrConflict // replaced: someone else created it
			}
			results <- result{"agent", err}
		}()
		go func() {
			defer wg.Done()
			_, err := r.PutLiveKit(ctx, []string{"acme", "globex"}[i%2], registry.LiveKitSpec{URL: "wss://x.example", APIKey: "RACE", APISecret: strings.Repeat("r", 32)})
			results <- result{"livekit", err}
		}()
	}
	wg.Wait()
	close(results)
	ok := map[string]int{}
	for res := range results {
		switch {
		case res.err == nil:
			ok[res.what]++
		case errors.Is(res.err, registry.ErrConflict):
			clean(t, res.what, res.err)
		default:
			t.Fatalf("%s: %v", res.what, res.err)
		}
	}
	for _, what := range []string{"org", "key", "agent"} {
		if ok[what] != 1 {
			t.Fatalf("%d of %d concurrent %s creates succeeded: %v", ok[what], n, what, ok)
		}
	}
	// The API key went to one org only; that org may set it again.
	if ok["livekit"] < 1 {
		t.Fatalf("no LiveKit put succeeded")
	}
	WaitFor(t, r, "race results in force", func(t *config.Tenants) bool {
		return t.Org("race") != nil && agentOf(t, "globex", "race") != nil
	})
	_, errA := r.GetLiveKit(context.Background(), "acme")
	_, errG := r.GetLiveKit(context.Background(), "globex")
	if (errA == nil) == (errG == nil) {
		t.Fatalf("the API key went to both orgs or neither: %v, %v", errA, errG)
	}
}

// testKeyLimit: an org key with keys:write creates keys; the org's count,
// revoked keys included, is bounded (every replica holds them all).
func testKeyLimit(t *testing.T, r registry.Registry) {
	ctx := ctxAs("org:bulk/key:k0", "req-limit")
	var b strings.Builder
	b.WriteString("orgs:\n  - id: bulk\n    tier: free\n    keys:\n")
	for i := range registry.MaxKeys - 2 {
		fmt.Fprintf(&b, "      - {id: k%d, hash: \"%s\", scopes: [tokens:create], revoked: %v}\n", i, apikey.Hash(fmt.Sprintf("bulk-key-%d", i)), i%2 == 1)
	}
	f, err := registry.ParseFile([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Import(ctx, f); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"last-but-one", "last"} {
		if _, _, err := r.CreateKey(ctx, "bulk", registry.KeySpec{ID: id, Scopes: []string{"tokens:create"}}); err != nil {
			t.Fatalf("key %s, within the limit: %v", id, err)
		}
	}
	_, _, err = r.CreateKey(ctx, "bulk", registry.KeySpec{ID: "one-too-many", Scopes: []string{"tokens:create"}})
	wantInvalid(t, err, "a key past the limit", "keys")
	// Revoking does not make room: revoked keys are kept.
	if err := r.RevokeKey(ctx, "bulk", "last"); err != nil {
		t.Fatal(err)
	}
	_, _, err = r.CreateKey(ctx, "bulk", registry.KeySpec{ID: "one-too-many", Scopes: []string{"tokens:create"}})
	wantInvalid(t, err, "a key past the limit after a revocation", "keys")
	if keys := must(r.ListKeys(ctx, "bulk"))(t); len(keys) != registry.MaxKeys {
		t.Fatalf("bulk has %d keys, want %d", len(keys), registry.MaxKeys)
	}
	// Another org is not held back by bulk's count.
	if _, _, err := r.CreateKey(ctx, "globex", registry.KeySpec{ID: "more", Scopes: []string{"rooms:read"}}); err != nil {
		t.Fatal(err)
	}
}

func testImport(t *testing.T, newReg Factory, r registry.Registry) {
	ctx := ctxAs("cli:tenants-import", "")
	events, _, _ := r.Audit(ctx, registry.AuditQuery{Page: registry.Page{Limit: registry.MaxPage}})
	// The same file again changes nothing, not even the audit trail.
	rep := must(r.Import(ctx, Seed(t)))(t)
	if len(rep.Created) != 0 || len(rep.Changed) != 0 || !slices.Equal(rep.Unchanged, []string{"acme", "globex"}) {
		t.Fatalf("second import = %+v", rep)
	}
	if ev, _, _ := r.Audit(ctx, registry.AuditQuery{Page: registry.Page{Limit: registry.MaxPage}}); len(ev) != len(events) {
		t.Fatalf("an import that changed nothing wrote %d audit events", len(ev)-len(events))
	}
	must(r.CreateOrg(ctx, registry.OrgSpec{ID: "other", Tier: "free"}))(t)
	created := must(r.ListKeys(ctx, "acme"))(t)[0].CreatedAt

	// A changed file: a key revoked, an org changed, one added; other orgs
	// stay; keys that stay keep their creation time.
	changed := strings.Replace(SeedYAML, "scopes: [tokens:create, tokens:redeem]\n", "scopes: [tokens:create, tokens:redeem]\n        revoked: true\n", 1)
	changed = strings.Replace(changed, "rate_per_minute: 5000", "rate_per_minute: 6000", 1)
	changed += "  - id: newco\n    tier: free\n"
	f, err := registry.ParseFile([]byte(changed))
	if err != nil {
		t.Fatal(err)
	}
	rep = must(r.Import(ctx, f))(t)
	if !slices.Equal(rep.Created, []string{"newco"}) || !slices.Equal(rep.Changed, []string{"acme", "globex"}) || !slices.Equal(rep.Untouched, []string{"other"}) {
		t.Fatalf("import = %+v", rep)
	}
	WaitFor(t, r, "import in force", func(t *config.Tenants) bool {
		k := t.KeyByHash(apikey.Hash(KeyActive))
		return k != nil && k.Revoked && t.Org("newco") != nil && t.Org("globex") != nil && t.Org("globex").RateLimit() == 6000 && t.Org("other") != nil
	})
	keys := must(r.ListKeys(ctx, "acme"))(t)
	if !keys[0].CreatedAt.Equal(created) || keys[0].RevokedAt == nil {
		t.Fatalf("key after import = %+v (created %v)", keys[0], created)
	}
	// Importing a file whose key hash is another org's is refused whole.
	thief := "orgs:\n  - id: thief\n    tier: free\n    keys:\n      - id: k\n        hash: \"" + apikey.Hash(KeyGlobex) + "\"\n        scopes: [tokens:create]\n"
	f, err = registry.ParseFile([]byte(thief))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Import(ctx, f)
	wantInvalid(t, err, "import of another org's hash")
	// ... and so is one whose agent takes another org's LiveKit agent name.
	f, err = registry.ParseFile([]byte("orgs:\n  - id: thief\n    tier: free\n    agents:\n      - id: bot\n        channels: [chat]\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Import(ctx, f)
	wantInvalid(t, err, "import of another org's LiveKit agent name")
	if r.Current().Org("thief") != nil {
		t.Fatal("a refused import got in")
	}
	if _, err := r.GetOrg(ctx, "thief"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("a refused import was stored: %v", err)
	}
}

// LiveKitSecret is the secret of acme's own LiveKit project in
// LiveKitYAML; nothing a registry shows may hold it.
const LiveKitSecret = "acme-livekit-secret-for-conformance-0123456789"

// LiveKitYAML is SeedYAML with a LiveKit project of acme's own, its
// secret in the environment variable ACME_LK_SECRET.
var LiveKitYAML = strings.Replace(SeedYAML, "  - id: globex\n",
	"    livekit:\n      url: wss://acme.livekit.example\n      api_key: APIacmeLK\n      api_secret_env: ACME_LK_SECRET\n  - id: globex\n", 1)

// A tenants file's livekit block: the registry serves the project (the
// secret read from its variable) through the snapshot, shows it without
// its secret, exports it without its secret (api_secret_env naming a
// variable), and, when writable, imports it (sealing the secret), sees a
// repeated import as no change, follows a changed secret, and drops the
// project when the file drops the block.
func testLiveKitFromFile(t *testing.T, newReg Factory, opt Options) {
	t.Setenv("ACME_LK_SECRET", LiveKitSecret)
	f, err := registry.ParseFile([]byte(LiveKitYAML))
	if err != nil {
		t.Fatal(err)
	}
	r := newReg(t, f)
	WaitFor(t, r, "the project in force", func(*config.Tenants) bool { return r.Snapshot().LiveKit("acme") != nil })
	p := r.Snapshot().LiveKit("acme")
	if p.Org != "acme" || p.URL != "wss://acme.livekit.example" || p.APIKey != "APIacmeLK" || p.APISecret.Reveal() != LiveKitSecret {
		t.Fatalf("project = %+v", p)
	}
	if r.Snapshot().LiveKitByAPIKey("APIacmeLK") != p || r.Snapshot().LiveKit("globex") != nil || r.Snapshot().LiveKitProjects() != 1 {
		t.Fatal("the snapshot's projects by key or org")
	}
	ctx := ctxAs("test", "")
	view := must(r.GetLiveKit(ctx, "acme"))(t)
	clean(t, "GetLiveKit", view, LiveKitSecret)
	if !view.SecretSet || view.APIKey != "APIacmeLK" || view.URL != "wss://acme.livekit.example" {
		t.Fatalf("view = %+v", view)
	}
	_, err = r.GetLiveKit(ctx, "globex")
	wantErr(t, err, registry.ErrNotFound, "GetLiveKit of an org without a project")

	// The export names a variable, never the secret. A writable registry
	// cannot know the variable the file named: it names
	// LIVEKIT_API_SECRET_ACME (config.LiveKitSecretEnvName).
	env := "ACME_LK_SECRET"
	if !opt.ReadOnly {
		env = config.LiveKitSecretEnvName("acme")
	}
	t.Setenv(config.LiveKitSecretEnvName("acme"), LiveKitSecret)
	out := exported(t, r)
	if strings.Contains(string(out), LiveKitSecret) || !strings.Contains(string(out), "api_secret_env: "+env+"\n") ||
		!strings.Contains(string(out), "api_key: APIacmeLK") || strings.Contains(string(out), "api_secret:") {
		t.Fatalf("export:\n%s", out)
	}
	// The export loaded elsewhere serves the same project.
	back, err := registry.ParseFile(out)
	if err != nil {
		t.Fatal(err)
	}
	r2 := newReg(t, back)
	WaitFor(t, r2, "the exported project in force", func(*config.Tenants) bool { return r2.Snapshot().LiveKit("acme") != nil })
	if got := r2.Snapshot().LiveKit("acme"); got.APISecret.Reveal() != LiveKitSecret || got.APIKey != "APIacmeLK" {
		t.Fatal("the exported project differs")
	}
	if opt.ReadOnly {
		return
	}

	// The same file again, or the export, changes nothing.
	for _, file := range []*config.File{f, back} {
		rep := must(r.Import(ctx, file))(t)
		if len(rep.Changed)+len(rep.Created) != 0 {
			t.Fatalf("a repeated import changed %+v", rep)
		}
	}
	// A new secret in the variable is a change, in force after the import.
	const rotated = "acme-livekit-secret-rotated-0123456789abcdef"
	t.Setenv("ACME_LK_SECRET", rotated)
	f, err = registry.ParseFile([]byte(LiveKitYAML))
	if err != nil {
		t.Fatal(err)
	}
	rep := must(r.Import(ctx, f))(t)
	if !slices.Equal(rep.Changed, []string{"acme"}) {
		t.Fatalf("import of a new secret = %+v", rep)
	}
	clean(t, "import report", rep, LiveKitSecret, rotated)
	WaitFor(t, r, "the new secret in force", func(*config.Tenants) bool {
		p := r.Snapshot().LiveKit("acme")
		return p != nil && p.APISecret.Reveal() == rotated
	})
	// Another org may not import acme's API key.
	thief := "orgs:\n  - id: thief\n    tier: free\n    livekit: {url: 'wss://x.example', api_key: APIacmeLK, api_secret_env: ACME_LK_SECRET}\n"
	tf, err := registry.ParseFile([]byte(thief))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Import(ctx, tf)
	wantInvalid(t, err, "import of another org's LiveKit API key")
	clean(t, "refused import", err, rotated)
	// Nor a project on acme's LiveKit server, with a key of its own.
	thief = "orgs:\n  - id: thief\n    tier: free\n    livekit: {url: 'HTTPS://acme.livekit.example:443/', api_key: APIthief, api_secret_env: ACME_LK_SECRET}\n"
	if tf, err = registry.ParseFile([]byte(thief)); err != nil {
		t.Fatal(err)
	}
	_, err = r.Import(ctx, tf)
	wantInvalid(t, err, "import of a project on another org's LiveKit server")
	if !strings.Contains(err.Error(), "livekit.url: the same LiveKit server (acme.livekit.example:443) as the project of org") {
		t.Fatalf("import of a project on another org's LiveKit server: %v", err)
	}
	clean(t, "refused import", err, rotated)
	if _, err := r.GetOrg(ctx, "thief"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("the refused import made org thief: %v", err)
	}
	// A file without the block takes the org back to the default project.
	rep = must(r.Import(ctx, Seed(t)))(t)
	if !slices.Equal(rep.Changed, []string{"acme"}) {
		t.Fatalf("import without the block = %+v", rep)
	}
	WaitFor(t, r, "the project gone", func(*config.Tenants) bool { return r.Snapshot().LiveKit("acme") == nil })
	_, err = r.GetLiveKit(ctx, "acme")
	wantErr(t, err, registry.ErrNotFound, "GetLiveKit after the block went")
	events, _, err := r.Audit(ctx, registry.AuditQuery{Page: registry.Page{Limit: registry.MaxPage}})
	if err != nil {
		t.Fatal(err)
	}
	clean(t, "the audit trail", events, LiveKitSecret, rotated)
}
