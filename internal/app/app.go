// Package app wires the broker: environment and tenants, store, keys,
// authenticator and HTTP server. cmd/broker and the end-to-end tests build
// the same App, so the tests run the real server.
package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/examples/widget"
	"github.com/voicebroker/voicebroker/internal/auth"
	"github.com/voicebroker/voicebroker/internal/httpapi"
	"github.com/voicebroker/voicebroker/internal/keyfile"
	"github.com/voicebroker/voicebroker/internal/livekit"
	"github.com/voicebroker/voicebroker/internal/metrics"
	"github.com/voicebroker/voicebroker/internal/registry"
	"github.com/voicebroker/voicebroker/internal/store"
	"github.com/voicebroker/voicebroker/internal/store/memory"
	vbredis "github.com/voicebroker/voicebroker/internal/store/redis"
	"github.com/voicebroker/voicebroker/pkg/token"
)

// Version is the broker's version, set at build time with -ldflags.
var Version = "dev"

// ShutdownTimeout bounds how long in-flight requests may take to finish
// after a shutdown signal.
const ShutdownTimeout = 20 * time.Second

// DevKeys are the credentials of the embedded development tenant, made
// fresh at every start. They exist only in memory and are printed once.
type DevKeys struct {
	Secret      string
	Publishable string
}

// App is one broker.
type App struct {
	Env     *config.Env
	Log     *slog.Logger
	Tenants registry.Registry
	Store   store.Store
	Metrics *metrics.Metrics
	Issuer  *token.Issuer
	DevKeys *DevKeys // nil unless the embedded tenant is in use
	// Rooms renews the owner records of rooms live in LiveKit while Run
	// runs (every RoomRenewInterval; httpapi.RoomRenewInterval when 0).
	Rooms             *httpapi.RoomKeeper
	RoomRenewInterval time.Duration

	handler  http.Handler // api behind the registry gate and the request deadline
	api      http.Handler // the routes alone
	server   *http.Server
	listener net.Listener
	// metricsServer and metricsListener serve /metrics apart from the API
	// when BROKER_METRICS_ADDR is set; nil otherwise.
	metricsServer   *http.Server
	metricsListener net.Listener
	// adminHandler, adminServer and adminListener serve the admin API apart
	// from the rest when BROKER_ADMIN_ADDR is set; nil otherwise.
	adminHandler  http.Handler
	adminServer   *http.Server
	adminListener net.Listener
	closeMu       sync.Mutex
	closed        bool
	// tenantsMismatch is 1 while a writable registry's snapshot fails the
	// environment's checks (config.Env.CheckTenants): an API secret naming
	// an org deleted through the admin API. See watchTenantChecks.
	tenantsMismatch atomic.Bool
}

