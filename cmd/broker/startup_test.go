package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/internal/apikey"
	"github.com/voicebroker/voicebroker/pkg/token"
)

var (
	buildOnce sync.Once
	builtPath string
	buildErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// brokerBinary builds cmd/broker once per test run: the startup tests run
// the real program, as an operator does.
func brokerBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "broker-bin-")
		if buildErr != nil {
			return
		}
		builtPath = filepath.Join(buildDir, "broker")
		out, err := exec.Command("go", "build", "-o", builtPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtPath
}

// fixture is a directory of good and bad files for the startup tests.
type fixture struct {
	dir                                              string
	tenants, signing, public, rsaKey, garbage, empty string
}

const goodTenants = `orgs:
  - id: acme
    tier: free
    keys:
      - id: main
        hash: "%s"
        scopes: [tokens:create]
    agents:
      - id: bot
        channels: [webrtc]
`

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{dir: dir}
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sk, _ := apikey.New(apikey.Secret, apikey.Live)
	f.tenants = write("tenants.yaml", fmt.Sprintf(goodTenants, apikey.Hash(sk)))
	k, err := token.GenerateKey(token.EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := k.MarshalPEM()
	pub, _ := k.Public().MarshalPEM()
	f.signing = write("signing.pem", string(priv))
	f.public = write("public.pem", string(pub))
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(rk)
	f.rsaKey = write("rsa.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
	f.garbage = write("garbage.pem", "this is not a key\n")
	f.empty = write("empty.pem", "")
	return f
}

// tenantsVariant writes the good tenants file with one mistake.
func (f *fixture) tenantsVariant(t *testing.T, name string, edit func(string) string) string {
	t.Helper()
	data, err := os.ReadFile(f.tenants)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(f.dir, name+".yaml")
	if err := os.WriteFile(p, []byte(edit(string(data))), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// holdPort listens on a loopback port for the whole test: a broker that
// tried to listen before refusing its configuration would say so.
func holdPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

func runBroker(t *testing.T, bin string, vars map[string]string, workDir string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Dir = workDir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + workDir, "TMPDIR=" + workDir}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("run broker: %v", err)
	return 0, ""
}

// TestStartupMistakes runs the real broker with one configuration mistake
// at a time: each makes it exit non-zero before it listens, with a message
// naming the variable, file or field, never a panic or a stack trace, and
// without writing anything.
func TestStartupMistakes(t *testing.T) {
	bin := brokerBinary(t)
	f := newFixture(t)
	addr := holdPort(t)
	secret := strings.Repeat("q", 40)
	base := func() map[string]string {
		return map[string]string{"BROKER_ADDR": addr, "BROKER_CONFIG": f.tenants, "BROKER_SIGNING_KEY_FILE": f.signing}
	}
	tv := func(name, old, new string) string {
		return f.tenantsVariant(t, name, func(s string) string {
			if !strings.Contains(s, old) {
				t.Fatalf("%s: %q not in the tenants file", name, old)
			}
			return strings.Replace(s, old, new, 1)
		})
	}
	dirAsFile := filepath.Join(f.dir, "a-directory")
	os.Mkdir(dirAsFile, 0o700)

	cases := []struct {
		name string
		vars map[string]string
		want []string
	}{
		// The environment.
		{"unknown BROKER_ENV", map[string]string{"BROKER_ENV": "staging"}, []string{"BROKER_ENV", "development or production"}},
		{"token TTL too short", map[string]string{"BROKER_TOKEN_TTL": "5s"}, []string{"BROKER_TOKEN_TTL", "outside"}},
		{"token TTL not a duration", map[string]string{"BROKER_TOKEN_TTL": "soon"}, []string{"BROKER_TOKEN_TTL"}},
		{"token TTL overflowing", map[string]string{"BROKER_TOKEN_TTL": "99999999999999"}, []string{"BROKER_TOKEN_TTL"}},
		{"address without port", map[string]string{"BROKER_ADDR": "localhost"}, []string{"BROKER_ADDR"}},
		{"rate zero", map[string]string{"BROKER_PUBLIC_RATE_PER_MINUTE": "0"}, []string{"BROKER_PUBLIC_RATE_PER_MINUTE"}},
		{"GOGC junk", map[string]string{"GOGC": "abc"}, []string{`GOGC: "abc" is not a percentage`, "or off"}},
		{"AUTH_REQUIRED junk", map[string]string{"AUTH_REQUIRED": "maybe"}, []string{"AUTH_REQUIRED"}},
		{"auth timeout past the response", map[string]string{"AUTH_TIMEOUT_SECONDS": "60"}, []string{"AUTH_TIMEOUT_SECONDS", "outlast the response"}},
		{"store timeout chain too long", map[string]string{"BROKER_STORE_TIMEOUT": "9s"}, []string{"BROKER_STORE_TIMEOUT"}},
		{"LiveKit half set", map[string]string{"LIVEKIT_URL": "wss://lk.example"}, []string{"LIVEKIT_URL", "go together"}},
		{"Redis URL scheme", map[string]string{"BROKER_REDIS_URL": "http://127.0.0.1:6379"}, []string{"BROKER_REDIS_URL"}},
		{"Redis URL database", map[string]string{"BROKER_REDIS_URL": "redis://:pw-xyzzy@127.0.0.1:6379/abc"}, []string{"BROKER_REDIS_URL"}},
		{"trusted proxy junk", map[string]string{"BROKER_TRUSTED_PROXIES": "10.0.0.0/8,nope"}, []string{"BROKER_TRUSTED_PROXIES"}},
		{"pprof off loopback", map[string]string{"BROKER_PPROF_ADDR": "0.0.0.0:6060"}, []string{"BROKER_PPROF_ADDR"}},
		{"metrics address without port", map[string]string{"BROKER_METRICS_ADDR": "localhost"}, []string{"BROKER_METRICS_ADDR", "host:port"}},
		{"metrics address port junk", map[string]string{"BROKER_METRICS_ADDR": "127.0.0.1:99999"}, []string{"BROKER_METRICS_ADDR", "port"}},
		{"metrics address is BROKER_ADDR", map[string]string{"BROKER_METRICS_ADDR": addr}, []string{"BROKER_METRICS_ADDR", "BROKER_ADDR's address"}},
		{"metrics address not on this host", map[string]string{"BROKER_ADDR": "127.0.0.1:0", "BROKER_METRICS_ADDR": "192.0.2.1:9090"}, []string{"BROKER_METRICS_ADDR 192.0.2.1:9090"}},
		{"LiveKit secret 'secret'", map[string]string{"LIVEKIT_URL": "ws://127.0.0.1:7880", "LIVEKIT_API_KEY": "devkey", "LIVEKIT_API_SECRET": "secret"}, []string{"LIVEKIT_API_SECRET: shorter than 32 characters"}},
		{"LiveKit secret 31 characters", map[string]string{"LIVEKIT_URL": "ws://127.0.0.1:7880", "LIVEKIT_API_KEY": "devkey", "LIVEKIT_API_SECRET": strings.Repeat("k", 31)}, []string{"LIVEKIT_API_SECRET: shorter than 32 characters"}},
		{"trusted proxies everyone v4", map[string]string{"BROKER_TRUSTED_PROXIES": "10.0.0.0/8,0.0.0.0/0"}, []string{"BROKER_TRUSTED_PROXIES", "0.0.0.0/0 is too wide to trust"}},
		{"trusted proxies everyone v6", map[string]string{"BROKER_TRUSTED_PROXIES": "::/0"}, []string{"BROKER_TRUSTED_PROXIES", "::/0 is too wide to trust"}},
		{"trusted proxies everyone mapped", map[string]string{"BROKER_TRUSTED_PROXIES": "::ffff:0:0/96"}, []string{"BROKER_TRUSTED_PROXIES", "0.0.0.0/0 is too wide to trust"}},
		{"trusted proxies half the internet", map[string]string{"BROKER_TRUSTED_PROXIES": "128.0.0.0/1"}, []string{"BROKER_TRUSTED_PROXIES", "too wide to trust"}},
		{"auth off with two orgs", map[string]string{"AUTH_REQUIRED": "false", "BROKER_CONFIG": tv("authoff2", "    agents:\n", "    agents:\n      - {id: bot2, channels: [chat]}\n  - id: globex\n    tier: free\n    agents:\n")},
			[]string{"AUTH_REQUIRED: false lets a request without a credential through", `"default"`}},
		{"auth off with a near-miss default", map[string]string{"AUTH_REQUIRED": "false", "BROKER_CONFIG": tv("authoffnear", "    agents:\n", "    agents:\n      - {id: bot2, channels: [chat]}\n  - id: defaults\n    tier: free\n    agents:\n")},
			[]string{"AUTH_REQUIRED", `"default"`}},
		{"production bare", map[string]string{"BROKER_ENV": "production", "BROKER_SIGNING_KEY_FILE": ""}, []string{"BROKER_SIGNING_KEY_FILE", "BROKER_REDIS_URL"}},
		{"auth service without key", map[string]string{"AUTH_SERVICE_URL": "http://127.0.0.1:1/auth"}, []string{"AUTH_SERVICE_URL", "AUTH_SIGNING_KEY_PATH"}},
		{"auth signing key missing", map[string]string{"AUTH_SERVICE_URL": "http://127.0.0.1:1/auth", "AUTH_SIGNING_KEY_PATH": filepath.Join(f.dir, "nope.pem")}, []string{"AUTH_SIGNING_KEY_PATH"}},
		{"auth signing key public", map[string]string{"AUTH_SERVICE_URL": "http://127.0.0.1:1/auth", "AUTH_SIGNING_KEY_PATH": f.public}, []string{"AUTH_SIGNING_KEY_PATH"}},
		{"sk_ API secret", map[string]string{"AUTH_API_SECRET": "sk_live_" + secret}, []string{"AUTH_API_SECRET", "sk_"}},
		{"API secret for a missing org", map[string]string{"AUTH_API_SECRETS_JSON": `[{"id":"initech","secret":"` + secret + `"}]`}, []string{"AUTH_API_SECRETS_JSON", `"initech"`}},
		{"API secret for org default", map[string]string{"AUTH_API_SECRET": secret}, []string{"AUTH_API_SECRET", `"default"`}},
		{"API secrets duplicate key", map[string]string{"AUTH_API_SECRETS_JSON": `[{"id":"acme","id":"x","secret":"` + secret + `"}]`}, []string{"AUTH_API_SECRETS_JSON", "twice"}},
		{"API secret on the demo tenant", map[string]string{"BROKER_CONFIG": "", "AUTH_API_SECRETS_JSON": `[{"id":"acme","secret":"` + secret + `"}]`}, []string{"AUTH_API_SECRETS_JSON", `"acme"`}},
		// Key files.
		{"signing key missing", map[string]string{"BROKER_SIGNING_KEY_FILE": filepath.Join(f.dir, "nope.pem")}, []string{"BROKER_SIGNING_KEY_FILE", "no such file"}},
		{"signing key public", map[string]string{"BROKER_SIGNING_KEY_FILE": f.public}, []string{"BROKER_SIGNING_KEY_FILE", "public key"}},
		{"signing key garbage", map[string]string{"BROKER_SIGNING_KEY_FILE": f.garbage}, []string{"BROKER_SIGNING_KEY_FILE", "no PEM block"}},
		{"signing key empty", map[string]string{"BROKER_SIGNING_KEY_FILE": f.empty}, []string{"BROKER_SIGNING_KEY_FILE", "empty"}},
		{"signing key RSA", map[string]string{"BROKER_SIGNING_KEY_FILE": f.rsaKey}, []string{"BROKER_SIGNING_KEY_FILE", "Ed25519 or ECDSA P-256"}},
		{"signing key a directory", map[string]string{"BROKER_SIGNING_KEY_FILE": dirAsFile}, []string{"BROKER_SIGNING_KEY_FILE"}},
		{"verify key missing", map[string]string{"BROKER_VERIFY_KEY_FILES": f.public + "," + filepath.Join(f.dir, "old.pem")}, []string{"BROKER_VERIFY_KEY_FILES", "old.pem"}},
		{"verify key garbage", map[string]string{"BROKER_VERIFY_KEY_FILES": f.garbage}, []string{"BROKER_VERIFY_KEY_FILES"}},
		// The tenants file.
		{"tenants file missing", map[string]string{"BROKER_CONFIG": filepath.Join(f.dir, "missing.yaml")}, []string{"BROKER_CONFIG", "missing.yaml", "no such file"}},
		{"tenants file a directory", map[string]string{"BROKER_CONFIG": dirAsFile}, []string{"BROKER_CONFIG", "directory"}},
		{"tenants file empty", map[string]string{"BROKER_CONFIG": f.empty}, []string{"BROKER_CONFIG", "orgs: the file is empty"}},
		{"field typo", map[string]string{"BROKER_CONFIG": tv("typo", "    tier: free\n", "    tier: free\n    colour: red\n")}, []string{"orgs[0].colour: unknown field"}},
		{"key field typo", map[string]string{"BROKER_CONFIG": tv("keytypo", "scopes:", "scope:")}, []string{"orgs[0].keys[0].scope: unknown field"}},
		{"bad hash", map[string]string{"BROKER_CONFIG": tv("hash", `hash: "sha256:`, `hash: "sha256:zz`)}, []string{"orgs[0].keys[0].hash"}},
		{"enterprise without rate", map[string]string{"BROKER_CONFIG": tv("ent", "tier: free", "tier: enterprise")}, []string{"orgs[0].rate_per_minute", "required for tier enterprise"}},
		{"wrong type", map[string]string{"BROKER_CONFIG": tv("type", "channels: [webrtc]", "channels: webrtc")}, []string{"orgs[0].agents[0].channels: must be a list"}},
		{"YAML syntax", map[string]string{"BROKER_CONFIG": tv("syntax", "channels: [webrtc]", "channels: [webrtc")}, []string{"BROKER_CONFIG", "not valid YAML"}},
		{"public-suffix wildcard", map[string]string{"BROKER_CONFIG": tv("psl", "channels: [webrtc]\n", "channels: [webrtc]\n        public:\n          key_hash: \"sha256:"+strings.Repeat("b", 64)+"\"\n          allowed_origins: [\"https://*.github.io\"]\n")}, []string{"orgs[0].agents[0].public.allowed_origins[0]", "public suffix"}},
		{"IP-like wildcard", map[string]string{"BROKER_CONFIG": tv("ipwild", "channels: [webrtc]\n", "channels: [webrtc]\n        public:\n          key_hash: \"sha256:"+strings.Repeat("b", 64)+"\"\n          allowed_origins: [\"http://*.0.1:*\"]\n")}, []string{"orgs[0].agents[0].public.allowed_origins[0]", "IP address"}},
		{"shared JWT issuer", map[string]string{"BROKER_CONFIG": tv("iss", "    agents:\n", "    jwt_issuers:\n      - {issuer: \"https://idp.example\", audience: vb, jwks_url: \"https://idp.example/jwks\", scopes: [tokens:create]}\n    agents:\n") +
			""}, nil}, // replaced below
		{"issuer key file missing", map[string]string{"BROKER_CONFIG": tv("isskey", "    agents:\n", "    jwt_issuers:\n      - {issuer: \"https://idp.example\", audience: vb, public_key_file: \"/nonexistent/idp.pem\", scopes: [tokens:create]}\n    agents:\n")}, []string{"orgs[0].jwt_issuers[0].public_key_file", "no such file"}},
		{"rate with a fraction", map[string]string{"BROKER_CONFIG": tv("ratefrac", "tier: free", "tier: enterprise\n    rate_per_minute: 1.5")}, []string{`orgs[0].rate_per_minute: must be a whole number, not "1.5"`}},
		{"rate in hex", map[string]string{"BROKER_CONFIG": tv("ratehex", "tier: free", "tier: enterprise\n    rate_per_minute: 0x3c")}, []string{`orgs[0].rate_per_minute: must be a whole number, not "0x3c"`}},
		{"YAML 1.1 boolean", map[string]string{"BROKER_CONFIG": tv("yes", "tier: free", "tier: free\n    allow_demo_rooms: yes")}, []string{`orgs[0].allow_demo_rooms: must be true or false, not "yes"`}},
		{"empty expiry", map[string]string{"BROKER_CONFIG": tv("noexp", "scopes: [tokens:create]", "scopes: [tokens:create]\n        expires_at:")}, []string{"orgs[0].keys[0].expires_at: empty"}},
		{"date-only expiry", map[string]string{"BROKER_CONFIG": tv("dateexp", "scopes: [tokens:create]", "scopes: [tokens:create]\n        expires_at: 2027-06-01")}, []string{"orgs[0].keys[0].expires_at: must be a date and time"}},
		{"null allowed ip", map[string]string{"BROKER_CONFIG": tv("nullip", "scopes: [tokens:create]", "scopes: [tokens:create]\n        allowed_ips: [~]")}, []string{"orgs[0].keys[0].allowed_ips[0]: an empty list item"}},
		{"null origin", map[string]string{"BROKER_CONFIG": tv("nullorigin", "channels: [webrtc]\n", "channels: [webrtc]\n        public:\n          key_hash: \"sha256:"+strings.Repeat("b", 64)+"\"\n          allowed_origins: [null, \"https://a.example\"]\n")}, []string{"orgs[0].agents[0].public.allowed_origins[0]: an empty list item"}},
		{"JWKS over http", map[string]string{"BROKER_CONFIG": tv("jwkshttp", "    agents:\n", "    jwt_issuers:\n      - {issuer: \"https://idp.example\", audience: vb, jwks_url: \"http://idp.example/jwks\", scopes: [tokens:create]}\n    agents:\n")}, []string{"orgs[0].jwt_issuers[0].jwks_url: must be https"}},
		{"issuer key file private", map[string]string{"BROKER_CONFIG": tv("isspriv", "    agents:\n", "    jwt_issuers:\n      - {issuer: \"https://idp.example\", audience: vb, public_key_file: \""+f.signing+"\", scopes: [tokens:create]}\n    agents:\n")}, []string{"orgs[0].jwt_issuers[0].public_key_file", "private key"}},
	}
	// Two orgs sharing an issuer (the second spells it with a slash).
	shared := filepath.Join(f.dir, "shared.yaml")
	os.WriteFile(shared, []byte(`orgs:
  - id: acme
    tier: free
    jwt_issuers:
      - {issuer: "https://idp.example", audience: vb, jwks_url: "https://idp.example/jwks", scopes: [tokens:create]}
  - id: globex
    tier: free
    jwt_issuers:
      - {issuer: "https://IDP.example/", audience: vb, jwks_url: "https://idp.example/jwks", scopes: [tokens:create]}
`), 0o600)
	for i := range cases {
		if cases[i].name == "shared JWT issuer" {
			cases[i].vars["BROKER_CONFIG"] = shared
			cases[i].want = []string{"orgs[1].jwt_issuers[0]", `already trusted by org "acme"`}
		}
	}
	if len(cases) < 40 {
		t.Fatalf("only %d mistakes", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			vars := base()
			for k, v := range tc.vars {
				vars[k] = v
			}
			work := t.TempDir()
			code, out := runBroker(t, bin, vars, work)
			if code == 0 {
				t.Fatalf("exit 0; output:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output does not name %q:\n%s", w, out)
				}
			}
			for _, never := range []string{"panic", "goroutine ", "runtime error", ".go:", "address already in use", `"event":"start"`, "pw-xyzzy", secret} {
				if strings.Contains(out, never) {
					t.Errorf("output contains %q:\n%s", never, out)
				}
			}
			if entries, _ := os.ReadDir(work); len(entries) != 0 {
				t.Errorf("the broker wrote %d entries in its working directory", len(entries))
			}
		})
	}
}

