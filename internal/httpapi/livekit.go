package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/livekit"
	"github.com/voicebroker/voicebroker/internal/store"
	"github.com/voicebroker/voicebroker/pkg/origins"
	"github.com/voicebroker/voicebroker/pkg/rooms"
)

// liveKit is the LiveKit side the handlers use; *livekit.Client
// implements it. Each part is declared where it is used.
type liveKit interface {
	liveKitTokens
	roomService
	webhookReceiver
}

// liveKitTokens signs room tokens (for /connect and /livekit/token).
type liveKitTokens interface {
	// Token signs a token for p, carrying the room's configuration (agent
	// dispatch, owner metadata); an error means nothing was signed.
	Token(p livekit.Participant) (string, error)
	// URL is the server URL clients connect to.
	URL() string
	// TokenTTL is a room token's lifetime.
	TokenTTL() time.Duration
	// Server is the LiveKit server of URL (host:port, as
	// config.LiveKitServer reads it); "" when it does not read.
	Server() string
}

var _ liveKit = (*livekit.Client)(nil)

// RoomOwnerTTL is how long an ownership record lives without a
// room_finished webhook to release it: a day, the longest a room token may
// live (BROKER_LIVEKIT_TOKEN_TTL), and liveKitLeeway, past which LiveKit
// still takes one. Every claim starts it again, and so does RoomKeeper's
// hourly renewal of the records of live rooms.
const RoomOwnerTTL = 24*time.Hour + liveKitLeeway

// connectResponse is LiveKit's standard token-endpoint response plus the
// room and identity.
type connectResponse struct {
	ServerURL           string `json:"server_url"`
	ParticipantToken    string `json:"participant_token"`
	RoomName            string `json:"room_name"`
	ParticipantIdentity string `json:"participant_identity"`
	ExpiresIn           int    `json:"expires_in"`
}

// requireLiveKit answers 501 livekit_not_configured, before anything else
// the route does, when the broker has no LiveKit project at all (LIVEKIT_*
// unset and no org with its own). It is the middleware of the liveKit route
// group (see New). An org without a project of its own on a broker without
// LIVEKIT_* gets the same 501 once the handler knows the org (liveKitFor).
func (s *Server) requireLiveKit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !s.liveKitConfigured() {
			return apiError(CodeLiveKitNotConfigured, "")
		}
		return next(c)
	}
}

// connect is POST /connect: the browser trades its ticket for a LiveKit
// token. It makes no LiveKit call: the token carries the room
// configuration, and LiveKit creates the room and dispatches the agent
// when the browser joins.
//
// The order loses no ticket and logs no false replay. Everything that can
// fail is done before the nonce is consumed: the LiveKit token is signed
// and a fresh room is claimed for the org first. Consuming the nonce is
// the commit point and the last fallible step; after it only the answer is
// written. So a failure (the store down, a bad origin, an unknown agent)
// leaves the ticket in place with nothing to restore, and token_used means
// exactly that another redemption of the ticket succeeded. The one case
// that cannot be told apart is the store failing while it consumes (the
// reply lost): the ticket may or may not be spent, and the client gets 503
// (fail closed). A claim left by a refused /connect names a random room
// nobody holds a token for; it is released, or expires with RoomOwnerTTL.
func (s *Server) connect(c echo.Context) error {
	r := c.Request()
	ip := s.ClientIP.Of(r)
	if err := s.limit(c, ipKey("connect", ip), store.PerMinute(s.ConnectRate), limitIP); err != nil {
		return err
	}
	raw, err := ticketFrom(c)
	if err != nil {
		return err
	}
	claims, agent, err := s.verify(c, raw, nil)
	if err != nil {
		return err
	}
	origin, single := originHeader(r)
	if !single {
		// Two Origins name no origin: refused for every ticket, before a
		// reader of the first and a reader of the last could disagree.
		s.refused(c, refusedOrigin, claims.Org, nil)
		return apiError(CodeOriginNotAllowed, "send one Origin header")
	}
	if claims.Origin != "" {
		o, err := origins.ParseOrigin(origin)
		if err != nil || o.String() != claims.Origin {
			s.refused(c, refusedOrigin, claims.Org, nil)
			return apiError(CodeOriginNotAllowed, "this ticket was issued for another origin")
		}
	}
	proof, err := s.dpopProof(c, raw, claims, agent)
	if err != nil {
		return err
	}
	lk, err := s.liveKitFor(claims.Org)
	if err != nil {
		return err
	}
	room, err := rooms.New(agent.ID, time.Now())
	if err != nil {
		return wrapError(CodeInternal, err)
	}
	p := livekit.Participant{
		Identity: claims.Subject, Room: room, Org: claims.Org, Agent: agent.ID,
		AgentName: agent.LiveKitName(), AgentMetadata: string(claims.Metadata),
		CanPublish: config.Channel(claims.Channel) == config.ChannelWebRTC, Metadata: string(claims.Metadata),
		Attributes: map[string]string{"channel": claims.Channel},
	}
	jwt, err := lk.Token(p)
	if err != nil {
		return wrapError(CodeJWTSigningError, err)
	}
	ctx := r.Context()
	owner, err := s.Store.ClaimRoom(ctx, room, claims.Org, RoomOwnerTTL, lk.TokenTTL()+liveKitLeeway)
	if err != nil {
		return err
	}
	if owner != claims.Org {
		return wrapError(CodeInternal, errors.New("fresh random room name already owned")) // 71 bits: never
	}
	if err := s.consumeProved(c, claims, proof); err != nil {
		if rerr := s.Store.ReleaseRoom(context.WithoutCancel(ctx), room, claims.Org); rerr != nil {
			s.logger(c).LogAttrs(ctx, slog.LevelWarn, "could not release the room of a refused /connect; it expires on its own",
				slog.String("event", "room.release_failed"), slog.String("org", claims.Org), slog.String("room", room),
				slog.String("cause", rerr.Error()))
		}
		return err
	}
	s.redeemed(c, claims, viaConnect)
	return s.issued(c, lk, p, jwt)
}

