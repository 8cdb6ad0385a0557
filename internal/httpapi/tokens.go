package httpapi

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/auth"
	"github.com/voicebroker/voicebroker/internal/compactjson"
	"github.com/voicebroker/voicebroker/internal/store"
	"github.com/voicebroker/voicebroker/pkg/token"
)

// Field bounds.
const (
	MaxMetadataBytes = 2 << 10
	MaxIdentityBytes = 128
)

var errUnknownOrg = errors.New("the credential's org is not in the tenants file")

// ticketIssuer signs tickets.
type ticketIssuer interface {
	// Mint signs a ticket and returns it with its claims; an error means
	// nothing was signed.
	Mint(t token.Ticket) (string, *token.Claims, error)
	// NewClaims returns a new ticket's claims, not yet signed, so that its
	// nonce can be stored (and the request counted) before the signature;
	// Sign signs them. Mint is NewClaims then Sign.
	NewClaims(t token.Ticket) (*token.Claims, error)
	Sign(c *token.Claims) (string, error)
	// Record is what the store keeps with a signed ticket's nonce: the
	// MAC of the whole ticket, which lets /token/redeem skip the
	// signature (ticketVerifier.CheckUnsigned).
	Record(ticket string) string
	// TTL is a ticket's lifetime.
	TTL() time.Duration
}

// ticketVerifier checks tickets.
type ticketVerifier interface {
	// Verify checks a ticket's signature and claims and consumes nothing;
	// its errors wrap token.ErrExpired or token.ErrInvalid.
	Verify(raw string) (*token.Claims, error)
	// CheckUnsigned checks all but the signature and returns the claims,
	// NOT authenticated, with the record the nonce must be kept with;
	// any error means "call Verify". See token.Verifier.CheckUnsigned.
	CheckUnsigned(raw string) (*token.Claims, string, error)
}

var (
	_ ticketIssuer   = (*token.Issuer)(nil)
	_ ticketVerifier = (*token.Verifier)(nil)
)

type mintRequest struct {
	Agent    string          `json:"agent"`
	Channel  config.Channel  `json:"channel"`
	Identity *string         `json:"identity"`
	Metadata json.RawMessage `json:"metadata"`
	DPoPJKT  *string         `json:"dpop_jkt"`
}

var mintRequestType = reflect.TypeFor[*mintRequest]()

// fields are r's fields for decodeFlatJSON.
func (r *mintRequest) fields() []flatField {
	return []flatField{{name: "agent", str: &r.Agent}, {name: "channel", str: (*string)(&r.Channel)},
		{name: "identity", opt: &r.Identity}, {name: "metadata", raw: &r.Metadata}, {name: "dpop_jkt", opt: &r.DPoPJKT}}
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
	if err := decodeFlatJSON(data, &req, mintRequestType, req.fields()); err != nil {
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
	jkt, err := dpopJKT(agent, req.DPoPJKT)
	if err != nil {
		return err
	}
	return s.issue(c, agent, token.Ticket{
		Org: p.Org, Agent: agent.ID, Channel: string(req.Channel), Identity: identity, Metadata: md, JKT: jkt,
	}, p, mintBackend)
}

// issue counts the request against its budget (the org's, or for a public
// ticket the agent's public budget, after its per-IP gate) and stores the
// ticket's nonce in one store step, then signs the ticket and answers 201.
// Nothing is handed out unless the nonce is stored.
func (s *Server) issue(c echo.Context, agent *config.Agent, t token.Ticket, p *auth.Principal, mode mintMode) error {
	// The ticket is signed before its nonce is stored (and the request
	// counted): the store keeps the ticket's record, the MAC of the whole
	// signed ticket, with the nonce. A ticket signed for a request the
	// store step then refuses is never handed out and never redeems.
	claims, err := s.Issuer.NewClaims(t)
	if err != nil {
		return wrapError(CodeJWTSigningError, err)
	}
	signed, err := s.Issuer.Sign(claims)
	if err != nil {
		return wrapError(CodeJWTSigningError, err)
	}
	b := budgetOf(c)
	n := store.Nonce{Org: t.Org, ID: claims.ID, Record: s.Issuer.Record(signed)}
	if b.scope == limitPublic {
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
		scope = limitIP
	}
	if err := s.limited(c, res, scope); err != nil {
		return err
	}
	s.Metrics.Minted(t.Org, string(mode))
	s.auditInfo(c, "token minted",
		slog.String("event", "token.mint"), slog.String("mode", string(mode)),
		slog.String("org", t.Org), slog.String("agent", t.Agent), slog.String("channel", t.Channel),
		slog.String("auth_method", string(p.Method)), slog.String("key_id", p.KeyID), slog.String("jti_hash", nonceTag(claims.ID)),
		slog.String("client_ip", s.ClientIP.Of(c.Request()).String()))
	server := agent.Server
	if server == "" {
		server = s.PublicURL
	}
	return writeMinted(c, mintResponse{Token: signed, Server: server, ExpiresIn: int(s.Issuer.TTL().Seconds())})
}

// agentFor finds the agent in the org and checks the channel.
func agentFor(org *config.Org, agentID string, channel config.Channel) (*config.Agent, error) {
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
		return nil, apiError(CodeInvalidRequest, "the agent does not offer channel "+string(channel))
	}
	return agent, nil
}

