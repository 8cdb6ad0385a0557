package app_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/internal/apikey"
	"github.com/voicebroker/voicebroker/internal/registry"
	"github.com/voicebroker/voicebroker/internal/testenv"
)

// newAdminKey returns a platform admin key and its hash, as `broker keys
// new --admin` makes them.
func newAdminKey(t testing.TB) (key, hash string) {
	t.Helper()
	key, err := apikey.New(apikey.Admin, apikey.Live)
	if err != nil {
		t.Fatal(err)
	}
	return key, apikey.Hash(key)
}

// secretsKeyFile writes a BROKER_SECRETS_KEY_FILE (a base64 32-byte key).
func secretsKeyFile(t testing.TB) string {
	t.Helper()
	raw := make([]byte, 32)
	rand.Read(raw)
	path := filepath.Join(t.TempDir(), "secrets.key")
	writeFile(t, path, base64.StdEncoding.EncodeToString(raw)+"\n")
	return path
}

// adminBroker is a broker whose admin API a test drives with a platform
// admin key.
type adminBroker struct {
	*broker
	admin string // the ak_live_ key
	// API is the admin API's base URL (the main one unless
	// BROKER_ADMIN_ADDR is set).
	API string
}

func (a *adminBroker) do(t testing.TB, method, path string, body any, hdr ...string) response {
	t.Helper()
	return do(t, method, a.API+path, a.admin, body, hdr...)
}

// adminRegistries are the writable registries the admin API runs on: the
// embedded development tenant in memory, and PostgreSQL (a fresh, empty
// database; skipped under -short).
var adminRegistries = []struct {
	name string
	vars func(t testing.TB) map[string]string
}{
	{"memory", func(testing.TB) map[string]string { return map[string]string{"BROKER_CONFIG": ""} }},
	{"postgres", func(t testing.TB) map[string]string {
		return map[string]string{"BROKER_CONFIG": "", "BROKER_DATABASE_URL": testenv.PostgresURL(t), "BROKER_SECRETS_KEY_FILE": secretsKeyFile(t)}
	}},
}

// startAdmin starts a broker with a platform admin key (and a second one
// it does not use), on the registry vars names, with more vars.
func startAdmin(t testing.TB, vars map[string]string, more ...string) *adminBroker {
	t.Helper()
	key, hash := newAdminKey(t)
	_, other := newAdminKey(t)
	env := map[string]string{"BROKER_ADMIN_KEY_HASHES": other + ", " + hash}
	for n, v := range vars {
		env[n] = v
	}
	for i := 0; i+1 < len(more); i += 2 {
		env[more[i]] = more[i+1]
	}
	b := startBroker(t, newKeys(t), env)
	return &adminBroker{broker: b, admin: key, API: b.URL}
}

// forEachRegistry runs fn on a fresh broker of each writable registry.
func forEachRegistry(t *testing.T, fn func(t *testing.T, a *adminBroker), more ...string) {
	for _, r := range adminRegistries {
		t.Run(r.name, func(t *testing.T) { fn(t, startAdmin(t, r.vars(t), more...)) })
	}
}

