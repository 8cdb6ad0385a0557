package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/auth"
	"github.com/voicebroker/voicebroker/internal/store"
	"github.com/voicebroker/voicebroker/pkg/token"
)

// Field bounds.
const (
	MaxMetadataBytes = 2 << 10
	MaxIdentityBytes = 128
)

var errUnknownOrg = errors.New("the credential's org is not in the tenants file")

type mintRequest struct {
	Agent    string          `json:"agent"`
	Channel  string          `json:"channel"`
	Identity *string         `json:"identity"`
	Metadata json.RawMessage `json:"metadata"`
}

type mintResponse struct {
	Token     string `json:"token"`
	Server    string `json:"server"`
	ExpiresIn int    `json:"expiresIn"`
}

// mint is POST /token: a backend with tokens:create asks for a single-use
// ticket for one of its org's agents.
func (s *Server) mint(c echo.Context) error {
	p, org, err := s.authenticate(c, config.ScopeTokensCreate, handlerAudits|handlerLimits)
	if err != nil {
		return err
	}
	data, err := readBody(c)
	if err != nil {
		return err
	}
	var req mintRequest
	if err := decodeJSON(data, &req, true); err != nil {
		return err
	}
	agent, err := agentFor(org, req.Agent, req.Channel)
	if err != nil {
		return err
	}
	identity, err := identityOf(req.Identity)
	if err != nil {
		return err
	}
	md, err := metadataOf(req.Metadata)
	if err != nil {
		return err
	}
	return s.issue(c, agent, token.Ticket{
		Org: p.Org, Agent: agent.ID, Channel: req.Channel, Identity: identity, Metadata: md,
	}, p, "backend")
}

// issue counts the request against its budget (the org's, or for a public
// ticket the agent's public budget, after its per-IP gate) and stores the
// ticket's nonce in one store step, then signs the ticket and answers 201.
// Nothing is handed out unless the nonce is stored.
func (s *Server) issue(c echo.Context, agent *config.Agent, t token.Ticket, p *auth.Principal, mode string) error {
	// The nonce is stored (and the request counted) before the ticket is
	// signed: a request the limits refuse costs no signature. A signing
	// failure after the store step leaves a nonce no ticket carries, which
	// expires unused.
	claims, err := s.Issuer.NewClaims(t)
	if err != nil {
		return wrapError(CodeJWTSigningError, err)
	}
	b := budgetOf(c)
	n := store.Nonce{Org: t.Org, ID: claims.ID}
	if b.scope == "public" {
		n.PublicAgent = agent.ID
	}
	g := gateOf(c) // the per-IP limit of /public/token, counted first in the same step
	if g != nil {
		n.Gate = g.Gate
	}
	res, err := s.Store.PutNonce(c.Request().Context(), n, s.Issuer.TTL()+s.Leeway, &b.limit)
	if err == nil || errors.Is(err, store.ErrExists) {
		counted(c)
		if g != nil {
			g.counted = true
		}
	}
	if errors.Is(err, store.ErrExists) {
		return wrapError(CodeInternal, err) // a 128-bit collision: never in practice
	} else if err != nil {
		return err
	}
	scope := b.scope
	if res.Gated {
		scope = "ip"
	}
	if err := s.limited(c, res, scope); err != nil {
		return err
	}
	signed, err := s.Issuer.Sign(claims)
	if err != nil {
		return wrapError(CodeJWTSigningError, err)
	}
	s.Metrics.Minted(t.Org, mode)
	s.log.LogAttrs(c.Request().Context(), slog.LevelInfo, "token minted",
		slog.String("event", "token.mint"), slog.String("mode", mode),
		slog.String("org", t.Org), slog.String("agent", t.Agent), slog.String("channel", t.Channel),
		slog.String("auth_method", string(p.Method)), slog.String("key_id", p.KeyID), slog.String("jti_hash", nonceTag(claims.ID)),
		slog.String("client_ip", s.ClientIP.Of(c.Request()).String()), slog.String("request_id", requestID(c)))
	server := agent.Server
	if server == "" {
		server = s.PublicURL
	}
	return c.JSON(http.StatusCreated, mintResponse{Token: signed, Server: server, ExpiresIn: int(s.Issuer.TTL().Seconds())})
}