// identityOf checks a caller-chosen identity or makes a random one.
func identityOf(id *string) (string, error) {
	if id == nil {
		// "user-" and 16 base64url characters: 96 random bits, the first
		// 16 characters of a token.NewNonce, in one allocation.
		var raw [12]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return "", err
		}
		var b [len("user-") + 16]byte
		copy(b[:], "user-")
		base64.RawURLEncoding.Encode(b[len("user-"):], raw[:])
		return string(b[:]), nil
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

// metadataOf checks that metadata is a JSON object of at most 2 KiB
// compacted, and returns it compacted; absent or null is {}. raw is a
// member of a request body that decodeFlatJSON accepted, so it has passed
// strictjson's rules already, at its depth in the body (unique keys, also
// under case folding, at every depth, valid UTF-8, numbers a double holds,
// bounded nesting): they are not checked twice.
func metadataOf(raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage("{}"), nil
	}
	if raw[0] != '{' {
		return nil, apiError(CodeInvalidRequest, `field "metadata" must be a JSON object`)
	}
	md, err := compactjson.Append(make([]byte, 0, len(raw)), raw, false)
	if err != nil {
		return nil, apiError(CodeInvalidRequest, `field "metadata" must be a JSON object`)
	}
	if len(md) > MaxMetadataBytes {
		return nil, apiError(CodeInvalidRequest, `field "metadata" is over 2 KiB`)
	}
	return md, nil
}

type redeemRequest struct {
	Token string `json:"token"`
}

var redeemRequestType = reflect.TypeFor[*redeemRequest]()

// fields are r's fields for decodeFlatJSON.
func (r *redeemRequest) fields() []flatField { return []flatField{{name: "token", str: &r.Token}} }

type redeemResponse struct {
	Org      string          `json:"org"`
	Agent    string          `json:"agent"`
	Channel  string          `json:"channel"`
	Identity string          `json:"identity"`
	Metadata json.RawMessage `json:"metadata"`
	Origin   string          `json:"origin,omitempty"`
	// Cnf is the ticket's cnf claim when it is sender-constrained: a voice
	// server checks the client's DPoP proof against cnf.jkt itself.
	Cnf *token.Confirmation `json:"cnf,omitempty"`
}

// redeem is POST /token/redeem: a voice server of the token's org verifies
// and consumes a ticket. Every check runs before the nonce is consumed, so a
// refusal for any other reason leaves the ticket usable.
//
// A ticket kept with its record (every ticket this broker's keys minted)
// is redeemed without checking its signature when that succeeds
// (redeemRecorded); every refusal, and every ticket the fast path cannot
// take, is answered as it always was, by verify first.
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
	if err := decodeFlatJSON(data, &req, redeemRequestType, req.fields()); err != nil {
		return err
	}
	if req.Token == "" {
		return apiError(CodeInvalidRequest, `field "token" is required`)
	}
	claims, taken, err := s.redeemRecorded(c, req.Token, p)
	if !taken {
		if claims, _, err = s.verify(c, req.Token, p); err != nil {
			return err
		}
		err = s.consume(c, claims, &budgetOf(c).limit)
	}
	if err != nil {
		return err
	}
	s.redeemed(c, claims, viaRedeem)
	return writeRedeemed(c, redeemResponse{
		Org: claims.Org, Agent: claims.Agent, Channel: claims.Channel, Identity: claims.Subject,
		Metadata: claims.Metadata, Origin: claims.Origin, Cnf: claims.Confirmation,
	})
}