// New builds an App from the environment. It does not listen yet. Every
// configuration mistake is an error naming the variable, file or field;
// on error nothing is left open.
func New(env *config.Env, log *slog.Logger) (*App, error) {
	a := &App{Env: env, Log: log, Metrics: metrics.New(Version)}
	if err := a.build(); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// build checks and loads everything from files first, and opens the store
// last, so a mistake costs no connection.
func (a *App) build() error {
	env, log := a.Env, a.Log
	if err := a.loadTenants(); err != nil {
		return err
	}
	signing, verify, err := loadKeys(env)
	if err != nil {
		return err
	}
	if a.Issuer, err = token.NewIssuer(signing, env.PublicURL, env.TokenTTL); err != nil {
		return fmt.Errorf("BROKER_SIGNING_KEY_FILE: %w", err)
	}
	verifier, err := token.NewVerifier(env.PublicURL, append([]*token.Key{signing}, verify...), nil, token.DefaultLeeway)
	if err != nil {
		return fmt.Errorf("BROKER_VERIFY_KEY_FILES: %w", err)
	}
	dpop, err := newDPoPVerifier(env.PublicURL)
	if err != nil {
		return err
	}

	var service *auth.Service
	if env.AuthServiceURL != "" {
		if service, err = auth.NewService(env.AuthServiceURL, env.AuthSigningKeyPath, env.AuthTimeout); err != nil {
			return err
		}
	}
	authn := auth.New(a.Tenants, auth.Options{
		Production: env.Production(), Secrets: env.AuthAPISecrets, Service: service, JWKSTimeout: config.JWKSTimeout,
	})
	if !env.AuthRequired {
		log.Warn("AUTH_REQUIRED=false: requests without a credential are let through (development only)", "event", "auth.disabled")
	}

	// The default LiveKit project (LIVEKIT_*), and the orgs' own projects
	// from the registry: each org's tokens, room calls and webhooks go to
	// its own project when it has one.
	lkOpt := livekit.Options{
		TokenTTL: env.LiveKitTokenTTL, Timeout: env.LiveKitTimeout,
		Observe: func(op string, d time.Duration, err error) {
			result := "ok"
			if err != nil {
				result = "error"
			}
			a.Metrics.LiveKitCalls.WithLabelValues(op, result).Observe(d.Seconds())
		},
	}
	var lk *livekit.Client
	if env.LiveKitConfigured() {
		o := lkOpt
		o.URL, o.APIKey, o.APISecret = env.LiveKitURL, env.LiveKitAPIKey, env.LiveKitAPISecret
		lk = livekit.New(o)
	}
	projects := livekit.NewProjects(lk, a.Tenants.Snapshot, lkOpt)

	if err := a.openStore(); err != nil {
		return err
	}
	st := a.Metrics.InstrumentStore(a.Store)

	var demoFS fs.FS
	var demoConfig any
	if !env.Production() {
		demoFS = widget.FS()
		if a.DevKeys != nil {
			demoConfig = map[string]string{"broker": "", "key": a.DevKeys.Publishable, "agent": config.DemoAgent, "channel": string(config.ChannelWebRTC)}
		} else {
			demoConfig = map[string]string{"error": "the demo page needs the embedded development tenant, or ?broker=&key=&agent= in its URL"}
		}
	}

	deps := httpapi.Deps{
		Tenants:          a.Tenants,
		Auth:             authn,
		Store:            st,
		Issuer:           a.Issuer,
		Verifier:         verifier,
		DPoP:             dpop,
		JWKS:             token.NewJWKS(append([]*token.Key{signing}, verify...)...),
		Log:              log,
		Metrics:          a.Metrics,
		PublicURL:        env.PublicURL,
		ClientIP:         httpapi.ClientIP{Trusted: env.TrustedProxies},
		Leeway:           token.DefaultLeeway,
		LiveKit:          lk,
		LiveKitProjects:  projects,
		Production:       env.Production(),
		AuthRequired:     env.AuthRequired,
		Demo:             demoFS,
		DemoConfig:       demoConfig,
		ConnectRate:      env.ConnectRatePerMin,
		PublicRate:       env.PublicRatePerMin,
		MetricsElsewhere: env.MetricsAddr != "",
		Admin: &httpapi.Admin{Registry: a.Tenants, KeyHashes: env.Admin.KeyHashes, Separate: env.Admin.Addr != "",
			DefaultLiveKitURL: env.LiveKitURL},
	}
	a.api = httpapi.New(deps)
	a.Rooms = httpapi.NewRoomKeeper(deps)
	a.handler = registryGate(a.Tenants, withDeadline(env.RequestTimeout, a.api))
	if env.Admin.Addr != "" {
		a.adminHandler = registryGate(a.Tenants, withDeadline(env.RequestTimeout, httpapi.NewAdmin(deps)))
	}
	if len(env.Admin.KeyHashes) == 0 {
		log.Info("BROKER_ADMIN_KEY_HASHES is not set: no platform admin key is accepted; the admin API serves only secret keys with keys:write, for their own org's keys",
			"event", "admin.no_keys")
	}
	return nil
}

// newDPoPVerifier builds the checker of the DPoP proofs that /connect
// wants with sender-constrained tickets: their htu must be the broker's
// public URL of /connect.
func newDPoPVerifier(publicURL string) (*token.DPoPVerifier, error) {
	v, err := token.NewDPoPVerifier(publicURL + "/connect")
	if err != nil {
		// The URL is not echoed, as no URL variable is (config.LoadEnv).
		reason := strings.TrimPrefix(err.Error(), "token: dpop verifier: htu ")
		return nil, fmt.Errorf("BROKER_PUBLIC_URL: cannot be the base of the DPoP target URI (BROKER_PUBLIC_URL + \"/connect\"): it %s "+
			"(want an http or https URL in printable ASCII, with a canonical port and no dot segments or malformed percent-escapes)", reason)
	}
	return v, nil
}

// loadTenants opens the tenant registry (the database, the tenants file,
// or the embedded demo tenant) and checks the environment against it:
// every API secret must name one of its orgs, at start and, for a file,
// after every reload.
func (a *App) loadTenants() error {
	var err error
	a.Tenants, a.DevKeys, err = openRegistry(context.Background(), a.Env, a.Log, a.Metrics)
	if err != nil {
		return err
	}
	a.Metrics.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "voicebroker_registry_config_mismatch",
		Help: "1 while the tenant registry's snapshot fails the environment's checks (an API secret naming an org that is gone); the log line registry.check says which.",
	}, func() float64 {
		if a.tenantsMismatch.Load() {
			return 1
		}
		return 0
	}))
	return nil
}

