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
	"net/http"
	"net/netip"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/voicebroker/voicebroker/api"
	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/apikey"
	"github.com/voicebroker/voicebroker/internal/auth"
	"github.com/voicebroker/voicebroker/internal/livekit"
	"github.com/voicebroker/voicebroker/internal/metrics"
	"github.com/voicebroker/voicebroker/internal/store"
	"github.com/voicebroker/voicebroker/pkg/origins"
	"github.com/voicebroker/voicebroker/pkg/token"
)

// Deps is what the server is built from.
type Deps struct {
	Tenants   auth.Tenants
	Auth      *auth.Authenticator
	Store     store.Store
	Issuer    *token.Issuer
	Verifier  *token.Verifier
	JWKS      token.JWKS
	Log       *slog.Logger
	Metrics   *metrics.Metrics
	PublicURL string
	ClientIP  ClientIP
	// Leeway is added to the nonce lifetime, matching the verifier's leeway.
	Leeway time.Duration
	// LiveKit is nil when LIVEKIT_* are unset: its endpoints answer 501.
	LiveKit *livekit.Client
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
func New(d Deps) *echo.Echo {
	s := &Server{Deps: d, log: d.Log}
	s.jwksBody, _ = json.Marshal(d.JWKS)

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.errorHandler
	e.IPExtractor = func(r *http.Request) string { return s.ClientIP.Of(r).String() }
	e.Use(s.requestID)
	e.Use(s.observe)
	e.Use(s.recoverPanic)
	e.Use(s.headerLimit)
	e.Use(s.securityHeaders)
	e.Use(s.countRefused)

	e.GET("/", s.health)
	e.GET("/healthz", s.health)
	e.GET("/readyz", s.ready)
	e.GET("/metrics", echo.WrapHandler(d.Metrics.Handler()))
	e.GET("/.well-known/jwks.json", s.jwks)
	e.GET("/openapi.yaml", func(c echo.Context) error {
		return c.Blob(http.StatusOK, "application/yaml", api.OpenAPI)
	})

	if d.Demo != nil {
		files := http.StripPrefix("/demo/", http.FileServer(http.FS(d.Demo)))
		e.GET("/demo", func(c echo.Context) error { return c.Redirect(http.StatusFound, "/demo/") })
		e.GET("/demo/config.json", func(c echo.Context) error { return c.JSON(http.StatusOK, d.DemoConfig) })
		e.GET("/demo/*", echo.WrapHandler(files))
	}
	e.POST("/token", s.mint)
	e.POST("/token/redeem", s.redeem)
	e.POST("/connect", s.connect, connectCORS)
	e.OPTIONS("/connect", preflight(func(origins.Origin) bool { return true }))
	e.POST("/public/token", s.publicToken)
	e.OPTIONS("/public/token", preflight(s.anyPublicOrigin))
	e.POST("/livekit/token", s.livekitToken)
	e.GET("/livekit/rooms", s.listRooms)
	e.GET("/livekit/rooms/:room_name", s.getRoom)
	e.DELETE("/livekit/participant", s.removeParticipant)
	e.POST("/livekit/participant/mute", s.muteTrack)
	e.POST("/livekit/webhook", s.webhook)

	s.routes = make(map[string]bool)
	for _, r := range e.Routes() {
		s.routes[r.Path] = true
	}
	return e
}

const (
	ctxRequestID = "vb.request_id"
	ctxPrincipal = "vb.principal"
	ctxTenants   = "vb.tenants"
	ctxBudget    = "vb.budget"
)

// tenants returns the tenants snapshot of this request: read once, on first
// use, and the same for every later use, so a reload in the middle of a
// request cannot give it two different files.
func (s *Server) tenants(c echo.Context) *config.Tenants {
	if t, ok := c.Get(ctxTenants).(*config.Tenants); ok {
		return t
	}
	t := s.Tenants.Current()
	c.Set(ctxTenants, t)
	return t
}

func requestID(c echo.Context) string {
	id, _ := c.Get(ctxRequestID).(string)
	return id
}

// requestID takes the caller's X-Request-Id if it is short and plain, or
// makes one, and echoes it on the response.
func (s *Server) requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if !plainID(id) {
			id, _ = token.NewNonce()
		}
		c.Set(ctxRequestID, id)
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		return next(c)
	}
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

