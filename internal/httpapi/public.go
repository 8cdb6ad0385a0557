package httpapi

import (
	"errors"
	"net/http"
	"net/netip"
	"reflect"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/apikey"
	"github.com/voicebroker/voicebroker/internal/auth"
	"github.com/voicebroker/voicebroker/internal/store"
	"github.com/voicebroker/voicebroker/pkg/origins"
	"github.com/voicebroker/voicebroker/pkg/token"
)

// CORS settings of the browser-facing endpoints.
const (
	corsMaxAge  = 600 // seconds a preflight may be cached
	corsMethods = "POST, OPTIONS"
	corsHeaders = "Authorization, Content-Type, DPoP"
)

type publicRequest struct {
	Agent   string         `json:"agent"`
	Channel config.Channel `json:"channel"`
	DPoPJKT *string        `json:"dpop_jkt"`
}

var publicRequestType = reflect.TypeFor[*publicRequest]()

// fields are r's fields for decodeFlatJSON.
func (r *publicRequest) fields() []flatField {
	return []flatField{{name: "agent", str: &r.Agent}, {name: "channel", str: (*string)(&r.Channel)},
		{name: "dpop_jkt", opt: &r.DPoPJKT}}
}

// publicToken is POST /public/token: a demo page without a backend asks for
// a ticket with its agent's publishable key, from one of the agent's
// allowed origins. The ticket is bound to that origin.
func (s *Server) publicToken(c echo.Context) error {
	r := c.Request()
	ip := s.ClientIP.Of(r)
	// Any origin some agent allows may read the answer, errors included, so
	// a demo page can show why it was refused; the key's own agent decides
	// below. Two Origin headers name none, and are refused below.
	origin, single := originHeader(r)
	o, err := origins.ParseOrigin(origin) // once: publicTicket matches the same o
	parsed := single && err == nil
	if parsed && s.tenants(c).AllowsOrigin(o) {
		setCORS(c, o)
	}
	// The per-IP limit comes before everything else. A request that gets
	// as far as the mint has it counted in the mint's store step (one
	// round trip), as its gate; any other is counted here, on the way out.
	st := stateOf(c)
	st.gate = gate{Gate: store.Gate{Key: ipKey("public", ip), Limit: store.PerMinute(s.PublicRate)}}
	st.hasGate = true
	g := &st.gate
	err = s.publicTicket(c, ip, o, parsed)
	if g.counted || errors.Is(err, store.ErrUnavailable) {
		return err
	}
	if lerr := s.limit(c, g.Key, g.Limit, limitIP); lerr != nil {
		if b := budgetOf(c); b != nil {
			b.counted = true // refused by the IP limit: the agent's budget is not counted
		}
		return lerr
	}
	return err
}

// gate is the per-IP limit of a request, counted in its mint's store step
// (issue) or, if the request ends before, by publicToken.
type gate struct {
	store.Gate
	counted bool
}

// gateOf returns the request's per-IP gate, or nil.
func gateOf(c echo.Context) *gate {
	if st := stateOf(c); st.hasGate {
		return &st.gate
	}
	return nil
}

// publicTicket is /public/token after CORS, up to the mint; the per-IP
// limit is publicToken's. o is the request's one Origin header, parsed
// when parsed is true; anything else is refused as origin_not_allowed.
func (s *Server) publicTicket(c echo.Context, ip netip.Addr, o origins.Origin, parsed bool) error {
	cred, err := credential(c.Request())
	if err != nil {
		s.authFailed(c, ip, auth.Reason(classify(err).Code), nil)
		return err
	}
	agent, reason := s.publishableAgent(s.tenants(c), cred)
	if agent == nil {
		s.authFailed(c, ip, reason, nil)
		return apiError(CodeUnauthorized, "")
	}
	// From here the request counts against the agent's public budget,
	// never the org's: in the mint's store step, or when refused.
	setBudget(c, budget{org: agent.Org().ID, agent: agent.ID, limit: store.PerMinute(publicRate(agent)), scope: limitPublic})
	if !parsed || !agent.Origins().MatchOrigin(o) {
		s.authFailed(c, ip, reasonOriginNotAllowed, nil)
		return apiError(CodeOriginNotAllowed, "")
	}
	data, err := readBody(c)
	if err != nil {
		return err
	}
	var req publicRequest
	if err := decodeFlatJSON(data, &req, publicRequestType, req.fields()); err != nil {
		return err
	}
	if req.Agent != agent.ID {
		// The key is the agent's; naming another agent is a wrong key for it.
		s.authFailed(c, ip, reasonPublishableKeyOfOtherAgent, nil)
		return apiError(CodeUnauthorized, "")
	}
	if _, err := agentFor(agent.Org(), req.Agent, req.Channel); err != nil {
		return err
	}
	identity, err := identityOf(nil)
	if err != nil {
		return err
	}
	jkt, err := dpopJKT(agent, req.DPoPJKT)
	if err != nil {
		return err
	}
	return s.issue(c, agent, token.Ticket{
		Org: agent.Org().ID, Agent: agent.ID, Channel: string(req.Channel), Identity: identity, Origin: o.String(), JKT: jkt,
	}, &auth.Principal{Org: agent.Org().ID, Method: auth.MethodPublishableKey, KeyID: agent.ID}, mintPublic)
}

