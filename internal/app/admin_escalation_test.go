package app_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestAdminOrgKeyMakesNoWiderKey: an org key with keys:write makes no key
// wider than itself. The new key's scopes are among the caller's; when the
// caller has allowed_ips, the new key lists prefixes each within one of
// them (compared as the tenants file reads them: a zone dropped,
// IPv4-mapped IPv6 unmapped); when the caller expires, the new key expires
// no later. Anything wider is 403 insufficient_scope naming what is
// lacking, and no key is made; a platform admin key is not bound. Before
// the fix a key held to one address for an hour made a key with every
// scope, for any address and for ever, and that key minted tickets.
func TestAdminOrgKeyMakesNoWiderKey(t *testing.T) {
	a := startAdmin(t, map[string]string{"BROKER_CONFIG": ""})
	expect(t, a.do(t, "POST", "/admin/orgs", map[string]any{"id": "acme", "tier": "enterprise", "rate_per_minute": 100000}), 201, "")
	expect(t, a.do(t, "PUT", "/admin/orgs/acme/agents/bot", map[string]any{"channels": []string{"chat"}, "livekit_agent_name": "acme-bot"}), 201, "")
	// The callers' expiry, to the second, as an RFC 3339 body gives it.
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	rfc := func(at time.Time) string { return at.Format(time.RFC3339) }
	mk := func(id string, body map[string]any) string {
		body["id"] = id
		r := a.do(t, "POST", "/admin/orgs/acme/keys", body)
		expect(t, r, 201, "")
		key := str(r, "key")
		within(t, time.Second, id+" usable", 200, func() response { return do(t, "GET", a.URL+"/admin/orgs/acme/keys", key, nil) })
		return key
	}
	callers := map[string]string{
		"admin":  a.admin,
		"scoped": mk("scoped", map[string]any{"scopes": []string{"keys:write", "tokens:create"}}),
		// The test's requests come from 127.0.0.1.
		"ipbound": mk("ipbound", map[string]any{"scopes": []string{"keys:write", "tokens:create"},
			"allowed_ips": []string{"127.0.0.0/8", "10.0.0.0/8", "2001:db8::/32"}}),
		"expiring": mk("expiring", map[string]any{"scopes": []string{"keys:write", "tokens:create"}, "expires_at": rfc(exp)}),
		// The red team's key: one scope, one address, one hour.
		"narrow": mk("narrow", map[string]any{"scopes": []string{"keys:write"}, "allowed_ips": []string{"127.0.0.1/32"}, "expires_at": rfc(exp)}),
	}
	every := []string{"tokens:create", "tokens:redeem", "livekit:token", "rooms:read", "rooms:write", "keys:write"}
	create := []string{"tokens:create"}

	for n, c := range []struct {
		name, caller string
		scopes       []string
		ips          []string
		expires      *time.Time
		status       int
		code         string
		message      string // in the refusal's message
	}{
		// Scopes: a subset of the caller's.
		{name: "scopes equal", caller: "scoped", scopes: []string{"tokens:create", "keys:write"}, status: 201},
		{name: "scopes narrower", caller: "scoped", scopes: create, status: 201},
		{name: "a scope more", caller: "scoped", scopes: []string{"tokens:create", "tokens:redeem"}, status: 403, code: "insufficient_scope", message: "lacks tokens:redeem"},
		{name: "every scope", caller: "scoped", scopes: every, status: 403, code: "insufficient_scope", message: "lacks tokens:redeem"},
		{name: "an unknown scope is the registry's 400", caller: "scoped", scopes: []string{"tokens:mint"}, status: 400, code: "invalid_request", message: "scopes[0]"},

		// allowed_ips: each prefix within one of the caller's.
		{name: "no list from a bound caller", caller: "ipbound", scopes: create, status: 403, code: "insufficient_scope", message: "allowed_ips"},
		{name: "one address within", caller: "ipbound", scopes: create, ips: []string{"127.0.0.1/32"}, status: 201},
		{name: "a bare address within", caller: "ipbound", scopes: create, ips: []string{"10.1.2.3"}, status: 201},
		{name: "the caller's own prefixes", caller: "ipbound", scopes: create, ips: []string{"10.0.0.0/8", "127.0.0.0/8", "2001:db8::/32"}, status: 201},
		{name: "a wider prefix", caller: "ipbound", scopes: create, ips: []string{"10.0.0.0/7"}, status: 403, code: "insufficient_scope", message: "allowed_ips[0]: 10.0.0.0/7 is not within"},
		{name: "every IPv4 address", caller: "ipbound", scopes: create, ips: []string{"0.0.0.0/0"}, status: 403, code: "insufficient_scope", message: "allowed_ips[0]"},
		{name: "a prefix outside", caller: "ipbound", scopes: create, ips: []string{"192.168.0.0/16"}, status: 403, code: "insufficient_scope", message: "allowed_ips[0]: 192.168.0.0/16"},
		{name: "one within, one outside", caller: "ipbound", scopes: create, ips: []string{"127.0.0.1", "192.168.1.1"}, status: 403, code: "insufficient_scope", message: "allowed_ips[1]: 192.168.1.1/32"},
		{name: "IPv6 within", caller: "ipbound", scopes: create, ips: []string{"2001:db8:1::/48"}, status: 201},
		{name: "IPv6 wider", caller: "ipbound", scopes: create, ips: []string{"2001:db8::/31"}, status: 403, code: "insufficient_scope", message: "allowed_ips[0]"},
		{name: "every IPv6 address", caller: "ipbound", scopes: create, ips: []string{"::/0"}, status: 403, code: "insufficient_scope", message: "allowed_ips[0]"},
		{name: "IPv6 outside", caller: "ipbound", scopes: create, ips: []string{"2001:db9::/32"}, status: 403, code: "insufficient_scope", message: "allowed_ips[0]"},
		{name: "IPv4-mapped within", caller: "ipbound", scopes: create, ips: []string{"::ffff:10.1.0.0/112"}, status: 201},
		{name: "IPv4-mapped, every IPv4 address", caller: "ipbound", scopes: create, ips: []string{"::ffff:0:0/96"}, status: 403, code: "insufficient_scope", message: "allowed_ips[0]: 0.0.0.0/0"},
		{name: "IPv4-mapped outside", caller: "ipbound", scopes: create, ips: []string{"::ffff:192.168.0.0/112"}, status: 403, code: "insufficient_scope", message: "allowed_ips[0]: 192.168.0.0/16"},
		{name: "a zoned address within (zone dropped)", caller: "ipbound", scopes: create, ips: []string{"2001:db8::1%eth0"}, status: 201},
		{name: "a zoned link-local address outside", caller: "ipbound", scopes: create, ips: []string{"fe80::1%eth0"}, status: 403, code: "insufficient_scope", message: "allowed_ips[0]: fe80::1/128"},
		{name: "a malformed prefix is the registry's 400", caller: "ipbound", scopes: create, ips: []string{"10.0.0.1/8"}, status: 400, code: "invalid_request", message: "allowed_ips[0]"},
		{name: "an unbound caller gives any list", caller: "scoped", scopes: create, ips: []string{"0.0.0.0/0"}, status: 201},

		// expires_at: no later than the caller's.
		{name: "no expiry from an expiring caller", caller: "expiring", scopes: create, status: 403, code: "insufficient_scope", message: "expires_at"},
		{name: "a later expiry", caller: "expiring", scopes: create, expires: ptr(exp.Add(time.Second)), status: 403, code: "insufficient_scope", message: "expires_at"},
		{name: "the same expiry", caller: "expiring", scopes: create, expires: ptr(exp), status: 201},
		{name: "an earlier expiry", caller: "expiring", scopes: create, expires: ptr(exp.Add(-30 * time.Minute)), status: 201},
		{name: "an unbound caller gives no expiry", caller: "scoped", scopes: create, status: 201},

		// The red team's case, and what the same key may still make.
		{name: "narrow makes wide", caller: "narrow", scopes: every, status: 403, code: "insufficient_scope", message: "lacks tokens:create"},
		{name: "narrow makes wide but for scopes", caller: "narrow", scopes: []string{"keys:write"}, status: 403, code: "insufficient_scope", message: "allowed_ips"},
		{name: "narrow makes a copy of itself", caller: "narrow", scopes: []string{"keys:write"}, ips: []string{"127.0.0.1"}, expires: ptr(exp), status: 201},

		// A platform admin key is bound by nothing of this.
		{name: "admin makes any key", caller: "admin", scopes: every, status: 201},
		{name: "admin makes any list", caller: "admin", scopes: create, ips: []string{"::/0", "0.0.0.0/0"}, status: 201},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := fmt.Sprintf("k%d", n)
			body := map[string]any{"id": id, "scopes": c.scopes}
			if c.ips != nil {
				body["allowed_ips"] = c.ips
			}
			if c.expires != nil {
				body["expires_at"] = rfc(*c.expires)
			}
			r := do(t, "POST", a.URL+"/admin/orgs/acme/keys", callers[c.caller], body)
			expect(t, r, c.status, c.code)
			if msg, _ := r.Body["message"].(string); !strings.Contains(msg, c.message) {
				t.Fatalf("message %q lacks %q", msg, c.message)
			}
			listed := strings.Contains(a.do(t, "GET", "/admin/orgs/acme/keys", nil).Raw, `"id":"`+id+`"`)
			if listed != (c.status == 201) {
				t.Fatalf("%d, and key %s listed: %v", r.Status, id, listed)
			}
		})
	}

	// A key made within a bound caller's bounds works, from within them.
	r := do(t, "POST", a.URL+"/admin/orgs/acme/keys", callers["ipbound"], map[string]any{"id": "made-within",
		"scopes": create, "allowed_ips": []string{"127.0.0.1"}})
	expect(t, r, 201, "")
	within(t, time.Second, "a key made within the caller's bounds usable", 201, func() response {
		return do(t, "POST", a.URL+"/token", str(r, "key"), map[string]any{"agent": "bot", "channel": "chat"})
	})
}

