// Package httpapi is the broker's HTTP surface: Echo routes, credential and
// limit middleware, handlers, and the one table from error to response. It
// is the only package that knows Echo.
package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/voicebroker/voicebroker/api"
	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/apikey"
	"github.com/voicebroker/voicebroker/internal/auth"
	"github.com/voicebroker/voicebroker/internal/livekit"
	"github.com/voicebroker/voicebroker/internal/metrics"
	"github.com/voicebroker/voicebroker/internal/store"
	"github.com/voicebroker/voicebroker/internal/strictjson"
	"github.com/voicebroker/voicebroker/pkg/origins"
	"github.com/voicebroker/voicebroker/pkg/token"
)

// demoCSP is the demo page's Content-Security-Policy: it has no inline
// code, loads its script and style from /demo/ and talks to the broker and
// LiveKit wherever they are.
const demoCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self' https: wss: http: ws:; media-src 'self' blob: mediastream:; object-src 'none'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Deps is what the server is built from. The handlers see each dependency
// through the small interface they use (authenticator, ticketIssuer,
// ticketVerifier, liveKit), so that they can be tested with fakes.
type Deps struct {
	Tenants   auth.Tenants
	Auth      authenticator
	Store     store.Store
	Issuer    ticketIssuer
	Verifier  ticketVerifier
	JWKS      token.JWKS
	Log       *slog.Logger
	Metrics   *metrics.Metrics
	PublicURL string
	ClientIP  ClientIP
	// Leeway is added to the nonce lifetime, matching the verifier's leeway.
	Leeway time.Duration
	// LiveKit is the default project; nil when LIVEKIT_* are unset. A nil
	// *livekit.Client counts as nil.
	LiveKit liveKit
	// LiveKitProjects, when set, gives orgs their own LiveKit projects
	// (the tenant registry's); an org without one uses LiveKit. With
	// neither, the LiveKit endpoints answer 501.
	LiveKitProjects liveKitProjects
	// ConnectRate and PublicRate are the per-IP limits a minute.
	ConnectRate, PublicRate int
	// Production refuses test keys.
	Production bool
	// AuthRequired false (development only) lets requests without any
	// credential through as the only org, with a warning each time.
	AuthRequired bool
	// Demo, when set (development only), is served at /demo/: the widget
	// page, plus DemoConfig as /demo/config.json.
	Demo       fs.FS
	DemoConfig any

	// DPoP checks the proofs that sender-constrained tickets need at
	// /connect (htu BROKER_PUBLIC_URL + "/connect").
	DPoP *token.DPoPVerifier
	// MetricsElsewhere: /metrics has a listener of its own
	// (BROKER_METRICS_ADDR), so this server answers 404 there.
	MetricsElsewhere bool

	// Admin, when set, serves the admin API (contract §4.1): on the main
	// routes, or apart from them (NewAdmin) when Admin.Separate.
	Admin *Admin
}

// withoutNilLiveKit is d with an unset *livekit.Client as no LiveKit: in
// the interface it would not be nil, and every call on it would panic.
func (d Deps) withoutNilLiveKit() Deps {
	if c, ok := d.LiveKit.(*livekit.Client); ok && c == nil {
		d.LiveKit = nil
	}
	return d
}

// Server holds the handlers' dependencies.
type Server struct {
	Deps
	log      *slog.Logger
	jwksBody []byte
	// routes are the registered route patterns: the only route label values
	// besides "unmatched".
	routes map[string]bool
}