// startBroker runs the real broker until the test ends and returns its
// base URL and its output so far.
func startBinary(t *testing.T, vars map[string]string) (string, func() string) {
	t.Helper()
	bin := brokerBinary(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var out safeBuffer
	cmd := exec.Command(bin)
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "BROKER_ADDR=" + addr}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case err := <-done:
			t.Fatalf("broker exited: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("broker not up:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return base, out.String
}

// TestStartupGood is the control of TestStartupMistakes: the same files
// without a mistake start a broker that answers.
func TestStartupGood(t *testing.T) {
	f := newFixture(t)
	base, out := startBinary(t, map[string]string{"BROKER_CONFIG": f.tenants, "BROKER_SIGNING_KEY_FILE": f.signing,
		"BROKER_VERIFY_KEY_FILES": f.public, "AUTH_TIMEOUT_SECONDS": "15"})
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/readyz %d\n%s", resp.StatusCode, out())
	}
}

// TestStartupUnreachableRedis: a broker pointed at a Redis that does not
// answer starts, warns clearly (without the URL's password), and /readyz
// answers 503.
func TestStartupUnreachableRedis(t *testing.T) {
	f := newFixture(t)
	dead := holdPort(t) // a listener that never speaks Redis
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := l.Addr().String()
	l.Close()
	for _, target := range []string{closed, dead} {
		base, out := startBinary(t, map[string]string{"BROKER_CONFIG": f.tenants, "BROKER_SIGNING_KEY_FILE": f.signing,
			"BROKER_REDIS_URL": "redis://:s3cr3t-pw@" + target + "/0", "BROKER_STORE_TIMEOUT": "200ms"})
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("/readyz %d with Redis unreachable", resp.StatusCode)
		}
		log := out()
		if !strings.Contains(log, `"event":"store.unreachable"`) || !strings.Contains(log, "cannot be reached at start") || !strings.Contains(log, target) {
			t.Fatalf("no clear warning at start:\n%s", log)
		}
		if strings.Contains(log, "s3cr3t-pw") {
			t.Fatal("the warning echoes the Redis password")
		}
	}
}