// openStore connects the store named by the environment and warns, without
// failing, when it cannot be reached now: the broker serves, /readyz
// answers 503 and store-backed requests fail closed until it answers.
func (a *App) openStore() error {
	env := a.Env
	opts := &vbredis.Options{Timeout: env.StoreTimeout}
	switch {
	case env.RedisURL != "":
		rs, err := vbredis.NewURL(env.RedisURL, opts)
		if err != nil {
			// Never echo the URL: it may hold a password.
			return errors.New("BROKER_REDIS_URL: not a usable Redis URL (check the database number and the query options)")
		}
		a.Store = rs
	case len(env.RedisClusterAddrs) > 0:
		a.Store = vbredis.NewCluster(env.RedisClusterAddrs, opts)
	default:
		a.Store = memory.New(10 * time.Second)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), max(env.StoreTimeout, time.Second))
	defer cancel()
	if err := a.Store.Ping(ctx); err != nil {
		a.Log.Warn("the Redis store cannot be reached at start; serving anyway: /readyz answers 503 and every request that needs the store fails closed with 503 store_unavailable until it answers",
			"event", "store.unreachable", "store", storeKind(env), "target", storeTarget(env), "reason", err.Error())
	}
	return nil
}

// withDeadline gives every request a context that ends d after it began:
// every upstream call takes its deadline from it, so none outlives the
// server's write timeout (config.WriteTimeout).
func withDeadline(d time.Duration, next http.Handler) http.Handler {
	return deadlineHandler{d: d, next: next}
}

type deadlineHandler struct {
	d    time.Duration
	next http.Handler
}

func (h deadlineHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := &deadlineCtx{Context: r.Context(), deadline: time.Now().Add(h.d)}
	defer ctx.release()
	h.next.ServeHTTP(w, r.WithContext(ctx))
}

// deadlineCtx is context.WithDeadline(parent, deadline) made on demand: a
// request whose work never waits on Done (the memory store only asks Err)
// costs no timer and no registration with its parent. Deadline, Err and
// Value answer as the real one would; Done, and everything after it, is
// the real one's. Once released (the handler returned) it is ended, as
// the real one's cancel would end it: Err is Canceled (or what ended it
// first) and Done is closed, also for work that outlives the handler.
type deadlineCtx struct {
	context.Context // the parent
	deadline        time.Time

	mu       sync.Mutex
	ctx      context.Context // the real context, once made
	cancel   context.CancelFunc
	released bool // the handler returned
	expired  bool // the deadline had passed when the handler returned
}

// real returns the real context, made on first use when create is set, or
// nil. Made after release, it is cancelled at once.
func (c *deadlineCtx) real(create bool) context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.ctx != nil || !create && !c.released:
	case c.released && !c.expired:
		// Released before its deadline: cancelled, as release would have
		// cancelled the real one.
		c.ctx, c.cancel = context.WithCancel(c.Context)
		c.cancel()
	default:
		c.ctx, c.cancel = context.WithDeadline(c.Context, c.deadline)
	}
	return c.ctx
}