// withinAll polls fn on every broker until each gives status, all within
// d of the call: a change made through one replica in force on all.
func withinAll(t *testing.T, d time.Duration, what string, status int, urls []string, fn func(base string) response) {
	t.Helper()
	start := time.Now()
	pending := append([]string(nil), urls...)
	last := map[string]response{}
	for len(pending) > 0 {
		var still []string
		for _, u := range pending {
			r := fn(u)
			if r.Status != status {
				still = append(still, u)
				last[u] = r
			}
		}
		pending = still
		if len(pending) == 0 {
			break
		}
		if time.Since(start) > d {
			t.Fatalf("not within %s: %s on %d of %d brokers (e.g. %d %s)", d, what, len(pending), len(urls), last[pending[0]].Status, last[pending[0]].Raw)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%s on %d brokers after %s", what, len(urls), time.Since(start).Round(time.Millisecond))
}

func str(r response, field string) string { s, _ := r.Body[field].(string); return s }

func list(r response, field string) []any { l, _ := r.Body[field].([]any); return l }

// secretWatch collects the secrets the admin API hands out and every
// answer it gives, to check that a secret is shown once and never again
// and that no hash is ever shown.
type secretWatch struct {
	secrets []string // keys and the LiveKit secret, and their hashes
	answers []string // every answer but the one that showed each secret
}

func (w *secretWatch) shown(secret string) {
	w.secrets = append(w.secrets, secret, apikey.Hash(secret))
}

func (w *secretWatch) check(t *testing.T, logs string) {
	t.Helper()
	for _, a := range w.answers {
		if strings.Contains(a, "sha256:") {
			t.Fatalf("a hash in an answer: %s", a)
		}
		for _, s := range w.secrets {
			if strings.Contains(a, s) || strings.Contains(a, s[len(s)-20:]) {
				t.Fatalf("a secret in a later answer: %s", a)
			}
		}
	}
	if strings.Contains(logs, "sha256:") {
		t.Fatal("a hash in the log")
	}
	for _, s := range w.secrets {
		if strings.Contains(logs, s) || strings.Contains(logs, s[len(s)-20:]) {
			t.Fatal("a secret or hash in the log")
		}
	}
}

// TestAdminAPIEveryRoute drives every admin route through its happy path,
// on the memory registry and on PostgreSQL: what it makes works at once
// (within a second) on the broker's own endpoints and stops when deleted;
// each secret is shown once, in the 201 that made it, and never again in
// any answer or log line; the audit trail says who did what, with the
// request id.
func TestAdminAPIEveryRoute(t *testing.T) {
	forEachRegistry(t, func(t *testing.T, a *adminBroker) {
		w := &secretWatch{}
		call := func(method, path string, body any, status int, hdr ...string) response {
			t.Helper()
			r := a.do(t, method, path, body, hdr...)
			if r.Status != status {
				t.Fatalf("%s %s: %d %s, want %d", method, path, r.Status, r.Raw, status)
			}
			return r
		}
		watched := func(method, path string, body any, status int, hdr ...string) response {
			t.Helper()
			r := call(method, path, body, status, hdr...)
			w.answers = append(w.answers, r.Raw)
			return r
		}

		// Orgs.
		o := watched("POST", "/admin/orgs", map[string]any{"id": "initech", "tier": "pro"}, 201, "X-Request-Id", "req-create-initech")
		if str(o, "id") != "initech" || str(o, "tier") != "pro" || o.Body["rate_per_minute"] != 0.0 || o.Body["allow_demo_rooms"] != false || str(o, "created_at") == "" {
			t.Fatalf("created org: %s", o.Raw)
		}
		watched("POST", "/admin/orgs", map[string]any{"id": "initech-2", "tier": "free", "allow_demo_rooms": true}, 201)
		var ids []string
		for cur, pages := "", 0; ; pages++ {
			q := "/admin/orgs?limit=1"
			if cur != "" {
				q += "&cursor=" + cur
			}
			page := watched("GET", q, nil, 200)
			if len(list(page, "orgs")) > 1 || pages > 10 {
				t.Fatalf("page: %s", page.Raw)
			}
			for _, org := range list(page, "orgs") {
				ids = append(ids, org.(map[string]any)["id"].(string))
			}
			if page.Body["next_cursor"] == nil {
				break
			}
			cur = str(page, "next_cursor")
		}
		if !strings.Contains(strings.Join(ids, ","), "initech,initech-2") {
			t.Fatalf("paged orgs: %v", ids)
		}
		watched("GET", "/admin/orgs/initech", nil, 200)
		p := watched("PATCH", "/admin/orgs/initech", map[string]any{"tier": "enterprise", "rate_per_minute": 100000}, 200)
		if str(p, "tier") != "enterprise" || p.Body["rate_per_minute"] != 100000.0 {
			t.Fatalf("patched org: %s", p.Raw)
		}

		// Agents.
		agent := map[string]any{"channels": []string{"webrtc", "chat"}, "public": map[string]any{"allowed_origins": []string{"https://demo.initech.example"}}}
		ag := watched("PUT", "/admin/orgs/initech/agents/bob", agent, 201)
		if str(ag, "id") != "bob" || ag.Body["public"] == nil || len(list(ag, "publishable_keys")) != 0 {
			t.Fatalf("created agent: %s", ag.Raw)
		}
		agent["server"] = "wss://voice.initech.example"
		if ag := watched("PUT", "/admin/orgs/initech/agents/bob", agent, 200); str(ag, "server") != "wss://voice.initech.example" {
			t.Fatalf("replaced agent: %s", ag.Raw)
		}
		watched("GET", "/admin/orgs/initech/agents/bob", nil, 200)
		if l := watched("GET", "/admin/orgs/initech/agents", nil, 200); len(list(l, "agents")) != 1 {
			t.Fatalf("agents: %s", l.Raw)
		}

		// Publishable keys: shown once, usable within a second.
		pkr := call("POST", "/admin/orgs/initech/agents/bob/publishable-keys", nil, 201)
		pk := str(pkr, "key")
		if !strings.HasPrefix(pk, "pk_live_") || str(pkr, "id") == "" {
			t.Fatalf("publishable key: %s", pkr.Raw)
		}
		w.shown(pk)
		bob := map[string]any{"agent": "bob", "channel": "webrtc"}
		public := func() response {
			return do(t, "POST", a.URL+"/public/token", pk, bob, "Origin", "https://demo.initech.example")
		}
		within(t, time.Second, "a new publishable key usable", 201, public)
		if ag := watched("GET", "/admin/orgs/initech/agents/bob", nil, 200); len(list(ag, "publishable_keys")) != 1 {
			t.Fatalf("agent after a publishable key: %s", ag.Raw)
		}

		// Secret keys.
		kr := call("POST", "/admin/orgs/initech/keys", map[string]any{
			"id": "ops", "scopes": []string{"tokens:create", "keys:write"}, "allowed_ips": []string{"127.0.0.0/8"},
			"expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		}, 201)
		sk := str(kr, "key")
		if !strings.HasPrefix(sk, "sk_live_") || str(kr, "id") != "ops" || str(kr, "env") != "live" || len(list(kr, "scopes")) != 2 {
			t.Fatalf("created key: %s", kr.Raw)
		}
		w.shown(sk)
		mint := func() response { return do(t, "POST", a.URL+"/token", sk, bob) }
		within(t, time.Second, "a new secret key usable", 201, mint)
		test := call("POST", "/admin/orgs/initech/keys", map[string]any{"id": "sandbox", "scopes": []string{"tokens:create"}, "env": "test"}, 201)
		if !strings.HasPrefix(str(test, "key"), "sk_test_") {
			t.Fatalf("test key: %s", test.Raw)
		}
		w.shown(str(test, "key"))
		keys := watched("GET", "/admin/orgs/initech/keys", nil, 200)
		if len(list(keys, "keys")) != 2 {
			t.Fatalf("keys: %s", keys.Raw)
		}
		for _, k := range list(keys, "keys") {
			k := k.(map[string]any)
			for _, f := range []string{"key", "hash", "secret"} {
				if _, ok := k[f]; ok {
					t.Fatalf("a listed key has %q: %s", f, keys.Raw)
				}
			}
			if _, ok := k["last_used_at"]; !ok || k["created_at"] == nil {
				t.Fatalf("a listed key lacks its times: %s", keys.Raw)
			}
		}

		// JWT issuers.
		issuers := map[string]any{"jwt_issuers": []map[string]any{{
			"issuer": "https://auth.initech.example", "audience": "voicebroker",
			"jwks_url": "https://auth.initech.example/.well-known/jwks.json", "scopes": []string{"tokens:create"},
		}}}
		if r := watched("PUT", "/admin/orgs/initech/jwt-issuers", issuers, 200); len(list(r, "jwt_issuers")) != 1 {
			t.Fatalf("issuers: %s", r.Raw)
		}
		if r := watched("GET", "/admin/orgs/initech/jwt-issuers", nil, 200); len(list(r, "jwt_issuers")) != 1 {
			t.Fatalf("issuers: %s", r.Raw)
		}

		// The org's LiveKit project: the secret goes in and never out.
		lkSecret := "lk-secret-" + strings.Repeat("x", 20) + randomWord(t)
		w.shown(lkSecret)
		lk := watched("PUT", "/admin/orgs/initech/livekit", map[string]any{"url": "wss://initech.livekit.example", "api_key": "APIinitech", "api_secret": lkSecret}, 200)
		if lk.Body["secret_set"] != true || str(lk, "api_key") != "APIinitech" {
			t.Fatalf("livekit: %s", lk.Raw)
		}
		if lk := watched("GET", "/admin/orgs/initech/livekit", nil, 200); lk.Body["secret_set"] != true || len(lk.Body) != 4 {
			t.Fatalf("livekit: %s", lk.Raw)
		}
		watched("DELETE", "/admin/orgs/initech/livekit", nil, 204)
		expect(t, a.do(t, "GET", "/admin/orgs/initech/livekit", nil), 404, "not_found")

		// Deletes and revocations stop at once.
		watched("DELETE", "/admin/orgs/initech/agents/bob/publishable-keys/"+str(pkr, "id"), nil, 204)
		within(t, time.Second, "a deleted publishable key refused", 401, public)
		watched("DELETE", "/admin/orgs/initech/keys/ops", nil, 204)
		within(t, time.Second, "a revoked key refused", 401, mint)
		keys = watched("GET", "/admin/orgs/initech/keys", nil, 200)
		if k := list(keys, "keys")[0].(map[string]any); k["id"] != "ops" || k["revoked_at"] == nil {
			t.Fatalf("a revoked key stays listed with revoked_at: %s", keys.Raw)
		}

		// The audit trail: who, what, when, which request; pages.
		var events []map[string]any
		for cur := ""; ; {
			q := "/admin/audit?org=initech&limit=3"
			if cur != "" {
				q += "&cursor=" + cur
			}
			page := watched("GET", q, nil, 200)
			for _, e := range list(page, "events") {
				events = append(events, e.(map[string]any))
			}
			if page.Body["next_cursor"] == nil {
				break
			}
			cur = str(page, "next_cursor")
		}
		actions := map[string]map[string]any{}
		for _, e := range events {
			if e["org"] != "initech" || e["at"] == nil || !strings.HasPrefix(e["actor"].(string), "admin:") {
				t.Fatalf("audit event: %v", e)
			}
			actions[e["action"].(string)] = e
		}
		for _, want := range []string{"org.create", "org.update", "agent.create", "agent.replace", "publishable_key.create",
			"publishable_key.delete", "key.create", "key.revoke", "jwt_issuers.replace", "livekit.put", "livekit.delete"} {
			if actions[want] == nil {
				t.Errorf("no %s event in %d events", want, len(events))
			}
		}
		if e := actions["org.create"]; e["request_id"] != "req-create-initech" || e["actor"] != "admin:"+apikey.Hash(a.admin)[7:15] {
			t.Fatalf("org.create event: %v", e)
		}
		if all := watched("GET", "/admin/audit", nil, 200); len(list(all, "events")) < len(events) {
			t.Fatalf("all events: %s", all.Raw)
		}

		// Deleting the agent, then the org with everything in it.
		watched("DELETE", "/admin/orgs/initech/agents/bob", nil, 204)
		expect(t, a.do(t, "GET", "/admin/orgs/initech/agents/bob", nil), 404, "not_found")
		watched("DELETE", "/admin/orgs/initech", nil, 204)
		expect(t, a.do(t, "GET", "/admin/orgs/initech", nil), 404, "not_found")
		within(t, time.Second, "a deleted org's test key refused", 401, func() response {
			return do(t, "POST", a.URL+"/token", str(test, "key"), map[string]any{"agent": "bob", "channel": "chat"})
		})

		w.check(t, a.Logs.String())
		if !strings.Contains(a.Logs.String(), `"event":"admin.change"`) {
			t.Fatal("no admin.change log line")
		}
	})
}

// TestAdminReadOnlyWithTenantsFile: with a tenants file every write
// answers 409 registry_read_only (even one whose body is wrong: the file
// is what to change), and the reads work, without hashes.
func TestAdminReadOnlyWithTenantsFile(t *testing.T) {
	a := startAdmin(t, nil)
	for _, c := range []struct{ method, path string }{
		{"POST", "/admin/orgs"}, {"PATCH", "/admin/orgs/acme"}, {"DELETE", "/admin/orgs/acme"},
		{"PUT", "/admin/orgs/acme/agents/florencia"}, {"DELETE", "/admin/orgs/acme/agents/florencia"},
		{"POST", "/admin/orgs/acme/agents/florencia/publishable-keys"}, {"DELETE", "/admin/orgs/acme/agents/florencia/publishable-keys/default"},
		{"POST", "/admin/orgs/acme/keys"}, {"DELETE", "/admin/orgs/acme/keys/main"}, {"PUT", "/admin/orgs/acme/jwt-issuers"},
		{"PUT", "/admin/orgs/acme/livekit"}, {"DELETE", "/admin/orgs/acme/livekit"},
	} {
		for _, body := range []any{nil, map[string]any{"id": "x", "tier": "free"}, "{not json"} {
			r := a.do(t, c.method, c.path, body)
			if r.Status != 409 || r.code() != "registry_read_only" {
				t.Fatalf("%s %s: %d %s", c.method, c.path, r.Status, r.Raw)
			}
			expect(t, r, 409, "registry_read_only")
		}
	}
	orgs := a.do(t, "GET", "/admin/orgs", nil)
	expect(t, orgs, 200, "")
	if len(list(orgs, "orgs")) != 2 {
		t.Fatalf("orgs: %s", orgs.Raw)
	}
	for _, p := range []string{"/admin/orgs/acme", "/admin/orgs/acme/keys", "/admin/orgs/acme/agents/florencia", "/admin/orgs/acme/agents",
		"/admin/orgs/acme/jwt-issuers", "/admin/audit"} {
		r := a.do(t, "GET", p, nil)
		expect(t, r, 200, "")
		if strings.Contains(r.Raw, "sha256:") {
			t.Fatalf("GET %s shows a hash: %s", p, r.Raw)
		}
	}
	expect(t, a.do(t, "GET", "/admin/orgs/acme/livekit", nil), 404, "not_found")
	// The tenants file's keys still work; nothing changed.
	expect(t, do(t, "POST", a.URL+"/token", a.keys.acme, flo), 201, "")
}

// TestAdminOrgKeySelfService: a secret key with keys:write manages its
// own org's secret keys (POST, GET, DELETE /admin/orgs/{its org}/keys) and
// nothing else. Another org's keys, and every other route, answer 404
// not_found exactly as an org that does not exist does; a key without
// keys:write gets 403 on its own org's keys; a test key makes test keys
// only; API secrets and unknown credentials get nothing.
func TestAdminOrgKeySelfService(t *testing.T) {
	forEachRegistry(t, func(t *testing.T, a *adminBroker) {
		for _, org := range []string{"acme", "globex"} {
			expect(t, a.do(t, "POST", "/admin/orgs", map[string]any{"id": org, "tier": "enterprise", "rate_per_minute": 100000}), 201, "")
			expect(t, a.do(t, "PUT", "/admin/orgs/"+org+"/agents/bot", map[string]any{"channels": []string{"chat"}, "livekit_agent_name": org + "-bot"}), 201, "")
		}
		mk := func(org, id string, env string, scopes ...string) string {
			r := a.do(t, "POST", "/admin/orgs/"+org+"/keys", map[string]any{"id": id, "scopes": scopes, "env": env})
			expect(t, r, 201, "")
			return str(r, "key")
		}
		// The self-service keys carry tokens:create too: a key gives no
		// scope it lacks itself (TestAdminOrgKeyMakesNoWiderKey).
		self := mk("acme", "self", "live", "keys:write", "tokens:create")
		plain := mk("acme", "plain", "live", "tokens:create", "tokens:redeem", "livekit:token", "rooms:read", "rooms:write")
		selfTest := mk("acme", "self-test", "test", "keys:write", "tokens:create")
		globexKey := mk("globex", "main", "live", "tokens:create")
		globexBefore := a.do(t, "GET", "/admin/orgs/globex/keys", nil).Raw
		within(t, time.Second, "the self-service key usable", 200, func() response {
			return do(t, "GET", a.URL+"/admin/orgs/acme/keys", self, nil)
		})

		// Its own org's keys.
		made := do(t, "POST", a.URL+"/admin/orgs/acme/keys", self, map[string]any{"id": "made-by-self", "scopes": []string{"tokens:create"}})
		expect(t, made, 201, "")
		within(t, time.Second, "a key made by self-service usable", 201, func() response {
			return do(t, "POST", a.URL+"/token", str(made, "key"), map[string]any{"agent": "bot", "channel": "chat"})
		})
		if l := do(t, "GET", a.URL+"/admin/orgs/acme/keys", self, nil); l.Status != 200 || len(list(l, "keys")) != 4 || strings.Contains(l.Raw, "sha256:") {
			t.Fatalf("own keys: %d %s", l.Status, l.Raw)
		}
		expect(t, do(t, "DELETE", a.URL+"/admin/orgs/acme/keys/made-by-self", self, nil), 204, "")
		expect(t, do(t, "DELETE", a.URL+"/admin/orgs/acme/keys/nope", self, nil), 404, "not_found")

		// Anything else answers as an org that does not exist.
		nothing := do(t, "GET", a.URL+"/admin/orgs/nosuch/keys", self, nil)
		expect(t, nothing, 404, "not_found")
		for _, c := range []struct {
			method, path string
			body         any
		}{
			{"GET", "/admin/orgs/globex/keys", nil},
			{"POST", "/admin/orgs/globex/keys", map[string]any{"id": "intruder", "scopes": []string{"tokens:create"}}},
			{"DELETE", "/admin/orgs/globex/keys/main", nil},
			{"GET", "/admin/orgs", nil}, {"POST", "/admin/orgs", map[string]any{"id": "mine", "tier": "free"}},
			{"GET", "/admin/orgs/acme", nil}, {"PATCH", "/admin/orgs/acme", map[string]any{"tier": "pro"}},
			{"DELETE", "/admin/orgs/acme", nil}, {"GET", "/admin/orgs/globex", nil}, {"DELETE", "/admin/orgs/globex", nil},
			{"GET", "/admin/orgs/acme/agents", nil}, {"GET", "/admin/orgs/acme/agents/bot", nil},
			{"PUT", "/admin/orgs/acme/agents/bot", map[string]any{"channels": []string{"webrtc"}}},
			{"DELETE", "/admin/orgs/globex/agents/bot", nil},
			{"POST", "/admin/orgs/acme/agents/bot/publishable-keys", nil},
			{"GET", "/admin/orgs/acme/jwt-issuers", nil}, {"PUT", "/admin/orgs/acme/jwt-issuers", map[string]any{"jwt_issuers": []any{}}},
			{"GET", "/admin/orgs/acme/livekit", nil}, {"DELETE", "/admin/orgs/globex/livekit", nil},
			{"GET", "/admin/audit", nil}, {"GET", "/admin/audit?org=acme", nil},
		} {
			for _, cred := range []string{self, selfTest, plain} {
				r := do(t, c.method, a.URL+c.path, cred, c.body)
				if r.Status != 404 || r.Raw != nothing.Raw {
					t.Fatalf("%s %s with an org key: %d %s, want the 404 of an org that does not exist (%s)", c.method, c.path, r.Status, r.Raw, nothing.Raw)
				}
			}
		}
		if !strings.Contains(a.Logs.String(), `"event":"admin.refused","actor":"org:acme/key:self","method":"DELETE","route":"/admin/orgs/:org/keys/:id","org":"globex"`) {
			t.Fatal("no admin.refused line for a probe of another org")
		}
		if after := a.do(t, "GET", "/admin/orgs/globex/keys", nil).Raw; after != globexBefore {
			t.Fatalf("globex's keys changed:\n%s\n%s", globexBefore, after)
		}
		expect(t, do(t, "POST", a.URL+"/token", globexKey, map[string]any{"agent": "bot", "channel": "chat"}), 201, "")

		// Without keys:write: 403 on its own org's keys.
		expect(t, do(t, "GET", a.URL+"/admin/orgs/acme/keys", plain, nil), 403, "insufficient_scope")
		expect(t, do(t, "POST", a.URL+"/admin/orgs/acme/keys", plain, map[string]any{"id": "x", "scopes": []string{"tokens:create"}}), 403, "insufficient_scope")

		// A test key makes test keys (by default) and never live ones.
		tk := do(t, "POST", a.URL+"/admin/orgs/acme/keys", selfTest, map[string]any{"id": "from-test", "scopes": []string{"tokens:create"}})
		expect(t, tk, 201, "")
		if !strings.HasPrefix(str(tk, "key"), "sk_test_") {
			t.Fatalf("a test key made %s", tk.Raw)
		}
		expect(t, do(t, "POST", a.URL+"/admin/orgs/acme/keys", selfTest, map[string]any{"id": "to-live", "scopes": []string{"tokens:create"}, "env": "live"}), 403, "insufficient_scope")

		// The audit trail names the org key.
		ev := a.do(t, "GET", "/admin/audit?org=acme&limit=100", nil)
		if !strings.Contains(ev.Raw, `"actor":"org:acme/key:self"`) || !strings.Contains(ev.Raw, `"actor":"org:acme/key:self-test"`) {
			t.Fatalf("audit: %s", ev.Raw)
		}

		// A revoked self-service key is refused; so are other credentials.
		expect(t, a.do(t, "DELETE", "/admin/orgs/acme/keys/self", nil), 204, "")
		within(t, time.Second, "a revoked self-service key refused", 401, func() response {
			return do(t, "GET", a.URL+"/admin/orgs/acme/keys", self, nil)
		})
		expect(t, do(t, "GET", a.URL+"/admin/orgs/acme/keys", "sk_live_"+strings.Repeat("Z", 43), nil), 401, "unauthorized")
		expect(t, do(t, "GET", a.URL+"/admin/orgs/acme/keys", "pk_live_"+strings.Repeat("Z", 43), nil), 401, "unauthorized")
		expect(t, do(t, "GET", a.URL+"/admin/orgs/acme/keys", "eyJhbGciOiJub25lIn0.e30.", nil), 401, "unauthorized")
		w := &secretWatch{}
		w.shown(self)
		w.shown(plain)
		w.shown(selfTest)
		w.check(t, a.Logs.String())
	})
}

// TestAdminAPISecretIsNotAdmin: an AUTH_API_SECRET stands for its org with
// every scope on the broker's endpoints, but it is not an org key: the
// admin API refuses it (401), and never asks it for keys:write.
func TestAdminAPISecretIsNotAdmin(t *testing.T) {
	secret := "shared-" + randomWord(t) + strings.Repeat("s", 32)
	a := startAdmin(t, map[string]string{"BROKER_CONFIG": "", "AUTH_API_SECRETS_JSON": `[{"id":"demo","secret":"` + secret + `"}]`})
	expect(t, do(t, "POST", a.URL+"/token", secret, map[string]any{"agent": "demo-bot", "channel": "chat"}), 201, "")
	for _, p := range []string{"/admin/orgs/demo/keys", "/admin/orgs", "/admin/audit"} {
		expect(t, do(t, "GET", a.URL+p, secret, nil), 401, "unauthorized")
	}
	// The development key carries every scope, keys:write included: it
	// manages the demo org's keys.
	expect(t, do(t, "GET", a.URL+"/admin/orgs/demo/keys", a.app.DevKeys.Secret, nil), 200, "")
	expect(t, do(t, "GET", a.URL+"/admin/orgs", a.app.DevKeys.Secret, nil), 404, "not_found")
	if strings.Contains(a.Logs.String(), secret) {
		t.Fatal("the API secret in the log")
	}
}

// TestAdminErrorsInContractShape: every way an admin request goes wrong
// answers the contract's {"error","message"} with the right status and
// code, messages that name the field as the tenants file does, and no
// credential.
func TestAdminErrorsInContractShape(t *testing.T) {
	forEachRegistry(t, func(t *testing.T, a *adminBroker) {
		expect(t, a.do(t, "POST", "/admin/orgs", map[string]any{"id": "acme", "tier": "free"}), 201, "")
		expect(t, a.do(t, "PUT", "/admin/orgs/acme/agents/bot", map[string]any{"channels": []string{"chat"}}), 201, "")
		expect(t, a.do(t, "POST", "/admin/orgs/acme/keys", map[string]any{"id": "main", "scopes": []string{"tokens:create"}}), 201, "")
		raw := func(method, path, body string, hdr ...string) response {
			return do(t, method, a.API+path, a.admin, []byte(body), hdr...)
		}
		big := `{"id":"acme","tier":"free","x":"` + strings.Repeat("a", 17<<10) + `"}`
		cases := []struct {
			name     string
			r        response
			status   int
			code     string
			contains string
		}{
			{"no credential", do(t, "GET", a.API+"/admin/orgs", "", nil), 401, "missing_auth_header", ""},
			{"basic auth", do(t, "GET", a.API+"/admin/orgs", "", nil, "Authorization", "Basic YTpi"), 401, "invalid_auth_header", ""},
			{"two headers", do(t, "GET", a.API+"/admin/orgs", a.admin, nil, "Authorization", "Bearer "+a.admin), 401, "invalid_auth_header", ""},
			{"key in the URL", do(t, "GET", a.API+"/admin/orgs?api_key="+a.admin, "", nil), 401, "invalid_auth_header", "Authorization header only"},
			{"key in the URL too", do(t, "GET", a.API+"/admin/orgs?api_key="+a.admin, a.admin, nil), 401, "invalid_auth_header", ""},
			{"unknown admin key", do(t, "GET", a.API+"/admin/orgs", "ak_live_"+strings.Repeat("A", 43), nil), 401, "unauthorized", ""},
			{"short admin key", do(t, "GET", a.API+"/admin/orgs", "ak_live_abc", nil), 401, "unauthorized", ""},
			{"admin key with a bad character", do(t, "GET", a.API+"/admin/orgs", a.admin[:20]+"-"+a.admin[21:], nil), 401, "unauthorized", ""},
			{"test admin key", do(t, "GET", a.API+"/admin/orgs", "ak_test_"+a.admin[8:], nil), 401, "unauthorized", ""},
			{"other credential", do(t, "GET", a.API+"/admin/orgs", "hello", nil), 401, "unauthorized", ""},
			{"empty body", raw("POST", "/admin/orgs", ""), 400, "invalid_request", "body is required"},
			{"not an object", raw("POST", "/admin/orgs", `["acme"]`), 400, "invalid_request", ""},
			{"malformed", raw("POST", "/admin/orgs", `{"id":`), 400, "invalid_request", ""},
			{"duplicate key", raw("POST", "/admin/orgs", `{"id":"a1","id":"a2","tier":"free"}`), 400, "invalid_request", "duplicate"},
			{"case variant", raw("POST", "/admin/orgs", `{"id":"a1","ID":"a2","tier":"free"}`), 400, "invalid_request", "case"},
			{"unknown field", raw("POST", "/admin/orgs", `{"id":"a1","tier":"free","keys":[]}`), 400, "invalid_request", "unknown field"},
			{"invalid UTF-8", raw("POST", "/admin/orgs", "{\"id\":\"a\xff\",\"tier\":\"free\"}"), 400, "invalid_request", "UTF-8"},
			{"wrong type", raw("POST", "/admin/orgs", `{"id":"a1","tier":"free","rate_per_minute":"9"}`), 400, "invalid_request", "rate_per_minute"},
			{"trailing data", raw("POST", "/admin/orgs", `{"id":"a1","tier":"free"} {}`), 400, "invalid_request", ""},
			{"too large", raw("POST", "/admin/orgs", big), 413, "payload_too_large", ""},
			{"bad org id", a.do(t, "POST", "/admin/orgs", map[string]any{"id": "Acme_1", "tier": "free"}), 400, "invalid_request", "id:"},
			{"bad tier", a.do(t, "POST", "/admin/orgs", map[string]any{"id": "a1", "tier": "gold"}), 400, "invalid_request", "tier:"},
			{"rate without enterprise", a.do(t, "POST", "/admin/orgs", map[string]any{"id": "a1", "tier": "free", "rate_per_minute": 5}), 400, "invalid_request", "rate_per_minute"},
			{"existing org", a.do(t, "POST", "/admin/orgs", map[string]any{"id": "acme", "tier": "free"}), 409, "conflict", "acme"},
			{"no such org", a.do(t, "GET", "/admin/orgs/nosuch", nil), 404, "not_found", "nosuch"},
			{"no such org's keys", a.do(t, "GET", "/admin/orgs/nosuch/keys", nil), 404, "not_found", ""},
			{"limit 0", a.do(t, "GET", "/admin/orgs?limit=0", nil), 400, "invalid_request", "limit"},
			{"limit huge", a.do(t, "GET", "/admin/orgs?limit=1001", nil), 400, "invalid_request", "limit"},
			{"limit signed", a.do(t, "GET", "/admin/orgs?limit=%2B5", nil), 400, "invalid_request", "limit"},
			{"limit twice", a.do(t, "GET", "/admin/orgs?limit=1&limit=2", nil), 400, "invalid_request", "more than once"},
			{"unknown parameter", a.do(t, "GET", "/admin/orgs?sort=id", nil), 400, "invalid_request", "sort"},
			{"parameter on a route without any", a.do(t, "GET", "/admin/orgs/acme?x=1", nil), 400, "invalid_request", ""},
			{"bad escape", a.do(t, "GET", "/admin/orgs?cursor=%ZZ", nil), 400, "invalid_request", ""},
			{"foreign cursor", a.do(t, "GET", "/admin/orgs?cursor=NOT_A_CURSOR", nil), 400, "invalid_request", "cursor"},
			{"foreign audit cursor", a.do(t, "GET", "/admin/audit?cursor=abc", nil), 400, "invalid_request", "cursor"},
			{"bad audit org", a.do(t, "GET", "/admin/audit?org=Bad_Org", nil), 400, "invalid_request", "org"},
			{"empty patch", a.do(t, "PATCH", "/admin/orgs/acme", map[string]any{}), 400, "invalid_request", "nothing to change"},
			{"null patch", a.do(t, "PATCH", "/admin/orgs/acme", map[string]any{"tier": nil}), 400, "invalid_request", "tier"},
			{"patch type", a.do(t, "PATCH", "/admin/orgs/acme", map[string]any{"allow_demo_rooms": "yes"}), 400, "invalid_request", "allow_demo_rooms"},
			{"patch bad tier", a.do(t, "PATCH", "/admin/orgs/acme", map[string]any{"tier": "gold"}), 400, "invalid_request", "tier:"},
			{"patch missing org", a.do(t, "PATCH", "/admin/orgs/nosuch", map[string]any{"tier": "pro"}), 404, "not_found", ""},
			{"agent channel", a.do(t, "PUT", "/admin/orgs/acme/agents/bot2", map[string]any{"channels": []string{"sip"}}), 400, "invalid_request", "channels[0]"},
			{"agent id", a.do(t, "PUT", "/admin/orgs/acme/agents/Bot_2", map[string]any{"channels": []string{"chat"}}), 400, "invalid_request", "id:"},
			{"agent id mismatch", a.do(t, "PUT", "/admin/orgs/acme/agents/bot2", map[string]any{"id": "bot3", "channels": []string{"chat"}}), 400, "invalid_request", "id:"},
			{"agent key hash", a.do(t, "PUT", "/admin/orgs/acme/agents/bot2", map[string]any{"channels": []string{"chat"},
				"public": map[string]any{"allowed_origins": []string{"https://a.example"}, "key_hash": apikey.Hash("x")}}), 400, "invalid_request", "public.key_hash"},
			{"agent origin", a.do(t, "PUT", "/admin/orgs/acme/agents/bot2", map[string]any{"channels": []string{"chat"},
				"public": map[string]any{"allowed_origins": []string{"https://*.com"}}}), 400, "invalid_request", "public.allowed_origins[0]"},
			{"agent unknown nested field", a.do(t, "PUT", "/admin/orgs/acme/agents/bot2", map[string]any{"channels": []string{"chat"},
				"public": map[string]any{"allowed_origins": []string{"https://a.example"}, "origins": []string{}}}), 400, "invalid_request", "origins"},
			{"agent of no org", a.do(t, "PUT", "/admin/orgs/nosuch/agents/bot", map[string]any{"channels": []string{"chat"}}), 404, "not_found", ""},
			{"no such agent", a.do(t, "GET", "/admin/orgs/acme/agents/nosuch", nil), 404, "not_found", ""},
			{"publishable key without public mode", a.do(t, "POST", "/admin/orgs/acme/agents/bot/publishable-keys", nil), 400, "invalid_request", "public"},
			{"publishable key env", a.do(t, "POST", "/admin/orgs/acme/agents/bot/publishable-keys", map[string]any{"env": "prod"}), 400, "invalid_request", "env"},
			{"no such publishable key", a.do(t, "DELETE", "/admin/orgs/acme/agents/bot/publishable-keys/nosuch", nil), 404, "not_found", ""},
			{"key scope", a.do(t, "POST", "/admin/orgs/acme/keys", map[string]any{"id": "k2", "scopes": []string{"tokens:create", "admin"}}), 400, "invalid_request", "scopes[1]"},
			{"key no scope", a.do(t, "POST", "/admin/orgs/acme/keys", map[string]any{"id": "k2"}), 400, "invalid_request", "scopes"},
			{"key cidr", a.do(t, "POST", "/admin/orgs/acme/keys", map[string]any{"id": "k2", "scopes": []string{"tokens:create"}, "allowed_ips": []string{"10.0.0.1/8"}}), 400, "invalid_request", "allowed_ips[0]"},
			{"key expiry format", a.do(t, "POST", "/admin/orgs/acme/keys", map[string]any{"id": "k2", "scopes": []string{"tokens:create"}, "expires_at": "tomorrow"}), 400, "invalid_request", "expires_at"},
			{"key expired", a.do(t, "POST", "/admin/orgs/acme/keys", map[string]any{"id": "k2", "scopes": []string{"tokens:create"}, "expires_at": "2020-01-01T00:00:00Z"}), 400, "invalid_request", "expires_at"},
			{"key env", a.do(t, "POST", "/admin/orgs/acme/keys", map[string]any{"id": "k2", "scopes": []string{"tokens:create"}, "env": "Live"}), 400, "invalid_request", "env"},
			{"existing key", a.do(t, "POST", "/admin/orgs/acme/keys", map[string]any{"id": "main", "scopes": []string{"tokens:create"}}), 409, "conflict", "main"},
			{"no such key", a.do(t, "DELETE", "/admin/orgs/acme/keys/nosuch", nil), 404, "not_found", ""},
			{"issuers missing", a.do(t, "PUT", "/admin/orgs/acme/jwt-issuers", map[string]any{}), 400, "invalid_request", "jwt_issuers"},
			{"issuer file", a.do(t, "PUT", "/admin/orgs/acme/jwt-issuers", map[string]any{"jwt_issuers": []map[string]any{{"issuer": "https://i.example",
				"audience": "vb", "public_key_file": "/etc/passwd", "scopes": []string{"tokens:create"}}}}), 400, "invalid_request", "jwt_issuers[0].public_key_file"},
			{"issuer keys:write", a.do(t, "PUT", "/admin/orgs/acme/jwt-issuers", map[string]any{"jwt_issuers": []map[string]any{{"issuer": "https://i.example",
				"audience": "vb", "jwks_url": "https://i.example/jwks", "scopes": []string{"keys:write"}}}}), 400, "invalid_request", "jwt_issuers[0].scopes[0]"},
			{"livekit", a.do(t, "PUT", "/admin/orgs/acme/livekit", map[string]any{"url": "ftp://x", "api_key": "k", "api_secret": "short"}), 400, "invalid_request", "api_secret"},
			{"no livekit", a.do(t, "GET", "/admin/orgs/acme/livekit", nil), 404, "not_found", ""},
			{"no such route", a.do(t, "GET", "/admin/nothing", nil), 404, "not_found", ""},
			{"no such method", a.do(t, "DELETE", "/admin/orgs", nil), 405, "method_not_allowed", ""},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				expect(t, c.r, c.status, c.code)
				if !strings.Contains(c.r.Raw, c.contains) {
					t.Fatalf("message does not name %q: %s", c.contains, c.r.Raw)
				}
				if strings.Contains(c.r.Raw, a.admin[8:]) || strings.Contains(c.r.Raw, "sha256:") {
					t.Fatalf("a credential in %s", c.r.Raw)
				}
			})
		}
		if strings.Contains(a.Logs.String(), a.admin[8:]) {
			t.Fatal("the admin key in the log")
		}
	})
}

// TestAdminConcurrentCreates: concurrent creates of one id (an org, a
// key) give one 201 and 409 conflict for the rest.
func TestAdminConcurrentCreates(t *testing.T) {
	forEachRegistry(t, func(t *testing.T, a *adminBroker) {
		race := func(path string, body any) {
			t.Helper()
			const n = 12
			var wg sync.WaitGroup
			results := make([]response, n)
			errs := make([]error, n)
			start := make(chan struct{})
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					results[i], errs[i] = tryDo("POST", a.API+path, a.admin, body)
				}()
			}
			close(start)
			wg.Wait()
			created, conflicts := 0, 0
			for i, r := range results {
				if errs[i] != nil {
					t.Fatal(errs[i])
				}
				switch {
				case r.Status == 201:
					created++
				case r.Status == 409 && r.code() == "conflict":
					conflicts++
				default:
					t.Fatalf("POST %s: %d %s", path, r.Status, r.Raw)
				}
			}
			if created != 1 || conflicts != n-1 {
				t.Fatalf("POST %s: %d created, %d conflicts", path, created, conflicts)
			}
		}
		race("/admin/orgs", map[string]any{"id": "racer", "tier": "pro"})
		race("/admin/orgs/racer/keys", map[string]any{"id": "k", "scopes": []string{"tokens:create"}})
		if l := a.do(t, "GET", "/admin/orgs/racer/keys", nil); len(list(l, "keys")) != 1 {
			t.Fatalf("keys after the race: %s", l.Raw)
		}
	})
}

