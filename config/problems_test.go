package config_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/voicebroker/voicebroker/config"
)

// severalMistakes holds one mistake of each kind the loader finds, so that
// a single reading must report them all: validation (bad id, rate outside
// its tier, bad hash, unknown scope, public-suffix origin), the decoder
// (unknown field, a string where a list goes), the strict check (yes for a
// boolean) and a date the decoder itself cannot read.
const severalMistakes = `orgs:
  - id: Acme
    tier: pro
    rate_per_minute: 10
    colour: red
    keys:
      - id: main
        hash: "sha256:zz"
        scopes: [tokens:create, tokens:fly]
        expires_at: tomorrow
        revoked: yes
    agents:
      - id: bot
        channels: webrtc
      - id: bot2
        channels: [webrtc]
        public:
          key_hash: "sha256:abc"
          allowed_origins: ["https://*.github.io"]
  - id: globex
    tier: gold
    keys:
      - id: k
        hash: 'sha256:` + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" + `'
        scopes: [tokens:create]
        expires_at: "2027-06-01"
`

// TestParseReportsEveryProblemInLineOrder: one reading reports every kind
// of mistake at once, each once, in the order of the file's lines, each
// with its line.
func TestParseReportsEveryProblemInLineOrder(t *testing.T) {
	_, err := config.Parse([]byte(severalMistakes))
	var ve *config.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v", err)
	}
	want := []string{
		`orgs[0].id: "Acme" must match`,
		"orgs[0].rate_per_minute: only allowed with tier enterprise",
		"orgs[0].colour: unknown field",
		"orgs[0].keys[0].hash: must be",
		`orgs[0].keys[0].scopes[1]: unknown scope "tokens:fly"`,
		`orgs[0].keys[0].expires_at: must be a date and time such as 2027-06-01T00:00:00Z (RFC 3339, with Z or an offset such as +02:00), not "tomorrow"`,
		`orgs[0].keys[0].revoked: must be true or false, not "yes"`,
		`orgs[0].agents[0].channels: must be a list of strings, not "webrtc"`,
		"orgs[0].agents[1].public.key_hash: must be",
		"orgs[0].agents[1].public.allowed_origins[0]:",
		`orgs[1].tier: unknown tier "gold"`,
		`orgs[1].keys[0].expires_at: must be a date and time`,
	}
	if len(ve.Problems) != len(want) {
		t.Fatalf("%d problems, want %d:\n  %s", len(ve.Problems), len(want), strings.Join(ve.Problems, "\n  "))
	}
	reLine := regexp.MustCompile(`\(line (\d+)\)$`)
	last := 0
	for i, p := range ve.Problems {
		if !strings.HasPrefix(p, want[i]) {
			t.Errorf("problem %d is %q, want %q first", i, p, want[i])
		}
		m := reLine.FindStringSubmatch(p)
		if m == nil {
			t.Errorf("problem %q does not give its line", p)
			continue
		}
		line, _ := strconv.Atoi(m[1])
		if line < last {
			t.Errorf("problem %q (line %d) comes after line %d", p, line, last)
		}
		last = line
	}
	// The string refused as channels is not also reported as an agent
	// without channels: that would be the same mistake twice.
	if strings.Count(err.Error(), "orgs[0].agents[0].channels") != 1 {
		t.Errorf("channels reported more than once:\n%v", err)
	}
}

// TestParseStopsAtSyntaxError: a YAML syntax error is the one problem
// reported, since nothing past it has a shape to check; the README says so.
func TestParseStopsAtSyntaxError(t *testing.T) {
	data := strings.Replace(severalMistakes, "channels: [webrtc]", "channels: [webrtc", 1)
	_, err := config.Parse([]byte(data))
	var ve *config.ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 1 || !strings.Contains(ve.Problems[0], "not valid YAML at line") {
		t.Fatalf("err = %v", err)
	}
}

// TestRelativePathsFollowTheFile: a relative public_key_file or
// api_secret_file is read from the tenants file's directory, wherever the
// broker runs; an absolute one is read where it says.
func TestRelativePathsFollowTheFile(t *testing.T) {
	dir := t.TempDir()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	os.MkdirAll(filepath.Join(dir, "keys"), 0o700)
	os.WriteFile(filepath.Join(dir, "keys", "idp.pem"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, "keys", "lk.secret"), []byte(strings.Repeat("s", 40)+"\n"), 0o600)
	abs := filepath.Join(t.TempDir(), "abs.pem")
	os.WriteFile(abs, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600)
	tenants := `orgs:
  - id: acme
    tier: free
    jwt_issuers:
      - {issuer: "https://idp.example", audience: vb, public_key_file: keys/idp.pem, scopes: [tokens:create]}
      - {issuer: "https://idp2.example", audience: vb, public_key_file: "` + abs + `", scopes: [tokens:create]}
    livekit: {url: "wss://acme.example", api_key: acmekey, api_secret_file: ./keys/lk.secret}
`
	path := filepath.Join(dir, "tenants.yaml")
	os.WriteFile(path, []byte(tenants), 0o600)
	// The working directory is elsewhere: the test's own package.
	ten, _, err := config.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	o := ten.Org("acme")
	if o.JWTIssuers[0].PublicKey() == nil || o.JWTIssuers[1].PublicKey() == nil || o.LiveKit.Secret() != strings.Repeat("s", 40) {
		t.Fatal("a key or secret was not read")
	}
	if got := o.JWTIssuers[0].PublicKeyFile; got != filepath.Join(dir, "keys", "idp.pem") {
		t.Errorf("public_key_file resolved to %q", got)
	}
	// Parse, without a directory, reads from the working directory: the
	// same file is then missing its key, named by its path.
	_, err = config.Parse([]byte(tenants))
	if err == nil || !strings.Contains(err.Error(), "orgs[0].jwt_issuers[0].public_key_file") || !strings.Contains(err.Error(), "orgs[0].livekit.api_secret_file") {
		t.Fatalf("err = %v", err)
	}
}

// TestParseGoesPastUnreadableDates: a date the YAML decoder cannot read,
// quoted or not, on one line or over several, does not hide the problems
// after it (the decoder alone stops at the first).
func TestParseGoesPastUnreadableDates(t *testing.T) {
	for name, date := range map[string]string{
		"plain":                 "soon",
		"single-quoted":         "'it''s soon'",
		"double-quoted":         `"soon \" enough"`,
		"multi-byte before":     "'bientôt' # é",
		"quoted over two lines": "\"two\n          lines\"",
	} {
		t.Run(name, func(t *testing.T) {
			data := "orgs:\n  - id: a\n    tier: free\n    keys:\n      - id: k\n        scopes: [tokens:create]\n        hash: \"sha256:" + strings.Repeat("a", 64) + "\"\n        expires_at: " + date + "\n        colour: red\n    agents:\n      - {id: b, channels: [fax]}\n"
			_, err := config.Parse([]byte(data))
			for _, want := range []string{"orgs[0].keys[0].expires_at: must be a date and time", "orgs[0].keys[0].colour: unknown field", "orgs[0].agents[0].channels[0]"} {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("no %q in:\n%v", want, err)
				}
			}
		})
	}
}