func (c *deadlineCtx) Deadline() (time.Time, bool) {
	if d, ok := c.Context.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

func (c *deadlineCtx) Done() <-chan struct{} { return c.real(true).Done() }

// CancelSignal returns a channel closed when the parent ends (the client
// went away; net/http also ends it just after the handler returns), not at
// the request's own deadline, and without making the timer that Done makes:
// a waiter that selects on it stops at Deadline on a timer of its own, as
// the Redis store's batcher does with a pooled one. Once the handler has
// returned, or the real context is made, it is that context's Done.
func (c *deadlineCtx) CancelSignal() <-chan struct{} {
	if r := c.real(false); r != nil {
		return r.Done()
	}
	return c.Context.Done()
}

func (c *deadlineCtx) Err() error {
	if r := c.real(false); r != nil {
		return r.Err()
	}
	if err := c.Context.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// Value is the real context's (so that a context derived from this one
// finds the real one's cancellation, as from any context the context
// package made), or the parent's before there is one.
func (c *deadlineCtx) Value(key any) any {
	if r := c.real(false); r != nil {
		return r.Value(key)
	}
	return c.Context.Value(key)
}

// release ends the context: the real one, if there is one, is cancelled;
// otherwise it is made cancelled on first use.
func (c *deadlineCtx) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.released = true
	c.expired = !time.Now().Before(c.deadline)
	if c.ctx != nil {
		c.cancel()
	}
}

// Unwrap returns the API handler within, for tests that read its routes.
func (h deadlineHandler) Unwrap() http.Handler { return h.next }

// Handler returns the HTTP handler, for in-process benchmarks.
func (a *App) Handler() http.Handler { return a.handler }

// API returns the routes without the outer middleware (registry gate,
// request deadline), for tests that inspect the route table.
func (a *App) API() http.Handler { return a.api }

// loadKeys reads the signing key and the keys still accepted; without a
// signing key file (development only) an ephemeral Ed25519 key is made.
func loadKeys(env *config.Env) (*token.Key, []*token.Key, error) {
	var signing *token.Key
	if env.SigningKeyFile == "" {
		if env.Production() {
			return nil, nil, errors.New("BROKER_SIGNING_KEY_FILE: required in production")
		}
		k, err := token.GenerateKey(token.EdDSA)
		if err != nil {
			return nil, nil, err
		}
		signing = k
	} else {
		k, err := readKey(env.SigningKeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("BROKER_SIGNING_KEY_FILE %s: %w", env.SigningKeyFile, err)
		}
		if !k.Signer() {
			return nil, nil, fmt.Errorf("BROKER_SIGNING_KEY_FILE %s: holds a public key; a private key is needed to sign", env.SigningKeyFile)
		}
		signing = k
	}
	var verify []*token.Key
	for _, f := range env.VerifyKeyFiles {
		k, err := readKey(f)
		if err != nil {
			return nil, nil, fmt.Errorf("BROKER_VERIFY_KEY_FILES %s: %w", f, err)
		}
		verify = append(verify, k.Public())
	}
	return signing, verify, nil
}

// readKey reads an Ed25519 or ECDSA P-256 key, private or public, in PEM.
func readKey(path string) (*token.Key, error) {
	k, err := keyfile.Read(path)
	if err != nil {
		return nil, err
	}
	var raw any = k.Public
	if k.Private != nil {
		raw = k.Private
	}
	tk, err := token.NewKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w (tokens are signed with Ed25519 or ECDSA P-256)", err)
	}
	return tk, nil
}

