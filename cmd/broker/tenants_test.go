package main

import (
	"bytes"
	"encoding/base64"
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

// An org's LiveKit project through import and export: the import reads the
// secret from the variable the file names and seals it (so it needs
// BROKER_SECRETS_KEY_FILE); the export names LIVEKIT_API_SECRET_<ORG> and
// never holds the secret; with that variable set, the export passes config
// check and imports back as no change.
func TestTenantsImportExportLiveKit(t *testing.T) {
	db := testenv.PostgresURL(t)
	t.Setenv("ACME_LK_SECRET", registrytest.LiveKitSecret)
	file := writeFile(t, "tenants.yaml", registrytest.LiveKitYAML)
	keyFile := writeFile(t, "secrets.key", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))+"\n")

	code, out, errOut := runEnv(map[string]string{"BROKER_DATABASE_URL": db}, "tenants", "import", file)
	if code == 0 || !strings.Contains(errOut, "org acme has a livekit block: BROKER_SECRETS_KEY_FILE is not set") {
		t.Fatalf("import without a secrets key: exit %d\n%s%s", code, out, errOut)
	}
	env := map[string]string{"BROKER_DATABASE_URL": db, "BROKER_SECRETS_KEY_FILE": keyFile}
	if code, out, errOut := runEnv(env, "tenants", "import", file); code != 0 || !strings.Contains(out, "2 created") {
		t.Fatalf("import: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runEnv(env, "tenants", "import", file); code != 0 || !strings.Contains(out, "0 changed, 2 unchanged") {
		t.Fatalf("second import: exit %d\n%s%s", code, out, errOut)
	}
	// Export needs no secrets key: it never opens the secret.
	code, exported, errOut := runEnv(map[string]string{"BROKER_DATABASE_URL": db}, "tenants", "export")
	if code != 0 || strings.Contains(exported, registrytest.LiveKitSecret) || !strings.Contains(exported, "api_secret_env: LIVEKIT_API_SECRET_ACME\n") {
		t.Fatalf("export: exit %d\n%s%s", code, exported, errOut)
	}
	exportedPath := writeFile(t, "exported.yaml", exported)
	if code, _, errOut := runEnv(nil, "config", "check", exportedPath); code == 0 || !strings.Contains(errOut, "orgs[0].livekit.api_secret_env: the environment variable LIVEKIT_API_SECRET_ACME is not set") {
		t.Fatalf("config check of the export without its variable: exit %d\n%s", code, errOut)
	}
	t.Setenv("LIVEKIT_API_SECRET_ACME", registrytest.LiveKitSecret)
	if code, out, errOut := runEnv(nil, "config", "check", exportedPath); code != 0 {
		t.Fatalf("config check of the export: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runEnv(env, "tenants", "import", exportedPath); code != 0 || !strings.Contains(out, "0 changed, 2 unchanged") {
		t.Fatalf("import of the export: exit %d\n%s%s", code, out, errOut)
	}
	// The inline secret of a hand-written file is refused by import too,
	// without echoing it.
	inline := writeFile(t, "inline.yaml", strings.Replace(registrytest.LiveKitYAML, "api_secret_env: ACME_LK_SECRET", "api_secret: "+registrytest.LiveKitSecret, 1))
	code, out, errOut = runEnv(env, "tenants", "import", inline)
	if code == 0 || !strings.Contains(errOut, "orgs[0].livekit.api_secret: a secret is never written in the tenants file") ||
		strings.Contains(out+errOut, registrytest.LiveKitSecret) {
		t.Fatalf("import of an inline secret: exit %d\n%s%s", code, out, errOut)
	}
}