// agentFor finds the agent in the org and checks the channel.
func agentFor(org *config.Org, agentID, channel string) (*config.Agent, error) {
	if agentID == "" {
		return nil, apiError(CodeInvalidRequest, `field "agent" is required`)
	}
	if channel != config.ChannelWebRTC && channel != config.ChannelChat {
		return nil, apiError(CodeInvalidRequest, `field "channel" must be "webrtc" or "chat"`)
	}
	agent := org.Agent(agentID)
	if agent == nil {
		return nil, apiError(CodeUnknownAgent, "")
	}
	if !agent.HasChannel(channel) {
		return nil, apiError(CodeInvalidRequest, "the agent does not offer channel "+channel)
	}
	return agent, nil
}

// identityOf checks a caller-chosen identity or makes a random one.
func identityOf(id *string) (string, error) {
	if id == nil {
		n, err := token.NewNonce()
		if err != nil {
			return "", err
		}
		return "user-" + n[:16], nil
	}
	if *id == "" || len(*id) > MaxIdentityBytes || !utf8.ValidString(*id) {
		return "", apiError(CodeInvalidRequest, `field "identity" must be 1 to 128 bytes of UTF-8`)
	}
	if !plainText(*id) {
		return "", apiError(CodeInvalidRequest, `field "identity" must not contain control, bidirectional-control or line-separator characters`)
	}
	return *id, nil
}

// plainText reports whether s is free of the characters that make a name
// display as something else or break a log line: C0 and C1 controls (and
// DEL), the Unicode Bidi_Control characters (U+061C, U+200E, U+200F,
// U+202A-U+202E, U+2066-U+2069: "admin\u202etxt.exe" shows as
// "adminexe.txt") and the line and paragraph separators U+2028, U+2029.
func plainText(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == '\u2028' || r == '\u2029' {
			return false
		}
	}
	return true
}

// metadataOf checks that metadata is a JSON object with unique keys (and
// no keys differing only in case) at every depth, valid UTF-8, of at most
// 2 KiB compacted, and returns it compacted; absent or null is {}.
func metadataOf(raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage("{}"), nil
	}
	if raw[0] != '{' {
		return nil, apiError(CodeInvalidRequest, `field "metadata" must be a JSON object`)
	}
	if err := checkJSON(raw, nil, false); err != nil {
		return nil, &Error{Code: CodeInvalidRequest, Message: `field "metadata": ` + err.Error(), Cause: err}
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, apiError(CodeInvalidRequest, `field "metadata" must be a JSON object`)
	}
	if buf.Len() > MaxMetadataBytes {
		return nil, apiError(CodeInvalidRequest, `field "metadata" is over 2 KiB`)
	}
	return buf.Bytes(), nil
}

type redeemRequest struct {
	Token string `json:"token"`
}

type redeemResponse struct {
	Org      string          `json:"org"`
	Agent    string          `json:"agent"`
	Channel  string          `json:"channel"`
	Identity string          `json:"identity"`
	Metadata json.RawMessage `json:"metadata"`
	Origin   string          `json:"origin,omitempty"`
}

// redeem is POST /token/redeem: a voice server of the token's org verifies
// and consumes a ticket. Every check runs before the nonce is consumed, so a
// refusal for any other reason leaves the ticket usable.
func (s *Server) redeem(c echo.Context) error {
	p, _, err := s.authenticate(c, config.ScopeTokensRedeem, handlerAudits|handlerLimits)
	if err != nil {
		return err
	}
	data, err := readBody(c)
	if err != nil {
		return err
	}
	var req redeemRequest
	if err := decodeJSON(data, &req, true); err != nil {
		return err
	}
	if req.Token == "" {
		return apiError(CodeInvalidRequest, `field "token" is required`)
	}
	claims, _, err := s.verify(c, req.Token, p)
	if err != nil {
		return err
	}
	if err := s.consume(c, claims, &budgetOf(c).limit); err != nil {
		return err
	}
	s.redeemed(c, claims, "redeem")
	return c.JSON(http.StatusOK, redeemResponse{
		Org: claims.Org, Agent: claims.Agent, Channel: claims.Channel, Identity: claims.Subject,
		Metadata: claims.Metadata, Origin: claims.Origin,
	})
}

