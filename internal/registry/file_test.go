package registry_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/voicebroker/voicebroker/internal/registry"
)

// TestParseFileInResolvesSecretFiles: an import reads a livekit block's
// relative api_secret_file from the tenants file's directory, as the
// broker serving that file does, whatever the working directory.
func TestParseFileInResolvesSecretFiles(t *testing.T) {
	dir := t.TempDir()
	secret := strings.Repeat("s", 40)
	if err := os.WriteFile(filepath.Join(dir, "acme.secret"), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := []byte("orgs:\n  - id: acme\n    tier: free\n    livekit: {url: \"wss://acme.example\", api_key: acmekey, api_secret_file: acme.secret}\n")
	f, err := registry.ParseFileIn(data, dir)
	if err != nil {
		t.Fatal(err)
	}
	l := f.Orgs[0].LiveKit
	if l.APISecretFile != filepath.Join(dir, "acme.secret") {
		t.Fatalf("api_secret_file %q", l.APISecretFile)
	}
	if got, err := l.ReadSecret(); err != nil || got != secret {
		t.Fatalf("ReadSecret: %v", err)
	}
	if _, err := registry.ParseFile(data); err == nil || !strings.Contains(err.Error(), "orgs[0].livekit.api_secret_file") {
		t.Fatalf("from the working directory: err = %v", err)
	}
}