// New returns the Echo instance serving the contract's routes.
//
// Middleware, outermost first: request id; metrics and the error answer
// (observe); recover, so a panic is answered 500 in the contract's shape and
// still observed; the 16 KiB header limit; security headers; counting of
// authenticated requests that a handler refused before its own store step.
// Echo sees them as one middleware (see Server.middleware).
func New(d Deps) *echo.Echo {
	s := &Server{Deps: d.withoutNilLiveKit(), log: d.Log}
	s.jwksBody, _ = json.Marshal(d.JWKS)

	e := s.newEcho()
	e.GET("/", s.health)
	e.GET("/healthz", s.health)
	e.GET("/readyz", s.ready)
	if !d.MetricsElsewhere {
		e.GET("/metrics", echo.WrapHandler(d.Metrics.Handler()))
	}
	e.GET("/.well-known/jwks.json", s.jwks)
	e.GET("/openapi.yaml", func(c echo.Context) error {
		return c.Blob(http.StatusOK, "application/yaml", api.OpenAPI)
	})

	if d.Demo != nil {
		files := http.StripPrefix("/demo/", http.FileServer(http.FS(d.Demo)))
		e.GET("/demo", func(c echo.Context) error { return c.Redirect(http.StatusFound, "/demo/") })
		e.GET("/demo/config.json", func(c echo.Context) error { return c.JSON(http.StatusOK, d.DemoConfig) })
		e.GET("/demo/*", echo.WrapHandler(files), func(next echo.HandlerFunc) echo.HandlerFunc {
			return func(c echo.Context) error {
				c.Response().Header().Set("Content-Security-Policy", demoCSP)
				return next(c)
			}
		})
	}
	e.POST("/token", s.mint)
	e.POST("/token/redeem", s.redeem)
	// The routes that need LiveKit answer 501 without it.
	liveKit := routeGroup{e: e, middleware: []echo.MiddlewareFunc{s.requireLiveKit}}
	liveKit.add(http.MethodPost, "/connect", s.connect, connectCORS)
	e.OPTIONS("/connect", preflight(func(origins.Origin) bool { return true }))
	e.POST("/public/token", s.publicToken)
	e.OPTIONS("/public/token", preflight(s.anyPublicOrigin))
	liveKit.add(http.MethodPost, "/livekit/token", s.livekitToken)
	liveKit.add(http.MethodGet, "/livekit/rooms", s.listRooms)
	liveKit.add(http.MethodGet, "/livekit/rooms/:room_name", s.getRoom)
	liveKit.add(http.MethodDelete, "/livekit/participant", s.removeParticipant)
	liveKit.add(http.MethodPost, "/livekit/participant/mute", s.muteTrack)
	liveKit.add(http.MethodPost, "/livekit/webhook", s.webhook)
	if d.Admin != nil && !d.Admin.Separate {
		s.adminRoutes(e)
	}
	s.indexRoutes(e)
	return e
}

// newEcho returns an Echo instance with the server's error handler and
// middleware, and no routes.
func (s *Server) newEcho() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.errorHandler
	e.IPExtractor = func(r *http.Request) string { return s.ClientIP.Of(r).String() }
	e.Use(s.middleware)
	return e
}

// middleware is the server's whole middleware chain as one: Echo wraps
// every middleware around the handler again on each request, one closure
// each, so one middleware instead of six saves five allocations a request.
// The steps, outermost first, are those New lists.
func (s *Server) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		s.requestID(c)
		start := time.Now()
		if err := s.guarded(c, next); err != nil {
			c.Error(err)
		}
		s.observe(c, start)
		return nil
	}
}

// guarded runs next under recoverPanic, after the header limit and the
// security headers, with countRefused around it.
func (s *Server) guarded(c echo.Context, next echo.HandlerFunc) (err error) {
	defer s.recoverPanic(c, &err)
	if headerBytes(c.Request()) > MaxHeaderBytes {
		return apiError(codeHeadersTooLarge, "")
	}
	s.securityHeaders(c)
	return s.countRefused(c, next(c))
}

// indexRoutes records e's route patterns, the route label's values.
func (s *Server) indexRoutes(e *echo.Echo) {
	s.routes = make(map[string]bool)
	for _, r := range e.Routes() {
		s.routes[r.Path] = true
	}
}

// routeGroup registers routes behind the same middleware, which runs
// inside each route's own (so /connect's CORS headers are set on its 501
// too). It is a group by middleware, not by path: /connect is not under
// /livekit. echo.Group.Use is not used because it adds catch-all routes
// under its prefix, which would turn the 404 of an unknown path into the
// group middleware's answer.
type routeGroup struct {
	e          *echo.Echo
	middleware []echo.MiddlewareFunc
}

func (g routeGroup) add(method, path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) {
	g.e.Add(method, path, h, append(slices.Clip(m), g.middleware...)...)
}

// reqState is what a request carries from one step of its handling to the
// next: one value under one key of the Echo context, made by the
// middleware, instead of a key for each with its value boxed.
type reqState struct {
	id        string // the request id (requestID)
	logger    *slog.Logger
	tenants   *config.Tenants
	principal *auth.Principal
	body      []byte // the body, once readBody read it (never nil then)
	budget    budget // the bucket counted (setBudget), when hasBudget
	hasBudget bool
	gate      gate // /public/token's per-IP gate, when hasGate
	hasGate   bool
}