// verify checks a ticket's signature and claims, and, when p is set, that it
// belongs to p's org; it returns the ticket's agent, which must still exist
// in the request's tenants snapshot. It consumes nothing.
func (s *Server) verify(c echo.Context, raw string, p *auth.Principal) (*token.Claims, *config.Agent, error) {
	claims, err := s.Verifier.Verify(raw)
	if err != nil {
		reason := CodeTokenInvalid
		if errors.Is(err, token.ErrExpired) {
			reason = CodeTokenExpired
		}
		s.refused(c, reason, "", err)
		return nil, nil, err
	}
	if p != nil && claims.Org != p.Org {
		s.refused(c, "wrong_org", claims.Org, nil)
		return nil, nil, apiError(CodeTokenInvalid, "")
	}
	org := s.tenants(c).Org(claims.Org)
	if org == nil || org.Agent(claims.Agent) == nil {
		s.refused(c, "agent_removed", claims.Org, nil)
		return nil, nil, apiError(CodeUnknownAgent, "")
	}
	return claims, org.Agent(claims.Agent), nil
}

// consume uses the ticket's nonce; of concurrent callers exactly one wins.
// With a limit, the request is counted against the ticket's org in the same
// store step, and a refusal consumes nothing.
func (s *Server) consume(c echo.Context, claims *token.Claims, limit *store.Limit) error {
	res, err := s.Store.ConsumeNonce(c.Request().Context(), store.Nonce{Org: claims.Org, ID: claims.ID}, limit)
	if limit != nil && (err == nil || errors.Is(err, store.ErrNotFound)) {
		counted(c)
		if lerr := s.limited(c, res, "org"); lerr != nil {
			return lerr
		}
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.refused(c, CodeTokenUsed, claims.Org, nil)
		s.log.LogAttrs(c.Request().Context(), slog.LevelWarn, "token replay refused",
			slog.String("event", "token.replay"), slog.String("org", claims.Org), slog.String("agent", claims.Agent),
			slog.String("jti_hash", nonceTag(claims.ID)), slog.String("client_ip", s.ClientIP.Of(c.Request()).String()),
			slog.String("request_id", requestID(c)))
		return apiError(CodeTokenUsed, "")
	case err != nil:
		return err
	}
	return nil
}

// redeemed counts and audits a redemption that completed, with the
// redeeming credential when there is one (not at /connect).
func (s *Server) redeemed(c echo.Context, claims *token.Claims, via string) {
	s.Metrics.Redeemed(claims.Org, via)
	method, keyID := "ticket", ""
	if p, ok := c.Get(ctxPrincipal).(*auth.Principal); ok {
		method, keyID = string(p.Method), p.KeyID
	}
	s.log.LogAttrs(c.Request().Context(), slog.LevelInfo, "token redeemed",
		slog.String("event", "token.redeem"), slog.String("via", via),
		slog.String("auth_method", method), slog.String("key_id", keyID),
		slog.String("org", claims.Org), slog.String("agent", claims.Agent), slog.String("channel", claims.Channel),
		slog.String("jti_hash", nonceTag(claims.ID)), slog.String("client_ip", s.ClientIP.Of(c.Request()).String()),
		slog.String("request_id", requestID(c)))
}

func (s *Server) refused(c echo.Context, reason, org string, err error) {
	s.Metrics.TokensRefused.WithLabelValues(reason).Inc()
	attrs := []slog.Attr{
		slog.String("event", "token.refused"), slog.String("reason", reason),
		slog.String("client_ip", s.ClientIP.Of(c.Request()).String()), slog.String("request_id", requestID(c)),
	}
	if org != "" {
		attrs = append(attrs, slog.String("org", org))
	}
	if err != nil {
		attrs = append(attrs, slog.String("detail", err.Error()))
	}
	if reason != CodeTokenUsed {
		s.log.LogAttrs(c.Request().Context(), slog.LevelWarn, "token refused", attrs...)
	}
}

// nonceTag is a short, one-way tag of a nonce for correlating log lines;
// the nonce itself is half a credential and is never logged.
// It is the first 12 hex digits of SHA-256(jti).
func nonceTag(jti string) string {
	sum := sha256.Sum256([]byte(jti))
	return hex.EncodeToString(sum[:6])
}
