package config

import (
	"errors"
	"fmt"
	"math"
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

// Deadlines every request lives within. The server gives up writing a
// response WriteTimeout after it read the request; a handler's context ends
// ReplyTime plus one store call before that, so the clean-up a failure needs
// (a nonce restored, a room claim released) and the reply itself still fit.
// Every upstream call (store, LiveKit, auth service, JWKS) takes its
// deadline from that context, so none outlives the response.
const (
	// WriteTimeout is the server's response deadline.
	WriteTimeout = 30 * time.Second
	// ReplyTime is kept after the request deadline to write the reply.
	ReplyTime = 2 * time.Second
	// JWKSTimeout bounds the fetch of a backend issuer's JWKS.
	JWKSTimeout = 5 * time.Second
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
	// RequestTimeout is the deadline of a request's context: WriteTimeout
	// less ReplyTime and one StoreTimeout.
	RequestTimeout time.Duration
	// ReloadInterval is how often the tenants file is checked for changes.
	ReloadInterval time.Duration
	// PprofAddr, when set, serves net/http/pprof there (loopback only).
	PprofAddr string
	// Registry is the tenant registry in PostgreSQL (database mode).
	Registry RegistryEnv
	// MetricsAddr, when set, serves /metrics there and not on Addr.
	MetricsAddr string
	// Admin is the admin API's credentials and listener.
	Admin AdminEnv
}

// APISecret is one Sayna-style shared secret and the org it stands for.
// Source names the variable it came from, for messages.
type APISecret struct {
	ID     string
	Secret string
	Source string
}

// Production reports whether BROKER_ENV is production.
func (e *Env) Production() bool { return e.Environment == EnvProduction }

// LiveKitConfigured reports whether all three LiveKit variables are set.
func (e *Env) LiveKitConfigured() bool {
	return e.LiveKitURL != "" && e.LiveKitAPIKey != "" && e.LiveKitAPISecret != ""
}

// EnvError lists every problem of the environment, each naming its
// variable. No message carries a secret's value.
type EnvError struct {
	Problems []string
}

func (e *EnvError) Error() string {
	return "invalid environment:\n  " + strings.Join(e.Problems, "\n  ")
}

// LoadEnv reads the environment through getenv (os.Getenv in production,
// a map in tests) and checks it. Every problem is reported in an *EnvError,
// each naming the variable.
func LoadEnv(getenv func(string) string) (*Env, error) {
	r := &envReader{getenv: getenv}
	e := &Env{}
	r.server(e)
	r.metrics(e)
	r.store(e)
	r.liveKit(e)
	r.auth(e)
	r.deadlines(e)
	e.Registry = loadRegistryEnv(getenv, e.ConfigFile, r.bad)
	e.Admin = loadAdminEnv(r, e)
	r.production(e)
	if len(r.problems) > 0 {
		return nil, &EnvError{Problems: r.problems}
	}
	return e, nil
}

// envReader reads typed variables and collects the problems.
type envReader struct {
	getenv   func(string) string
	problems []string
}

func (r *envReader) bad(name, reason string) { r.problems = append(r.problems, name+": "+reason) }

func (r *envReader) str(name, def string) string {
	if v := strings.TrimSpace(r.getenv(name)); v != "" {
		return v
	}
	return def
}

// dur reads a Go duration, or a bare number of seconds (as in
// AUTH_TIMEOUT_SECONDS), within lo and hi.
func (r *envReader) dur(name string, def, lo, hi time.Duration) time.Duration {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	d, err := parseDuration(v)
	if err != nil {
		r.bad(name, err.Error())
		return def
	}
	if d < lo || d > hi {
		r.bad(name, fmt.Sprintf("%s is outside %s to %s", d, lo, hi))
		return def
	}
	return d
}

// parseDuration reads every duration variable the same way: a Go duration
// with its unit (5s, 1500ms, 2m30s), or a bare whole number of seconds (5),
// since a variable named AUTH_TIMEOUT_SECONDS invites one. Its error says
// both forms, so that 1.5 (a fraction without a unit) is answered with
// what to write instead.
func parseDuration(v string) (time.Duration, error) {
	if d, err := time.ParseDuration(v); err == nil {
		return d, nil
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 && n <= int64(math.MaxInt64/time.Second) {
		return time.Duration(n) * time.Second, nil
	} else if err == nil || errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("%q seconds is negative or far too long", truncate(v))
	}
	return 0, fmt.Errorf("%q is not a duration: give whole seconds such as 5, or a duration with its unit such as 5s or 1500ms", truncate(v))
}

func (r *envReader) num(name string, def, lo, hi int) int {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		r.bad(name, fmt.Sprintf("%q must be a whole number from %d to %d", truncate(v), lo, hi))
		return def
	}
	return n
}

