package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/apikey"
)

// TestKeysNewAdmin: `broker keys new --admin` prints a platform admin key
// once and a BROKER_ADMIN_KEY_HASHES line that the broker accepts and that
// holds that key's hash; it takes no org, scope or test environment.
func TestKeysNewAdmin(t *testing.T) {
	code, out, errOut := runCmd("keys", "new", "--admin")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	key := regexp.MustCompile(`(?m)^ak_live_[0-9A-Za-z]{43}$`).FindString(out)
	line := regexp.MustCompile(`(?m)^BROKER_ADMIN_KEY_HASHES=(sha256:[0-9a-f]{64})$`).FindStringSubmatch(out)
	if key == "" || line == nil || line[1] != apikey.Hash(key) || strings.Count(out, key) != 1 {
		t.Fatalf("output:\n%s", out)
	}
	if !strings.Contains(out, "admin:"+line[1][7:15]) {
		t.Fatalf("the output does not say how logs name the key:\n%s", out)
	}
	e, err := config.LoadEnv(func(n string) string { return map[string]string{"BROKER_ADMIN_KEY_HASHES": line[1]}[n] })
	if err != nil || len(e.Admin.KeyHashes) != 1 {
		t.Fatalf("the printed hash: %v", err)
	}
	if _, out2, _ := runCmd("keys", "new", "--admin", "--env", "live"); strings.Contains(out2, key) || !strings.Contains(out2, "ak_live_") {
		t.Fatal("a second run did not make a new key")
	}
	for _, bad := range [][]string{
		{"keys", "new", "--admin", "--org", "acme"},
		{"keys", "new", "--admin", "--scopes", "keys:write"},
		{"keys", "new", "--admin", "--env", "test"},
		{"keys", "new", "--admin", "--publishable"},
		{"keys", "new", "--admin", "extra"},
	} {
		code, out, errOut := runCmd(bad...)
		if code != 2 || out != "" || !strings.Contains(errOut, "broker keys new:") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", bad, code, out, errOut)
		}
	}
	if code, out, _ := runCmd("help"); code != 0 || !strings.Contains(out, "keys new --admin") {
		t.Fatal("usage does not list keys new --admin")
	}
}
