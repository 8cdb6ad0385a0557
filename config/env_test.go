package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/config"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestEnvDefaults(t *testing.T) {
	e, err := config.LoadEnv(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if e.Addr != ":8080" || e.Environment != "development" || e.TokenTTL != 60*time.Second ||
		e.PublicRatePerMin != 10 || e.ConnectRatePerMin != 60 || e.LiveKitTokenTTL != 5*time.Minute ||
		!e.AuthRequired || e.AuthTimeout != 5*time.Second || e.PublicURL != "http://localhost:8080" {
		t.Fatalf("defaults = %+v", e)
	}
}

func TestEnvRefusals(t *testing.T) {
	secret := strings.Repeat("s", 40)
	cases := []struct {
		name string
		vars map[string]string
		want string
	}{
		{"ttl too short", map[string]string{"BROKER_TOKEN_TTL": "5s"}, "BROKER_TOKEN_TTL"},
		{"ttl too long", map[string]string{"BROKER_TOKEN_TTL": "11m"}, "BROKER_TOKEN_TTL"},
		{"ttl junk", map[string]string{"BROKER_TOKEN_TTL": "soon"}, "BROKER_TOKEN_TTL"},
		{"bad env", map[string]string{"BROKER_ENV": "staging"}, "BROKER_ENV"},
		{"production needs key", map[string]string{"BROKER_ENV": "production", "BROKER_REDIS_URL": "redis://x", "BROKER_CONFIG": "/x"}, "BROKER_SIGNING_KEY_FILE"},
		{"production needs redis", map[string]string{"BROKER_ENV": "production", "BROKER_SIGNING_KEY_FILE": "/k", "BROKER_CONFIG": "/x"}, "BROKER_REDIS_URL"},
		{"production refuses auth off", map[string]string{"BROKER_ENV": "production", "BROKER_SIGNING_KEY_FILE": "/k", "BROKER_REDIS_URL": "redis://x", "BROKER_CONFIG": "/x", "AUTH_REQUIRED": "false"}, "AUTH_REQUIRED"},
		{"redis url scheme", map[string]string{"BROKER_REDIS_URL": "http://x"}, "BROKER_REDIS_URL"},
		{"url and cluster", map[string]string{"BROKER_REDIS_URL": "redis://x", "BROKER_REDIS_CLUSTER_ADDRS": "a:1"}, "not both"},
		{"bad proxy", map[string]string{"BROKER_TRUSTED_PROXIES": "10.0.0.0/8,nope"}, "BROKER_TRUSTED_PROXIES"},
		{"partial livekit", map[string]string{"LIVEKIT_URL": "ws://x"}, "go together"},
		{"short api secret", map[string]string{"AUTH_API_SECRET": "short"}, "shorter than 32"},
		{"secrets json junk", map[string]string{"AUTH_API_SECRETS_JSON": `[{"id":"a","secret":"` + secret + `","x":1}]`}, "AUTH_API_SECRETS_JSON"},
		{"secrets json bad id", map[string]string{"AUTH_API_SECRETS_JSON": `[{"id":"A B","secret":"` + secret + `"}]`}, "id must match"},
		{"auth service half", map[string]string{"AUTH_SERVICE_URL": "https://x"}, "go together"},
		{"rate zero", map[string]string{"BROKER_PUBLIC_RATE_PER_MINUTE": "0"}, "BROKER_PUBLIC_RATE_PER_MINUTE"},
		{"auth required junk", map[string]string{"AUTH_REQUIRED": "maybe"}, "AUTH_REQUIRED"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.LoadEnv(env(tc.vars))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want mention of %s", err, tc.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatal("error echoes a secret")
			}
		})
	}
}

