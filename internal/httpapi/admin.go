package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/apikey"
	"github.com/voicebroker/voicebroker/internal/auth"
	"github.com/voicebroker/voicebroker/internal/registry"
	"github.com/voicebroker/voicebroker/internal/store"
)

// Admin configures the admin API (contract §4.1): the tenant registry over
// HTTP, for platform admin keys and, for their own org's secret keys only,
// org keys with keys:write.
type Admin struct {
	// Registry is the tenant registry the API reads and writes. A file
	// registry is read-only: every write answers 409 registry_read_only.
	Registry registry.Registry
	// KeyHashes are the sha256: hashes of the platform admin keys
	// (BROKER_ADMIN_KEY_HASHES, checked by config). None: no admin key
	// authenticates.
	KeyHashes []string
	// Separate serves the API on its own listener (BROKER_ADMIN_ADDR,
	// through NewAdmin): New leaves it out of the main routes, which
	// then answer 404 under /admin/.
	Separate bool
	// DefaultLiveKitURL is the default LiveKit project's URL
	// (LIVEKIT_URL; "" for none). PUT /admin/orgs/{org}/livekit refuses a
	// project on its server (config.DefaultLiveKitServerProblem), as a
	// restart or reload would: any API key of a server opens every room
	// on it, the default project's rooms and every org's without a
	// project of its own.
	DefaultLiveKitURL string
}

// Why an admin request did not authenticate, besides the reasons of
// package auth: auth.failure reasons and auth_failures labels.
const (
	reasonNotAnAdminCredential auth.Reason = "not_an_admin_credential"
	reasonUnknownAdminKey      auth.Reason = "unknown_admin_key"
)

// limitAdmin is a platform admin key's own budget (rate_limited scope).
const limitAdmin limitScope = "admin"

// AdminRatePerMinute is the fixed budget of each platform admin key: the
// admin API's requests a minute (burst as much). It is generous, for
// provisioning scripts; an org key with keys:write counts against its
// org's own budget instead, like any other request of the org.
const AdminRatePerMinute = 3000

// NewAdmin returns the Echo instance of the admin API alone, for its own
// listener (BROKER_ADMIN_ADDR), with the main routes' middleware and error
// handling.
func NewAdmin(d Deps) *echo.Echo {
	s := &Server{Deps: d.withoutNilLiveKit(), log: d.Log}
	e := s.newEcho()
	s.adminRoutes(e)
	s.indexRoutes(e)
	return e
}

// adminAPI serves the admin routes.
type adminAPI struct {
	s        *Server
	reg      registry.Registry
	keys     []adminKey
	readOnly bool
	// defaultLiveKit is Admin.DefaultLiveKitURL.
	defaultLiveKit string
}

// adminKey is a platform admin key as the broker holds it: the digest of
// the key, and the name the logs and the audit trail use for it.
type adminKey struct {
	sum [sha256.Size]byte
	// name is "admin:" and the first 8 hex digits of the key's hash: it
	// tells the configured keys apart without being a usable hash.
	name string
}

// adminRoute is one route of the admin API.
type adminRoute struct {
	method, path string
	handle       func(*adminCall) error
	// self: an org key with keys:write may call it for its own org.
	self bool
	// write: it changes the registry (refused on a read-only registry).
	write bool
	// query lists the query parameters it takes; any other is refused.
	query []string
}

// adminCaller is who calls the admin API.
type adminCaller struct {
	// admin is a platform admin key; otherwise an org's secret key.
	admin bool
	// org, keyID and env are the org key's; keysWrite says whether it
	// carries keys:write.
	org, keyID string
	env        apikey.Env
	keysWrite  bool
	// key is the org key's entry in the tenants it authenticated against:
	// its scopes, allowed_ips and expiry bound the keys it may make.
	key *config.Key
	// subject names the caller in logs and audit events, without secret.
	subject string
}

// adminCall is one admin request being served.
type adminCall struct {
	c      echo.Context
	ctx    context.Context // carries the audit actor
	caller *adminCaller
	query  adminQuery
}