// TestDevBannerNamesStore: the development banner names the store the
// broker actually uses, so a developer who set BROKER_REDIS_URL is not told
// that tickets live in this process alone; it never shows the URL's
// password.
func TestDevBannerNamesStore(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := l.Addr().String()
	l.Close()
	cases := []struct {
		name      string
		vars      map[string]string
		want, not string
	}{
		{"memory", nil, "embedded demo tenant, in-memory store)", "Redis"},
		{"redis", map[string]string{"BROKER_REDIS_URL": "redis://:s3cr3t-pw@" + closed + "/0", "BROKER_STORE_TIMEOUT": "200ms"},
			"embedded demo tenant, Redis store at " + closed + ")", "in-memory"},
		{"cluster", map[string]string{"BROKER_REDIS_CLUSTER_ADDRS": closed, "BROKER_STORE_TIMEOUT": "200ms"},
			"embedded demo tenant, Redis Cluster store at " + closed + ")", "in-memory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, out := startBinary(t, tc.vars)
			banner := out()
			if !strings.Contains(banner, tc.want) {
				t.Errorf("the banner does not say %q:\n%s", tc.want, banner)
			}
			if strings.Contains(banner, tc.not) {
				t.Errorf("the banner says %q:\n%s", tc.not, banner)
			}
			if strings.Contains(banner, "s3cr3t-pw") {
				t.Error("the banner echoes the Redis password")
			}
		})
	}
}

