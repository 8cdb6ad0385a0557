package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	lkproto "github.com/livekit/protocol/livekit"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/auth"
	"github.com/voicebroker/voicebroker/internal/livekit"
	"github.com/voicebroker/voicebroker/internal/store"
	"github.com/voicebroker/voicebroker/pkg/origins"
	"github.com/voicebroker/voicebroker/pkg/rooms"
)

// Bounds on /livekit/token fields.
const (
	MaxAttributes     = 16
	MaxAttributeKey   = 64
	MaxAttributeValue = 512
	// RoomOwnerTTL is how long an ownership record lives without a
	// room_finished webhook to release it.
	RoomOwnerTTL = 24 * time.Hour
)

// connectResponse is LiveKit's standard token-endpoint response plus the
// room and identity.
type connectResponse struct {
	ServerURL           string `json:"server_url"`
	ParticipantToken    string `json:"participant_token"`
	RoomName            string `json:"room_name"`
	ParticipantIdentity string `json:"participant_identity"`
	ExpiresIn           int    `json:"expires_in"`
}

func (s *Server) requireLiveKit() error {
	if !s.liveKitConfigured() {
		return apiError(CodeLiveKitNotConfigured, "")
	}
	return nil
}

// liveKitError maps a livekit package error to the contract's codes.
func liveKitError(err error) error {
	switch {
	case errors.Is(err, livekit.ErrNotFound):
		return wrapError(CodeRoomNotFound, err)
	}
	return wrapError(CodeLiveKitUnavailable, err)
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
	if err := s.requireLiveKit(); err != nil {
		return err
	}
	r := c.Request()
	ip := s.ClientIP.Of(r)
	if err := s.limit(c, ipKey("connect", ip), store.PerMinute(s.ConnectRate), "ip"); err != nil {
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
			s.refused(c, "origin_mismatch", claims.Org, nil)
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
		CanPublish: claims.Channel == config.ChannelWebRTC, Metadata: string(claims.Metadata),
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
			s.log.LogAttrs(ctx, slog.LevelWarn, "could not release the room of a refused /connect; it expires on its own",
				slog.String("event", "room.release_failed"), slog.String("org", claims.Org), slog.String("room", room),
				slog.String("request_id", requestID(c)), slog.String("cause", rerr.Error()))
		}
		return err
	}
	s.redeemed(c, claims, "connect")
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
func (s *Server) issued(c echo.Context, lk *livekit.Client, p livekit.Participant, jwt string) error {
	s.log.LogAttrs(c.Request().Context(), slog.LevelInfo, "livekit token issued",
		slog.String("event", "livekit.token"), slog.String("org", p.Org), slog.String("agent", p.Agent),
		slog.String("agent_name", p.AgentName), slog.String("room", p.Room), slog.Bool("can_publish", p.CanPublish),
		slog.String("client_ip", s.ClientIP.Of(c.Request()).String()), slog.String("request_id", requestID(c)))
	return c.JSON(http.StatusCreated, connectResponse{
		ServerURL: lk.URL(), ParticipantToken: jwt, RoomName: p.Room,
		ParticipantIdentity: p.Identity, ExpiresIn: int(lk.TokenTTL().Seconds()),
	})
}

