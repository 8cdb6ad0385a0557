package config_test

import (
	"strings"
	"testing"

	"github.com/voicebroker/voicebroker/config"
)

// TestAuthNotRequiredNeedsItsOrg: AUTH_REQUIRED=false lets a request
// without a credential through as the only org, or as org "default" when
// there are several; a tenants file where neither exists is refused,
// naming the variable, at start and on every reload (CheckTenants).
func TestAuthNotRequiredNeedsItsOrg(t *testing.T) {
	org := func(id string) string { return "  - id: " + id + "\n    tier: free\n" }
	cases := []struct {
		name, file, org string // org "" means refused
	}{
		{"one org", "orgs:\n" + org("acme"), "acme"},
		{"one org named default", "orgs:\n" + org("default"), "default"},
		{"several with default", "orgs:\n" + org("acme") + org("default") + org("globex"), "default"},
		{"two without default", "orgs:\n" + org("acme") + org("globex"), ""},
		{"near-miss default", "orgs:\n" + org("acme") + org("default-org"), ""},
		{"many without default", "orgs:\n" + org("a1") + org("a2") + org("a3") + org("a4") + org("a5") + org("a6") + org("a7"), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ten, err := config.Parse([]byte(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, ok := config.AnonymousOrg(ten)
			if got != tc.org || ok != (tc.org != "") {
				t.Fatalf("AnonymousOrg = %q, %v; want %q", got, ok, tc.org)
			}
			for _, required := range []string{"true", "false"} {
				e, err := config.LoadEnv(env(map[string]string{"AUTH_REQUIRED": required}))
				if err != nil {
					t.Fatal(err)
				}
				err = e.CheckTenants(ten)
				switch {
				case required == "true" || tc.org != "":
					if err != nil {
						t.Fatalf("AUTH_REQUIRED=%s: %v", required, err)
					}
				case err == nil:
					t.Fatal("AUTH_REQUIRED=false accepted with no org for requests without a credential")
				case !strings.HasPrefix(err.Error(), "invalid environment:\n  AUTH_REQUIRED: ") || !strings.Contains(err.Error(), `add an org "default"`):
					t.Fatalf("error %q does not name AUTH_REQUIRED and the way out", err)
				}
			}
		})
	}
}