// TestEnvironmentErrorsNamedAsSuch: with a tenants file, a variable that
// disagrees with it (an API secret for an org the file lacks) is reported
// as the environment's mistake, not filed under BROKER_CONFIG; a mistake in
// the file itself still names the file first.
func TestEnvironmentErrorsNamedAsSuch(t *testing.T) {
	bin := brokerBinary(t)
	f := newFixture(t)
	addr := holdPort(t)
	vars := map[string]string{"BROKER_ADDR": addr, "BROKER_CONFIG": f.tenants, "BROKER_SIGNING_KEY_FILE": f.signing,
		"AUTH_API_SECRET": strings.Repeat("q", 40)}
	code, out := runBroker(t, bin, vars, t.TempDir())
	if code == 0 || !strings.HasPrefix(out, "broker: invalid environment:\n  AUTH_API_SECRET: stands for org \"default\"") ||
		!strings.Contains(out, "(the tenants come from BROKER_CONFIG "+f.tenants+")") || strings.Contains(out, "broker: BROKER_CONFIG") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	vars["AUTH_API_SECRET"] = ""
	vars["BROKER_CONFIG"] = f.empty
	if code, out := runBroker(t, bin, vars, t.TempDir()); code == 0 || !strings.HasPrefix(out, "broker: BROKER_CONFIG "+f.empty+": ") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}
