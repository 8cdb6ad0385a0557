package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/voicebroker/voicebroker/config"
)

func twoOrgsWithIssuers(issA, audA, issB, audB string) string {
	return `orgs:
  - id: acme
    tier: free
    jwt_issuers:
      - issuer: "` + issA + `"
        audience: "` + audA + `"
        jwks_url: https://idp.example/jwks.json
        scopes: [tokens:create]
  - id: globex
    tier: free
    jwt_issuers:
      - issuer: "` + issB + `"
        audience: "` + audB + `"
        jwks_url: https://idp.example/jwks.json
        scopes: [tokens:create]
`
}

// TestIssuerPairBelongsToOneOrg: the same (issuer, audience) pair in two
// orgs is refused, however the second spells the URL.
func TestIssuerPairBelongsToOneOrg(t *testing.T) {
	const iss, aud = "https://auth.acme.example", "voicebroker"
	refused := []struct{ name, issB, audB string }{
		{"identical", iss, aud},
		{"trailing slash", iss + "/", aud},
		{"two trailing slashes", iss + "//", aud},
		{"uppercase host", "https://AUTH.Acme.Example", aud},
		{"uppercase scheme", "HTTPS://auth.acme.example", aud},
		{"default port", "https://auth.acme.example:443", aud},
		{"default port with zeros", "https://auth.acme.example:0443", aud},
		{"trailing dot", "https://auth.acme.example./", aud},
		{"dot segment", "https://auth.acme.example/.", aud},
		{"percent-encoded path", "https://auth.acme.example/%74enant", aud},
		{"audience as URL variant", iss, aud},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte(twoOrgsWithIssuers(iss, aud, tc.issB, tc.audB)))
			if tc.name == "percent-encoded path" {
				// /%74enant is /tenant: compare against that spelling.
				_, err = config.Parse([]byte(twoOrgsWithIssuers(iss+"/tenant", aud, tc.issB, tc.audB)))
			}
			if err == nil || !strings.Contains(err.Error(), "orgs[1].jwt_issuers[0]: issuer") ||
				!strings.Contains(err.Error(), `already trusted by org "acme" (orgs[0].jwt_issuers[0])`) {
				t.Fatalf("err = %v", err)
			}
		})
	}
	t.Run("URL audiences", func(t *testing.T) {
		_, err := config.Parse([]byte(twoOrgsWithIssuers(iss, "https://api.acme.example", iss, "HTTPS://API.acme.example:443/")))
		if err == nil || !strings.Contains(err.Error(), "one org only") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("IDN host", func(t *testing.T) {
		_, err := config.Parse([]byte(twoOrgsWithIssuers("https://bücher.example", aud, "https://xn--bcher-kva.example", aud)))
		if err == nil || !strings.Contains(err.Error(), "one org only") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("IP spelling", func(t *testing.T) {
		_, err := config.Parse([]byte(twoOrgsWithIssuers("https://[::ffff:10.0.0.1]", aud, "https://10.0.0.1:443", aud)))
		if err == nil || !strings.Contains(err.Error(), "one org only") {
			t.Fatalf("err = %v", err)
		}
	})
	// Allowed: one identity provider for several orgs with distinct
	// audiences, other issuers, and one org listing a pair twice (key
	// rotation with two public_key_file entries).
	for _, ok := range [][4]string{
		{iss, "acme-api", iss, "globex-api"},
		{iss, aud, "https://auth.globex.example", aud},
		{iss, aud, iss + "/globex", aud},
		{"acme-backend", aud, "globex-backend", aud},
		{"https://auth.acme.example:8443", aud, iss, aud},
	} {
		if _, err := config.Parse([]byte(twoOrgsWithIssuers(ok[0], ok[1], ok[2], ok[3]))); err != nil {
			t.Errorf("%v refused: %v", ok, err)
		}
	}
	same := strings.Replace(twoOrgsWithIssuers(iss, aud, iss, aud), "  - id: globex\n    tier: free\n    jwt_issuers:\n", "", 1)
	if _, err := config.Parse([]byte(same)); err != nil {
		t.Errorf("one org listing its pair twice refused: %v", err)
	}
}

// TestIssuerFieldsChecked: issuers and audiences that are URLs must be
// plain http(s) URLs; no stray spaces.
func TestIssuerFieldsChecked(t *testing.T) {
	for _, bad := range []string{"https://auth.acme.example?x=1", "https://auth.acme.example#frag", "https://user@auth.acme.example", " https://auth.acme.example", "ftp://auth.acme.example", "https://"} {
		_, err := config.Parse([]byte(twoOrgsWithIssuers(bad, "vb", "https://other.example", "vb")))
		if err == nil || !strings.Contains(err.Error(), "orgs[0].jwt_issuers[0].issuer") {
			t.Errorf("issuer %q: err = %v", bad, err)
		}
	}
}

// TestReloadRefusesSharedIssuer: a reload that adds another org's pair is
// refused and the previous tenants stay in force.
func TestReloadRefusesSharedIssuer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenants.yaml")
	first := twoOrgsWithIssuers("https://auth.acme.example", "vb", "https://auth.globex.example", "vb")
	if err := os.WriteFile(path, []byte(first), 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := config.NewHolder(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := h.Current()
	if err := os.WriteFile(path, []byte(twoOrgsWithIssuers("https://auth.acme.example", "vb", "https://auth.acme.example/", "vb")), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Reload(false); err == nil || !strings.Contains(err.Error(), "one org only") {
		t.Fatalf("reload err = %v", err)
	}
	if h.Current() != before {
		t.Fatal("the refused file replaced the tenants")
	}
}