const ctxState = "vb.state"

// stateOf returns the request's state, made on first use (the middleware
// makes it; a request Echo answers without a route has none until then).
func stateOf(c echo.Context) *reqState {
	if st, ok := c.Get(ctxState).(*reqState); ok {
		return st
	}
	st := new(reqState)
	c.Set(ctxState, st)
	return st
}

// tenants returns the tenants snapshot of this request: read once, on first
// use, and the same for every later use, so a reload in the middle of a
// request cannot give it two different files.
func (s *Server) tenants(c echo.Context) *config.Tenants {
	st := stateOf(c)
	if st.tenants == nil {
		st.tenants = s.Tenants.Current()
	}
	return st.tenants
}

func requestID(c echo.Context) string { return stateOf(c).id }

// logger is the request's logger: the server's, with the request_id
// attribute attached once, on first use, so that every line the request
// writes carries it and none spells it out.
func (s *Server) logger(c echo.Context) *slog.Logger {
	st := stateOf(c)
	if st.logger == nil {
		st.logger = s.log.With(slog.String("request_id", st.id))
	}
	return st.logger
}

// requestID takes the caller's X-Request-Id if it is short and plain, or
// makes one, and echoes it on the response.
func (s *Server) requestID(c echo.Context) {
	id := c.Request().Header.Get(echo.HeaderXRequestID)
	if !plainID(id) {
		id, _ = token.NewNonce()
	}
	stateOf(c).id = id
	c.Response().Header()[echo.HeaderXRequestID] = []string{id}
}

func plainID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		if !('a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' || ch == '-' || ch == '_' || ch == '.') {
			return false
		}
	}
	return true
}

// observe records the HTTP duration by route pattern (never the raw URL,
// which may carry api_key), method and status, each from a closed set (see
// package metrics), once the answer (an error's too) is written.
func (s *Server) observe(c echo.Context, start time.Time) {
	s.Metrics.ObserveHTTP(s.routeLabel(c), c.Request().Method, c.Response().Status, time.Since(start))
}

// routeLabel is the matched route's pattern, or "unmatched".
func (s *Server) routeLabel(c echo.Context) string {
	if p := c.Path(); s.routes[p] {
		return p
	}
	return "unmatched"
}

// recoverPanic, deferred, turns a panic in a handler into a 500 in the
// contract's shape (config_error: see errorHandler) in *err and logs it
// with its stack. The stack holds no argument values, so no credential
// reaches the log.
func (s *Server) recoverPanic(c echo.Context, err *error) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		panic(v) // net/http's way to abort a response; it logs nothing
	}
	s.logger(c).LogAttrs(c.Request().Context(), slog.LevelError, "handler panicked",
		slog.String("event", "http.panic"), slog.String("route", s.routeLabel(c)),
		slog.String("panic", panicText(v)),
		slog.String("stack", string(debug.Stack())))
	*err = wrapError(CodeInternal, errPanic)
}

var errPanic = errors.New("handler panicked (stack in the http.panic log line)")

// panicText describes a panic value by its type and, for runtime errors
// (which carry no request data), its text.
func panicText(v any) string {
	if re, ok := v.(runtime.Error); ok {
		return re.Error()
	}
	return fmt.Sprintf("%T", v)
}

// MaxHeaderBytes bounds the request's header fields, Host included, each
// counted as "Name: value\r\n" (contract §5: 431 over 16 KiB). The server's
// http.Server.MaxHeaderBytes must be at least this: net/http reads up to
// 4 KiB more before it refuses a request head itself, so without this check
// headers of up to about 20 KiB would pass.
const MaxHeaderBytes = 16 << 10

func headerBytes(r *http.Request) int {
	n := 0
	if r.Host != "" {
		n += len("Host: \r\n") + len(r.Host)
	}
	for name, vals := range r.Header {
		for _, v := range vals {
			n += len(name) + len(v) + len(": \r\n")
		}
	}
	return n
}

// securityHeaders sets the headers of every answer: never cached, never
// sniffed. The names are canonical already (Header.Set would check them on
// every request), and the values share one allocation.
func (s *Server) securityHeaders(c echo.Context) {
	h := c.Response().Header()
	v := securityValues
	h["Cache-Control"] = v[0:1:1]
	h["X-Content-Type-Options"] = v[1:2:2]
}