func TestEnvSecrets(t *testing.T) {
	s1, s2 := strings.Repeat("a", 32), strings.Repeat("b", 48)
	e, err := config.LoadEnv(env(map[string]string{
		"AUTH_API_SECRET":       s1,
		"AUTH_API_SECRETS_JSON": `[{"id":"acme","secret":"` + s2 + `"}]`,
		"BROKER_TOKEN_TTL":      "30",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(e.AuthAPISecrets) != 2 || e.AuthAPISecrets[0].ID != "default" || e.AuthAPISecrets[1].ID != "acme" {
		t.Fatalf("secrets = %d", len(e.AuthAPISecrets))
	}
	if e.TokenTTL != 30*time.Second {
		t.Fatal("bare-number TTL")
	}
}

func TestEnvRegistry(t *testing.T) {
	e, err := config.LoadEnv(env(map[string]string{"BROKER_DATABASE_URL": "postgres://vb:pw@127.0.0.1:5432/vb", "BROKER_SECRETS_KEY_FILE": "/k"}))
	if err != nil {
		t.Fatal(err)
	}
	if e.Registry.DatabaseURL == "" || e.Registry.Refresh != 30*time.Second || e.Registry.MaxStaleness != 15*time.Minute || e.Registry.SecretsKeyFile != "/k" {
		t.Fatalf("registry = %+v", e.Registry)
	}
	e, err = config.LoadEnv(env(map[string]string{"BROKER_DATABASE_URL": "postgres://h/db", "BROKER_REGISTRY_MAX_STALENESS": "0", "BROKER_REGISTRY_REFRESH": "2s"}))
	if err != nil || e.Registry.MaxStaleness != 0 || e.Registry.Refresh != 2*time.Second {
		t.Fatalf("staleness 0: %v %+v", err, e)
	}
	// Production accepts a database instead of a tenants file.
	if _, err := config.LoadEnv(env(map[string]string{"BROKER_ENV": "production", "BROKER_SIGNING_KEY_FILE": "/k",
		"BROKER_REDIS_URL": "redis://x", "BROKER_DATABASE_URL": "postgres://h/db"})); err != nil {
		t.Fatal(err)
	}
	const password = "hunter2-secret"
	cases := []struct {
		name string
		vars map[string]string
		want string
	}{
		{"scheme", map[string]string{"BROKER_DATABASE_URL": "mysql://u:" + password + "@h/db"}, "BROKER_DATABASE_URL: must be"},
		{"with file", map[string]string{"BROKER_DATABASE_URL": "postgres://u:" + password + "@h/db", "BROKER_CONFIG": "/x"}, "not both"},
		{"key without db", map[string]string{"BROKER_SECRETS_KEY_FILE": "/k"}, "BROKER_SECRETS_KEY_FILE"},
		{"refresh junk", map[string]string{"BROKER_REGISTRY_REFRESH": "often"}, "BROKER_REGISTRY_REFRESH"},
		{"refresh zero", map[string]string{"BROKER_REGISTRY_REFRESH": "0"}, "BROKER_REGISTRY_REFRESH"},
		{"staleness short", map[string]string{"BROKER_REGISTRY_REFRESH": "30s", "BROKER_REGISTRY_MAX_STALENESS": "40s"}, "twice BROKER_REGISTRY_REFRESH"},
		{"staleness negative", map[string]string{"BROKER_REGISTRY_MAX_STALENESS": "-1m"}, "BROKER_REGISTRY_MAX_STALENESS"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.LoadEnv(env(tc.vars))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), password) {
				t.Fatal("the database password is in the message")
			}
		})
	}
}

// TestEnvValuesChecked: malformed addresses, URLs and numbers are refused,
// each naming its variable, and a password in a URL is never echoed.
func TestEnvValuesChecked(t *testing.T) {
	for _, tc := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"BROKER_ADDR": "8080"}, "BROKER_ADDR"},
		{map[string]string{"BROKER_ADDR": "localhost"}, "BROKER_ADDR"},
		{map[string]string{"BROKER_ADDR": ":99999"}, "BROKER_ADDR"},
		{map[string]string{"BROKER_ADDR": ":http"}, "BROKER_ADDR"},
		{map[string]string{"BROKER_REDIS_CLUSTER_ADDRS": "a:1,b"}, "BROKER_REDIS_CLUSTER_ADDRS"},
		{map[string]string{"BROKER_REDIS_CLUSTER_ADDRS": ":7000"}, "a host is required"},
		{map[string]string{"BROKER_PUBLIC_URL": "https://broker.example?x=1"}, "BROKER_PUBLIC_URL"},
		{map[string]string{"BROKER_PUBLIC_URL": "https://u:p@broker.example"}, "BROKER_PUBLIC_URL"},
		{map[string]string{"LIVEKIT_URL": "ftp://lk", "LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": "s"}, "LIVEKIT_URL"},
		{map[string]string{"BROKER_TOKEN_TTL": "9223372037"}, "BROKER_TOKEN_TTL"}, // seconds that overflow a Duration
		{map[string]string{"BROKER_TOKEN_TTL": "18446744074"}, "BROKER_TOKEN_TTL"},
		{map[string]string{"BROKER_TOKEN_TTL": "-30"}, "BROKER_TOKEN_TTL"},
		{map[string]string{"BROKER_TOKEN_TTL": "1e3"}, "BROKER_TOKEN_TTL"},
		{map[string]string{"AUTH_TIMEOUT_SECONDS": "0"}, "AUTH_TIMEOUT_SECONDS"},
		{map[string]string{"BROKER_CONNECT_RATE_PER_MINUTE": "ten"}, "BROKER_CONNECT_RATE_PER_MINUTE"},
		{map[string]string{"BROKER_REDIS_URL": "redis//:hunter2secret@x"}, "BROKER_REDIS_URL"},
	} {
		_, err := config.LoadEnv(env(tc.vars))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want mention of %s", tc.vars, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%v: the error echoes a password", tc.vars)
		}
	}
}