// TestAdminDeletedOrgQuarantined: a deleted org's id cannot be created
// again for registry.IDQuarantine, as LiveKit rooms and room tokens name
// the org by its id only: POST /admin/orgs answers 409 conflict saying why
// and from when it is free. Other ids are not held up. (The end of the
// quarantine is the registry conformance suite's, with its clock seam.)
func TestAdminDeletedOrgQuarantined(t *testing.T) {
	forEachRegistry(t, func(t *testing.T, a *adminBroker) {
		expect(t, a.do(t, "POST", "/admin/orgs", map[string]any{"id": "gone", "tier": "pro"}), 201, "")
		expect(t, a.do(t, "PUT", "/admin/orgs/gone/agents/bot", map[string]any{"channels": []string{"chat"}}), 201, "")
		expect(t, a.do(t, "DELETE", "/admin/orgs/gone", nil), 204, "")
		before := time.Now().UTC().Truncate(time.Second)
		again := a.do(t, "POST", "/admin/orgs", map[string]any{"id": "gone", "tier": "free"})
		expect(t, again, 409, "conflict")
		msg, _ := again.Body["message"].(string)
		for _, want := range []string{`"gone"`, "the id was deleted at ", "; it can be used again from ", "tokens issued for the old org's rooms may still be live until then"} {
			if !strings.Contains(msg, want) {
				t.Fatalf("message %q does not say %q", msg, want)
			}
		}
		from, err := time.Parse(time.RFC3339, strings.TrimSuffix(strings.Fields(strings.SplitN(msg, "can be used again from ", 2)[1])[0], ":"))
		if err != nil {
			t.Fatalf("message %q: %v", msg, err)
		}
		if d := from.Sub(before); d < registry.IDQuarantine-time.Minute || d > registry.IDQuarantine+time.Minute {
			t.Fatalf("free again at %v, %v from now; want about %v", from, d, registry.IDQuarantine)
		}
		expect(t, a.do(t, "GET", "/admin/orgs/gone", nil), 404, "not_found")
		expect(t, a.do(t, "GET", "/admin/orgs/gone/agents/bot", nil), 404, "not_found")
		expect(t, a.do(t, "POST", "/admin/orgs", map[string]any{"id": "gone2", "tier": "free"}), 201, "")
	})
}

