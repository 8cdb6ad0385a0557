package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/config"
)

// TestAPISecretsRefused: secrets that could never match, or would match
// ambiguously, and malformed AUTH_API_SECRETS_JSON are refused with the
// variable and entry named and no secret echoed.
func TestAPISecretsRefused(t *testing.T) {
	s1, s2 := strings.Repeat("s", 40), strings.Repeat("t", 40)
	entry := func(id, secret string) string { return `{"id":"` + id + `","secret":"` + secret + `"}` }
	cases := []struct {
		name string
		vars map[string]string
		want string
	}{
		{"sk_ secret", map[string]string{"AUTH_API_SECRET": "sk_live_" + s1}, "AUTH_API_SECRET (id \"default\"): the secret begins with sk_"},
		{"pk_ secret in JSON", map[string]string{"AUTH_API_SECRETS_JSON": "[" + entry("acme", "pk_test_"+s1) + "]"}, "AUTH_API_SECRETS_JSON entry 0 (id \"acme\"): the secret begins with sk_ or pk_"},
		{"empty secret", map[string]string{"AUTH_API_SECRETS_JSON": "[" + entry("acme", "") + "]"}, "entry 0 (id \"acme\"): the secret is shorter than 32 bytes"},
		{"space inside", map[string]string{"AUTH_API_SECRETS_JSON": "[" + entry("acme", s1+" x") + "]"}, "holds a space"},
		{"space around", map[string]string{"AUTH_API_SECRET": s1 + " "}, "AUTH_API_SECRET (id \"default\"): the secret holds a space"},
		{"non-ASCII", map[string]string{"AUTH_API_SECRETS_JSON": "[" + entry("acme", s1+"é") + "]"}, "non-ASCII"},
		{"control char", map[string]string{"AUTH_API_SECRETS_JSON": "[" + entry("acme", s1+`\u0007`) + "]"}, "control"},
		{"too long", map[string]string{"AUTH_API_SECRET": strings.Repeat("x", 2000)}, "longer than 1024"},
		{"same secret twice", map[string]string{"AUTH_API_SECRETS_JSON": "[" + entry("acme", s1) + "," + entry("globex", s1) + "]"}, "entry 1 (id \"globex\"): the same secret is listed twice (also AUTH_API_SECRETS_JSON entry 0)"},
		{"same secret in both variables", map[string]string{"AUTH_API_SECRET": s1, "AUTH_API_SECRETS_JSON": "[" + entry("acme", s1) + "]"}, "listed twice (also AUTH_API_SECRET)"},
		{"bad id", map[string]string{"AUTH_API_SECRETS_JSON": "[" + entry("Acme Corp", s1) + "]"}, "the id must match"},
		{"empty id", map[string]string{"AUTH_API_SECRETS_JSON": "[" + entry("", s1) + "]"}, "the id must match"},
		{"duplicate key", map[string]string{"AUTH_API_SECRETS_JSON": `[{"id":"acme","id":"globex","secret":"` + s1 + `"}]`}, `entry 0: "id" appears twice`},
		{"case-variant key", map[string]string{"AUTH_API_SECRETS_JSON": `[{"ID":"acme","secret":"` + s1 + `"}]`}, `a key other than "id" and "secret"`},
		{"extra key", map[string]string{"AUTH_API_SECRETS_JSON": `[{"id":"acme","secret":"` + s1 + `","x":1}]`}, `a key other than "id" and "secret"`},
		{"missing secret", map[string]string{"AUTH_API_SECRETS_JSON": `[{"id":"acme"}]`}, "needs both"},
		{"number secret", map[string]string{"AUTH_API_SECRETS_JSON": `[{"id":"acme","secret":12345}]`}, `"secret" must be a string`},
		{"null entry", map[string]string{"AUTH_API_SECRETS_JSON": `[null]`}, "entry 0"},
		{"object not array", map[string]string{"AUTH_API_SECRETS_JSON": entry("acme", s1)}, "must be a JSON array"},
		{"trailing junk", map[string]string{"AUTH_API_SECRETS_JSON": "[" + entry("acme", s1) + "] " + s2}, "something follows the array"},
		{"two arrays", map[string]string{"AUTH_API_SECRETS_JSON": "[" + entry("acme", s1) + "][]"}, "something follows the array"},
		{"broken JSON", map[string]string{"AUTH_API_SECRETS_JSON": `[{"id":"acme","secret":"` + s1}, "not valid JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.LoadEnv(env(tc.vars))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			for _, secret := range []string{s1, s2} {
				if strings.Contains(err.Error(), secret[:32]) {
					t.Fatal("the error echoes a secret")
				}
			}
		})
	}
	// A secret may be rotated: two secrets for one org.
	if _, err := config.LoadEnv(env(map[string]string{"AUTH_API_SECRETS_JSON": "[" + entry("acme", s1) + "," + entry("acme", s2) + "]"})); err != nil {
		t.Fatalf("two secrets of one org refused: %v", err)
	}
}

func tenantsWith(orgs ...string) *config.Tenants {
	y := "orgs:\n"
	for _, o := range orgs {
		y += "  - id: " + o + "\n    tier: free\n"
	}
	t, err := config.Parse([]byte(y))
	if err != nil {
		panic(err)
	}
	return t
}

