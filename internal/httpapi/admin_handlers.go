package httpapi

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/apikey"
	"github.com/voicebroker/voicebroker/internal/registry"
)

// The admin API's request bodies and answers (contract §4.1). Bodies are
// strict (decodeJSON): unknown fields, duplicate or case-variant keys and
// invalid UTF-8 are 400 invalid_request. Answers carry no key, hash or
// secret except the one new key a create shows once.

// decode reads the request body into v, strictly.
func (x *adminCall) decode(v any) error {
	data, err := readBody(x.c)
	if err != nil {
		return err
	}
	return decodeJSON(data, v, true)
}

// decodeOptional is decode for a body that may be absent (no bytes, or
// only whitespace): then v stays as it is.
func (x *adminCall) decodeOptional(v any) error {
	data, err := readBody(x.c)
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(data)) == "" {
		return nil
	}
	return decodeJSON(data, v, true)
}

// ---- orgs

type orgBody struct {
	ID             string `json:"id"`
	Tier           string `json:"tier"`
	RatePerMinute  int    `json:"rate_per_minute"`
	AllowDemoRooms bool   `json:"allow_demo_rooms"`
}

// orgPatchBody holds each field raw, so that a field given as null is
// refused rather than taken as absent.
type orgPatchBody struct {
	Tier           json.RawMessage `json:"tier"`
	RatePerMinute  json.RawMessage `json:"rate_per_minute"`
	AllowDemoRooms json.RawMessage `json:"allow_demo_rooms"`
}

type orgList struct {
	Orgs       []registry.Org `json:"orgs"`
	NextCursor *string        `json:"next_cursor"`
}

func (a *adminAPI) createOrg(x *adminCall) error {
	var b orgBody
	if err := x.decode(&b); err != nil {
		return err
	}
	o, err := a.reg.CreateOrg(x.ctx, registry.OrgSpec{ID: b.ID, Tier: b.Tier, RatePerMinute: b.RatePerMinute, AllowDemoRooms: b.AllowDemoRooms})
	if err != nil {
		return err
	}
	return x.c.JSON(http.StatusCreated, o)
}

func (a *adminAPI) listOrgs(x *adminCall) error {
	p, err := x.query.page()
	if err != nil {
		return err
	}
	orgs, next, err := a.reg.ListOrgs(x.ctx, p)
	if err != nil {
		return err
	}
	if orgs == nil {
		orgs = []registry.Org{}
	}
	return x.c.JSON(http.StatusOK, orgList{Orgs: orgs, NextCursor: cursor(next)})
}

// cursor is a next_cursor: null on the last page.
func cursor(next string) *string {
	if next == "" {
		return nil
	}
	return &next
}

func (a *adminAPI) getOrg(x *adminCall) error {
	o, err := a.reg.GetOrg(x.ctx, x.c.Param("org"))
	if err != nil {
		return err
	}
	return x.c.JSON(http.StatusOK, o)
}

func (a *adminAPI) updateOrg(x *adminCall) error {
	var b orgPatchBody
	if err := x.decode(&b); err != nil {
		return err
	}
	var p registry.OrgPatch
	if err := patchField("tier", b.Tier, &p.Tier); err != nil {
		return err
	}
	if err := patchField("rate_per_minute", b.RatePerMinute, &p.RatePerMinute); err != nil {
		return err
	}
	if err := patchField("allow_demo_rooms", b.AllowDemoRooms, &p.AllowDemoRooms); err != nil {
		return err
	}
	if p.Tier == nil && p.RatePerMinute == nil && p.AllowDemoRooms == nil {
		return apiError(CodeInvalidRequest, "nothing to change: give tier, rate_per_minute or allow_demo_rooms")
	}
	o, err := a.reg.UpdateOrg(x.ctx, x.c.Param("org"), p)
	if err != nil {
		return err
	}
	return x.c.JSON(http.StatusOK, o)
}