// TestAdminTestKeyRevokesNoLiveKey: a test key with keys:write may list its
// org's keys (no secret, no hash) but revoke none but itself: the registry
// keeps a key's hash, not its environment, so a live key cannot be told
// from a test one, and a test key must never stop a live key. A live key
// and an admin key revoke as before.
func TestAdminTestKeyRevokesNoLiveKey(t *testing.T) {
	a := startAdmin(t, map[string]string{"BROKER_CONFIG": ""})
	expect(t, a.do(t, "POST", "/admin/orgs", map[string]any{"id": "acme", "tier": "enterprise", "rate_per_minute": 100000}), 201, "")
	expect(t, a.do(t, "PUT", "/admin/orgs/acme/agents/bot", map[string]any{"channels": []string{"chat"}, "livekit_agent_name": "acme-bot"}), 201, "")
	mk := func(id, env string, scopes ...string) string {
		r := a.do(t, "POST", "/admin/orgs/acme/keys", map[string]any{"id": id, "scopes": scopes, "env": env})
		expect(t, r, 201, "")
		return str(r, "key")
	}
	prod := mk("prod", "live", "tokens:create")
	ops := mk("ops", "live", "keys:write", "tokens:create")
	selfTest := mk("self-test", "test", "keys:write", "tokens:create")
	mk("other-live", "live", "tokens:create")
	within(t, time.Second, "the test key usable", 200, func() response { return do(t, "GET", a.URL+"/admin/orgs/acme/keys", selfTest, nil) })
	made := do(t, "POST", a.URL+"/admin/orgs/acme/keys", selfTest, map[string]any{"id": "made-by-test", "scopes": []string{"tokens:create"}})
	expect(t, made, 201, "")

	// Listing shows no secret and no hash, to a test key as to any.
	l := do(t, "GET", a.URL+"/admin/orgs/acme/keys", selfTest, nil)
	if l.Status != 200 || strings.Contains(l.Raw, "sha256:") || strings.Contains(l.Raw, prod) || strings.Contains(l.Raw, prod[len(prod)-20:]) {
		t.Fatalf("listing to a test key: %d %s", l.Status, l.Raw)
	}

	for _, c := range []struct {
		name, cred, id string
		status         int
		code           string
	}{
		{"a test key revokes a live key", selfTest, "prod", 403, "insufficient_scope"},
		{"a test key revokes a live keys:write key", selfTest, "ops", 403, "insufficient_scope"},
		{"a test key revokes a test key it made", selfTest, "made-by-test", 403, "insufficient_scope"},
		{"a live key revokes a live key", ops, "other-live", 204, ""},
		{"an admin key revokes a test key", a.admin, "made-by-test", 204, ""},
		{"a test key revokes itself", selfTest, "self-test", 204, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			expect(t, do(t, "DELETE", a.URL+"/admin/orgs/acme/keys/"+c.id, c.cred, nil), c.status, c.code)
		})
	}

	// What the test key tried to revoke is still in force.
	keys := a.do(t, "GET", "/admin/orgs/acme/keys", nil)
	for _, id := range []string{"prod", "ops"} {
		if !strings.Contains(keys.Raw, `"id":"`+id+`"`) || revoked(t, keys, id) {
			t.Fatalf("%s revoked: %s", id, keys.Raw)
		}
	}
	for _, id := range []string{"other-live", "made-by-test", "self-test"} {
		if !revoked(t, keys, id) {
			t.Fatalf("%s not revoked: %s", id, keys.Raw)
		}
	}
	expect(t, do(t, "POST", a.URL+"/token", prod, map[string]any{"agent": "bot", "channel": "chat"}), 201, "")
}

// revoked reports whether the key listing r shows key id as revoked.
func revoked(t *testing.T, r response, id string) bool {
	t.Helper()
	for _, k := range list(r, "keys") {
		if m, _ := k.(map[string]any); m["id"] == id {
			return m["revoked_at"] != nil
		}
	}
	t.Fatalf("no key %s in %s", id, r.Raw)
	return false
}

func ptr[T any](v T) *T { return &v }
