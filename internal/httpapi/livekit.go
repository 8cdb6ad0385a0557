package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
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
	"github.com/voicebroker/voicebroker/pkg/token"
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
	if s.LiveKit == nil {
		return apiError(CodeLiveKitNotConfigured, "")
	}
	return nil
}

// liveKitError maps a livekit package error to the contract's codes.
func liveKitError(err error) error {
	switch {
	case errors.Is(err, livekit.ErrNotFound):
		return wrapError(CodeRoomNotFound, err)
	case errors.Is(err, livekit.ErrForeignRoom):
		return wrapError(CodeRoomForbidden, err)
	}
	return wrapError(CodeLiveKitUnavailable, err)
}

// connect is POST /connect: the browser trades its ticket for a LiveKit
// token. The room is created first and the nonce consumed last, so a
// LiveKit failure leaves the ticket usable for a retry.
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
	room, err := rooms.New(agent.ID, time.Now())
	if err != nil {
		return wrapError(CodeInternal, err)
	}
	// Consume first, so a replayed ticket costs no LiveKit call; if LiveKit
	// then fails, the nonce is put back and the same ticket can retry.
	if err := s.consume(c, claims, nil); err != nil {
		return err
	}
	ctx := r.Context()
	if err := s.openRoom(ctx, room, claims.Org, agent.ID); err != nil {
		s.restore(c, claims)
		s.log.LogAttrs(ctx, slog.LevelError, "livekit room creation failed; ticket restored",
			slog.String("event", "livekit.error"), slog.String("org", claims.Org), slog.String("agent", agent.ID),
			slog.String("room", room), slog.String("request_id", requestID(c)), slog.String("cause", err.Error()))
		return err
	}
	s.redeemed(c, claims, "connect")
	return s.participantToken(c, livekit.Participant{
		Identity: claims.Subject, Room: room, Org: claims.Org, Agent: agent.ID,
		CanPublish: claims.Channel == config.ChannelWebRTC, Metadata: string(claims.Metadata),
		Attributes: map[string]string{"channel": claims.Channel},
	})
}

// openRoom claims a fresh room for org and creates it in LiveKit; on a
// LiveKit failure the claim is released.
func (s *Server) openRoom(ctx context.Context, room, org, agent string) error {
	owner, err := s.Store.ClaimRoom(ctx, room, org, RoomOwnerTTL)
	if err != nil {
		return err
	}
	if owner != org {
		return wrapError(CodeInternal, errors.New("fresh random room name already owned")) // 71 bits: never
	}
	if _, err := s.LiveKit.EnsureRoom(ctx, room, org, agent); err != nil {
		s.Store.ReleaseRoom(context.WithoutCancel(ctx), room, org)
		return liveKitError(err)
	}
	return nil
}

// restore puts a consumed nonce back for the rest of its ticket's life, so
// a failure after consumption does not burn the ticket. Should the store
// fail here too, the ticket is lost: closed, never reusable twice.
func (s *Server) restore(c echo.Context, claims *token.Claims) {
	ttl := time.Until(claims.Expiry().Add(s.Leeway))
	if ttl <= 0 {
		return
	}
	ctx := context.WithoutCancel(c.Request().Context())
	if _, err := s.Store.PutNonce(ctx, store.Nonce{Org: claims.Org, ID: claims.ID}, ttl, nil); err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "could not restore a ticket after a failure; it is lost",
			slog.String("event", "token.restore_failed"), slog.String("org", claims.Org),
			slog.String("jti_hash", nonceTag(claims.ID)), slog.String("request_id", requestID(c)), slog.String("cause", err.Error()))
		return
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "ticket restored after a failure",
		slog.String("event", "token.restored"), slog.String("org", claims.Org),
		slog.String("jti_hash", nonceTag(claims.ID)), slog.String("request_id", requestID(c)))
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

func (s *Server) participantToken(c echo.Context, p livekit.Participant) error {
	jwt, err := s.LiveKit.Token(p)
	if err != nil {
		return wrapError(CodeJWTSigningError, err)
	}
	s.log.LogAttrs(c.Request().Context(), slog.LevelInfo, "livekit token issued",
		slog.String("event", "livekit.token"), slog.String("org", p.Org), slog.String("agent", p.Agent),
		slog.String("room", p.Room), slog.Bool("can_publish", p.CanPublish),
		slog.String("client_ip", s.ClientIP.Of(c.Request()).String()), slog.String("request_id", requestID(c)))
	return c.JSON(http.StatusCreated, connectResponse{
		ServerURL: s.LiveKit.URL(), ParticipantToken: jwt, RoomName: p.Room,
		ParticipantIdentity: p.Identity, ExpiresIn: int(s.LiveKit.TokenTTL().Seconds()),
	})
}