// patchField decodes a PATCH field given raw into *dst (left nil when the
// field is absent); null and values of the wrong type are refused, naming
// the field.
func patchField[T any](name string, raw json.RawMessage, dst **T) error {
	if raw == nil {
		return nil
	}
	if string(raw) == "null" {
		return apiError(CodeInvalidRequest, name+": must not be null; leave it out to keep it")
	}
	v := new(T)
	if err := json.Unmarshal(raw, v); err != nil {
		kind := "a number"
		switch any(*v).(type) {
		case string:
			kind = "a string"
		case bool:
			kind = "a boolean"
		case int:
			kind = "a whole number"
		}
		return apiError(CodeInvalidRequest, fmt.Sprintf("field %q must be %s", name, kind))
	}
	*dst = v
	return nil
}

// deleteOrg deletes an org, and ends its live LiveKit rooms first: a
// deleted org's rooms would otherwise run on with its users and agents in
// them, under an id the org no longer holds (the registry quarantines the
// id, so that no new tenant gets them). Its rooms are looked for on its
// own project and on the default one (where it may have left rooms when
// it moved to its own). If LiveKit cannot be reached the org is not
// deleted (502), so that the call can be made again. Rooms made between
// the first pass and the deletion are ended by a second, with the
// projects taken before the deletion (an org's own project goes with it);
// that one is only logged if it fails, since the org is gone. A room a
// token issued before the delete reopens later is ended by the room
// sweep (RoomKeeper).
func (a *adminAPI) deleteOrg(x *adminCall) error {
	org := x.c.Param("org")
	var projects []liveKit
	if a.reg.Current().Org(org) != nil {
		if a.s.ownProject(org) {
			projects = append(projects, a.s.LiveKitProjects.Own(org))
		}
		if a.s.LiveKit != nil {
			projects = append(projects, a.s.LiveKit)
		}
	}
	for _, lk := range projects {
		if err := a.endRooms(x, lk, org); err != nil {
			return err
		}
	}
	if err := a.reg.DeleteOrg(x.ctx, org); err != nil {
		return err
	}
	for _, lk := range projects {
		if err := a.endRooms(x, lk, org); err != nil {
			a.s.logger(x.c).LogAttrs(x.ctx, slog.LevelWarn, "could not end every live room of a deleted org",
				slog.String("event", "admin.org_rooms"), slog.String("org", org), slog.String("cause", truncateCause(err.Error())))
		}
	}
	return x.c.NoContent(http.StatusNoContent)
}

// endRooms ends every live room of org on lk, its project.
func (a *adminAPI) endRooms(x *adminCall, lk liveKit, org string) error {
	rooms, err := lk.Rooms(x.ctx, org)
	if err != nil {
		return err
	}
	for _, r := range rooms {
		if err := lk.DeleteRoom(x.ctx, r.GetName()); err != nil {
			return err
		}
	}
	if len(rooms) > 0 {
		a.s.logger(x.c).LogAttrs(x.ctx, slog.LevelInfo, "ended the live rooms of an org being deleted",
			slog.String("event", "admin.org_rooms"), slog.String("org", org), slog.Int("rooms", len(rooms)))
	}
	return nil
}

// ---- agents

// agentBody is an agent as in the tenants file, without its id (the
// path's; "id", if given, must be the same) and without publishable keys
// (made by the publishable-keys endpoint: public.key_hash and public.keys
// are refused with a message saying so).
type agentBody struct {
	ID                 *string          `json:"id"`
	Channels           []config.Channel `json:"channels"`
	Server             string           `json:"server"`
	LiveKitAgentName   string           `json:"livekit_agent_name"`
	LiveKitAgentShared bool             `json:"livekit_agent_shared"`
	RequireDPoP        bool             `json:"require_dpop"`
	Public             *publicBody      `json:"public"`
}

