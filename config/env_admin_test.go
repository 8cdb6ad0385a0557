package config_test

import (
	"strings"
	"testing"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/apikey"
)

// TestAdminEnv: BROKER_ADMIN_KEY_HASHES is a comma list of sha256: hashes,
// each checked at start with a message that names the entry but never
// quotes it (an admin key pasted there by mistake must not reach a log);
// BROKER_ADMIN_ADDR is a host:port apart from BROKER_ADDR.
func TestAdminEnv(t *testing.T) {
	k1, _ := apikey.New(apikey.Admin, apikey.Live)
	k2, _ := apikey.New(apikey.Admin, apikey.Live)
	h1, h2 := apikey.Hash(k1), apikey.Hash(k2)

	e, err := config.LoadEnv(env(map[string]string{"BROKER_ADMIN_KEY_HASHES": " " + h1 + " ,\t" + h2 + " ", "BROKER_ADMIN_ADDR": "127.0.0.1:9090"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Admin.KeyHashes) != 2 || e.Admin.KeyHashes[0] != h1 || e.Admin.KeyHashes[1] != h2 || e.Admin.Addr != "127.0.0.1:9090" {
		t.Fatalf("admin env = %+v", e.Admin)
	}
	if e, err := config.LoadEnv(env(nil)); err != nil || len(e.Admin.KeyHashes) != 0 || e.Admin.Addr != "" {
		t.Fatalf("defaults: %+v %v", e, err)
	}

	for _, c := range []struct {
		name, hashes, addr, want string
	}{
		{"a key instead of its hash", h1 + "," + k2, "", "entry 2 of 2 is an admin key itself"},
		{"not a hash", "sha256:abc", "", "entry 1 of 1 is not \"sha256:\""},
		{"upper-case hex", strings.ToUpper(h1), "", "entry 1 of 1 is not"},
		{"md5", "md5:" + strings.Repeat("0", 32), "", "entry 1 of 1 is not"},
		{"empty entry", h1 + ",," + h2, "", "entry 2 of 3 is empty"},
		{"trailing comma", h1 + ",", "", "entry 2 of 2 is empty"},
		{"repeated", h1 + "," + h2 + "," + h1, "", "entry 3 of 3 repeats entry 1"},
		{"addr junk", "", "localhost", "BROKER_ADMIN_ADDR"},
		{"addr port", "", "127.0.0.1:99999", "BROKER_ADMIN_ADDR"},
		{"addr is BROKER_ADDR", "", ":8080", "BROKER_ADMIN_ADDR: \":8080\" is BROKER_ADDR's address"},
		{"addr on BROKER_ADDR's port", "", "127.0.0.1:8080", "BROKER_ADMIN_ADDR: \"127.0.0.1:8080\" is BROKER_ADDR's address"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := config.LoadEnv(env(map[string]string{"BROKER_ADMIN_KEY_HASHES": c.hashes, "BROKER_ADMIN_ADDR": c.addr}))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if c.hashes != "" && !strings.Contains(err.Error(), "BROKER_ADMIN_KEY_HASHES: ") && !strings.Contains(c.want, "ADDR") {
				t.Fatalf("the message does not name the variable: %v", err)
			}
			for _, s := range []string{k1, k2, k2[8:], h1[7:], h2[7:]} {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("the message quotes a key or hash: %v", err)
				}
			}
		})
	}
}

// TestKeysWriteScope: keys:write is a scope of secret keys; a jwt_issuers
// entry may not carry it (backend JWTs never reach the admin API).
func TestKeysWriteScope(t *testing.T) {
	key := `orgs:
  - id: acme
    tier: free
    keys:
      - id: ops
        hash: "` + apikey.Hash("x") + `"
        scopes: [keys:write]
`
	if _, err := config.Parse([]byte(key)); err != nil {
		t.Fatalf("a key with keys:write: %v", err)
	}
	issuer := `orgs:
  - id: acme
    tier: free
    jwt_issuers:
      - issuer: https://auth.acme.example
        audience: voicebroker
        jwks_url: https://auth.acme.example/jwks.json
        scopes: [tokens:create, keys:write]
`
	_, err := config.Parse([]byte(issuer))
	if err == nil || !strings.Contains(err.Error(), "orgs[0].jwt_issuers[0].scopes[1]: keys:write is for secret keys only") {
		t.Fatalf("an issuer with keys:write: %v", err)
	}
}

// TestAPISecretWithAdminPrefix: an API secret that begins with ak_ could
// never match (such credentials are admin keys, tried nowhere else), so it
// is refused at start.
func TestAPISecretWithAdminPrefix(t *testing.T) {
	secret := "ak_live_" + strings.Repeat("a", 40)
	_, err := config.LoadEnv(env(map[string]string{"AUTH_API_SECRET": secret}))
	if err == nil || !strings.Contains(err.Error(), "AUTH_API_SECRET (id \"default\"): the secret begins with ak_") || strings.Contains(err.Error(), secret) {
		t.Fatalf("err = %v", err)
	}
}