// securityValues backs the security headers' values; no code writes to a
// header's value slice in place, so every answer can share it.
var securityValues = []string{"no-store", "nosniff"}

func (s *Server) health(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readiness is the /readyz answer.
type readiness struct {
	Status string `json:"status"`
	// Config is "current", or "stale" when the last tenants reload failed:
	// the previous tenants are still in force (and still loaded, so the
	// broker stays ready), and the log says why the reload failed.
	Config  string `json:"config"`
	Message string `json:"message,omitempty"`
	// SnapshotAge is how long ago the tenant registry's snapshot was last
	// confirmed current with its source: 0 for a tenants file or the demo
	// tenant, the time since the last refresh or notification on a
	// database.
	SnapshotAge float64 `json:"snapshot_age_seconds"`
}

// registryState is what /readyz reads of a tenant registry (every
// registry.Reader has it; a plain config.Holder does not).
type registryState interface {
	Age() time.Duration
	Check() error
}

// snapshotAge returns the registry's snapshot age in seconds (rounded to
// the millisecond) and its Check.
func (s *Server) snapshotAge() (float64, error) {
	r, ok := s.Tenants.(registryState)
	if !ok {
		return 0, nil
	}
	age := math.Round(max(r.Age(), 0).Seconds()*1000) / 1000
	return age, r.Check()
}

// ready is 200 when the tenants are loaded, the registry's snapshot is
// within BROKER_REGISTRY_MAX_STALENESS and the store answers; the body
// says whether the tenants in force are stale and how old the snapshot is.
func (s *Server) ready(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if s.tenants(c) == nil {
		return writeError(c, apiError(codeNoTenants, ""))
	}
	age, err := s.snapshotAge()
	if err != nil {
		// The contract's error shape has room for the age only in the
		// message; the gauge voicebroker_registry_snapshot_age_seconds has
		// it too.
		s.logger(c).Warn("not ready", "event", "readyz", "reason", err.Error(), "snapshot_age_seconds", age)
		c.Response().Header().Set("Retry-After", "5")
		return writeError(c, apiError(CodeRegistryUnavailable, fmt.Sprintf(
			"the tenant registry snapshot is %s old (snapshot_age_seconds %g), past BROKER_REGISTRY_MAX_STALENESS: the database has not answered since; requests that read the tenants fail closed",
			time.Duration(age*float64(time.Second)).Round(time.Millisecond), age)))
	}
	if err := s.Store.Ping(ctx); err != nil {
		s.logger(c).Warn("not ready", "event", "readyz", "reason", err.Error())
		return writeError(c, wrapError(CodeStoreUnavailable, err))
	}
	if s.Metrics.Stale() {
		return c.JSON(http.StatusOK, readiness{Status: "ready", Config: "stale", SnapshotAge: age,
			Message: "the last tenants reload failed; the previous tenants stay in force (see the config.reload log line)"})
	}
	return c.JSON(http.StatusOK, readiness{Status: "ready", Config: "current", SnapshotAge: age})
}

func (s *Server) jwks(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "public, max-age=300")
	return c.Blob(http.StatusOK, "application/jwk-set+json", s.jwksBody)
}

// authenticator identifies the caller of a request.
type authenticator interface {
	// Authenticate returns the caller's principal, or an error wrapping one
	// of auth's sentinels (an *auth.Error carries the audit reason).
	Authenticate(ctx context.Context, req *auth.Request) (*auth.Principal, error)
}

var _ authenticator = (*auth.Authenticator)(nil)

// authMode says what a handler does itself after authentication.
type authMode int

const (
	// handlerAudits: the handler's own event line (token.mint, token.redeem)
	// records the successful authentication, so no auth.success line.
	handlerAudits authMode = 1 << iota
	// handlerLimits: the handler counts the request against the org's limit
	// in the same store step as its nonce.
	handlerLimits
)

// budget is the rate-limit bucket an authenticated request counts against:
// the org's (secret keys, API secrets, backend JWTs, the auth service) or
// an agent's public budget (publishable keys). Every request that
// authenticated counts once, whether it then succeeds or is refused.
type budget struct {
	// key is the bucket's store key, or "" for the key of org (limitOrg)
	// or of org's agent (limitPublic), made only when countRefused needs
	// it (the handler's own store step names its bucket itself).
	key     string
	org     string
	agent   string
	limit   store.Limit
	scope   limitScope // limitOrg or limitPublic
	counted bool
}

