package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/voicebroker/voicebroker/internal/registry/registrytest"
	"github.com/voicebroker/voicebroker/internal/testenv"
)

func runEnv(env map[string]string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb, func(k string) string { return env[k] })
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// import, import again (nothing changes), export, config check of the
// export, and the export imported into another database exports the same.
func TestTenantsImportExport(t *testing.T) {
	env := map[string]string{"BROKER_DATABASE_URL": testenv.PostgresURL(t), "BROKER_CONFIG": "/ignored/by/these/commands"}
	file := writeFile(t, "tenants.yaml", registrytest.SeedYAML)

	code, out, errOut := runEnv(env, "tenants", "import", file)
	if code != 0 || !strings.Contains(out, "2 created, 0 changed, 0 unchanged") || !strings.Contains(out, "created: acme, globex") {
		t.Fatalf("first import: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runEnv(env, "tenants", "import", file)
	if code != 0 || !strings.Contains(out, "0 created, 0 changed, 2 unchanged") {
		t.Fatalf("second import: exit %d\n%s%s", code, out, errOut)
	}
	code, exported, errOut := runEnv(env, "tenants", "export")
	if code != 0 {
		t.Fatalf("export: exit %d: %s", code, errOut)
	}
	for _, s := range []string{registrytest.KeyActive, registrytest.PubA} {
		if strings.Contains(exported, s) {
			t.Fatal("a key in the export")
		}
	}
	exportedPath := writeFile(t, "exported.yaml", exported)
	if code, out, errOut := runEnv(nil, "config", "check", exportedPath); code != 0 {
		t.Fatalf("config check of the export: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := runEnv(env, "tenants", "import", exportedPath); code != 0 || !strings.Contains(out, "0 created, 0 changed, 2 unchanged") {
		t.Fatalf("import of the export: exit %d\n%s", code, out)
	}
	other := map[string]string{"BROKER_DATABASE_URL": testenv.PostgresURL(t)}
	if code, _, errOut := runEnv(other, "tenants", "import", exportedPath); code != 0 {
		t.Fatalf("import elsewhere: %s", errOut)
	}
	if code, again, _ := runEnv(other, "tenants", "export"); code != 0 || again != exported {
		t.Fatalf("round trip differs:\n%s\n---\n%s", exported, again)
	}
	if code, out, _ := runEnv(other, "migrate"); code != 0 || !strings.Contains(out, "already at version") {
		t.Fatalf("migrate: exit %d %s", code, out)
	}
}

func TestTenantsCommandErrors(t *testing.T) {
	const password = "pw-never-printed"
	bad := writeFile(t, "bad.yaml", "orgs:\n  - id: acme\n    tier: gold\n    keys:\n      - id: k\n        hash: nope\n        scopes: [tokens:create]\n")
	good := writeFile(t, "good.yaml", registrytest.SeedYAML)
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want []string
	}{
		{"no database", nil, []string{"tenants", "export"}, []string{"BROKER_DATABASE_URL: required"}},
		{"bad url", map[string]string{"BROKER_DATABASE_URL": "mysql://u:" + password + "@h/db"}, []string{"tenants", "import", good}, []string{"BROKER_DATABASE_URL: must be"}},
		{"unreachable", map[string]string{"BROKER_DATABASE_URL": "postgres://u:" + password + "@127.0.0.1:1/db?connect_timeout=2"}, []string{"migrate"}, []string{"BROKER_DATABASE_URL", "unreachable"}},
		{"bad file", map[string]string{"BROKER_DATABASE_URL": "postgres://u:" + password + "@127.0.0.1:1/db"}, []string{"tenants", "import", bad},
			[]string{"2 problem(s)", "orgs[0].tier", "orgs[0].keys[0].hash"}},
		{"no file", map[string]string{"BROKER_DATABASE_URL": "postgres://h/db"}, []string{"tenants", "import", "/nonexistent.yaml"}, []string{"no such file"}},
		{"usage", nil, []string{"tenants", "frobnicate"}, []string{"broker tenants import FILE"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runEnv(tc.env, tc.args...)
			if code == 0 {
				t.Fatalf("exit 0: %s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Fatalf("%q not in:\n%s", w, errOut)
				}
			}
			if strings.Contains(out+errOut, password) || strings.Contains(errOut, "goroutine") {
				t.Fatalf("output holds the password or a stack:\n%s", errOut)
			}
		})
	}
}
