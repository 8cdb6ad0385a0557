package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Environments the broker runs in.
const (
	EnvDevelopment = "development"
	EnvProduction  = "production"
)

// Env is the broker's environment configuration (contract §3). The zero
// value is not useful; use LoadEnv.
type Env struct {
	Addr               string
	Environment        string
	ConfigFile         string // empty: the embedded demo tenant
	PublicURL          string
	TokenTTL           time.Duration
	SigningKeyFile     string
	VerifyKeyFiles     []string
	RedisURL           string
	RedisClusterAddrs  []string
	TrustedProxies     []netip.Prefix
	PublicRatePerMin   int
	ConnectRatePerMin  int
	LiveKitURL         string
	LiveKitAPIKey      string
	LiveKitAPISecret   string
	LiveKitTokenTTL    time.Duration
	AuthRequired       bool
	AuthAPISecrets     []APISecret
	AuthServiceURL     string
	AuthSigningKeyPath string
	AuthTimeout        time.Duration
	// LiveKitTimeout bounds every LiveKit API call.
	LiveKitTimeout time.Duration
	// StoreTimeout bounds every store call; past it the request fails closed.
	StoreTimeout time.Duration
	// ReloadInterval is how often the tenants file is checked for changes.
	ReloadInterval time.Duration
	// PprofAddr, when set, serves net/http/pprof there (loopback only).
	PprofAddr string
	// Registry is the tenant registry in PostgreSQL (database mode).
	Registry RegistryEnv
}

// APISecret is one Sayna-style shared secret and the org it stands for.
type APISecret struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
}

// Production reports whether BROKER_ENV is production.
func (e *Env) Production() bool { return e.Environment == EnvProduction }

// LiveKitConfigured reports whether all three LiveKit variables are set.
func (e *Env) LiveKitConfigured() bool {
	return e.LiveKitURL != "" && e.LiveKitAPIKey != "" && e.LiveKitAPISecret != ""
}