// TestAdminOwnListener: with BROKER_ADMIN_ADDR the admin API is served
// there only: the main listener answers 404 under /admin/, and the admin
// listener serves nothing else.
func TestAdminOwnListener(t *testing.T) {
	a := startAdmin(t, map[string]string{"BROKER_CONFIG": "", "BROKER_ADMIN_ADDR": "127.0.0.1:0"})
	a.API = "http://" + a.app.AdminAddr()
	if a.API == "http://" || a.API == a.URL {
		t.Fatalf("admin address %q", a.API)
	}
	expect(t, a.do(t, "GET", "/admin/orgs", nil), 200, "")
	expect(t, a.do(t, "POST", "/admin/orgs", map[string]any{"id": "apart", "tier": "free"}), 201, "")
	for _, p := range []string{"/admin/orgs", "/admin/orgs/apart", "/admin/audit"} {
		expect(t, do(t, "GET", a.URL+p, a.admin, nil), 404, "not_found")
	}
	expect(t, do(t, "POST", a.URL+"/admin/orgs", a.admin, map[string]any{"id": "main", "tier": "free"}), 404, "not_found")
	expect(t, do(t, "GET", a.URL+"/admin/orgs/demo/keys", a.app.DevKeys.Secret, nil), 404, "not_found")
	expect(t, do(t, "GET", a.API+"/admin/orgs/demo/keys", a.app.DevKeys.Secret, nil), 200, "")
	expect(t, do(t, "POST", a.API+"/token", a.app.DevKeys.Secret, map[string]any{"agent": "demo-bot", "channel": "chat"}), 404, "not_found")
	expect(t, do(t, "POST", a.URL+"/token", a.app.DevKeys.Secret, map[string]any{"agent": "demo-bot", "channel": "chat"}), 201, "")
	if r := do(t, "GET", a.API+"/metrics", "", nil); r.Status != 404 {
		t.Fatalf("/metrics on the admin listener: %d", r.Status)
	}
	if !strings.Contains(a.Logs.String(), `"admin_addr":"`+a.app.AdminAddr()+`"`) {
		t.Fatal("the start line does not name the admin address")
	}
	// Deleting an org there, on a broker without LiveKit (no rooms to
	// end; an unset LiveKit client once panicked here).
	expect(t, a.do(t, "DELETE", "/admin/orgs/apart", nil), 204, "")
}