func (r *envReader) list(name string) []string {
	var out []string
	for _, s := range strings.Split(r.getenv(name), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (r *envReader) boolean(name string, def bool) bool {
	switch v := strings.ToLower(r.str(name, "")); v {
	case "":
		return def
	case "true", "1", "yes":
		return true
	case "false", "0", "no":
		return false
	default:
		r.bad(name, fmt.Sprintf("%q must be true or false", truncate(v)))
		return def
	}
}

// url checks that a variable holds an absolute URL of one of schemes, with
// a host; never echoes the value, which may carry a password.
func (r *envReader) url(name, value string, schemes ...string) *url.URL {
	u, err := url.Parse(value)
	if err == nil && u.Host != "" {
		for _, s := range schemes {
			if u.Scheme == s {
				return u
			}
		}
	}
	r.bad(name, "must be a "+strings.Join(schemes, " or ")+" URL with a host")
	return nil
}

// hostPort checks host:port with a numeric port; host may be empty (all
// interfaces) when emptyHost. It reports whether the value is good.
func (r *envReader) hostPort(name, v string, emptyHost bool) bool {
	host, port, err := net.SplitHostPort(v)
	n, perr := strconv.Atoi(port)
	switch {
	case err != nil:
		r.bad(name, fmt.Sprintf("%q is not host:port (%v)", truncate(v), err))
	case perr != nil || n < 0 || n > 65535:
		r.bad(name, fmt.Sprintf("%q: the port must be a number from 0 to 65535", truncate(v)))
	case host == "" && !emptyHost:
		r.bad(name, fmt.Sprintf("%q: a host is required", truncate(v)))
	default:
		return true
	}
	return false
}

// defaultPublicURL is http://localhost with the listener's port: the
// address a browser on this machine reaches, which tickets name as their
// server and DPoP proofs as their htu. BROKER_ADDR=:8081 without
// BROKER_PUBLIC_URL then still gives a working /demo/.
func defaultPublicURL(addr string) string {
	if _, port, err := net.SplitHostPort(addr); err == nil && port != "" && port != "0" {
		return "http://localhost:" + port
	}
	return "http://localhost:8080"
}

// server reads the listener, public identity, rates and key files.
func (r *envReader) server(e *Env) {
	e.Addr = r.str("BROKER_ADDR", ":8080")
	r.hostPort("BROKER_ADDR", e.Addr, true)
	e.Environment = r.str("BROKER_ENV", EnvDevelopment)
	switch e.Environment {
	case EnvDevelopment, EnvProduction:
	default:
		r.bad("BROKER_ENV", fmt.Sprintf("%q must be development or production", truncate(e.Environment)))
	}
	e.ConfigFile = r.str("BROKER_CONFIG", "")
	e.PublicURL = strings.TrimRight(r.str("BROKER_PUBLIC_URL", defaultPublicURL(e.Addr)), "/")
	if u := r.url("BROKER_PUBLIC_URL", e.PublicURL, "http", "https"); u != nil && (u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.Contains(e.PublicURL, "#")) {
		r.bad("BROKER_PUBLIC_URL", "must have no user info, query or fragment")
	}
	e.TokenTTL = r.dur("BROKER_TOKEN_TTL", 60*time.Second, 10*time.Second, 10*time.Minute)
	e.SigningKeyFile = r.str("BROKER_SIGNING_KEY_FILE", "")
	e.VerifyKeyFiles = r.list("BROKER_VERIFY_KEY_FILES")
	e.PublicRatePerMin = r.num("BROKER_PUBLIC_RATE_PER_MINUTE", 10, 1, 1_000_000)
	e.ConnectRatePerMin = r.num("BROKER_CONNECT_RATE_PER_MINUTE", 60, 1, 1_000_000)
	e.ReloadInterval = r.dur("BROKER_RELOAD_INTERVAL", 2*time.Second, 100*time.Millisecond, time.Hour)
	for _, s := range r.list("BROKER_TRUSTED_PROXIES") {
		p, reason := trustedProxy(s)
		if reason != "" {
			r.bad("BROKER_TRUSTED_PROXIES", reason)
			continue
		}
		e.TrustedProxies = append(e.TrustedProxies, p)
	}
	e.PprofAddr = r.str("BROKER_PPROF_ADDR", "")
	if e.PprofAddr != "" {
		host, _, err := net.SplitHostPort(e.PprofAddr)
		ip, perr := netip.ParseAddr(host)
		if err != nil || (host != "localhost" && (perr != nil || !ip.IsLoopback())) {
			r.bad("BROKER_PPROF_ADDR", "must be a loopback host:port, such as 127.0.0.1:6060")
		}
	}
}

func (r *envReader) store(e *Env) {
	e.RedisURL = r.str("BROKER_REDIS_URL", "")
	e.RedisClusterAddrs = r.list("BROKER_REDIS_CLUSTER_ADDRS")
	e.StoreTimeout = r.dur("BROKER_STORE_TIMEOUT", 500*time.Millisecond, 10*time.Millisecond, 10*time.Second)
	if e.RedisURL != "" {
		r.url("BROKER_REDIS_URL", e.RedisURL, "redis", "rediss")
	}
	for _, a := range e.RedisClusterAddrs {
		r.hostPort("BROKER_REDIS_CLUSTER_ADDRS", a, false)
	}
	if e.RedisURL != "" && len(e.RedisClusterAddrs) > 0 {
		r.bad("BROKER_REDIS_CLUSTER_ADDRS", "set either it or BROKER_REDIS_URL, not both")
	}
}

func (r *envReader) liveKit(e *Env) {
	e.LiveKitURL = r.str("LIVEKIT_URL", "")
	e.LiveKitAPIKey = r.str("LIVEKIT_API_KEY", "")
	e.LiveKitAPISecret = r.str("LIVEKIT_API_SECRET", "")
	e.LiveKitTokenTTL = r.dur("BROKER_LIVEKIT_TOKEN_TTL", 5*time.Minute, 30*time.Second, 24*time.Hour)
	e.LiveKitTimeout = r.dur("BROKER_LIVEKIT_TIMEOUT", 5*time.Second, 100*time.Millisecond, time.Minute)
	set := 0
	for _, v := range []string{e.LiveKitURL, e.LiveKitAPIKey, e.LiveKitAPISecret} {
		if v != "" {
			set++
		}
	}
	if set != 0 && set != 3 {
		r.bad("LIVEKIT_URL", "LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET go together")
	}
	if n := len(e.LiveKitAPISecret); n > 0 && n < MinLiveKitSecretLength {
		r.bad("LIVEKIT_API_SECRET", fmt.Sprintf("shorter than %d characters: the LiveKit tokens are HS256-signed with it, and one token is enough to guess a short secret offline (livekit-server refuses it too outside --dev; start it with --keys \"<key>: <%d or more characters>\")",
			MinLiveKitSecretLength, MinLiveKitSecretLength))
	}
	if e.LiveKitURL != "" {
		r.url("LIVEKIT_URL", e.LiveKitURL, "wss", "ws", "https", "http")
	}
}

func (r *envReader) auth(e *Env) {
	e.AuthRequired = r.boolean("AUTH_REQUIRED", true)
	e.AuthServiceURL = r.str("AUTH_SERVICE_URL", "")
	e.AuthSigningKeyPath = r.str("AUTH_SIGNING_KEY_PATH", "")
	e.AuthTimeout = r.dur("AUTH_TIMEOUT_SECONDS", 5*time.Second, time.Second, 60*time.Second)
	if (e.AuthServiceURL == "") != (e.AuthSigningKeyPath == "") {
		r.bad("AUTH_SERVICE_URL", "AUTH_SERVICE_URL and AUTH_SIGNING_KEY_PATH go together")
	}
	if e.AuthServiceURL != "" {
		r.url("AUTH_SERVICE_URL", e.AuthServiceURL, "http", "https")
	}
	// The secrets are read raw: a space around one is a mistake to report,
	// not to trim silently.
	if s := r.getenv("AUTH_API_SECRET"); s != "" {
		e.AuthAPISecrets = append(e.AuthAPISecrets, APISecret{ID: DefaultSecretOrg, Secret: s, Source: "AUTH_API_SECRET"})
	}
	if js := r.getenv("AUTH_API_SECRETS_JSON"); strings.TrimSpace(js) != "" {
		list, err := parseSecretsJSON(js)
		if err != nil {
			r.bad("AUTH_API_SECRETS_JSON", err.Error())
		}
		e.AuthAPISecrets = append(e.AuthAPISecrets, list...)
	}
	for _, p := range checkSecrets(e.AuthAPISecrets) {
		r.problems = append(r.problems, p)
	}
}

// deadlines orders the upstream deadlines before the response deadline:
// each must end within a request's time, and so must the longest chain of
// calls one request makes (an auth check, a LiveKit call, two store calls).
func (r *envReader) deadlines(e *Env) {
	e.RequestTimeout = WriteTimeout - ReplyTime - e.StoreTimeout
	budget := fmt.Sprintf("a request has %s before its response deadline (the server's %s write timeout less %s to reply and one BROKER_STORE_TIMEOUT to clean up)",
		e.RequestTimeout, WriteTimeout, ReplyTime)
	authTime := max(e.AuthTimeout, JWKSTimeout)
	over := false
	for _, c := range []struct {
		name string
		d    time.Duration
	}{
		{"AUTH_TIMEOUT_SECONDS", e.AuthTimeout},
		{"BROKER_LIVEKIT_TIMEOUT", e.LiveKitTimeout},
		{"BROKER_STORE_TIMEOUT", e.StoreTimeout},
	} {
		if c.d >= e.RequestTimeout {
			r.bad(c.name, fmt.Sprintf("%s would outlast the response: %s", c.d, budget))
			over = true
		}
	}
	if chain := authTime + e.LiveKitTimeout + 2*e.StoreTimeout; !over && chain > e.RequestTimeout {
		r.bad("AUTH_TIMEOUT_SECONDS, BROKER_LIVEKIT_TIMEOUT, BROKER_STORE_TIMEOUT",
			fmt.Sprintf("an auth check (%s), a LiveKit call (%s) and two store calls (%s each) take up to %s, but %s; lower one of them",
				authTime, e.LiveKitTimeout, e.StoreTimeout, chain, budget))
	}
}

func (r *envReader) production(e *Env) {
	if !e.Production() {
		return
	}
	if e.SigningKeyFile == "" {
		r.bad("BROKER_SIGNING_KEY_FILE", "required with BROKER_ENV=production")
	}
	if e.RedisURL == "" && len(e.RedisClusterAddrs) == 0 {
		r.bad("BROKER_REDIS_URL", "a Redis store is required with BROKER_ENV=production")
	}
	if e.ConfigFile == "" && e.Registry.DatabaseURL == "" {
		r.bad("BROKER_CONFIG", "a tenants file (or BROKER_DATABASE_URL) is required with BROKER_ENV=production")
	}
	if !e.AuthRequired {
		r.bad("AUTH_REQUIRED", "false is only accepted with BROKER_ENV=development")
	}
}
