package httpapi

import (
	"context"
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
}

var _ liveKit = (*livekit.Client)(nil)

// RoomOwnerTTL is how long an ownership record lives without a
// room_finished webhook to release it.
const RoomOwnerTTL = 24 * time.Hour

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
	if claims.Origin != "" {
		o, err := origins.ParseOrigin(r.Header.Get(echo.HeaderOrigin))
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
	owner, err := s.Store.ClaimRoom(ctx, room, claims.Org, RoomOwnerTTL)
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

// ticketFrom takes the ticket from the Authorization header, else from a
// body {"token"}.
func ticketFrom(c echo.Context) (string, error) {
	r := c.Request()
	if vals := r.Header.Values("Authorization"); len(vals) == 1 {
		if t, ok := bearer(vals[0]); ok {
			return t, nil
		}
	}
	data, err := readBody(c)
	if err != nil {
		return "", err
	}
	if len(data) == 0 {
		if len(r.Header.Values("Authorization")) > 0 {
			return "", apiError(CodeInvalidAuthHeader, "")
		}
		return "", apiError(CodeMissingAuthHeader, "send the ticket as 'Authorization: Bearer <token>' or a body {\"token\"}")
	}
	var req redeemRequest
	if err := decodeJSON(data, &req, true); err != nil {
		return "", err
	}
	if req.Token == "" {
		return "", apiError(CodeInvalidRequest, `field "token" is required`)
	}
	return req.Token, nil
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
