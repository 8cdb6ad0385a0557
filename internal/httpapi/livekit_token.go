package httpapi

import (
	"errors"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/auth"
	"github.com/voicebroker/voicebroker/internal/livekit"
	"github.com/voicebroker/voicebroker/internal/store"
	"github.com/voicebroker/voicebroker/internal/strictjson"
	"github.com/voicebroker/voicebroker/pkg/rooms"
)

// Bounds on /livekit/token fields.
const (
	MaxAttributes     = 16
	MaxAttributeKey   = 64
	MaxAttributeValue = 512
)

// livekitToken is POST /livekit/token: a backend (or a LiveKit client SDK's
// endpoint TokenSource, with the backend's key in its headers) asks for a
// LiveKit token for a room of its own org. The body is LiveKit's
// TokenSourceRequest plus agent and channel. The agent is agent, else the
// one whose LiveKit name room_config.agents[0].agent_name is, else the one
// an agent_ room name names; a demo_ room may have none (no dispatch).
//
// Ownership: a caller-named room is looked up in LiveKit first (read only:
// the broker never creates a room; another org's live room is 403 even if
// the store forgot its claim, and a live room without owner metadata is
// 403 unless the caller holds its name), then claimed in the store,
// atomically: of two orgs racing for a name one gets it, the other 403. A generated room
// is fresh and random and needs no LiveKit call at all.
func (s *Server) livekitToken(c echo.Context) error {
	p, org, err := s.authenticate(c, config.ScopeLiveKitToken, 0)
	if err != nil {
		return err
	}
	lk, err := s.liveKitFor(p.Org)
	if err != nil {
		return err
	}
	data, err := readBody(c)
	if err != nil {
		return err
	}
	req, err := decodeTokenSourceRequest(data)
	if err != nil {
		return err
	}
	if org == nil {
		return apiError(CodeUnknownAgent, "")
	}
	room := req.GetRoomName()
	named := req.RoomName != nil
	var parsed rooms.Name
	if named {
		if parsed, err = roomAllowed(org, room); err != nil {
			return err
		}
	}
	var lkName, agentMeta string
	if as := req.GetRoomConfig().GetAgents(); len(as) == 1 {
		lkName, agentMeta = as[0].GetAgentName(), as[0].GetMetadata()
	}
	if len(agentMeta) > MaxMetadataBytes {
		return apiError(CodeInvalidRequest, "room_config.agents[0].metadata is over 2 KiB")
	}
	agent, err := tokenAgent(org, req.Agent, lkName, named, parsed)
	if err != nil {
		return err
	}
	if agent == nil && agentMeta != "" {
		return apiError(CodeInvalidRequest, "room_config.agents[0].metadata is for an agent, and this room has none")
	}
	channel := req.Channel
	switch {
	case channel != "" && channel != config.ChannelWebRTC && channel != config.ChannelChat:
		return apiError(CodeInvalidRequest, `field "channel" must be "webrtc" or "chat"`)
	case agent == nil && channel == "":
		channel = config.ChannelWebRTC
	case agent == nil:
	case channel == "" && agent.HasChannel(config.ChannelWebRTC):
		channel = config.ChannelWebRTC
	case channel == "":
		channel = config.ChannelChat
	case !agent.HasChannel(channel):
		return apiError(CodeInvalidRequest, "the agent does not offer channel "+string(channel))
	}
	if !named {
		if agent == nil {
			return apiError(CodeInvalidRequest, `field "agent" is required unless room_config.agents[0].agent_name or room_name names one`)
		}
		if room, err = rooms.New(agent.ID, time.Now()); err != nil {
			return wrapError(CodeInternal, err)
		}
	}
	identity, err := identityOf(req.ParticipantIdentity)
	if err != nil {
		return apiError(CodeInvalidRequest, `field "participant_identity" must be 1 to 128 bytes of UTF-8 without control characters`)
	}
	if len(req.GetParticipantName()) > MaxIdentityBytes {
		return apiError(CodeInvalidRequest, `field "participant_name" must be at most 128 bytes of UTF-8`)
	}
	if len(req.GetParticipantMetadata()) > MaxMetadataBytes {
		return apiError(CodeInvalidRequest, `field "participant_metadata" is over 2 KiB`)
	}
	if err := checkAttributes(req.ParticipantAttributes); err != nil {
		return err
	}
	part := livekit.Participant{
		Identity: identity, Name: req.GetParticipantName(), Room: room, Org: p.Org,
		CanPublish: channel == config.ChannelWebRTC, Metadata: req.GetParticipantMetadata(),
		Attributes: withChannel(req.ParticipantAttributes, channel),
	}
	if agent != nil {
		part.Agent, part.AgentName, part.AgentMetadata = agent.ID, agent.LiveKitName(), agentMeta
	}
	jwt, err := lk.Token(part)
	if err != nil {
		return wrapError(CodeJWTSigningError, err)
	}

	ctx := c.Request().Context()
	var existing livekit.RoomState
	if named {
		if existing, err = lk.LookupRoom(ctx, room); err != nil {
			return err
		}
		if existing.Exists && existing.Owner != "" && existing.Owner != p.Org {
			s.roomRefused(c, p, room)
			return apiError(CodeRoomForbidden, "")
		}
		if existing.Exists && existing.Owner == "" && !s.ownProject(p.Org) {
			// A live room without owner metadata on the default
			// project's server, which every org without a project of its
			// own shares: one an agent's job token reopened (it carries
			// no room configuration), whose org holds the name in the
			// store, or one made outside the broker. It goes to the org
			// that holds the name, never to the first that asks: that
			// could be another org's room with its users and agent in
			// it. (A room on an org's own server is that org's.)
			switch holder, err := s.Store.RoomOwner(ctx, room); {
			case errors.Is(err, store.ErrNotFound) || err == nil && holder != p.Org:
				s.roomRefused(c, p, room)
				return apiError(CodeRoomForbidden, "the room is live in LiveKit with no owner, and your organisation does not hold its name")
			case err != nil:
				return err
			}
		}
	}
	owner, err := s.Store.ClaimRoom(ctx, room, p.Org, RoomOwnerTTL, lk.TokenTTL()+liveKitLeeway)
	if err != nil {
		return err
	}
	if owner != p.Org {
		s.roomRefused(c, p, room)
		return apiError(CodeRoomForbidden, "")
	}
	if existing.Exists && existing.Owner == "" {
		// The token's room configuration will not apply to a live room,
		// so its owner (the org that holds its name) is written now.
		if err := lk.SetRoomOwner(ctx, room, p.Org, part.Agent); err != nil {
			return err
		}
	}
	return s.issued(c, lk, part, jwt)
}