// TestAdminWithoutAdminKeys: without BROKER_ADMIN_KEY_HASHES no admin key
// authenticates, and org self-service still works.
func TestAdminWithoutAdminKeys(t *testing.T) {
	b := startBroker(t, newKeys(t), map[string]string{"BROKER_CONFIG": ""})
	key, _ := newAdminKey(t)
	expect(t, do(t, "GET", b.URL+"/admin/orgs", key, nil), 401, "unauthorized")
	expect(t, do(t, "GET", b.URL+"/admin/orgs/demo/keys", b.app.DevKeys.Secret, nil), 200, "")
	if !strings.Contains(b.Logs.String(), `"event":"admin.no_keys"`) {
		t.Fatal("no start line saying no admin key is accepted")
	}
}

// TestAdminRateLimits: an admin key has its own fixed budget; an org key
// with keys:write counts against its org's budget, like any request of
// the org, including the admin requests it is refused.
func TestAdminRateLimits(t *testing.T) {
	a := startAdmin(t, map[string]string{"BROKER_CONFIG": ""})
	r := a.do(t, "GET", "/admin/orgs", nil)
	expect(t, r, 200, "")
	if r.Header.Get("RateLimit-Limit") != "3000" {
		t.Fatalf("admin key budget: %q", r.Header.Get("RateLimit-Limit"))
	}
	expect(t, a.do(t, "POST", "/admin/orgs", map[string]any{"id": "tiny", "tier": "free"}), 201, "")
	key := a.do(t, "POST", "/admin/orgs/tiny/keys", map[string]any{"id": "self", "scopes": []string{"keys:write"}})
	expect(t, key, 201, "")
	sk := str(key, "key")
	within(t, time.Second, "the key usable", 200, func() response { return do(t, "GET", a.URL+"/admin/orgs/tiny/keys", sk, nil) })
	limited := 0
	for range 70 { // the free tier: 60 a minute
		r := do(t, "GET", a.URL+"/admin/orgs/other/keys", sk, nil)
		switch {
		case r.Status == 429:
			limited++
			expect(t, r, 429, "rate_limited")
			if r.Header.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
		case r.Status != 404:
			t.Fatalf("%d %s", r.Status, r.Raw)
		}
	}
	if limited == 0 {
		t.Fatal("an org key's admin requests are not counted against its org's budget")
	}
	// The admin key's budget is its own.
	expect(t, a.do(t, "GET", "/admin/orgs/tiny/keys", nil), 200, "")
}