func newAdminAPI(s *Server, cfg *Admin) *adminAPI {
	a := &adminAPI{s: s, reg: cfg.Registry, readOnly: cfg.Registry.Kind() == "file", defaultLiveKit: cfg.DefaultLiveKitURL}
	for _, h := range cfg.KeyHashes {
		digest, err := hex.DecodeString(strings.TrimPrefix(h, apikey.HashPrefix))
		if err != nil || len(digest) != sha256.Size || !apikey.ValidHash(h) {
			continue // config.LoadEnv refuses such an entry before the server is built
		}
		var k adminKey
		copy(k.sum[:], digest)
		k.name = "admin:" + h[len(apikey.HashPrefix):len(apikey.HashPrefix)+8]
		a.keys = append(a.keys, k)
	}
	return a
}

// adminRoutes registers the admin API's routes on e.
func (s *Server) adminRoutes(e *echo.Echo) {
	a := newAdminAPI(s, s.Admin)
	for _, rt := range a.routes() {
		e.Add(rt.method, rt.path, a.serve(rt))
	}
}

func (a *adminAPI) routes() []adminRoute {
	const org, agent = "/admin/orgs/:org", "/admin/orgs/:org/agents/:agent"
	return []adminRoute{
		{method: http.MethodPost, path: "/admin/orgs", handle: a.createOrg, write: true},
		{method: http.MethodGet, path: "/admin/orgs", handle: a.listOrgs, query: []string{"limit", "cursor"}},
		{method: http.MethodGet, path: org, handle: a.getOrg},
		{method: http.MethodPatch, path: org, handle: a.updateOrg, write: true},
		{method: http.MethodDelete, path: org, handle: a.deleteOrg, write: true},
		{method: http.MethodGet, path: org + "/agents", handle: a.listAgents},
		{method: http.MethodPut, path: agent, handle: a.putAgent, write: true},
		{method: http.MethodGet, path: agent, handle: a.getAgent},
		{method: http.MethodDelete, path: agent, handle: a.deleteAgent, write: true},
		{method: http.MethodPost, path: agent + "/publishable-keys", handle: a.createPublishableKey, write: true},
		{method: http.MethodDelete, path: agent + "/publishable-keys/:id", handle: a.deletePublishableKey, write: true},
		{method: http.MethodPost, path: org + "/keys", handle: a.createKey, write: true, self: true},
		{method: http.MethodGet, path: org + "/keys", handle: a.listKeys, self: true},
		{method: http.MethodDelete, path: org + "/keys/:id", handle: a.revokeKey, write: true, self: true},
		{method: http.MethodGet, path: org + "/jwt-issuers", handle: a.getIssuers},
		{method: http.MethodPut, path: org + "/jwt-issuers", handle: a.putIssuers, write: true},
		{method: http.MethodPut, path: org + "/livekit", handle: a.putLiveKit, write: true},
		{method: http.MethodGet, path: org + "/livekit", handle: a.getLiveKit},
		{method: http.MethodDelete, path: org + "/livekit", handle: a.deleteLiveKit, write: true},
		{method: http.MethodGet, path: "/admin/audit", handle: a.audit, query: []string{"org", "limit", "cursor"}},
	}
}

// errHidden is what an org key gets for anything outside its own org's
// keys: the same 404 as for an org that does not exist, so that nothing
// about other orgs, or the rest of the API, shows.
func errHidden() *Error {
	return apiError(CodeNotFound, "no such org, agent or key (or not one this credential may see)")
}