// Listen binds the listen address, and BROKER_METRICS_ADDR and
// BROKER_ADMIN_ADDR when set; Addr, MetricsAddr and AdminAddr then report
// the bound addresses (useful with port 0). On error nothing is left bound.
func (a *App) Listen() error {
	l, err := net.Listen("tcp", a.Env.Addr)
	if err != nil {
		return fmt.Errorf("BROKER_ADDR %s: %w", a.Env.Addr, err)
	}
	if a.Env.MetricsAddr != "" {
		ml, err := net.Listen("tcp", a.Env.MetricsAddr)
		if err != nil {
			l.Close()
			return fmt.Errorf("BROKER_METRICS_ADDR %s: %w", a.Env.MetricsAddr, err)
		}
		a.metricsListener = jsonErrorListener{ml}
		a.metricsServer = a.newServer(metricsOnly(a.Metrics.Handler()))
	}
	if a.adminHandler != nil {
		al, err := net.Listen("tcp", a.Env.Admin.Addr)
		if err != nil {
			l.Close()
			if a.metricsListener != nil {
				a.metricsListener.Close()
				a.metricsListener, a.metricsServer = nil, nil
			}
			return fmt.Errorf("BROKER_ADMIN_ADDR %s: %w", a.Env.Admin.Addr, err)
		}
		a.adminListener = jsonErrorListener{al}
		a.adminServer = a.newServer(a.adminHandler)
	}
	a.listener = jsonErrorListener{l}
	a.server = a.newServer(a.handler)
	return nil
}

// newServer is an HTTP server with the broker's limits and deadlines.
func (a *App) newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		// The response deadline; every upstream deadline ends before it
		// (config.Env.RequestTimeout, applied by withDeadline).
		WriteTimeout:   config.WriteTimeout,
		IdleTimeout:    90 * time.Second,
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       slog.NewLogLogger(a.Log.Handler(), slog.LevelWarn),
	}
}

// metricsOnly serves GET (and HEAD) /metrics and answers anything else
// in the contract's error shape.
func metricsOnly(metrics http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path != "/metrics":
			refuse(w, http.StatusNotFound, "not_found", "this listener serves only /metrics")
		case r.Method != http.MethodGet && r.Method != http.MethodHead:
			w.Header().Set("Allow", "GET, HEAD")
			refuse(w, http.StatusMethodNotAllowed, "method_not_allowed", "/metrics answers GET")
		default:
			metrics.ServeHTTP(w, r)
		}
	})
}

// refuse answers in the contract's error shape, for the handlers outside
// httpapi (code and message are ASCII constants: %q quotes them as JSON
// does).
func refuse(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":%q,"message":%q}`+"\n", code, message)
}

// Addr returns the bound address, after Listen.
func (a *App) Addr() string { return a.listener.Addr().String() }

// MetricsAddr returns the bound address of the /metrics listener, after
// Listen; "" when /metrics is served on the main listener.
func (a *App) MetricsAddr() string {
	if a.metricsListener == nil {
		return ""
	}
	return a.metricsListener.Addr().String()
}

// AdminAddr returns the bound address of the admin API's own listener
// (BROKER_ADMIN_ADDR), after Listen; "" when the admin API is on the main
// listener.
func (a *App) AdminAddr() string {
	if a.adminListener == nil {
		return ""
	}
	return a.adminListener.Addr().String()
}