// observe answers errors and records the HTTP duration by route pattern
// (never the raw URL, which may carry api_key), method and status, each
// from a closed set (see package metrics).
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		s.Metrics.ObserveHTTP(s.routeLabel(c), c.Request().Method, c.Response().Status, time.Since(start))
		return nil
	}
}

// routeLabel is the matched route's pattern, or "unmatched".
func (s *Server) routeLabel(c echo.Context) string {
	if p := c.Path(); s.routes[p] {
		return p
	}
	return "unmatched"
}

// recoverPanic turns a panic in a handler into a 500 in the contract's
// shape (config_error: see errorHandler) and logs it with its stack. The
// stack holds no argument values, so no credential reaches the log.
func (s *Server) recoverPanic(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v) // net/http's way to abort a response; it logs nothing
			}
			s.log.LogAttrs(c.Request().Context(), slog.LevelError, "handler panicked",
				slog.String("event", "http.panic"), slog.String("route", s.routeLabel(c)),
				slog.String("request_id", requestID(c)), slog.String("panic", panicText(v)),
				slog.String("stack", string(debug.Stack())))
			err = &Error{Code: CodeInternal, Message: messages[CodeInternal], Cause: errPanic}
		}()
		return next(c)
	}
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

// headerLimit answers 431 when the request's header fields are over
// MaxHeaderBytes.
func (s *Server) headerLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if headerBytes(c.Request()) > MaxHeaderBytes {
			return &Error{Code: CodePayloadTooLarge, Status: http.StatusRequestHeaderFieldsTooLarge,
				Message: "the request headers are over 16 KiB"}
		}
		return next(c)
	}
}

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

func (s *Server) securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		return next(c)
	}
}

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
}

// ready is 200 when the tenants are loaded and the store answers; the body
// says whether the tenants in force are stale.
func (s *Server) ready(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if s.tenants(c) == nil {
		return c.JSON(http.StatusServiceUnavailable, body{Error: CodeConfigError, Message: "no tenants loaded"})
	}
	if err := s.Store.Ping(ctx); err != nil {
		s.log.Warn("not ready", "event", "readyz", "reason", err.Error())
		return c.JSON(http.StatusServiceUnavailable, body{Error: CodeStoreUnavailable, Message: messages[CodeStoreUnavailable]})
	}
	if s.Metrics.Stale() {
		return c.JSON(http.StatusOK, readiness{Status: "ready", Config: "stale",
			Message: "the last tenants reload failed; the previous tenants stay in force (see the config.reload log line)"})
	}
	return c.JSON(http.StatusOK, readiness{Status: "ready", Config: "current"})
}

func (s *Server) jwks(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "public, max-age=300")
	return c.Blob(http.StatusOK, "application/jwk-set+json", s.jwksBody)
}

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
	key     string
	limit   store.Limit
	scope   string // the rate_limited metric's label: org or public
	counted bool
}

// setBudget records the bucket this request counts against.
func setBudget(c echo.Context, b *budget) { c.Set(ctxBudget, b) }