// TestSecretsMustNameOrgs: every API secret must name an org of the tenants.
func TestSecretsMustNameOrgs(t *testing.T) {
	s := strings.Repeat("s", 40)
	e, err := config.LoadEnv(env(map[string]string{
		"AUTH_API_SECRETS_JSON": `[{"id":"acme","secret":"` + s + `a"},{"id":"initech","secret":"` + s + `b"}]`,
	}))
	if err != nil {
		t.Fatal(err)
	}
	err = e.CheckTenants(tenantsWith("acme", "globex"))
	if err == nil || !strings.Contains(err.Error(), `AUTH_API_SECRETS_JSON: entry 1 (id "initech"): org "initech" is not in the tenants file`) {
		t.Fatalf("err = %v", err)
	}
	if err := e.CheckTenants(tenantsWith("acme", "initech")); err != nil {
		t.Fatal(err)
	}
	d, _ := config.LoadEnv(env(map[string]string{"AUTH_API_SECRET": s}))
	if err := d.CheckTenants(tenantsWith("acme")); err == nil || !strings.Contains(err.Error(), `AUTH_API_SECRET: stands for org "default"`) {
		t.Fatalf("err = %v", err)
	}
	if err := d.CheckTenants(tenantsWith("acme", "default")); err != nil {
		t.Fatal(err)
	}
}

// TestReloadKeepsOrgsSecretsName: a reload that removes an org an API
// secret names is refused, and the old tenants stay.
func TestReloadKeepsOrgsSecretsName(t *testing.T) {
	s := strings.Repeat("s", 40)
	e, err := config.LoadEnv(env(map[string]string{"AUTH_API_SECRETS_JSON": `[{"id":"globex","secret":"` + s + `"}]`}))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tenants.yaml")
	os.WriteFile(path, []byte("orgs:\n  - id: acme\n    tier: free\n"), 0o600)
	if _, err := config.NewHolder(path, nil, nil, e.CheckTenants); err == nil || !strings.Contains(err.Error(), `"globex"`) {
		t.Fatalf("start without the org: err = %v", err)
	}
	os.WriteFile(path, []byte("orgs:\n  - id: acme\n    tier: free\n  - id: globex\n    tier: free\n"), 0o600)
	var results []bool
	h, err := config.NewHolder(path, nil, func(ok bool) { results = append(results, ok) }, e.CheckTenants)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, []byte("orgs:\n  - id: acme\n    tier: pro\n"), 0o600)
	if _, err := h.Reload(false); err == nil || !strings.Contains(err.Error(), "AUTH_API_SECRETS_JSON") {
		t.Fatalf("reload err = %v", err)
	}
	if h.Current().Org("globex") == nil || h.Current().Org("acme").Tier != "free" {
		t.Fatal("the refused reload replaced the tenants")
	}
	if len(results) != 1 || results[0] {
		t.Fatalf("reload hook results %v, want [false]", results)
	}
}

// TestDeadlinesOrdered: no upstream deadline may outlast the response.
func TestDeadlinesOrdered(t *testing.T) {
	e, err := config.LoadEnv(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if e.RequestTimeout <= 0 || e.RequestTimeout+e.StoreTimeout+config.ReplyTime > config.WriteTimeout {
		t.Fatalf("request deadline %s does not leave room before %s", e.RequestTimeout, config.WriteTimeout)
	}
	chain := max(e.AuthTimeout, config.JWKSTimeout) + e.LiveKitTimeout + 2*e.StoreTimeout
	if chain > e.RequestTimeout {
		t.Fatalf("default chain %s exceeds %s", chain, e.RequestTimeout)
	}
	for _, tc := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"AUTH_TIMEOUT_SECONDS": "60"}, "AUTH_TIMEOUT_SECONDS: 1m0s would outlast the response"},
		{map[string]string{"AUTH_TIMEOUT_SECONDS": "31"}, "AUTH_TIMEOUT_SECONDS: 31s would outlast"},
		{map[string]string{"AUTH_TIMEOUT_SECONDS": "28s"}, "AUTH_TIMEOUT_SECONDS: 28s would outlast"},
		{map[string]string{"AUTH_TIMEOUT_SECONDS": "25"}, "AUTH_TIMEOUT_SECONDS, BROKER_LIVEKIT_TIMEOUT, BROKER_STORE_TIMEOUT: an auth check (25s)"},
		{map[string]string{"BROKER_LIVEKIT_TIMEOUT": "45s"}, "BROKER_LIVEKIT_TIMEOUT: 45s would outlast"},
		{map[string]string{"BROKER_LIVEKIT_TIMEOUT": "20s", "AUTH_TIMEOUT_SECONDS": "10"}, "take up to 31s"},
		{map[string]string{"BROKER_STORE_TIMEOUT": "9s"}, "take up to 28s"},
	} {
		_, err := config.LoadEnv(env(tc.vars))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.vars, err, tc.want)
		}
	}
	ok, err := config.LoadEnv(env(map[string]string{"AUTH_TIMEOUT_SECONDS": "15", "BROKER_LIVEKIT_TIMEOUT": "8s", "BROKER_STORE_TIMEOUT": "1s"}))
	if err != nil || ok.AuthTimeout != 15*time.Second {
		t.Fatalf("a consistent set refused: %v", err)
	}
}