// LoadEnv reads the environment through getenv (os.Getenv in production,
// a map in tests) and checks it. Every problem is reported, each naming the
// variable.
func LoadEnv(getenv func(string) string) (*Env, error) {
	var problems []string
	bad := func(name, reason string) { problems = append(problems, name+": "+reason) }
	str := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	dur := func(name string, def, lo, hi time.Duration) time.Duration {
		v := str(name, "")
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			// Bare numbers are seconds, as in AUTH_TIMEOUT_SECONDS.
			n, nerr := strconv.Atoi(v)
			if nerr != nil {
				bad(name, fmt.Sprintf("%q is not a duration such as 60s", v))
				return def
			}
			d = time.Duration(n) * time.Second
		}
		if d < lo || d > hi {
			bad(name, fmt.Sprintf("%s is outside %s to %s", d, lo, hi))
		}
		return d
	}
	num := func(name string, def, lo, hi int) int {
		v := str(name, "")
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			bad(name, fmt.Sprintf("%q must be a whole number from %d to %d", v, lo, hi))
			return def
		}
		return n
	}
	list := func(name string) []string {
		var out []string
		for _, s := range strings.Split(getenv(name), ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out
	}

	e := &Env{
		Addr:               str("BROKER_ADDR", ":8080"),
		Environment:        str("BROKER_ENV", EnvDevelopment),
		ConfigFile:         str("BROKER_CONFIG", ""),
		PublicURL:          strings.TrimRight(str("BROKER_PUBLIC_URL", "http://localhost:8080"), "/"),
		TokenTTL:           dur("BROKER_TOKEN_TTL", 60*time.Second, 10*time.Second, 10*time.Minute),
		SigningKeyFile:     str("BROKER_SIGNING_KEY_FILE", ""),
		VerifyKeyFiles:     list("BROKER_VERIFY_KEY_FILES"),
		RedisURL:           str("BROKER_REDIS_URL", ""),
		RedisClusterAddrs:  list("BROKER_REDIS_CLUSTER_ADDRS"),
		PublicRatePerMin:   num("BROKER_PUBLIC_RATE_PER_MINUTE", 10, 1, 1_000_000),
		ConnectRatePerMin:  num("BROKER_CONNECT_RATE_PER_MINUTE", 60, 1, 1_000_000),
		LiveKitURL:         str("LIVEKIT_URL", ""),
		LiveKitAPIKey:      str("LIVEKIT_API_KEY", ""),
		LiveKitAPISecret:   str("LIVEKIT_API_SECRET", ""),
		LiveKitTokenTTL:    dur("BROKER_LIVEKIT_TOKEN_TTL", 5*time.Minute, 30*time.Second, 24*time.Hour),
		AuthServiceURL:     str("AUTH_SERVICE_URL", ""),
		AuthSigningKeyPath: str("AUTH_SIGNING_KEY_PATH", ""),
		AuthTimeout:        dur("AUTH_TIMEOUT_SECONDS", 5*time.Second, time.Second, 60*time.Second),
		LiveKitTimeout:     dur("BROKER_LIVEKIT_TIMEOUT", 5*time.Second, 100*time.Millisecond, time.Minute),
		StoreTimeout:       dur("BROKER_STORE_TIMEOUT", 500*time.Millisecond, 10*time.Millisecond, 10*time.Second),
		ReloadInterval:     dur("BROKER_RELOAD_INTERVAL", 2*time.Second, 100*time.Millisecond, time.Hour),
		PprofAddr:          str("BROKER_PPROF_ADDR", ""),
	}

	e.Registry = loadRegistryEnv(getenv, e.ConfigFile, bad)
	if e.PprofAddr != "" {
		host, _, err := net.SplitHostPort(e.PprofAddr)
		ip, perr := netip.ParseAddr(host)
		if err != nil || (host != "localhost" && (perr != nil || !ip.IsLoopback())) {
			bad("BROKER_PPROF_ADDR", "must be a loopback host:port, such as 127.0.0.1:6060")
		}
	}
	switch e.Environment {
	case EnvDevelopment, EnvProduction:
	default:
		bad("BROKER_ENV", fmt.Sprintf("%q must be development or production", e.Environment))
	}
	if u, err := url.Parse(e.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("BROKER_PUBLIC_URL", "must be an http(s) URL")
	}
	for _, s := range list("BROKER_TRUSTED_PROXIES") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				bad("BROKER_TRUSTED_PROXIES", fmt.Sprintf("%q is not a CIDR", s))
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		e.TrustedProxies = append(e.TrustedProxies, p.Masked())
	}
	if e.RedisURL != "" {
		if u, err := url.Parse(e.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
			bad("BROKER_REDIS_URL", "must be a redis:// or rediss:// URL")
		}
	}
	if e.RedisURL != "" && len(e.RedisClusterAddrs) > 0 {
		bad("BROKER_REDIS_CLUSTER_ADDRS", "set either it or BROKER_REDIS_URL, not both")
	}
	lk := 0
	for _, v := range []string{e.LiveKitURL, e.LiveKitAPIKey, e.LiveKitAPISecret} {
		if v != "" {
			lk++
		}
	}
	if lk != 0 && lk != 3 {
		bad("LIVEKIT_URL", "LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET go together")
	}
	if e.LiveKitURL != "" {
		if u, err := url.Parse(e.LiveKitURL); err != nil || u.Host == "" {
			bad("LIVEKIT_URL", "must be a URL such as wss://example.livekit.cloud")
		}
	}

	switch v := strings.ToLower(str("AUTH_REQUIRED", "true")); v {
	case "true", "1", "yes":
		e.AuthRequired = true
	case "false", "0", "no":
		e.AuthRequired = false
	default:
		bad("AUTH_REQUIRED", fmt.Sprintf("%q must be true or false", v))
	}
	if s := getenv("AUTH_API_SECRET"); s != "" {
		e.AuthAPISecrets = append(e.AuthAPISecrets, APISecret{ID: "default", Secret: s})
	}
	if js := strings.TrimSpace(getenv("AUTH_API_SECRETS_JSON")); js != "" {
		var list []APISecret
		dec := json.NewDecoder(strings.NewReader(js))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&list); err != nil {
			// Never echo the value: it holds secrets.
			bad("AUTH_API_SECRETS_JSON", `must be a JSON array of {"id","secret"}`)
		}
		e.AuthAPISecrets = append(e.AuthAPISecrets, list...)
	}
	seen := map[string]bool{}
	for i, s := range e.AuthAPISecrets {
		if !idPattern.MatchString(s.ID) {
			bad("AUTH_API_SECRETS_JSON", fmt.Sprintf("entry %d: id must match [a-z0-9][a-z0-9-]{0,62}", i))
		}
		if len(s.Secret) < 32 {
			bad("AUTH_API_SECRETS_JSON", fmt.Sprintf("entry %d (%s): secret shorter than 32 bytes", i, s.ID))
		}
		if seen[s.Secret] {
			bad("AUTH_API_SECRETS_JSON", fmt.Sprintf("entry %d (%s): the same secret is listed twice", i, s.ID))
		}
		seen[s.Secret] = true
	}
	if (e.AuthServiceURL == "") != (e.AuthSigningKeyPath == "") {
		bad("AUTH_SERVICE_URL", "AUTH_SERVICE_URL and AUTH_SIGNING_KEY_PATH go together")
	}
	if e.AuthServiceURL != "" {
		if u, err := url.Parse(e.AuthServiceURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("AUTH_SERVICE_URL", "must be an http(s) URL")
		}
	}

	if e.Production() {
		if e.SigningKeyFile == "" {
			bad("BROKER_SIGNING_KEY_FILE", "required with BROKER_ENV=production")
		}
		if e.RedisURL == "" && len(e.RedisClusterAddrs) == 0 {
			bad("BROKER_REDIS_URL", "a Redis store is required with BROKER_ENV=production")
		}
		if e.ConfigFile == "" && e.Registry.DatabaseURL == "" {
			bad("BROKER_CONFIG", "a tenants file (or BROKER_DATABASE_URL) is required with BROKER_ENV=production")
		}
		if !e.AuthRequired {
			bad("AUTH_REQUIRED", "false is only accepted with BROKER_ENV=development")
		}
	}
	if len(problems) > 0 {
		return nil, errors.New("invalid environment:\n  " + strings.Join(problems, "\n  "))
	}
	return e, nil
}