// connectRequest is the body of POST /connect: the ticket, when it is not
// in the Authorization header.
type connectRequest struct {
	// Token is raw so that "token" sent at all, even null, is told from
	// no "token".
	Token json.RawMessage `json:"token"`
}

// ticketFrom takes the ticket from the Authorization header or from a body
// {"token"}, exactly one of them. A ticket in both is refused (400
// invalid_request) rather than one of them picked: the two could differ,
// and whichever the broker took, something in front of it (a proxy, a
// log, a WAF rule) may have looked at the other. With the ticket in the
// header, a body, if any, must still be a strict JSON object (without
// "token"); any Authorization header counts, well formed or not.
func ticketFrom(c echo.Context) (string, error) {
	r := c.Request()
	data, err := readBody(c)
	if err != nil {
		return "", err
	}
	var req connectRequest
	if len(data) > 0 {
		if err := decodeJSON(data, &req, true); err != nil {
			return "", err
		}
	}
	headers := r.Header.Values("Authorization")
	switch {
	case len(headers) > 0 && req.Token != nil:
		return "", apiError(CodeInvalidRequest, "the ticket is in the Authorization header and in the body: send it once")
	case len(headers) == 1:
		if t, ok := bearer(headers[0]); ok {
			return t, nil
		}
		return "", apiError(CodeInvalidAuthHeader, "")
	case len(headers) > 1:
		return "", apiError(CodeInvalidAuthHeader, "")
	case req.Token == nil && len(data) == 0:
		return "", apiError(CodeMissingAuthHeader, "send the ticket as 'Authorization: Bearer <token>' or a body {\"token\"}")
	}
	var t string
	if req.Token == nil || json.Unmarshal(req.Token, &t) != nil || t == "" {
		return "", apiError(CodeInvalidRequest, `field "token" is required, a string`)
	}
	return t, nil
}

// issued logs an issued LiveKit token of lk's project and answers with it.
func (s *Server) issued(c echo.Context, lk liveKitTokens, p livekit.Participant, jwt string) error {
	s.logger(c).LogAttrs(c.Request().Context(), slog.LevelInfo, "livekit token issued",
		slog.String("event", "livekit.token"), slog.String("org", p.Org), slog.String("agent", p.Agent),
		slog.String("agent_name", p.AgentName), slog.String("room", p.Room), slog.Bool("can_publish", p.CanPublish),
		slog.String("client_ip", s.ClientIP.Of(c.Request()).String()))
	return c.JSON(http.StatusCreated, connectResponse{
		ServerURL: lk.URL(), ParticipantToken: jwt, RoomName: p.Room,
		ParticipantIdentity: p.Identity, ExpiresIn: int(lk.TokenTTL().Seconds()),
	})
}