// livekitTokenRequest is LiveKit's standard token-endpoint body (snake_case,
// as its client SDKs' TokenSource sends it) plus agent and channel.
type livekitTokenRequest struct {
	RoomName              string            `json:"room_name"`
	ParticipantIdentity   *string           `json:"participant_identity"`
	ParticipantName       string            `json:"participant_name"`
	ParticipantMetadata   string            `json:"participant_metadata"`
	ParticipantAttributes map[string]string `json:"participant_attributes"`
	RoomConfig            json.RawMessage   `json:"room_config"`
	Agent                 string            `json:"agent"`
	Channel               string            `json:"channel"`
}

// roomConfig is the part of LiveKit's RoomConfiguration the broker reads.
type roomConfig struct {
	Agents []struct {
		AgentName string `json:"agent_name"`
		Metadata  string `json:"metadata"`
	} `json:"agents"`
}

// livekitToken is POST /livekit/token: a backend asks for a LiveKit token
// for a room of its own, validated and claimed.
func (s *Server) livekitToken(c echo.Context) error {
	if err := s.requireLiveKit(); err != nil {
		return err
	}
	p, org, err := s.authenticate(c, config.ScopeLiveKitToken, 0)
	if err != nil {
		return err
	}
	data, err := readBody(c)
	if err != nil {
		return err
	}
	var req livekitTokenRequest
	if err := decodeJSON(data, &req, false); err != nil {
		return err
	}

	agentID, agentMeta := req.Agent, ""
	if len(req.RoomConfig) > 0 && string(req.RoomConfig) != "null" {
		var rc roomConfig
		if err := json.Unmarshal(req.RoomConfig, &rc); err != nil {
			return apiError(CodeInvalidRequest, `field "room_config" must be a LiveKit room configuration object`)
		}
		if len(rc.Agents) > 1 {
			return apiError(CodeInvalidRequest, "room_config may dispatch one agent")
		}
		if len(rc.Agents) == 1 && rc.Agents[0].AgentName != "" {
			if req.Agent != "" && req.Agent != rc.Agents[0].AgentName {
				return apiError(CodeInvalidRequest, `"agent" and room_config's agent differ`)
			}
			agentID, agentMeta = rc.Agents[0].AgentName, rc.Agents[0].Metadata
			if len(agentMeta) > MaxMetadataBytes {
				return apiError(CodeInvalidRequest, "agent dispatch metadata is over 2 KiB")
			}
		}
	}
	if agentID == "" {
		return apiError(CodeInvalidRequest, `field "agent" is required unless room_config dispatches one`)
	}
	agent := org.Agent(agentID)
	if agent == nil {
		return apiError(CodeUnknownAgent, "")
	}
	channel := req.Channel
	switch {
	case channel == "" && agent.HasChannel(config.ChannelWebRTC):
		channel = config.ChannelWebRTC
	case channel == "":
		channel = config.ChannelChat
	case channel != config.ChannelWebRTC && channel != config.ChannelChat:
		return apiError(CodeInvalidRequest, `field "channel" must be "webrtc" or "chat"`)
	case !agent.HasChannel(channel):
		return apiError(CodeInvalidRequest, "the agent does not offer channel "+channel)
	}

	room := req.RoomName
	if room == "" {
		if room, err = rooms.New(agent.ID, time.Now()); err != nil {
			return wrapError(CodeInternal, err)
		}
	} else if err := roomAllowed(org, room); err != nil {
		return err
	}
	identity, err := identityOf(req.ParticipantIdentity)
	if err != nil {
		return apiError(CodeInvalidRequest, `field "participant_identity" must be 1 to 128 bytes of UTF-8 without control characters`)
	}
	if len(req.ParticipantName) > MaxIdentityBytes || !utf8.ValidString(req.ParticipantName) {
		return apiError(CodeInvalidRequest, `field "participant_name" must be at most 128 bytes of UTF-8`)
	}
	if len(req.ParticipantMetadata) > MaxMetadataBytes {
		return apiError(CodeInvalidRequest, `field "participant_metadata" is over 2 KiB`)
	}
	if err := checkAttributes(req.ParticipantAttributes); err != nil {
		return err
	}

	ctx := c.Request().Context()
	owner, err := s.Store.ClaimRoom(ctx, room, p.Org, RoomOwnerTTL)
	if err != nil {
		return err
	}
	if owner != p.Org {
		s.roomRefused(c, p, room)
		return apiError(CodeRoomForbidden, "")
	}
	if _, err := s.LiveKit.EnsureRoom(ctx, room, p.Org, agent.ID); err != nil {
		if errors.Is(err, livekit.ErrForeignRoom) {
			// LiveKit knows an owner the store had forgotten (a store reset):
			// LiveKit's metadata wins; undo our claim.
			s.Store.ReleaseRoom(context.WithoutCancel(ctx), room, p.Org)
			s.roomRefused(c, p, room)
		}
		return liveKitError(err)
	}
	return s.participantToken(c, livekit.Participant{
		Identity: identity, Name: req.ParticipantName, Room: room, Org: p.Org, Agent: agent.ID,
		AgentMeta: agentMeta, CanPublish: channel == config.ChannelWebRTC, Metadata: req.ParticipantMetadata,
		Attributes: withChannel(req.ParticipantAttributes, channel),
	})
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
func roomAllowed(org *config.Org, room string) error {
	n, err := rooms.Parse(room)
	if err != nil {
		return &Error{Code: CodeInvalidRoomName, Message: messages[CodeInvalidRoomName], Cause: err}
	}
	switch n.Kind {
	case rooms.Agent:
		if org.Agent(n.AgentID) == nil {
			return apiError(CodeInvalidRoomName, "the room name's agent is not an agent of your organisation")
		}
	case rooms.Demo:
		if !org.AllowDemoRooms {
			return apiError(CodeInvalidRoomName, "demo_ rooms are not enabled for your organisation")
		}
	}
	return nil
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
	rs, err := s.LiveKit.Rooms(c.Request().Context(), p.Org)
	if err != nil {
		return liveKitError(err)
	}
	out := make([]roomView, 0, len(rs))
	for _, r := range rs {
		out = append(out, viewRoom(r))
	}
	return c.JSON(http.StatusOK, map[string]any{"rooms": out})
}

// ownedRoom resolves a room of the caller's org or answers room_not_found:
// another org's room is indistinguishable from a missing one.
func (s *Server) ownedRoom(c echo.Context, p *auth.Principal, room string) (*lkproto.Room, error) {
	if !rooms.Valid(room) {
		return nil, apiError(CodeInvalidRoomName, "")
	}
	r, err := s.LiveKit.Room(c.Request().Context(), room, p.Org)
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
	r, err := s.ownedRoom(c, p, c.Param("room_name"))
	if err != nil {
		return err
	}
	parts, err := s.LiveKit.Participants(c.Request().Context(), r.Name)
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
	if _, err := s.ownedRoom(c, p, req.RoomName); err != nil {
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
	if err := s.LiveKit.RemoveParticipant(c.Request().Context(), req.RoomName, req.ParticipantIdentity); err != nil {
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
	t, err := s.LiveKit.MuteTrack(c.Request().Context(), req.RoomName, req.ParticipantIdentity, req.TrackSID, *req.Muted)
	if err != nil {
		return liveKitError(err)
	}
	s.log.LogAttrs(c.Request().Context(), slog.LevelInfo, "track mute changed",
		slog.String("event", "livekit.mute"), slog.String("org", p.Org), slog.String("key_id", p.KeyID),
		slog.String("room", req.RoomName), slog.Bool("muted", *req.Muted), slog.String("request_id", requestID(c)))
	return c.JSON(http.StatusOK, map[string]any{"room_name": req.RoomName, "participant_identity": req.ParticipantIdentity,
		"track": trackView{SID: t.GetSid(), Type: t.GetType().String(), Source: t.GetSource().String(), Muted: t.GetMuted(), Name: t.GetName()}})
}

// webhook is POST /livekit/webhook: LiveKit's signed events. room_finished
// releases the room's owner record; every event is audited.
func (s *Server) webhook(c echo.Context) error {
	if err := s.requireLiveKit(); err != nil {
		return err
	}
	r := c.Request()
	r.Body = http.MaxBytesReader(c.Response(), r.Body, MaxBodyBytes)
	ev, err := s.LiveKit.ReceiveWebhook(r)
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
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "webhook received",
		slog.String("event", "livekit.webhook"), slog.String("result", "ok"), slog.String("type", ev.Event),
		slog.String("room", room.GetName()), slog.String("org", owner), slog.String("id", ev.Id),
		slog.String("request_id", requestID(c)))
	if ev.Event == "room_finished" && room.GetName() != "" && owner != "" {
		if err := s.Store.ReleaseRoom(r.Context(), room.GetName(), owner); err != nil {
			return err // 503: LiveKit retries the webhook
		}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}