// serve wraps a route's handler: authenticate (and count against the
// caller's budget), authorise, check the query, refuse writes to a
// read-only registry, run the handler with the audit actor in its
// context, map registry errors to the contract's codes, and log changes.
func (a *adminAPI) serve(rt adminRoute) echo.HandlerFunc {
	return func(c echo.Context) error {
		caller, err := a.authenticate(c)
		if err != nil {
			return err
		}
		if !caller.admin {
			if !rt.self || c.Param("org") != caller.org {
				// Logged, for whoever watches a key probe beyond its org;
				// the path's org only when it is an id.
				attrs := []slog.Attr{slog.String("event", "admin.refused"), slog.String("actor", caller.subject),
					slog.String("method", c.Request().Method), slog.String("route", a.s.routeLabel(c))}
				if org := c.Param("org"); config.ValidID(org) {
					attrs = append(attrs, slog.String("org", org))
				}
				a.s.logger(c).LogAttrs(c.Request().Context(), slog.LevelWarn, "an org key asked for what it may not see", attrs...)
				return errHidden()
			}
			if !caller.keysWrite {
				err := &auth.Error{Kind: auth.ErrInsufficientScope, Reason: auth.MissingScope(config.ScopeKeysWrite), Org: caller.org, KeyID: caller.keyID}
				a.s.authFailed(c, a.s.ClientIP.Of(c.Request()), "", err)
				return &Error{Code: CodeInsufficientScope, Message: "the key lacks the keys:write scope", Cause: err}
			}
		}
		query, err := parseQuery(c.QueryString(), rt.query)
		if err != nil {
			return err
		}
		if rt.write && a.readOnly {
			return apiError(CodeRegistryReadOnly, "")
		}
		ctx := registry.WithActor(c.Request().Context(), registry.Actor{Subject: caller.subject, RequestID: requestID(c)})
		if err := rt.handle(&adminCall{c: c, ctx: ctx, caller: caller, query: query}); err != nil {
			return adminError(err)
		}
		if rt.write {
			attrs := []slog.Attr{
				slog.String("event", "admin.change"), slog.String("actor", caller.subject),
				slog.String("method", c.Request().Method), slog.String("route", a.s.routeLabel(c)),
				slog.Int("status", c.Response().Status),
			}
			// The path's ids, once the write accepted them (so they are ids).
			for _, p := range []string{"org", "agent", "id"} {
				if v := c.Param(p); v != "" {
					attrs = append(attrs, slog.String(p, v))
				}
			}
			a.s.logger(c).LogAttrs(c.Request().Context(), slog.LevelInfo, "admin change", attrs...)
		}
		return nil
	}
}

// authenticate resolves the admin API's caller: a platform admin key, or
// an org's secret key. The credential comes from the Authorization header
// only: an admin key in a URL would end up in access logs. A request that
// authenticated counts against the caller's budget at once, whatever then
// becomes of it.
func (a *adminAPI) authenticate(c echo.Context) (*adminCaller, error) {
	r := c.Request()
	ip := a.s.ClientIP.Of(r)
	if _, ok := r.URL.Query()["api_key"]; ok {
		a.s.authFailed(c, ip, auth.Reason(CodeInvalidAuthHeader), nil)
		return nil, apiError(CodeInvalidAuthHeader, "the admin API takes its credential in the Authorization header only, never in the URL")
	}
	values := r.Header.Values("Authorization")
	if len(values) == 0 {
		a.s.authFailed(c, ip, auth.Reason(CodeMissingAuthHeader), nil)
		return nil, apiError(CodeMissingAuthHeader, "no credential in the Authorization header")
	}
	cred, ok := "", false
	if len(values) == 1 {
		cred, ok = bearer(values[0])
	}
	if !ok {
		a.s.authFailed(c, ip, auth.Reason(CodeInvalidAuthHeader), nil)
		return nil, apiError(CodeInvalidAuthHeader, "")
	}
	switch {
	case strings.HasPrefix(cred, "ak_"):
		return a.adminKey(c, ip, cred)
	case strings.HasPrefix(cred, "sk_"):
		return a.orgKey(c, ip, cred)
	}
	a.s.authFailed(c, ip, reasonNotAnAdminCredential, nil)
	return nil, apiError(CodeUnauthorized, "the admin API takes a platform admin key, or a secret key with keys:write for its own org's keys")
}