// livekitToken is POST /livekit/token: a backend (or a LiveKit client SDK's
// endpoint TokenSource, with the backend's key in its headers) asks for a
// LiveKit token for a room of its own org. The body is LiveKit's
// TokenSourceRequest plus agent and channel. The agent is agent, else the
// one whose LiveKit name room_config.agents[0].agent_name is, else the one
// an agent_ room name names; a demo_ room may have none (no dispatch).
//
// Ownership: a caller-named room is looked up in LiveKit first (read only:
// the broker never creates a room; another org's live room is 403 even if
// the store forgot its claim), then claimed in the store, atomically: of
// two orgs racing for a name one gets it, the other 403. A generated room
// is fresh and random and needs no LiveKit call at all.
func (s *Server) livekitToken(c echo.Context) error {
	if err := s.requireLiveKit(); err != nil {
		return err
	}
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
		return apiError(CodeInvalidRequest, "the agent does not offer channel "+channel)
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
			return liveKitError(err)
		}
		if existing.Exists && existing.Owner != "" && existing.Owner != p.Org {
			s.roomRefused(c, p, room)
			return apiError(CodeRoomForbidden, "")
		}
	}
	owner, err := s.Store.ClaimRoom(ctx, room, p.Org, RoomOwnerTTL)
	if err != nil {
		return err
	}
	if owner != p.Org {
		s.roomRefused(c, p, room)
		return apiError(CodeRoomForbidden, "")
	}
	if existing.Exists && existing.Owner == "" {
		// A room made outside the broker: the token's room configuration
		// will not apply to it, so its owner is written now.
		if err := lk.SetRoomOwner(ctx, room, p.Org, part.Agent); err != nil {
			return liveKitError(err)
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

func withChannel(attrs map[string]string, channel string) map[string]string {
	out := make(map[string]string, len(attrs)+1)
	for k, v := range attrs {
		out[k] = v
	}
	out["channel"] = channel
	return out
}

func (s *Server) roomRefused(c echo.Context, p *auth.Principal, room string) {
	s.log.LogAttrs(c.Request().Context(), slog.LevelWarn, "room owned by another org",
		slog.String("event", "room.forbidden"), slog.String("org", p.Org), slog.String("key_id", p.KeyID),
		slog.String("room", room), slog.String("request_id", requestID(c)))
}

// roomAllowed checks a caller-chosen room name against the grammar and the
// org: agent rooms name one of its agents, demo rooms need allow_demo_rooms.
func roomAllowed(org *config.Org, room string) (rooms.Name, error) {
	n, err := rooms.Parse(room)
	if err != nil {
		return n, &Error{Code: CodeInvalidRoomName, Message: messages[CodeInvalidRoomName], Cause: err}
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

func checkAttributes(attrs map[string]string) error {
	if len(attrs) > MaxAttributes {
		return apiError(CodeInvalidRequest, "at most 16 participant_attributes")
	}
	for k, v := range attrs {
		if k == "" || len(k) > MaxAttributeKey || len(v) > MaxAttributeValue || !utf8.ValidString(k) || !utf8.ValidString(v) {
			return apiError(CodeInvalidRequest, "participant_attributes keys must be 1 to 64 bytes and values at most 512")
		}
		if k == "org" || k == "agent" || k == "channel" {
			return apiError(CodeInvalidRequest, `participant_attributes "org", "agent" and "channel" are set by the broker`)
		}
		if strings.HasPrefix(k, "lk.") {
			// LiveKit's own (lk.agent.state, lk.agent.name, ...): a caller
			// must not pass for an agent.
			return apiError(CodeInvalidRequest, `participant_attributes beginning with "lk." are LiveKit's`)
		}
	}
	return nil
}

// roomView is a room as the room endpoints show it.
type roomView struct {
	Name            string `json:"name"`
	SID             string `json:"sid"`
	Agent           string `json:"agent,omitempty"`
	NumParticipants uint32 `json:"num_participants"`
	CreationTime    int64  `json:"creation_time"`
	Metadata        string `json:"metadata"`
}

func viewRoom(r *lkproto.Room) roomView {
	var md livekit.RoomMetadata
	json.Unmarshal([]byte(r.Metadata), &md)
	return roomView{Name: r.Name, SID: r.Sid, Agent: md.Agent, NumParticipants: r.NumParticipants,
		CreationTime: r.CreationTime, Metadata: r.Metadata}
}

type trackView struct {
	SID    string `json:"sid"`
	Type   string `json:"type"`
	Source string `json:"source"`
	Muted  bool   `json:"muted"`
	Name   string `json:"name,omitempty"`
}

type participantView struct {
	SID        string            `json:"sid"`
	Identity   string            `json:"identity"`
	Name       string            `json:"name"`
	State      string            `json:"state"`
	Kind       string            `json:"kind"`
	JoinedAt   int64             `json:"joined_at"`
	Attributes map[string]string `json:"attributes,omitempty"`
	CanPublish bool              `json:"can_publish"`
	Tracks     []trackView       `json:"tracks"`
}

func viewParticipant(p *lkproto.ParticipantInfo) participantView {
	v := participantView{SID: p.Sid, Identity: p.Identity, Name: p.Name, State: p.State.String(),
		Kind: p.Kind.String(), JoinedAt: p.JoinedAt, Attributes: p.Attributes, Tracks: []trackView{}}
	if p.Permission != nil {
		v.CanPublish = p.Permission.CanPublish
	}
	for _, t := range p.Tracks {
		v.Tracks = append(v.Tracks, trackView{SID: t.Sid, Type: t.Type.String(), Source: t.Source.String(), Muted: t.Muted, Name: t.Name})
	}
	return v
}

// listRooms is GET /livekit/rooms: the caller's rooms only.
func (s *Server) listRooms(c echo.Context) error {
	if err := s.requireLiveKit(); err != nil {
		return err
	}
	p, _, err := s.authenticate(c, config.ScopeRoomsRead, 0)
	if err != nil {
		return err
	}
	lk, err := s.liveKitFor(p.Org)
	if err != nil {
		return err
	}
	rs, err := lk.Rooms(c.Request().Context(), p.Org)
	if err != nil {
		return liveKitError(err)
	}
	out := make([]roomView, 0, len(rs))
	for _, r := range rs {
		out = append(out, viewRoom(r))
	}
	return c.JSON(http.StatusOK, map[string]any{"rooms": out})
}

// ownedRoom resolves a room of the caller's org in its project (lk) or
// answers room_not_found: another org's room is indistinguishable from a
// missing one.
func (s *Server) ownedRoom(c echo.Context, lk *livekit.Client, p *auth.Principal, room string) (*lkproto.Room, error) {
	if !rooms.Valid(room) {
		return nil, apiError(CodeInvalidRoomName, "")
	}
	r, err := lk.Room(c.Request().Context(), room, p.Org)
	if err != nil {
		return nil, liveKitError(err)
	}
	return r, nil
}

// getRoom is GET /livekit/rooms/{room_name}: the room and its participants.
func (s *Server) getRoom(c echo.Context) error {
	if err := s.requireLiveKit(); err != nil {
		return err
	}
	p, _, err := s.authenticate(c, config.ScopeRoomsRead, 0)
	if err != nil {
		return err
	}
	lk, err := s.liveKitFor(p.Org)
	if err != nil {
		return err
	}
	r, err := s.ownedRoom(c, lk, p, c.Param("room_name"))
	if err != nil {
		return err
	}
	parts, err := lk.Participants(c.Request().Context(), r.Name)
	if err != nil {
		return liveKitError(err)
	}
	views := make([]participantView, 0, len(parts))
	for _, pi := range parts {
		views = append(views, viewParticipant(pi))
	}
	return c.JSON(http.StatusOK, map[string]any{"room": viewRoom(r), "participants": views})
}

type participantRequest struct {
	RoomName            string `json:"room_name"`
	ParticipantIdentity string `json:"participant_identity"`
	TrackSID            string `json:"track_sid"`
	Muted               *bool  `json:"muted"`

	lk *livekit.Client // the caller's project
}

func (s *Server) participantAction(c echo.Context, mute bool) (*auth.Principal, *participantRequest, error) {
	if err := s.requireLiveKit(); err != nil {
		return nil, nil, err
	}
	p, _, err := s.authenticate(c, config.ScopeRoomsWrite, 0)
	if err != nil {
		return nil, nil, err
	}
	data, err := readBody(c)
	if err != nil {
		return nil, nil, err
	}
	var req participantRequest
	if err := decodeJSON(data, &req, true); err != nil {
		return nil, nil, err
	}
	if req.RoomName == "" || req.ParticipantIdentity == "" || len(req.ParticipantIdentity) > MaxIdentityBytes {
		return nil, nil, apiError(CodeInvalidRequest, `fields "room_name" and "participant_identity" are required`)
	}
	if mute && (req.TrackSID == "" || len(req.TrackSID) > 64 || req.Muted == nil) {
		return nil, nil, apiError(CodeInvalidRequest, `fields "track_sid" and "muted" are required`)
	}
	if !mute && (req.TrackSID != "" || req.Muted != nil) {
		return nil, nil, apiError(CodeInvalidRequest, `"track_sid" and "muted" belong to /livekit/participant/mute`)
	}
	if req.lk, err = s.liveKitFor(p.Org); err != nil {
		return nil, nil, err
	}
	if _, err := s.ownedRoom(c, req.lk, p, req.RoomName); err != nil {
		return nil, nil, err
	}
	return p, &req, nil
}

// removeParticipant is DELETE /livekit/participant.
func (s *Server) removeParticipant(c echo.Context) error {
	p, req, err := s.participantAction(c, false)
	if err != nil {
		return err
	}
	if err := req.lk.RemoveParticipant(c.Request().Context(), req.RoomName, req.ParticipantIdentity); err != nil {
		return liveKitError(err)
	}
	s.log.LogAttrs(c.Request().Context(), slog.LevelInfo, "participant removed",
		slog.String("event", "livekit.remove_participant"), slog.String("org", p.Org), slog.String("key_id", p.KeyID),
		slog.String("room", req.RoomName), slog.String("request_id", requestID(c)))
	return c.JSON(http.StatusOK, map[string]string{"status": "removed", "room_name": req.RoomName, "participant_identity": req.ParticipantIdentity})
}

// muteTrack is POST /livekit/participant/mute.
func (s *Server) muteTrack(c echo.Context) error {
	p, req, err := s.participantAction(c, true)
	if err != nil {
		return err
	}
	t, err := req.lk.MuteTrack(c.Request().Context(), req.RoomName, req.ParticipantIdentity, req.TrackSID, *req.Muted)
	if err != nil {
		return liveKitError(err)
	}
	s.log.LogAttrs(c.Request().Context(), slog.LevelInfo, "track mute changed",
		slog.String("event", "livekit.mute"), slog.String("org", p.Org), slog.String("key_id", p.KeyID),
		slog.String("room", req.RoomName), slog.Bool("muted", *req.Muted), slog.String("request_id", requestID(c)))
	return c.JSON(http.StatusOK, map[string]any{"room_name": req.RoomName, "participant_identity": req.ParticipantIdentity,
		"track": trackView{SID: t.GetSid(), Type: t.GetType().String(), Source: t.GetSource().String(), Muted: t.GetMuted(), Name: t.GetName()}})
}

// webhook is POST /livekit/webhook: LiveKit's signed events, verified with
// the secret of the project whose API key signed them (the default
// project's or an org's own). room_finished releases the room's owner
// record; every event is audited. A webhook from an org's own project
// speaks for that org's rooms only: one about another org's room (its
// metadata names another auth_id) changes nothing, since whoever holds
// that project's secret can sign any body.
func (s *Server) webhook(c echo.Context) error {
	if err := s.requireLiveKit(); err != nil {
		return err
	}
	r := c.Request()
	r.Body = http.MaxBytesReader(c.Response(), r.Body, MaxBodyBytes)
	ev, project, err := s.receiveWebhook(r)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return apiError(CodePayloadTooLarge, "")
		}
		s.Metrics.AuthFailures.WithLabelValues("webhook_signature").Inc()
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "webhook refused",
			slog.String("event", "livekit.webhook"), slog.String("result", "refused"),
			slog.String("client_ip", s.ClientIP.Of(r).String()), slog.String("request_id", requestID(c)),
			slog.String("reason", err.Error()))
		return &Error{Code: CodeUnauthorized, Message: "the webhook signature did not verify", Cause: err}
	}
	room := ev.GetRoom()
	owner := livekit.OwnerOf(room)
	from := project
	if from == "" {
		from = "default"
	}
	if project != "" && owner != "" && owner != project {
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "webhook about another org's room ignored",
			slog.String("event", "livekit.webhook"), slog.String("result", "foreign_room"), slog.String("type", ev.Event),
			slog.String("project", from), slog.String("room", room.GetName()), slog.String("claimed_org", owner),
			slog.String("id", ev.Id), slog.String("request_id", requestID(c)))
		return c.JSON(http.StatusOK, map[string]string{"status": "ignored"})
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "webhook received",
		slog.String("event", "livekit.webhook"), slog.String("result", "ok"), slog.String("type", ev.Event),
		slog.String("project", from), slog.String("room", room.GetName()), slog.String("org", owner), slog.String("id", ev.Id),
		slog.String("request_id", requestID(c)))
	if ev.Event == "room_finished" && room.GetName() != "" && owner != "" {
		if err := s.Store.ReleaseRoom(r.Context(), room.GetName(), owner); err != nil {
			return err // 503: LiveKit retries the webhook
		}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}