// redeemRecorded is the fast path of POST /token/redeem: it consumes the
// ticket's nonce only if the store keeps it with the ticket's record (the
// MAC of the whole ticket as minted), which proves the broker minted
// exactly this ticket, so that a redemption that succeeds costs no
// signature check. taken is false when the ticket is not for this path (a
// header it has no record key for, claims Verify would refuse, another
// org's ticket, an agent gone): nothing was done and the caller goes the
// way of verify. Otherwise the answer is err (nil: claims are redeemed).
//
// The rule that keeps this safe: the signature is skipped only when the
// request then succeeds. On every refusal (limited, used, a record that
// does not match, the store failing) the signature is verified first, and
// a ticket that fails it gets today's answer for a forged ticket, so that
// no refusal tells a client who cannot sign anything about the claims it
// chose (another org's agent, a nonce's state). A ticket whose record does
// not match but whose signature holds (minted by a broker that kept no
// record, during an upgrade) is consumed without one, its request counted
// once already.
func (s *Server) redeemRecorded(c echo.Context, raw string, p *auth.Principal) (claims *token.Claims, taken bool, err error) {
	claims, record, err := s.Verifier.CheckUnsigned(raw)
	if err != nil || claims.Org != p.Org {
		return nil, false, nil
	}
	if org := s.tenants(c).Org(claims.Org); org == nil || org.Agent(claims.Agent) == nil {
		return nil, false, nil
	}
	ctx := c.Request().Context()
	res, err := s.Store.ConsumeNonce(ctx, store.Nonce{Org: claims.Org, ID: claims.ID, Record: record}, &budgetOf(c).limit)
	countedHere := err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrMismatch)
	if countedHere {
		counted(c)
	}
	if err == nil && res.Allowed {
		return claims, true, s.limited(c, res, limitOrg) // sets the RateLimit headers
	}
	// A refusal: the signature first. verify audits and answers a forged
	// ticket as before records.
	claims, _, verr := s.verify(c, raw, p)
	if countedHere {
		if lerr := s.limited(c, res, limitOrg); lerr != nil {
			return nil, true, lerr // over the limit: 429, as countRefused answers
		}
	}
	// (Refused by the limit, with err nil, was answered 429 just above.)
	switch {
	case verr != nil:
		return nil, true, verr
	case errors.Is(err, store.ErrNotFound):
		return nil, true, s.ticketUsed(c, claims)
	case errors.Is(err, store.ErrMismatch):
		// A genuine ticket kept without its record: consumed as before
		// records, without counting the request again.
		return claims, true, s.consume(c, claims, nil)
	}
	return nil, true, err
}

// verify checks a ticket's signature and claims, and, when p is set, that it
// belongs to p's org; it returns the ticket's agent, which must still exist
// in the request's tenants snapshot. It consumes nothing.
func (s *Server) verify(c echo.Context, raw string, p *auth.Principal) (*token.Claims, *config.Agent, error) {
	claims, err := s.Verifier.Verify(raw)
	if err != nil {
		reason := refusedInvalid
		if errors.Is(err, token.ErrExpired) {
			reason = refusedExpired
		}
		s.refused(c, reason, "", err)
		return nil, nil, err
	}
	if p != nil && claims.Org != p.Org {
		s.refused(c, refusedWrongOrg, claims.Org, nil)
		return nil, nil, apiError(CodeTokenInvalid, "")
	}
	org := s.tenants(c).Org(claims.Org)
	if org == nil || org.Agent(claims.Agent) == nil {
		s.refused(c, refusedAgentRemoved, claims.Org, nil)
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
		if lerr := s.limited(c, res, limitOrg); lerr != nil {
			return lerr
		}
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return s.ticketUsed(c, claims)
	case err != nil:
		return err
	}
	return nil
}

// ticketUsed counts and logs a replayed ticket and returns token_used.
func (s *Server) ticketUsed(c echo.Context, claims *token.Claims) error {
	s.refused(c, refusedUsed, claims.Org, nil)
	s.logger(c).LogAttrs(c.Request().Context(), slog.LevelWarn, "token replay refused",
		slog.String("event", "token.replay"), slog.String("org", claims.Org), slog.String("agent", claims.Agent),
		slog.String("jti_hash", nonceTag(claims.ID)), slog.String("client_ip", s.ClientIP.Of(c.Request()).String()))
	return apiError(CodeTokenUsed, "")
}

// redeemed counts and audits a redemption that completed, with the
// redeeming credential when there is one (not at /connect).
func (s *Server) redeemed(c echo.Context, claims *token.Claims, via redeemVia) {
	s.Metrics.Redeemed(claims.Org, string(via))
	method, keyID := auth.MethodTicket, ""
	if p := stateOf(c).principal; p != nil {
		method, keyID = p.Method, p.KeyID
	}
	s.auditInfo(c, "token redeemed",
		slog.String("event", "token.redeem"), slog.String("via", string(via)),
		slog.String("auth_method", string(method)), slog.String("key_id", keyID),
		slog.String("org", claims.Org), slog.String("agent", claims.Agent), slog.String("channel", claims.Channel),
		slog.String("jti_hash", nonceTag(claims.ID)), slog.String("client_ip", s.ClientIP.Of(c.Request()).String()))
}

// refused counts and audits a refused ticket (a replay is audited by its
// own token.replay line).
func (s *Server) refused(c echo.Context, reason refusal, org string, err error) {
	s.Metrics.TokensRefused.WithLabelValues(string(reason)).Inc()
	attrs := []slog.Attr{
		slog.String("event", "token.refused"), slog.String("reason", string(reason)),
		slog.String("client_ip", s.ClientIP.Of(c.Request()).String()),
	}
	if org != "" {
		attrs = append(attrs, slog.String("org", org))
	}
	if err != nil {
		attrs = append(attrs, slog.String("detail", err.Error()))
	}
	if reason != refusedUsed {
		s.logger(c).LogAttrs(c.Request().Context(), slog.LevelWarn, "token refused", attrs...)
	}
}

// nonceTag is a short, one-way tag of a nonce for correlating log lines;
// the nonce itself is half a credential and is never logged.
// It is the first 12 hex digits of SHA-256(jti).
func nonceTag(jti string) string {
	sum := sha256.Sum256([]byte(jti))
	return hex.EncodeToString(sum[:6])
}
