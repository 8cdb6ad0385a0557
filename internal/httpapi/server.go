// Package httpapi is the broker's HTTP surface: Echo routes, credential and
// limit middleware, handlers, and the one table from error to response. It
// is the only package that knows Echo.
package httpapi

import (
	"context"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/voicebroker/voicebroker/api"
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
}

// New returns the Echo instance serving the contract's routes.
func New(d Deps) *echo.Echo {
	s := &Server{Deps: d, log: d.Log}
	s.jwksBody, _ = json.Marshal(d.JWKS)

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.errorHandler
	e.IPExtractor = func(r *http.Request) string { return s.ClientIP.Of(r).String() }
	e.Use(s.requestID)
	e.Use(s.observe)
	e.Use(s.securityHeaders)

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
	return e
}

const (
	ctxRequestID = "vb.request_id"
	ctxPrincipal = "vb.principal"
)

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

// observe records the HTTP duration by route pattern (never the raw URL,
// which may carry api_key) and status.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		s.Metrics.HTTPDuration.WithLabelValues(route, c.Request().Method, strconv.Itoa(c.Response().Status)).
			Observe(time.Since(start).Seconds())
		return nil
	}
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

// ready is 200 when the tenants are loaded and the store answers.
func (s *Server) ready(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if s.Tenants.Current() == nil {
		return c.JSON(http.StatusServiceUnavailable, body{Error: CodeConfigError, Message: "no tenants loaded"})
	}
	if err := s.Store.Ping(ctx); err != nil {
		s.log.Warn("not ready", "event", "readyz", "reason", err.Error())
		return c.JSON(http.StatusServiceUnavailable, body{Error: CodeStoreUnavailable, Message: messages[CodeStoreUnavailable]})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
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

// authenticate resolves the caller, checks scope and, unless the handler
// does it itself (mode), the org's rate limit; it audits the outcome.
func (s *Server) authenticate(c echo.Context, scope string, mode authMode) (*auth.Principal, error) {
	r := c.Request()
	ip := s.ClientIP.Of(r)
	var p *auth.Principal
	cred, err := credential(r)
	switch {
	case err != nil && !s.AuthRequired && classify(err).Code == CodeMissingAuthHeader:
		p, err = auth.Anonymous(s.Tenants.Current())
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "AUTH_REQUIRED=false: request let through without a credential",
			slog.String("event", "auth.skipped"), slog.String("client_ip", ip.String()),
			slog.String("route", c.Path()), slog.String("request_id", requestID(c)))
	case err != nil:
		s.authFailed(c, ip, classify(err).Code, nil)
		return nil, err
	default:
		body, berr := readBody(c)
		if berr != nil {
			return nil, berr
		}
		p, err = s.Auth.Authenticate(r.Context(), &auth.Request{
			Credential: cred, ClientIP: ip, Method: r.Method, Path: r.URL.Path, Header: r.Header, Body: body,
		})
	}
	if err == nil {
		err = p.Require(scope)
	}
	if err != nil {
		s.authFailed(c, ip, "", err)
		return nil, err
	}
	org := s.Tenants.Current().Org(p.Org)
	if org == nil {
		return nil, &Error{Code: CodeConfigError, Message: messages[CodeConfigError], Cause: errUnknownOrg}
	}
	if u, ok := s.Tenants.(interface{ Used(org, keyID string) }); ok && p.Method == auth.MethodAPIKey {
		u.Used(p.Org, p.KeyID) // the key's last_used_at; the registry batches the writes
	}
	if mode&handlerLimits == 0 {
		if err := s.limit(c, store.OrgKey(p.Org), store.PerMinute(org.RateLimit()), "org"); err != nil {
			return nil, err
		}
	}
	if mode&handlerAudits == 0 {
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "authenticated",
			slog.String("event", "auth.success"), slog.String("method", string(p.Method)),
			slog.String("org", p.Org), slog.String("key_id", p.KeyID), slog.String("client_ip", ip.String()),
			slog.String("route", c.Path()), slog.String("request_id", requestID(c)))
	}
	c.Set(ctxPrincipal, p)
	return p, nil
}

func (s *Server) authFailed(c echo.Context, ip netip.Addr, reason string, err error) {
	attrs := []slog.Attr{
		slog.String("event", "auth.failure"), slog.String("client_ip", ip.String()),
		slog.String("route", c.Path()), slog.String("request_id", requestID(c)),
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
	s.Metrics.AuthFailures.WithLabelValues(reason).Inc()
	s.log.LogAttrs(c.Request().Context(), slog.LevelWarn, "authentication failed", attrs...)
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
	h.Set("RateLimit-Limit", strconv.Itoa(res.Limit.Burst))
	h.Set("RateLimit-Remaining", strconv.Itoa(res.Remaining))
	h.Set("RateLimit-Reset", strconv.Itoa(ceilSeconds(res.ResetAfter)))
	if !res.Allowed {
		h.Set("Retry-After", strconv.Itoa(max(1, ceilSeconds(res.RetryAfter))))
		s.Metrics.RateLimited.WithLabelValues(scope).Inc()
		s.log.LogAttrs(c.Request().Context(), slog.LevelWarn, "rate limited",
			slog.String("event", "rate_limited"), slog.String("scope", scope),
			slog.String("route", c.Path()), slog.String("request_id", requestID(c)))
		return apiError(CodeRateLimited, "")
	}
	return nil
}

func ceilSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}
