package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
	lkproto "github.com/livekit/protocol/livekit"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/auth"
	"github.com/voicebroker/voicebroker/internal/livekit"
	"github.com/voicebroker/voicebroker/pkg/rooms"
)

// roomService is LiveKit's RoomService as the room endpoints (and
// /livekit/token) use it. Every error wraps livekit.ErrNotFound (no such
// room, participant or track, or another org's room) or
// livekit.ErrUnavailable (LiveKit failed or could not be reached).
type roomService interface {
	// LookupRoom reads a room without creating it.
	LookupRoom(ctx context.Context, room string) (livekit.RoomState, error)
	// SetRoomOwner writes an existing room's owner metadata.
	SetRoomOwner(ctx context.Context, room, org, agent string) error
	// Rooms lists org's rooms.
	Rooms(ctx context.Context, org string) ([]*lkproto.Room, error)
	// AllRooms lists every room the project sees, whoever owns it.
	AllRooms(ctx context.Context) ([]*lkproto.Room, error)
	// DeleteRoom ends a room (check ownership first); a room already gone
	// is not an error.
	DeleteRoom(ctx context.Context, room string) error
	// Room returns room if org owns it.
	Room(ctx context.Context, room, org string) (*lkproto.Room, error)
	Participants(ctx context.Context, room string) ([]*lkproto.ParticipantInfo, error)
	RemoveParticipant(ctx context.Context, room, identity string) error
	MuteTrack(ctx context.Context, room, identity, trackSID string, muted bool) (*lkproto.TrackInfo, error)
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
		return err
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
func (s *Server) ownedRoom(c echo.Context, lk roomService, p *auth.Principal, room string) (*lkproto.Room, error) {
	if !rooms.Valid(room) {
		return nil, apiError(CodeInvalidRoomName, "")
	}
	r, err := lk.Room(c.Request().Context(), room, p.Org)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// getRoom is GET /livekit/rooms/{room_name}: the room and its participants.
func (s *Server) getRoom(c echo.Context) error {
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
		return err
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

	lk roomService // the caller's project
}

func (s *Server) participantAction(c echo.Context, mute bool) (*auth.Principal, *participantRequest, error) {
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
		return err
	}
	s.logger(c).LogAttrs(c.Request().Context(), slog.LevelInfo, "participant removed",
		slog.String("event", "livekit.remove_participant"), slog.String("org", p.Org), slog.String("key_id", p.KeyID),
		slog.String("room", req.RoomName))
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
		return err
	}
	s.logger(c).LogAttrs(c.Request().Context(), slog.LevelInfo, "track mute changed",
		slog.String("event", "livekit.mute"), slog.String("org", p.Org), slog.String("key_id", p.KeyID),
		slog.String("room", req.RoomName), slog.Bool("muted", *req.Muted))
	return c.JSON(http.StatusOK, map[string]any{"room_name": req.RoomName, "participant_identity": req.ParticipantIdentity,
		"track": trackView{SID: t.GetSid(), Type: t.GetType().String(), Source: t.GetSource().String(), Muted: t.GetMuted(), Name: t.GetName()}})
}