// storeKey is the bucket's store key.
func (b *budget) storeKey() string {
	switch {
	case b.key != "":
		return b.key
	case b.scope == limitPublic:
		return store.PublicKey(b.org, b.agent)
	}
	return store.OrgKey(b.org)
}

// setBudget records the bucket this request counts against, and returns
// it.
func setBudget(c echo.Context, b budget) *budget {
	st := stateOf(c)
	st.budget, st.hasBudget = b, true
	return &st.budget
}

// budgetOf returns the request's bucket, or nil before authentication.
func budgetOf(c echo.Context) *budget {
	if st := stateOf(c); st.hasBudget {
		return &st.budget
	}
	return nil
}

// counted marks the request as counted: a handler's store step (a limited
// nonce call) counted it against its budget.
func counted(c echo.Context) {
	if b := budgetOf(c); b != nil {
		b.counted = true
	}
}

// countRefused counts a request that authenticated and was not counted
// yet: a handler that counts in its own store step (mint, redeem) refused
// it before that step (unknown agent, bad body, bad token, wrong scope,
// ...). Over the limit, the answer becomes 429, as it would have been had
// the handler counted first. A store failure leaves the answer as it was.
func (s *Server) countRefused(c echo.Context, err error) error {
	b := budgetOf(c)
	if b == nil || b.counted || errors.Is(err, store.ErrUnavailable) {
		return err
	}
	b.counted = true
	res, aerr := s.Store.Allow(c.Request().Context(), b.storeKey(), b.limit)
	if aerr != nil {
		s.logger(c).LogAttrs(c.Request().Context(), slog.LevelWarn, "a refused request could not be counted",
			slog.String("event", "rate_limit.error"), slog.String("route", s.routeLabel(c)),
			slog.String("cause", aerr.Error()))
		return err
	}
	if err == nil || c.Response().Committed {
		return err
	}
	if lerr := s.limited(c, res, b.scope); lerr != nil {
		return lerr
	}
	return err
}

// authenticate resolves the caller against the request's tenants snapshot
// and returns the principal and its org, from that same snapshot. From
// there on the request counts against the org's budget: right away, or,
// when the handler does it in its own store step (mode handlerLimits),
// there, or in countRefused if the handler refuses the request first. It
// checks the scope and audits the outcome.
func (s *Server) authenticate(c echo.Context, scope config.Scope, mode authMode) (*auth.Principal, *config.Org, error) {
	r := c.Request()
	ip := s.ClientIP.Of(r)
	ten := s.tenants(c)
	var p *auth.Principal
	cred, err := credential(r)
	switch {
	case err != nil && !s.AuthRequired && classify(err).Code == CodeMissingAuthHeader:
		p, err = auth.Anonymous(ten)
		s.logger(c).LogAttrs(r.Context(), slog.LevelWarn, "AUTH_REQUIRED=false: request let through without a credential",
			slog.String("event", "auth.skipped"), slog.String("client_ip", ip.String()),
			slog.String("route", s.routeLabel(c)))
	case err != nil:
		s.authFailed(c, ip, auth.Reason(classify(err).Code), nil)
		return nil, nil, err
	default:
		body, berr := readBody(c)
		if berr != nil {
			return nil, nil, berr
		}
		// The auth service sees the body only if the handler will read it
		// the same way; a body the handler refuses is forwarded as null.
		// An API key never reaches the auth service: no need to check.
		if !apikey.Looks(cred) && len(bytes.TrimSpace(body)) > 0 && strictjson.Check(body, nil, false) != nil {
			body = nil
		}
		p, err = s.Auth.Authenticate(r.Context(), &auth.Request{
			Tenants: ten, Credential: cred, ClientIP: ip, Method: r.Method, Path: r.URL.Path, Header: r.Header, Body: body,
		})
	}
	if err != nil {
		s.authFailed(c, ip, "", err)
		return nil, nil, err
	}
	org := ten.Org(p.Org)
	if org == nil {
		// An API secret or auth service naming an org the file lacks.
		return nil, nil, wrapError(CodeConfigError, errUnknownOrg)
	}
	setBudget(c, budget{org: org.ID, limit: store.PerMinute(org.RateLimit()), scope: limitOrg})
	if err := p.Require(scope); err != nil {
		s.authFailed(c, ip, "", err)
		return nil, nil, err
	}
	if u, ok := s.Tenants.(interface{ Used(org, keyID string) }); ok && p.Method == auth.MethodAPIKey {
		u.Used(p.Org, p.KeyID) // the key's last_used_at; the registry batches the writes
	}
	if mode&handlerLimits == 0 {
		counted(c)
		if err := s.limit(c, store.OrgKey(org.ID), store.PerMinute(org.RateLimit()), limitOrg); err != nil {
			return nil, nil, err
		}
	}
	if mode&handlerAudits == 0 {
		s.auditInfo(c, "authenticated",
			slog.String("event", "auth.success"), slog.String("method", string(p.Method)),
			slog.String("org", p.Org), slog.String("key_id", p.KeyID), slog.String("client_ip", ip.String()),
			slog.String("route", s.routeLabel(c)))
	}
	stateOf(c).principal = p
	return p, org, nil
}