// tokenAgent resolves the agent of a /livekit/token request: id, else the
// org's agent whose LiveKit name is lkName, else the agent an agent_ room
// name names. nil (no dispatch) only for a demo_ room.
func tokenAgent(org *config.Org, id, lkName string, named bool, room rooms.Name) (*config.Agent, error) {
	var agent *config.Agent
	switch {
	case id != "":
		if agent = org.Agent(id); agent == nil {
			return nil, apiError(CodeUnknownAgent, "")
		}
		if lkName != "" && agent.LiveKitName() != lkName {
			return nil, apiError(CodeInvalidRequest, `"agent" and room_config.agents[0].agent_name name different agents`)
		}
	case lkName != "":
		switch as := org.AgentsByLiveKitName(lkName); len(as) {
		case 0:
			return nil, apiError(CodeUnknownAgent, "")
		case 1:
			agent = as[0]
		default:
			return nil, apiError(CodeInvalidRequest, `several of your agents use this LiveKit agent name: send "agent"`)
		}
	case named && room.Kind == rooms.Agent:
		agent = org.Agent(room.AgentID)
	}
	if agent != nil && named && room.Kind == rooms.Agent && room.AgentID != agent.ID {
		return nil, apiError(CodeInvalidRoomName, "the room name names another of your agents")
	}
	return agent, nil
}

func withChannel(attrs map[string]string, channel config.Channel) map[string]string {
	out := make(map[string]string, len(attrs)+1)
	for k, v := range attrs {
		out[k] = v
	}
	out["channel"] = string(channel)
	return out
}

func (s *Server) roomRefused(c echo.Context, p *auth.Principal, room string) {
	s.logger(c).LogAttrs(c.Request().Context(), slog.LevelWarn, "room owned by another org",
		slog.String("event", "room.forbidden"), slog.String("org", p.Org), slog.String("key_id", p.KeyID),
		slog.String("room", room))
}

// roomAllowed checks a caller-chosen room name against the grammar and the
// org: agent rooms name one of its agents, demo rooms need allow_demo_rooms.
func roomAllowed(org *config.Org, room string) (rooms.Name, error) {
	n, err := rooms.Parse(room)
	if err != nil {
		return n, wrapError(CodeInvalidRoomName, err)
	}
	switch n.Kind {
	case rooms.Agent:
		if org.Agent(n.AgentID) == nil {
			return n, apiError(CodeInvalidRoomName, "the room name's agent is not an agent of your organisation")
		}
	case rooms.Demo:
		if !org.AllowDemoRooms {
			return n, apiError(CodeInvalidRoomName, "demo_ rooms are not enabled for your organisation")
		}
	}
	return n, nil
}

// reservedAttributes are the participant attributes the broker sets itself,
// folded (strictjson.Fold), and lkPrefix LiveKit's own prefix, folded.
var (
	reservedAttributes = []string{strictjson.Fold("org"), strictjson.Fold("agent"), strictjson.Fold("channel")}
	lkPrefix           = strictjson.Fold("lk.")
)

// checkAttributes bounds a caller's participant attributes and refuses the
// reserved ones. Names compare under Unicode case folding, as an agent
// reading attributes case-insensitively would: "ORG", "Agent" and "LK.x"
// are reserved as much as "org", "agent" and "lk.x", and two names that
// differ only in case are refused, since readers could take either.
func checkAttributes(attrs map[string]string) error {
	if len(attrs) > MaxAttributes {
		return apiError(CodeInvalidRequest, "at most 16 participant_attributes")
	}
	seen := make(map[string]bool, len(attrs))
	for k, v := range attrs {
		if k == "" || len(k) > MaxAttributeKey || len(v) > MaxAttributeValue || !utf8.ValidString(k) || !utf8.ValidString(v) {
			return apiError(CodeInvalidRequest, "participant_attributes keys must be 1 to 64 bytes and values at most 512")
		}
		f := strictjson.Fold(k)
		if slices.Contains(reservedAttributes, f) {
			return apiError(CodeInvalidRequest, `participant_attributes "org", "agent" and "channel" (in any case) are set by the broker`)
		}
		if strings.HasPrefix(f, lkPrefix) {
			// LiveKit's own (lk.agent.state, lk.agent.name, ...): a caller
			// must not pass for an agent.
			return apiError(CodeInvalidRequest, `participant_attributes beginning with "lk." (in any case) are LiveKit's`)
		}
		if seen[f] {
			return apiError(CodeInvalidRequest, "two participant_attributes names differ only in case")
		}
		seen[f] = true
	}
	return nil
}