type publicBody struct {
	AllowedOrigins []string          `json:"allowed_origins"`
	RatePerMinute  int               `json:"rate_per_minute"`
	KeyHash        string            `json:"key_hash"`
	Keys           []json.RawMessage `json:"keys"`
}

// agentView is an agent as the API shows it.
type agentView struct {
	ID                 string                    `json:"id"`
	Channels           []config.Channel          `json:"channels"`
	Server             string                    `json:"server"`
	LiveKitAgentName   string                    `json:"livekit_agent_name"`
	LiveKitAgentShared bool                      `json:"livekit_agent_shared"`
	RequireDPoP        bool                      `json:"require_dpop"`
	Public             *publicView               `json:"public"`
	PublishableKeys    []registry.PublishableKey `json:"publishable_keys"`
	CreatedAt          time.Time                 `json:"created_at"`
	UpdatedAt          time.Time                 `json:"updated_at"`
}

type publicView struct {
	AllowedOrigins []string `json:"allowed_origins"`
	RatePerMinute  int      `json:"rate_per_minute"`
}

func viewAgent(a registry.Agent) agentView {
	s := a.Spec
	v := agentView{
		ID: s.ID, Channels: nonNilStrings(s.Channels), Server: s.Server, LiveKitAgentName: s.LiveKitAgentName,
		LiveKitAgentShared: s.LiveKitAgentShared, RequireDPoP: s.RequireDPoP,
		PublishableKeys: a.PublishableKeys, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt,
	}
	if v.PublishableKeys == nil {
		v.PublishableKeys = []registry.PublishableKey{}
	}
	if s.Public != nil {
		v.Public = &publicView{AllowedOrigins: nonNilStrings(s.Public.AllowedOrigins), RatePerMinute: s.Public.RatePerMinute}
	}
	return v
}