// publicRate is the agent's public budget a minute: public.rate_per_minute,
// or the org tier's rate.
func publicRate(a *config.Agent) int {
	if a.Public != nil && a.Public.RatePerMinute > 0 {
		return a.Public.RatePerMinute
	}
	return a.Org().RateLimit()
}

// publishableAgent finds the agent whose publishable key is cred in ten,
// or says why there is none (an audit reason, never shown to clients).
func (s *Server) publishableAgent(ten *config.Tenants, cred string) (*config.Agent, auth.Reason) {
	kind, env, err := apikey.Parse(cred)
	if err != nil {
		return nil, auth.ReasonMalformedKey
	}
	if kind != apikey.Publishable {
		return nil, reasonSecretKeyNotAccepted
	}
	if s.Production && env == apikey.Test {
		return nil, auth.ReasonTestKeyInProduction
	}
	var hb [apikey.HashLen]byte // the hash on the stack: no allocation
	h := apikey.AppendHash(hb[:0], cred)
	agent := ten.PublishableByHashBytes(h)
	if agent == nil || agent.Public == nil || !agent.Public.HasKey(string(h)) {
		return nil, auth.ReasonUnknownKey
	}
	return agent, ""
}

func setCORS(c echo.Context, o origins.Origin) {
	h := c.Response().Header()
	// The names are canonical; the fixed values share one allocation,
	// which nothing writes to (Add appends past its capacity).
	h[echo.HeaderAccessControlAllowOrigin] = []string{o.String()}
	if len(h[echo.HeaderVary]) == 0 {
		h[echo.HeaderVary] = corsValues[0:1:1]
	} else {
		h.Add(echo.HeaderVary, echo.HeaderOrigin)
	}
	h[echo.HeaderAccessControlExposeHeaders] = corsValues[1:2:2]
}

var corsValues = []string{echo.HeaderOrigin, "Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, X-Request-Id"}

// preflight answers a CORS preflight: the exact origin back when allow says
// yes, else 403 origin_not_allowed with no CORS headers. Credentials
// (cookies) are never allowed: the broker does not use them.
func preflight(allow func(origins.Origin) bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		origin, single := originHeader(c.Request())
		o, err := origins.ParseOrigin(origin)
		if !single || err != nil || !allow(o) {
			return apiError(CodeOriginNotAllowed, "")
		}
		h := c.Response().Header()
		h.Add(echo.HeaderVary, echo.HeaderOrigin)
		h.Add(echo.HeaderVary, echo.HeaderAccessControlRequestMethod)
		h.Add(echo.HeaderVary, echo.HeaderAccessControlRequestHeaders)
		h.Set(echo.HeaderAccessControlAllowOrigin, o.String())
		h.Set(echo.HeaderAccessControlAllowMethods, corsMethods)
		h.Set(echo.HeaderAccessControlAllowHeaders, corsHeaders)
		h.Set(echo.HeaderAccessControlMaxAge, strconv.Itoa(corsMaxAge))
		return c.NoContent(http.StatusNoContent)
	}
}

// anyPublicOrigin reports whether any agent of any org allows o: a
// preflight carries no key, so it cannot be narrowed to one agent. The
// actual request is checked against the key's own agent.
func (s *Server) anyPublicOrigin(o origins.Origin) bool {
	return s.Tenants.Current().AllowsOrigin(o)
}

// connectCORS sets CORS headers on /connect answers: a ticket is its own
// credential, so a backend-minted one may be traded from any page; a public
// ticket is checked against its origin claim by the handler.
func connectCORS(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		origin, single := originHeader(c.Request())
		if o, err := origins.ParseOrigin(origin); single && err == nil {
			setCORS(c, o)
		}
		return next(c)
	}
}

// originHeader returns the request's Origin, "" when there is none, and
// false when the header is sent more than once: a browser sends one, and
// two name no single origin (a reader of the first and a reader of the
// last could decide differently). Callers refuse that with 403
// origin_not_allowed and send no CORS headers.
func originHeader(r *http.Request) (string, bool) {
	vals := r.Header.Values(echo.HeaderOrigin)
	switch len(vals) {
	case 0:
		return "", true
	case 1:
		return vals[0], true
	}
	return "", false
}