// TestAdminThreeBrokersOneDatabase: three brokers (each its own registry
// and database connections) on one database. A key made through the admin
// API of one is usable on all three within a second; revoked through
// another, it is refused on all three within a second; so is a deleted
// org's key.
func TestAdminThreeBrokersOneDatabase(t *testing.T) {
	db := testenv.PostgresURL(t)
	key, hash := newAdminKey(t)
	var brokers []*adminBroker
	var urls []string
	for range 3 {
		b := startBroker(t, newKeys(t), map[string]string{"BROKER_CONFIG": "", "BROKER_DATABASE_URL": db, "BROKER_ADMIN_KEY_HASHES": hash})
		brokers = append(brokers, &adminBroker{broker: b, admin: key, API: b.URL})
		urls = append(urls, b.URL)
	}
	a, b, c := brokers[0], brokers[1], brokers[2]
	expect(t, a.do(t, "POST", "/admin/orgs", map[string]any{"id": "multi", "tier": "enterprise", "rate_per_minute": 1000000}), 201, "")
	expect(t, b.do(t, "PUT", "/admin/orgs/multi/agents/bot", map[string]any{"channels": []string{"chat"}}), 201, "")
	body := map[string]any{"agent": "bot", "channel": "chat"}
	for round := range 3 {
		made := brokers[round].do(t, "POST", "/admin/orgs/multi/keys", map[string]any{"id": fmt.Sprintf("k%d", round), "scopes": []string{"tokens:create"}})
		expect(t, made, 201, "")
		sk := str(made, "key")
		mint := func(base string) response { return do(t, "POST", base+"/token", sk, body) }
		withinAll(t, time.Second, "a key made through one broker usable", 201, urls, mint)
		expect(t, brokers[(round+1)%3].do(t, "DELETE", fmt.Sprintf("/admin/orgs/multi/keys/k%d", round), nil), 204, "")
		withinAll(t, time.Second, "a key revoked through another refused", 401, urls, mint)
	}
	last := c.do(t, "POST", "/admin/orgs/multi/keys", map[string]any{"id": "last", "scopes": []string{"tokens:create"}})
	expect(t, last, 201, "")
	withinAll(t, time.Second, "the last key usable", 201, urls, func(base string) response { return do(t, "POST", base+"/token", str(last, "key"), body) })
	expect(t, a.do(t, "DELETE", "/admin/orgs/multi", nil), 204, "")
	withinAll(t, time.Second, "a deleted org's key refused", 401, urls, func(base string) response { return do(t, "POST", base+"/token", str(last, "key"), body) })
	// Each broker sees the same registry through its own admin API, and
	// the same quarantine of the deleted id (timed by the database).
	for _, x := range brokers {
		expect(t, x.do(t, "GET", "/admin/orgs/multi", nil), 404, "not_found")
		expect(t, x.do(t, "POST", "/admin/orgs", map[string]any{"id": "multi", "tier": "free"}), 409, "conflict")
	}
}