// budgetOf returns the request's bucket, or nil before authentication.
func budgetOf(c echo.Context) *budget {
	b, _ := c.Get(ctxBudget).(*budget)
	return b
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
func (s *Server) countRefused(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := next(c)
		b := budgetOf(c)
		if b == nil || b.counted || errors.Is(err, store.ErrUnavailable) {
			return err
		}
		b.counted = true
		res, aerr := s.Store.Allow(c.Request().Context(), b.key, b.limit)
		if aerr != nil {
			s.log.LogAttrs(c.Request().Context(), slog.LevelWarn, "a refused request could not be counted",
				slog.String("event", "rate_limit.error"), slog.String("route", s.routeLabel(c)),
				slog.String("request_id", requestID(c)), slog.String("cause", aerr.Error()))
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
}

// authenticate resolves the caller against the request's tenants snapshot
// and returns the principal and its org, from that same snapshot. From
// there on the request counts against the org's budget: right away, or,
// when the handler does it in its own store step (mode handlerLimits),
// there, or in countRefused if the handler refuses the request first. It
// checks the scope and audits the outcome.
func (s *Server) authenticate(c echo.Context, scope string, mode authMode) (*auth.Principal, *config.Org, error) {
	r := c.Request()
	ip := s.ClientIP.Of(r)
	ten := s.tenants(c)
	var p *auth.Principal
	cred, err := credential(r)
	switch {
	case err != nil && !s.AuthRequired && classify(err).Code == CodeMissingAuthHeader:
		p, err = auth.Anonymous(ten)
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "AUTH_REQUIRED=false: request let through without a credential",
			slog.String("event", "auth.skipped"), slog.String("client_ip", ip.String()),
			slog.String("route", s.routeLabel(c)), slog.String("request_id", requestID(c)))
	case err != nil:
		s.authFailed(c, ip, classify(err).Code, nil)
		return nil, nil, err
	default:
		body, berr := readBody(c)
		if berr != nil {
			return nil, nil, berr
		}
		// The auth service sees the body only if the handler will read it
		// the same way; a body the handler refuses is forwarded as null.
		// An API key never reaches the auth service: no need to check.
		if !apikey.Looks(cred) && len(bytes.TrimSpace(body)) > 0 && checkJSON(body, nil, false) != nil {
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
		return nil, nil, &Error{Code: CodeConfigError, Message: messages[CodeConfigError], Cause: errUnknownOrg}
	}
	setBudget(c, &budget{key: store.OrgKey(org.ID), limit: store.PerMinute(org.RateLimit()), scope: "org"})
	if err := p.Require(scope); err != nil {
		s.authFailed(c, ip, "", err)
		return nil, nil, err
	}
	if mode&handlerLimits == 0 {
		counted(c)
		if err := s.limit(c, store.OrgKey(org.ID), store.PerMinute(org.RateLimit()), "org"); err != nil {
			return nil, nil, err
		}
	}
	if mode&handlerAudits == 0 {
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "authenticated",
			slog.String("event", "auth.success"), slog.String("method", string(p.Method)),
			slog.String("org", p.Org), slog.String("key_id", p.KeyID), slog.String("client_ip", ip.String()),
			slog.String("route", s.routeLabel(c)), slog.String("request_id", requestID(c)))
	}
	c.Set(ctxPrincipal, p)
	return p, org, nil
}

func (s *Server) authFailed(c echo.Context, ip netip.Addr, reason string, err error) {
	attrs := []slog.Attr{
		slog.String("event", "auth.failure"), slog.String("client_ip", ip.String()),
		slog.String("route", s.routeLabel(c)), slog.String("request_id", requestID(c)),
	}
	if ae, ok := err.(*auth.Error); ok {
		reason = ae.Reason
		if ae.Org != "" {
			attrs = append(attrs, slog.String("org", ae.Org), slog.String("key_id", ae.KeyID))
		}
	} else if err != nil {
		reason = classify(err).Code
	}
	attrs = append(attrs, slog.String("reason", reason))
	s.Metrics.AuthFailures.WithLabelValues(reasonLabel(reason)).Inc()
	s.log.LogAttrs(c.Request().Context(), slog.LevelWarn, "authentication failed", attrs...)
}

// reasonLabel is the auth_failures label of a reason: the reason itself
// (a fixed word of the code), except that the auth service's status
// ("auth_service_418", any three digits it chooses) becomes its class.
func reasonLabel(reason string) string {
	if st, ok := strings.CutPrefix(reason, "auth_service_"); ok && len(st) == 3 && st[0] >= '1' && st[0] <= '9' {
		if _, err := strconv.Atoi(st); err == nil {
			return "auth_service_" + st[:1] + "xx"
		}
	}
	return reason
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
func (s *Server) limit(c echo.Context, key string, l store.Limit, scope string) error {
	res, err := s.Store.Allow(c.Request().Context(), key, l)
	if err != nil {
		return err
	}
	return s.limited(c, res, scope)
}

// limited sets the RateLimit-* headers from res and answers 429 with
// Retry-After when it refused the request.
func (s *Server) limited(c echo.Context, res store.Result, scope string) error {
	h := c.Response().Header()
	// Header.Set would canonicalise the names on every request.
	h[hdrRateLimitLimit] = []string{strconv.Itoa(res.Limit.Burst)}
	h[hdrRateLimitRemaining] = []string{strconv.Itoa(res.Remaining)}
	h[hdrRateLimitReset] = []string{strconv.Itoa(ceilSeconds(res.ResetAfter))}
	if !res.Allowed {
		h.Set("Retry-After", strconv.Itoa(max(1, ceilSeconds(res.RetryAfter))))
		s.Metrics.RateLimited.WithLabelValues(scope).Inc()
		s.log.LogAttrs(c.Request().Context(), slog.LevelWarn, "rate limited",
			slog.String("event", "rate_limited"), slog.String("scope", scope),
			slog.String("route", s.routeLabel(c)), slog.String("request_id", requestID(c)))
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
