package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Registry defaults (contract §3).
const (
	DefaultRegistryRefresh      = 30 * time.Second
	DefaultRegistryMaxStaleness = 15 * time.Minute
)

// RegistryEnv is the database-mode part of the environment: where the
// tenant registry lives and how closely replicas follow it.
type RegistryEnv struct {
	// DatabaseURL (BROKER_DATABASE_URL) is a postgres:// URL; empty means
	// the tenants come from BROKER_CONFIG or the embedded demo tenant. It
	// holds a password: never log or echo it.
	DatabaseURL string
	// Refresh (BROKER_REGISTRY_REFRESH) is the interval of the full
	// refresh that backs up LISTEN/NOTIFY.
	Refresh time.Duration
	// MaxStaleness (BROKER_REGISTRY_MAX_STALENESS) is how long a replica
	// serves from its snapshot with the database unreachable; 0 is forever.
	MaxStaleness time.Duration
	// SecretsKeyFile (BROKER_SECRETS_KEY_FILE) holds the base64 32-byte key
	// that encrypts per-org LiveKit secrets in the database.
	SecretsKeyFile string
}

// loadRegistryEnv reads the database-mode variables; bad records a problem
// naming the variable. configFile is BROKER_CONFIG, which excludes a
// database.
func loadRegistryEnv(getenv func(string) string, configFile string, bad func(name, reason string)) RegistryEnv {
	r := RegistryEnv{
		DatabaseURL:    strings.TrimSpace(getenv("BROKER_DATABASE_URL")),
		Refresh:        DefaultRegistryRefresh,
		MaxStaleness:   DefaultRegistryMaxStaleness,
		SecretsKeyFile: strings.TrimSpace(getenv("BROKER_SECRETS_KEY_FILE")),
	}
	if r.DatabaseURL != "" {
		// The URL carries a password: the messages never quote it.
		if u, err := url.Parse(r.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
			bad("BROKER_DATABASE_URL", "must be a postgres://user:password@host:port/database URL")
		}
		if configFile != "" {
			bad("BROKER_DATABASE_URL", "set either it or BROKER_CONFIG, not both")
		}
	} else if r.SecretsKeyFile != "" {
		bad("BROKER_SECRETS_KEY_FILE", "only used with BROKER_DATABASE_URL (per-org LiveKit secrets in the database)")
	}
	dur := func(name string, def, lo, hi time.Duration, zero bool) time.Duration {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return def
		}
		d, err := parseDuration(v)
		if err != nil {
			bad(name, err.Error())
			return def
		}
		if (d != 0 || !zero) && (d < lo || d > hi) {
			bad(name, fmt.Sprintf("%s is outside %s to %s", d, lo, hi))
		}
		return d
	}
	r.Refresh = dur("BROKER_REGISTRY_REFRESH", DefaultRegistryRefresh, time.Second, time.Hour, false)
	r.MaxStaleness = dur("BROKER_REGISTRY_MAX_STALENESS", DefaultRegistryMaxStaleness, time.Second, 30*24*time.Hour, true)
	if r.MaxStaleness != 0 && r.MaxStaleness < 2*r.Refresh {
		bad("BROKER_REGISTRY_MAX_STALENESS", fmt.Sprintf("%s is shorter than twice BROKER_REGISTRY_REFRESH (%s): replicas would fail closed between two refreshes; use 0 for forever", r.MaxStaleness, r.Refresh))
	}
	return r
}

// LoadRegistryEnv reads only the database-mode variables, for the commands
// that work on the database itself (broker migrate, broker tenants): the
// rest of the environment, BROKER_CONFIG included, is not their concern.
func LoadRegistryEnv(getenv func(string) string) (RegistryEnv, error) {
	var problems []string
	r := loadRegistryEnv(getenv, "", func(name, reason string) { problems = append(problems, name+": "+reason) })
	if r.DatabaseURL == "" {
		problems = append(problems, "BROKER_DATABASE_URL: required (postgres://user:password@host:port/database)")
	}
	if len(problems) > 0 {
		return r, errors.New("invalid environment:\n  " + strings.Join(problems, "\n  "))
	}
	return r, nil
}