// TestAdminDatabaseOutageUnderLoad: two brokers on one database, under a
// steady load of mints with a good key and with a key revoked (and seen
// revoked everywhere) before the outage. The database stops: the brokers
// serve from their snapshots until BROKER_REGISTRY_MAX_STALENESS, then
// fail closed (503 registry_unavailable); admin writes fail with 503 too.
// The revoked key never mints anything, before, during or after. The
// database comes back: both brokers recover without a restart, and the
// admin API works again.
func TestAdminDatabaseOutageUnderLoad(t *testing.T) {
	srv := testenv.StartTestPostgres(t)
	db := testenv.NewDatabase(t, srv.URL("postgres"))
	key, hash := newAdminKey(t)
	var brokers []*adminBroker
	var urls []string
	for range 2 {
		b := startBroker(t, newKeys(t), map[string]string{"BROKER_CONFIG": "", "BROKER_DATABASE_URL": db, "BROKER_ADMIN_KEY_HASHES": hash,
			"BROKER_REGISTRY_REFRESH": "1s", "BROKER_REGISTRY_MAX_STALENESS": "3s"})
		brokers = append(brokers, &adminBroker{broker: b, admin: key, API: b.URL})
		urls = append(urls, b.URL)
	}
	a := brokers[0]
	expect(t, a.do(t, "POST", "/admin/orgs", map[string]any{"id": "steady", "tier": "enterprise", "rate_per_minute": 1000000}), 201, "")
	expect(t, a.do(t, "PUT", "/admin/orgs/steady/agents/bot", map[string]any{"channels": []string{"chat"}}), 201, "")
	mk := func(id string) string {
		r := a.do(t, "POST", "/admin/orgs/steady/keys", map[string]any{"id": id, "scopes": []string{"tokens:create"}})
		expect(t, r, 201, "")
		return str(r, "key")
	}
	good, doomed := mk("good"), mk("doomed")
	body := map[string]any{"agent": "bot", "channel": "chat"}
	withinAll(t, time.Second, "both keys usable", 201, urls, func(base string) response { return do(t, "POST", base+"/token", doomed, body) })
	expect(t, brokers[1].do(t, "DELETE", "/admin/orgs/steady/keys/doomed", nil), 204, "")
	withinAll(t, time.Second, "the doomed key refused", 401, urls, func(base string) response { return do(t, "POST", base+"/token", doomed, body) })

	// The load: each broker, each key, as fast as it answers.
	type tally struct {
		mu     sync.Mutex
		counts map[string]int // "key status code"
	}
	tl := &tally{counts: map[string]int{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, u := range urls {
		for name, k := range map[string]string{"good": good, "doomed": doomed} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					r, err := tryDo("POST", u+"/token", k, body)
					tl.mu.Lock()
					if err != nil {
						tl.counts[name+" transport"]++
					} else {
						tl.counts[fmt.Sprintf("%s %d %s", name, r.Status, r.code())]++
					}
					tl.mu.Unlock()
					time.Sleep(5 * time.Millisecond)
				}
			}()
		}
	}
	seen := func(s string) int { tl.mu.Lock(); defer tl.mu.Unlock(); return tl.counts[s] }
	eventually(t, "good mints under load", func() bool { return seen("good 201 ") > 10 })

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if r := a.do(t, "POST", "/admin/orgs/steady/keys", map[string]any{"id": "during", "scopes": []string{"tokens:create"}}); r.Status != 503 {
		t.Fatalf("an admin write with the database down: %d %s", r.Status, r.Raw)
	} else {
		expect(t, r, 503, "registry_unavailable")
	}
	eventually(t, "both brokers fail closed", func() bool {
		for _, u := range urls {
			if do(t, "GET", u+"/readyz", "", nil).Status != 503 {
				return false
			}
		}
		return true
	})
	before := seen("good 503 registry_unavailable")
	eventually(t, "mints refused with registry_unavailable", func() bool { return seen("good 503 registry_unavailable") > before+4 })
	expect(t, a.do(t, "GET", "/admin/orgs", nil), 503, "registry_unavailable")

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "both brokers recover without a restart", func() bool {
		for _, u := range urls {
			if do(t, "GET", u+"/readyz", "", nil).Status != 200 {
				return false
			}
		}
		return true
	})
	after := seen("good 201 ")
	eventually(t, "good mints again", func() bool { return seen("good 201 ") > after+10 })
	close(stop)
	wg.Wait()

	tl.mu.Lock()
	t.Logf("load: %v", tl.counts)
	for s, n := range tl.counts {
		if strings.HasPrefix(s, "doomed 201") {
			t.Fatalf("the revoked key minted %d tickets (%v)", n, tl.counts)
		}
		if strings.HasPrefix(s, "doomed") && s != "doomed 401 unauthorized" && s != "doomed 503 registry_unavailable" {
			t.Fatalf("the revoked key got %q (%v)", s, tl.counts)
		}
	}
	tl.mu.Unlock()

	// The admin API works again, on both.
	made := brokers[1].do(t, "POST", "/admin/orgs/steady/keys", map[string]any{"id": "after", "scopes": []string{"tokens:create"}})
	expect(t, made, 201, "")
	withinAll(t, time.Second, "a key made after the outage usable", 201, urls, func(base string) response { return do(t, "POST", base+"/token", str(made, "key"), body) })
	expect(t, do(t, "POST", a.URL+"/token", doomed, body), 401, "unauthorized")
}