// Run serves until ctx ends, then stops accepting, lets in-flight requests
// finish (up to ShutdownTimeout) and returns. SIGHUP reloads the tenants
// file; the file is also polled for changes.
func (a *App) Run(ctx context.Context) error {
	if a.listener == nil {
		if err := a.Listen(); err != nil {
			return err
		}
	}
	// The registry follows its source (file polling and SIGHUP, or the
	// database) until Run returns.
	watchCtx, stopWatch := context.WithCancel(ctx)
	followed := make(chan struct{})
	checked := make(chan struct{})
	go func() { a.Tenants.Run(watchCtx); close(followed) }()
	go func() { a.watchTenantChecks(watchCtx); close(checked) }()
	kept := make(chan struct{})
	go func() { a.Rooms.Run(watchCtx, a.RoomRenewInterval); close(kept) }()
	defer func() { stopWatch(); <-followed; <-checked; <-kept }()

	if a.Env.PprofAddr != "" {
		stop, err := a.servePprof()
		if err != nil {
			return fmt.Errorf("BROKER_PPROF_ADDR: %w", err)
		}
		defer stop()
	}

	servers := []*http.Server{a.server}
	errc := make(chan error, 3)
	go func() { errc <- a.server.Serve(a.listener) }()
	if a.metricsServer != nil {
		servers = append(servers, a.metricsServer)
		go func() { errc <- a.metricsServer.Serve(a.metricsListener) }()
		a.Log.Info("metrics listening", "event", "metrics", "addr", a.MetricsAddr())
	}
	if a.adminServer != nil {
		servers = append(servers, a.adminServer)
		go func() { errc <- a.adminServer.Serve(a.adminListener) }()
		a.Log.Info("admin API listening", "event", "admin", "admin_addr", a.AdminAddr())
	}
	a.Log.Info("broker listening", "event", "start", "addr", a.Addr(), "env", a.Env.Environment,
		"version", Version, "store", storeKind(a.Env), "tenants", tenantsSource(a.Env))
	if a.metricsServer == nil && a.Env.Production() {
		// The contract allows it; an operator should choose it knowingly.
		a.Log.Warn("/metrics is served on the main listener, to anyone who can reach it: its labels name every org and its traffic; set BROKER_METRICS_ADDR to give it a listener of its own",
			"event", "metrics.public")
	}

	var serveErr error
	select {
	case serveErr = <-errc:
		// One listener failed: stop the other too, and report it.
	case <-ctx.Done():
	}
	a.Log.Info("shutting down", "event", "shutdown")
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	// Every listener stops accepting at once and lets its in-flight
	// requests finish within the same deadline.
	shut := make(chan error, len(servers))
	for _, srv := range servers {
		go func() { shut <- srv.Shutdown(sctx) }()
	}
	var shutdownErr error
	for range servers {
		if err := <-shut; err != nil && shutdownErr == nil {
			shutdownErr = fmt.Errorf("shutdown: %w", err)
		}
	}
	pending := len(servers)
	if serveErr != nil {
		pending--
	}
	for range pending {
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) && serveErr == nil {
			serveErr = err
		}
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return shutdownErr
}

// servePprof serves net/http/pprof on its own loopback listener, apart
// from the API (config refuses a non-loopback BROKER_PPROF_ADDR).
func (a *App) servePprof() (stop func(), err error) {
	l, err := net.Listen("tcp", a.Env.PprofAddr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	a.Log.Info("pprof listening", "event", "pprof", "addr", l.Addr().String())
	return func() { srv.Close() }, nil
}

// Close releases the store. Call it after Run returns. It is safe on a
// nil or half-built App and more than once.
func (a *App) Close() error {
	if a == nil {
		return nil
	}
	a.closeMu.Lock()
	defer a.closeMu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	if a.Tenants != nil {
		a.Tenants.Close()
	}
	if a.Store != nil {
		return a.Store.Close()
	}
	return nil
}

func storeKind(env *config.Env) string {
	switch {
	case env.RedisURL != "":
		return "redis"
	case len(env.RedisClusterAddrs) > 0:
		return "redis-cluster"
	}
	return "memory"
}

// StoreDescription names the store this broker uses, as the development
// banner says it: a developer who set BROKER_REDIS_URL must not be told
// that tickets live only in this process. It never holds the URL's
// password.
func (a *App) StoreDescription() string {
	switch storeKind(a.Env) {
	case "redis":
		return "Redis store at " + storeTarget(a.Env)
	case "redis-cluster":
		return "Redis Cluster store at " + storeTarget(a.Env)
	}
	return "in-memory store"
}

// storeTarget names the Redis server(s) without the URL's password.
func storeTarget(env *config.Env) string {
	if env.RedisURL != "" {
		if u, err := url.Parse(env.RedisURL); err == nil {
			return u.Host
		}
		return "(unparsable URL)"
	}
	return strings.Join(env.RedisClusterAddrs, ",")
}

func tenantsSource(env *config.Env) string {
	switch {
	case env.Registry.DatabaseURL != "":
		return "database"
	case env.ConfigFile == "":
		return "embedded demo"
	}
	return env.ConfigFile
}