// authFailed audits and counts a failed authentication: reason, or the
// reason of err (an *auth.Error's, else its code).
func (s *Server) authFailed(c echo.Context, ip netip.Addr, reason auth.Reason, err error) {
	attrs := []slog.Attr{
		slog.String("event", "auth.failure"), slog.String("client_ip", ip.String()),
		slog.String("route", s.routeLabel(c)),
	}
	if ae, ok := err.(*auth.Error); ok {
		reason = ae.Reason
		if ae.Org != "" {
			attrs = append(attrs, slog.String("org", ae.Org), slog.String("key_id", ae.KeyID))
		}
	} else if err != nil {
		reason = auth.Reason(classify(err).Code)
	}
	attrs = append(attrs, slog.String("reason", string(reason)))
	s.Metrics.AuthFailures.WithLabelValues(reason.Label()).Inc()
	s.logger(c).LogAttrs(c.Request().Context(), slog.LevelWarn, "authentication failed", attrs...)
}

// ipKey is the per-client rate-limit key of a client address: an IPv4
// address (an IPv4-mapped IPv6 one counts as the IPv4), or the /64 of an
// IPv6 address with its zone dropped, since one subscriber commonly holds
// a whole /64.
func ipKey(route string, a netip.Addr) string {
	a = a.Unmap().WithZone("")
	switch {
	case a.Is4():
		return "ip:" + route + ":" + a.String()
	case a.Is6():
		return "ip:" + route + ":" + netip.PrefixFrom(a, 64).Masked().String()
	}
	return "ip:" + route + ":unknown"
}

// limit counts one request against key and sets the RateLimit-* headers;
// over the limit it answers 429 with Retry-After. A store failure fails
// closed.
func (s *Server) limit(c echo.Context, key string, l store.Limit, scope limitScope) error {
	res, err := s.Store.Allow(c.Request().Context(), key, l)
	if err != nil {
		return err
	}
	return s.limited(c, res, scope)
}

// limited sets the RateLimit-* headers from res and answers 429 with
// Retry-After when it refused the request.
func (s *Server) limited(c echo.Context, res store.Result, scope limitScope) error {
	h := c.Response().Header()
	// Header.Set would canonicalise the names on every request.
	// The three values share one allocation.
	v := []string{strconv.Itoa(res.Limit.Burst), strconv.Itoa(res.Remaining), strconv.Itoa(ceilSeconds(res.ResetAfter))}
	h[hdrRateLimitLimit] = v[0:1:1]
	h[hdrRateLimitRemaining] = v[1:2:2]
	h[hdrRateLimitReset] = v[2:3:3]
	if !res.Allowed {
		h.Set("Retry-After", strconv.Itoa(max(1, ceilSeconds(res.RetryAfter))))
		s.Metrics.RateLimited.WithLabelValues(string(scope)).Inc()
		s.logger(c).LogAttrs(c.Request().Context(), slog.LevelWarn, "rate limited",
			slog.String("event", "rate_limited"), slog.String("scope", string(scope)),
			slog.String("route", s.routeLabel(c)))
		return apiError(CodeRateLimited, "")
	}
	return nil
}

// The RateLimit-* names in canonical form (what Header.Set stores).
var (
	hdrRateLimitLimit     = http.CanonicalHeaderKey("RateLimit-Limit")
	hdrRateLimitRemaining = http.CanonicalHeaderKey("RateLimit-Remaining")
	hdrRateLimitReset     = http.CanonicalHeaderKey("RateLimit-Reset")
)

func ceilSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}