// TestREADMEAdminExamples runs the README's admin API examples as written
// (bash, curl and jq) against a development broker: every command that
// must succeed does (curl -f), the secret key shows in its 201 and the
// self-service key reaches nothing but its org's keys.
func TestREADMEAdminExamples(t *testing.T) {
	if testing.Short() {
		t.Skip("runs bash, curl and jq")
	}
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n### The admin API\n")
	section, _, _ = strings.Cut(section, "\n## ")
	_, script, ok2 := strings.Cut(section, "```sh\n")
	script, _, ok3 := strings.Cut(script, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("no sh block under \"### The admin API\" in README.md")
	}
	a := startAdmin(t, map[string]string{"BROKER_CONFIG": ""})
	cmd := exec.Command("bash", "-c", "set -euo pipefail\n"+script)
	cmd.Env = append(os.Environ(), "BROKER="+a.URL, "ADMIN_KEY="+a.admin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the README's admin examples: %v\n%s", err, out)
	}
	for _, want := range []string{`"id":"acme"`, `"key":"pk_live_`, `"key":"sk_live_`, `"action":"key.create"`, `"id":"ci"`, `"error":"not_found"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the examples' output lacks %s:\n%s", want, out)
		}
	}
	keys := a.do(t, "GET", "/admin/orgs/acme/keys", nil)
	if !strings.Contains(keys.Raw, `"id":"ci"`) || !strings.Contains(keys.Raw, `"id":"prod-v2"`) || !strings.Contains(keys.Raw, `"revoked_at":"`) {
		t.Fatalf("after the examples: %s", keys.Raw)
	}
}

// TestAdminKeyNeverLeavesTheBroker: an admin key presented anywhere but
// the admin API is refused (401) without being tried as an API secret, a
// JWT or with the delegated auth service, which never sees it.
func TestAdminKeyNeverLeavesTheBroker(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	peer := startAuthPeer(t, &rsaKey.PublicKey)
	a := startAdmin(t, nil, "AUTH_SERVICE_URL", peer.URL, "AUTH_SIGNING_KEY_PATH", writeKeyPair(t, rsaKey))
	expect(t, do(t, "POST", a.URL+"/token", "user-acme", flo), 201, "")
	seen := peer.count()
	for _, cred := range []string{a.admin, "ak_live_" + strings.Repeat("A", 43), "ak_whatever"} {
		expect(t, do(t, "POST", a.URL+"/token", cred, flo), 401, "unauthorized")
		expect(t, do(t, "POST", a.URL+"/token/redeem", cred, map[string]string{"token": "x.y.z"}), 401, "unauthorized")
	}
	if peer.count() != seen {
		t.Fatal("an admin key reached the auth service")
	}
	if !strings.Contains(a.Logs.String(), `"reason":"admin_key_not_accepted"`) {
		t.Fatal("no auth.failure line with reason admin_key_not_accepted")
	}
	expect(t, a.do(t, "GET", "/admin/orgs", nil), 200, "")
}

// TestAdminLiveKitProjectServers: PUT /admin/orgs/{org}/livekit refuses a
// project on the default project's LiveKit server (400 invalid_request,
// as a restart would refuse it) and one on another org's server (409
// conflict, like another org's API key), however the URL is spelt: any API
// key of a server signs tokens for every room on it. Nothing is stored.
func TestAdminLiveKitProjectServers(t *testing.T) {
	def := hangingLiveKit(t)
	server := strings.TrimPrefix(def, "ws://")
	lkSecret := strings.Repeat("L", 40)
	forEachRegistry(t, func(t *testing.T, a *adminBroker) {
		for _, org := range []string{"acme", "globex"} {
			expect(t, a.do(t, "POST", "/admin/orgs", map[string]any{"id": org, "tier": "free"}), 201, "")
		}
		put := func(org, url, key string) response {
			return a.do(t, "PUT", "/admin/orgs/"+org+"/livekit", map[string]any{"url": url, "api_key": key, "api_secret": lkSecret})
		}
		for _, url := range []string{def, "HTTP://" + server + "/twirp?x=1"} {
			r := put("acme", url, "APIacme")
			expect(t, r, 400, "invalid_request")
			if !strings.Contains(r.Raw, "livekit.url: the same LiveKit server ("+server+") as the broker's default project (LIVEKIT_URL)") ||
				!strings.Contains(r.Raw, "an API key of a LiveKit server opens every room on it") || strings.Contains(r.Raw, lkSecret) {
				t.Fatalf("PUT on the default server %s: %s", url, r.Raw)
			}
		}
		expect(t, a.do(t, "GET", "/admin/orgs/acme/livekit", nil), 404, "not_found")
		expect(t, put("acme", "wss://acme.livekit.example", "APIacme"), 200, "")
		r := put("globex", "https://ACME.livekit.example:443/", "APIglobex")
		expect(t, r, 409, "conflict")
		if !strings.Contains(r.Raw, "livekit.url: the same LiveKit server (acme.livekit.example:443)") || strings.Contains(r.Raw, lkSecret) {
			t.Fatalf("PUT on acme's server: %s", r.Raw)
		}
		expect(t, a.do(t, "GET", "/admin/orgs/globex/livekit", nil), 404, "not_found")
		expect(t, put("globex", "wss://globex.livekit.example", "APIglobex"), 200, "")
	}, "LIVEKIT_URL", def, "LIVEKIT_API_KEY", "APIdefault", "LIVEKIT_API_SECRET", strings.Repeat("d", 40))
}