// TestPublicURLFollowsTheListenPort: without BROKER_PUBLIC_URL, tickets
// and DPoP proofs name the port the broker listens on.
func TestPublicURLFollowsTheListenPort(t *testing.T) {
	for addr, want := range map[string]string{
		"":               "http://localhost:8080",
		":8081":          "http://localhost:8081",
		"127.0.0.1:9000": "http://localhost:9000",
		"[::1]:7000":     "http://localhost:7000",
	} {
		env := map[string]string{}
		if addr != "" {
			env["BROKER_ADDR"] = addr
		}
		e, err := config.LoadEnv(func(k string) string { return env[k] })
		if err != nil {
			t.Fatalf("BROKER_ADDR=%q: %v", addr, err)
		}
		if e.PublicURL != want {
			t.Errorf("BROKER_ADDR=%q: public URL %q, want %q", addr, e.PublicURL, want)
		}
	}
	e, err := config.LoadEnv(func(k string) string {
		return map[string]string{"BROKER_ADDR": ":8081", "BROKER_PUBLIC_URL": "https://broker.example"}[k]
	})
	if err != nil || e.PublicURL != "https://broker.example" {
		t.Fatalf("an explicit BROKER_PUBLIC_URL is not kept: %q, %v", e.PublicURL, err)
	}
}

// TestDurationForms: every duration variable takes a Go duration with its
// unit or a bare whole number of seconds, and a value that is neither (a
// fraction without a unit) is refused with both forms spelled out.
func TestDurationForms(t *testing.T) {
	const db = "postgres://broker@127.0.0.1:1/vb"
	for _, tc := range []struct {
		vars map[string]string
		got  func(*config.Env) time.Duration
		want time.Duration
	}{
		{map[string]string{"AUTH_TIMEOUT_SECONDS": "7"}, func(e *config.Env) time.Duration { return e.AuthTimeout }, 7 * time.Second},
		{map[string]string{"AUTH_TIMEOUT_SECONDS": "1500ms"}, func(e *config.Env) time.Duration { return e.AuthTimeout }, 1500 * time.Millisecond},
		{map[string]string{"BROKER_TOKEN_TTL": "90"}, func(e *config.Env) time.Duration { return e.TokenTTL }, 90 * time.Second},
		{map[string]string{"BROKER_TOKEN_TTL": "2m"}, func(e *config.Env) time.Duration { return e.TokenTTL }, 2 * time.Minute},
		{map[string]string{"BROKER_DATABASE_URL": db, "BROKER_REGISTRY_REFRESH": "45"}, func(e *config.Env) time.Duration { return e.Registry.Refresh }, 45 * time.Second},
		{map[string]string{"BROKER_DATABASE_URL": db, "BROKER_REGISTRY_MAX_STALENESS": "0"}, func(e *config.Env) time.Duration { return e.Registry.MaxStaleness }, 0},
	} {
		e, err := config.LoadEnv(env(tc.vars))
		if err != nil {
			t.Errorf("%v: %v", tc.vars, err)
			continue
		}
		if got := tc.got(e); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.vars, got, tc.want)
		}
	}
	for _, name := range []string{"AUTH_TIMEOUT_SECONDS", "BROKER_TOKEN_TTL", "BROKER_STORE_TIMEOUT", "BROKER_REGISTRY_REFRESH"} {
		vars := map[string]string{name: "1.5"}
		if name == "BROKER_REGISTRY_REFRESH" {
			vars["BROKER_DATABASE_URL"] = db
		}
		_, err := config.LoadEnv(env(vars))
		want := name + `: "1.5" is not a duration: give whole seconds such as 5, or a duration with its unit such as 5s or 1500ms`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s=1.5: err = %v, want %q", name, err, want)
		}
	}
}