// adminKey checks a platform admin key against every configured hash in
// constant time (all are compared, whichever matches).
func (a *adminAPI) adminKey(c echo.Context, ip netip.Addr, cred string) (*adminCaller, error) {
	if apikey.ParseAdmin(cred) != nil {
		a.s.authFailed(c, ip, auth.ReasonMalformedKey, nil)
		return nil, apiError(CodeUnauthorized, "")
	}
	sum := sha256.Sum256([]byte(cred))
	match := -1
	for i := range a.keys {
		if subtle.ConstantTimeCompare(sum[:], a.keys[i].sum[:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		a.s.authFailed(c, ip, reasonUnknownAdminKey, nil)
		return nil, apiError(CodeUnauthorized, "")
	}
	k := a.keys[match]
	// The store key carries the name's hash prefix in braces: one Redis
	// Cluster slot per admin key.
	b := setBudget(c, budget{key: "admin:{" + k.name[len("admin:"):] + "}", limit: store.PerMinute(AdminRatePerMinute), scope: limitAdmin})
	counted(c)
	if err := a.s.limit(c, b.key, b.limit, b.scope); err != nil {
		return nil, err
	}
	a.authenticated(c, ip, "admin_key", "", k.name)
	return &adminCaller{admin: true, subject: k.name}, nil
}

// orgKey checks an org's secret key as every endpoint does (unknown,
// revoked, expired, wrong environment, allowed_ips) and counts the
// request against the org's budget.
func (a *adminAPI) orgKey(c echo.Context, ip netip.Addr, cred string) (*adminCaller, error) {
	r := c.Request()
	ten := a.s.tenants(c)
	p, err := a.s.Auth.Authenticate(r.Context(), &auth.Request{
		Tenants: ten, Credential: cred, ClientIP: ip, Method: r.Method, Path: r.URL.Path, Header: r.Header,
	})
	if err != nil {
		a.s.authFailed(c, ip, "", err)
		return nil, err
	}
	org := ten.Org(p.Org)
	// The key that authenticated, found again by its hash: the principal
	// carries its scopes but not its allowed_ips or expiry, which bound
	// the keys it may make (createKey).
	key := ten.KeyByHash(apikey.Hash(cred))
	if org == nil || p.Method != auth.MethodAPIKey || key == nil || key.Org().ID != p.Org || key.ID != p.KeyID {
		return nil, wrapError(CodeConfigError, errUnknownOrg)
	}
	limit := store.PerMinute(org.RateLimit())
	setBudget(c, budget{key: store.OrgKey(org.ID), limit: limit, scope: limitOrg})
	if u, ok := a.s.Tenants.(interface{ Used(org, keyID string) }); ok {
		u.Used(p.Org, p.KeyID)
	}
	counted(c)
	if err := a.s.limit(c, store.OrgKey(org.ID), limit, limitOrg); err != nil {
		return nil, err
	}
	_, env, _ := apikey.Parse(cred)
	a.authenticated(c, ip, string(auth.MethodAPIKey), p.Org, p.KeyID)
	return &adminCaller{
		org: p.Org, keyID: p.KeyID, env: env, keysWrite: slices.Contains(p.Scopes, config.ScopeKeysWrite), key: key,
		subject: "org:" + p.Org + "/key:" + p.KeyID,
	}, nil
}

func (a *adminAPI) authenticated(c echo.Context, ip netip.Addr, method, org, keyID string) {
	a.s.logger(c).LogAttrs(c.Request().Context(), slog.LevelInfo, "authenticated",
		slog.String("event", "auth.success"), slog.String("method", method),
		slog.String("org", org), slog.String("key_id", keyID), slog.String("client_ip", ip.String()),
		slog.String("route", a.s.routeLabel(c)))
}

// adminError maps the registry's errors to the contract's codes (§5). The
// registry's texts name ids and fields, never a key, hash or secret.
func adminError(err error) error {
	var e *Error
	var ve *registry.ValidationError
	switch {
	case errors.As(err, &e):
		return err
	case errors.As(err, &ve):
		return &Error{Code: CodeInvalidRequest, Message: problemsMessage(ve.Problems), Cause: err}
	case errors.Is(err, registry.ErrReadOnly):
		return wrapError(CodeRegistryReadOnly, err)
	case errors.Is(err, registry.ErrNotFound):
		return &Error{Code: CodeNotFound, Message: err.Error(), Cause: err}
	case errors.Is(err, registry.ErrConflict):
		return &Error{Code: CodeConflict, Message: err.Error(), Cause: err}
	case errors.Is(err, registry.ErrNoSecretsKey):
		return &Error{Code: CodeConfigError, Message: err.Error(), Cause: err}
	case errors.Is(err, registry.ErrUnavailable):
		return wrapError(CodeRegistryUnavailable, err)
	}
	return err
}

// maxProblems bounds how many validation problems one answer lists.
const maxProblems = 10

// problemsMessage joins a validation error's problems, at most
// maxProblems of them.
func problemsMessage(ps []string) string {
	if len(ps) == 0 {
		return row(CodeInvalidRequest).message
	}
	shown := ps[:min(len(ps), maxProblems)]
	msg := strings.Join(shown, "; ")
	if len(ps) > len(shown) {
		msg += fmt.Sprintf("; and %d more", len(ps)-len(shown))
	}
	return msg
}