func nonNilStrings[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (a *adminAPI) listAgents(x *adminCall) error {
	list, err := a.reg.ListAgents(x.ctx, x.c.Param("org"))
	if err != nil {
		return err
	}
	out := make([]agentView, 0, len(list))
	for _, ag := range list {
		out = append(out, viewAgent(ag))
	}
	return x.c.JSON(http.StatusOK, map[string]any{"agents": out})
}

func (a *adminAPI) putAgent(x *adminCall) error {
	id := x.c.Param("agent")
	var b agentBody
	if err := x.decode(&b); err != nil {
		return err
	}
	if b.ID != nil && *b.ID != id {
		return apiError(CodeInvalidRequest, "id: must be the agent id of the path, or left out")
	}
	spec := config.Agent{
		ID: id, Channels: b.Channels, Server: b.Server, LiveKitAgentName: b.LiveKitAgentName,
		LiveKitAgentShared: b.LiveKitAgentShared, RequireDPoP: b.RequireDPoP,
	}
	if p := b.Public; p != nil {
		spec.Public = &config.Public{AllowedOrigins: p.AllowedOrigins, RatePerMinute: p.RatePerMinute, KeyHash: p.KeyHash}
		if len(p.Keys) > 0 {
			// Only so that the registry names the field in its refusal.
			spec.Public.Keys = make([]config.PublishableKey, len(p.Keys))
		}
	}
	ag, created, err := a.reg.PutAgent(x.ctx, x.c.Param("org"), spec)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return x.c.JSON(status, viewAgent(ag))
}

func (a *adminAPI) getAgent(x *adminCall) error {
	ag, err := a.reg.GetAgent(x.ctx, x.c.Param("org"), x.c.Param("agent"))
	if err != nil {
		return err
	}
	return x.c.JSON(http.StatusOK, viewAgent(ag))
}

func (a *adminAPI) deleteAgent(x *adminCall) error {
	if err := a.reg.DeleteAgent(x.ctx, x.c.Param("org"), x.c.Param("agent")); err != nil {
		return err
	}
	return x.c.NoContent(http.StatusNoContent)
}

// ---- publishable keys

type publishableKeyBody struct {
	Env *string `json:"env"`
}

type createdPublishableKey struct {
	ID        string    `json:"id"`
	Key       string    `json:"key"`
	CreatedAt time.Time `json:"created_at"`
}

func (a *adminAPI) createPublishableKey(x *adminCall) error {
	var b publishableKeyBody
	if err := x.decodeOptional(&b); err != nil {
		return err
	}
	env, err := keyEnv(b.Env, apikey.Live)
	if err != nil {
		return err
	}
	pk, key, err := a.reg.CreatePublishableKey(x.ctx, x.c.Param("org"), x.c.Param("agent"), env)
	if err != nil {
		return err
	}
	return x.c.JSON(http.StatusCreated, createdPublishableKey{ID: pk.ID, Key: key, CreatedAt: pk.CreatedAt})
}

func (a *adminAPI) deletePublishableKey(x *adminCall) error {
	if err := a.reg.DeletePublishableKey(x.ctx, x.c.Param("org"), x.c.Param("agent"), x.c.Param("id")); err != nil {
		return err
	}
	return x.c.NoContent(http.StatusNoContent)
}

// keyEnv reads an optional "env": live or test; def when absent.
func keyEnv(s *string, def apikey.Env) (apikey.Env, error) {
	if s == nil {
		return def, nil
	}
	switch e := apikey.Env(*s); e {
	case apikey.Live, apikey.Test:
		return e, nil
	}
	return "", apiError(CodeInvalidRequest, `env: "live" or "test"`)
}

// ---- secret keys

type keyBody struct {
	ID         string   `json:"id"`
	Scopes     []string `json:"scopes"`
	AllowedIPs []string `json:"allowed_ips"`
	ExpiresAt  *string  `json:"expires_at"`
	Env        *string  `json:"env"`
}

// createdKey is a new secret key: the key itself, shown this once, and
// what GET .../keys lists about it.
type createdKey struct {
	ID         string     `json:"id"`
	Key        string     `json:"key"`
	Env        apikey.Env `json:"env"`
	Scopes     []string   `json:"scopes"`
	AllowedIPs []string   `json:"allowed_ips"`
	ExpiresAt  *time.Time `json:"expires_at"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

func (a *adminAPI) createKey(x *adminCall) error {
	var b keyBody
	if err := x.decode(&b); err != nil {
		return err
	}
	// An org key makes keys of its own environment unless told otherwise,
	// and a test key never makes a live one.
	def := apikey.Live
	if !x.caller.admin && x.caller.env == apikey.Test {
		def = apikey.Test
	}
	env, err := keyEnv(b.Env, def)
	if err != nil {
		return err
	}
	if !x.caller.admin && x.caller.env == apikey.Test && env != apikey.Test {
		return apiError(CodeInsufficientScope, "a test key may make test keys only")
	}
	spec := registry.KeySpec{ID: b.ID, Scopes: b.Scopes, AllowedIPs: b.AllowedIPs, Env: env}
	if b.ExpiresAt != nil {
		t, err := time.Parse(time.RFC3339, *b.ExpiresAt)
		if err != nil {
			return apiError(CodeInvalidRequest, "expires_at: an RFC 3339 time such as 2027-06-01T00:00:00Z")
		}
		if !t.After(time.Now()) {
			return apiError(CodeInvalidRequest, "expires_at: must be in the future")
		}
		spec.ExpiresAt = &t
	}
	if !x.caller.admin {
		// Checked first, so that the bounds below compare well-formed
		// scopes and prefixes, and a malformed body is the registry's
		// 400 naming its fields.
		if err := registry.CheckKey(spec); err != nil {
			return err
		}
		if err := withinCaller(x.caller.key, spec); err != nil {
			return err
		}
	}
	k, key, err := a.reg.CreateKey(x.ctx, x.c.Param("org"), spec)
	if err != nil {
		return err
	}
	return x.c.JSON(http.StatusCreated, createdKey{
		ID: k.ID, Key: key, Env: env, Scopes: nonNilStrings(k.Scopes), AllowedIPs: nonNilStrings(k.AllowedIPs),
		ExpiresAt: k.ExpiresAt, CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt, RevokedAt: k.RevokedAt,
	})
}

// withinCaller refuses a key that an org key would make wider than itself:
// a scope it lacks, addresses outside its allowed_ips (or none, which is
// any address, when it has some), or an expiry later than its own (or
// none, when it has one). Without it a key held to one address for an
// hour could leave behind a key with every scope, for any address and
// for ever. Each refusal is 403 insufficient_scope, as for the scope
// keys:write itself: the body is well formed, but the credential lacks
// the power to grant it. A platform admin key is not held to this.
func withinCaller(caller *config.Key, spec registry.KeySpec) error {
	for _, s := range spec.Scopes {
		if !caller.HasScope(config.Scope(s)) {
			return apiError(CodeInsufficientScope, fmt.Sprintf("scopes: this key lacks %s, so it may not give it to a new key", s))
		}
	}
	if len(caller.AllowedIPs) > 0 {
		if len(spec.AllowedIPs) == 0 {
			return apiError(CodeInsufficientScope, "allowed_ips: this key has allowed_ips, so a key it makes must list addresses within them (none would allow any address)")
		}
		for n, s := range spec.AllowedIPs {
			// The tenants file's parse, as for the caller's own list: a
			// zone is dropped and IPv4-mapped IPv6 is unmapped, so that a
			// prefix cannot be written wider than it reads.
			p, err := config.ParseAllowedIP(s)
			if err != nil {
				return apiError(CodeInvalidRequest, fmt.Sprintf("allowed_ips[%d]: %v", n, err))
			}
			if !caller.AllowsPrefix(p) {
				return apiError(CodeInsufficientScope, fmt.Sprintf("allowed_ips[%d]: %s is not within this key's allowed_ips", n, p))
			}
		}
	}
	if exp := caller.ExpiresAt; exp != nil {
		limit := exp.UTC().Format(time.RFC3339Nano)
		if spec.ExpiresAt == nil {
			return apiError(CodeInsufficientScope, "expires_at: this key expires at "+limit+", so a key it makes must expire no later")
		}
		if spec.ExpiresAt.After(*exp) {
			return apiError(CodeInsufficientScope, "expires_at: later than this key's own expiry, "+limit)
		}
	}
	return nil
}

func (a *adminAPI) listKeys(x *adminCall) error {
	keys, err := a.reg.ListKeys(x.ctx, x.c.Param("org"))
	if err != nil {
		return err
	}
	if keys == nil {
		keys = []registry.Key{}
	}
	return x.c.JSON(http.StatusOK, map[string]any{"keys": keys})
}

func (a *adminAPI) revokeKey(x *adminCall) error {
	id := x.c.Param("id")
	// A test key makes test keys only, and must not stop live ones either.
	// The registry keeps a key's hash and not its environment, so once
	// made a test key cannot be told from a live one: a test key may
	// revoke itself (known to be a test key) and nothing else.
	if !x.caller.admin && x.caller.env == apikey.Test && id != x.caller.keyID {
		return apiError(CodeInsufficientScope, "a test key may revoke only itself: the registry does not record which keys are live, so revoke other keys with a live key or an admin key")
	}
	if err := a.reg.RevokeKey(x.ctx, x.c.Param("org"), id); err != nil {
		return err
	}
	return x.c.NoContent(http.StatusNoContent)
}

// ---- JWT issuers

type issuersBody struct {
	JWTIssuers *[]issuerBody `json:"jwt_issuers"`
}

type issuerBody struct {
	Issuer        string         `json:"issuer"`
	Audience      string         `json:"audience"`
	JWKSURL       string         `json:"jwks_url"`
	PublicKeyFile string         `json:"public_key_file"` // refused by the registry, with a message saying why
	Scopes        []config.Scope `json:"scopes"`
}

type issuerView struct {
	Issuer   string         `json:"issuer"`
	Audience string         `json:"audience"`
	JWKSURL  string         `json:"jwks_url"`
	Scopes   []config.Scope `json:"scopes"`
}

func viewIssuers(list []config.JWTIssuer) map[string]any {
	out := make([]issuerView, 0, len(list))
	for _, is := range list {
		out = append(out, issuerView{Issuer: is.Issuer, Audience: is.Audience, JWKSURL: is.JWKSURL, Scopes: nonNilStrings(is.Scopes)})
	}
	return map[string]any{"jwt_issuers": out}
}

func (a *adminAPI) getIssuers(x *adminCall) error {
	list, err := a.reg.GetJWTIssuers(x.ctx, x.c.Param("org"))
	if err != nil {
		return err
	}
	return x.c.JSON(http.StatusOK, viewIssuers(list))
}

func (a *adminAPI) putIssuers(x *adminCall) error {
	var b issuersBody
	if err := x.decode(&b); err != nil {
		return err
	}
	if b.JWTIssuers == nil {
		return apiError(CodeInvalidRequest, "jwt_issuers: required (the org's whole list; [] removes them all)")
	}
	list := make([]config.JWTIssuer, 0, len(*b.JWTIssuers))
	for _, is := range *b.JWTIssuers {
		list = append(list, config.JWTIssuer{Issuer: is.Issuer, Audience: is.Audience, JWKSURL: is.JWKSURL,
			PublicKeyFile: is.PublicKeyFile, Scopes: is.Scopes})
	}
	out, err := a.reg.PutJWTIssuers(x.ctx, x.c.Param("org"), list)
	if err != nil {
		return err
	}
	return x.c.JSON(http.StatusOK, viewIssuers(out))
}

// ---- the org's LiveKit project

type liveKitBody struct {
	URL       string `json:"url"`
	APIKey    string `json:"api_key"`
	APISecret string `json:"api_secret"`
}

func (a *adminAPI) putLiveKit(x *adminCall) error {
	var b liveKitBody
	if err := x.decode(&b); err != nil {
		return err
	}
	// The default project is not in the registry, which cannot see its
	// server: it is refused here, as CheckTenants refuses it at start and
	// on reload. 400, as the tenants file's own problems are: the value is
	// refused whatever the other orgs hold.
	if p := config.DefaultLiveKitServerProblem(a.defaultLiveKit, "livekit.url", b.URL); p != "" {
		return apiError(CodeInvalidRequest, p)
	}
	lk, err := a.reg.PutLiveKit(x.ctx, x.c.Param("org"), registry.LiveKitSpec{URL: b.URL, APIKey: b.APIKey, APISecret: b.APISecret})
	if err != nil {
		return err
	}
	return x.c.JSON(http.StatusOK, lk)
}

func (a *adminAPI) getLiveKit(x *adminCall) error {
	lk, err := a.reg.GetLiveKit(x.ctx, x.c.Param("org"))
	if err != nil {
		return err
	}
	return x.c.JSON(http.StatusOK, lk)
}

func (a *adminAPI) deleteLiveKit(x *adminCall) error {
	if err := a.reg.DeleteLiveKit(x.ctx, x.c.Param("org")); err != nil {
		return err
	}
	return x.c.NoContent(http.StatusNoContent)
}

// ---- audit

type auditList struct {
	Events     []registry.AuditEvent `json:"events"`
	NextCursor *string               `json:"next_cursor"`
}

func (a *adminAPI) audit(x *adminCall) error {
	q, err := x.query.auditQuery()
	if err != nil {
		return err
	}
	events, next, err := a.reg.Audit(x.ctx, q)
	if err != nil {
		return err
	}
	if events == nil {
		events = []registry.AuditEvent{}
	}
	return x.c.JSON(http.StatusOK, auditList{Events: events, NextCursor: cursor(next)})
}
