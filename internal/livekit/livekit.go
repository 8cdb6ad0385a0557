// Package livekit is the broker's LiveKit side: participant tokens that
// carry the room configuration (LiveKit creates the room and dispatches the
// agent when the first participant joins), the RoomService calls that list
// and inspect rooms, and the webhook receiver. It knows net/http but no
// routing.
package livekit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/livekit/protocol/auth"
	lkproto "github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/webhook"
	"github.com/twitchtv/twirp"

	"github.com/voicebroker/voicebroker/config"
)

// Errors of this package, tested with errors.Is.
var (
	// ErrUnavailable: LiveKit could not be reached or failed the call.
	ErrUnavailable = errors.New("livekit unavailable")
	// ErrNotFound: no such room or participant.
	ErrNotFound = errors.New("livekit: not found")
	// ErrWebhook: the webhook's signature or body hash did not verify.
	ErrWebhook = errors.New("livekit: webhook not verified")
)

// RoomMetadata is what the broker writes in a room's metadata.
type RoomMetadata struct {
	AuthID string `json:"auth_id"`
	Agent  string `json:"agent,omitempty"`
}

// OwnerOf reads the auth_id of a room's metadata; "" when there is none.
func OwnerOf(r *lkproto.Room) string {
	if r == nil || r.Metadata == "" {
		return ""
	}
	var md RoomMetadata
	if json.Unmarshal([]byte(r.Metadata), &md) != nil {
		return ""
	}
	return md.AuthID
}

// Options configures a Client.
type Options struct {
	URL, APIKey, APISecret string
	TokenTTL               time.Duration // participant token lifetime
	Timeout                time.Duration // per RoomService call
	// EmptyTimeout closes a room no participant is in, in seconds, if none
	// joins after its creation (default 300, LiveKit's own). With rooms
	// created by a join it only matters when that join fails half-way.
	EmptyTimeout uint32
	// DepartureTimeout closes a room this many seconds after its last
	// participant left (default 20).
	DepartureTimeout uint32
	// Observe, if set, is called after every RoomService call.
	Observe func(op string, d time.Duration, err error)
}

// Client talks to one LiveKit deployment. It is safe for concurrent use.
type Client struct {
	opt    Options
	server string // config.LiveKitServer of the URL; "" if it does not read
	rooms  *roomService
	keys   auth.KeyProvider
}

// New returns a Client; it does not contact LiveKit.
func New(opt Options) *Client {
	if opt.Timeout <= 0 {
		opt.Timeout = 5 * time.Second
	}
	if opt.TokenTTL <= 0 {
		opt.TokenTTL = 5 * time.Minute
	}
	if opt.EmptyTimeout == 0 {
		opt.EmptyTimeout = 300
	}
	if opt.DepartureTimeout == 0 {
		opt.DepartureTimeout = 20
	}
	server, _ := config.LiveKitServer(opt.URL)
	return &Client{
		opt:    opt,
		server: server,
		rooms:  newRoomService(opt.URL, opt.APIKey, opt.APISecret),
		keys:   auth.NewSimpleKeyProvider(opt.APIKey, opt.APISecret),
	}
}

// URL returns the LiveKit URL clients connect to.
func (c *Client) URL() string { return c.opt.URL }

// Server returns the LiveKit server of URL as config.LiveKitServer reads
// it (host:port), read once; "" when it does not read.
func (c *Client) Server() string { return c.server }

// TokenTTL returns the participant token lifetime.
func (c *Client) TokenTTL() time.Duration { return c.opt.TokenTTL }

// httpURL turns ws(s):// into http(s):// for the Twirp API.
func httpURL(u string) string {
	switch {
	case strings.HasPrefix(u, "wss://"):
		return "https://" + u[len("wss://"):]
	case strings.HasPrefix(u, "ws://"):
		return "http://" + u[len("ws://"):]
	}
	return u
}

// DispatchMetadata is the job metadata of every agent dispatch the broker
// puts in a token: the org and the broker's agent id always, so that one
// worker fleet serving several orgs (livekit_agent_shared) can tell them
// apart, and the caller's metadata for the agent as the string it sent
// (room_config.agents[0].metadata at /livekit/token, the ticket's metadata
// object at /connect; "" when none). The caller's string is nested, never
// merged, so it cannot change org or agent.
type DispatchMetadata struct {
	Org      string `json:"org"`
	Agent    string `json:"agent"`
	Metadata string `json:"metadata"`
}

// Participant is what a participant token grants and the room
// configuration it carries.
type Participant struct {
	Identity string
	Name     string
	Room     string
	Org      string
	// Agent is the broker's agent id: in the room metadata, the participant
	// attributes and the dispatch metadata. "" for a room without an agent.
	Agent string
	// AgentName is the LiveKit agent name dispatched when LiveKit creates
	// the room; "" for no dispatch.
	AgentName string
	// AgentMetadata is the caller's metadata for the agent, carried in
	// DispatchMetadata.Metadata.
	AgentMetadata string
	CanPublish    bool // true for webrtc, false for chat
	Metadata      string
	Attributes    map[string]string // org and agent are set here, overriding
}

// RoomConfig returns the room configuration a token for p carries:
// metadata {"auth_id","agent"}, the empty and departure timeouts, and the
// dispatch of p.AgentName with DispatchMetadata.
//
// livekit-server (seen in 1.13.5, pkg/service/roomallocator.go) applies a
// token's room configuration only when that participant's join creates the
// room: metadata, empty_timeout, departure_timeout, max_participants,
// playout delays, egress and the agent dispatches. A join into a room that
// exists already ignores it. Everything the broker needs is in that list,
// so nothing has to be set later (at room_started).
func (c *Client) RoomConfig(p Participant) *lkproto.RoomConfiguration {
	md, _ := json.Marshal(RoomMetadata{AuthID: p.Org, Agent: p.Agent})
	rc := &lkproto.RoomConfiguration{
		Metadata:         string(md),
		EmptyTimeout:     c.opt.EmptyTimeout,
		DepartureTimeout: c.opt.DepartureTimeout,
	}
	if p.AgentName != "" {
		dm, _ := json.Marshal(DispatchMetadata{Org: p.Org, Agent: p.Agent, Metadata: p.AgentMetadata})
		rc.Agents = []*lkproto.RoomAgentDispatch{{AgentName: p.AgentName, Metadata: string(dm)}}
	}
	return rc
}

// Token returns a participant token (HS256 with the API secret) that joins
// exactly p.Room, may subscribe and publish data, publishes media only if
// CanPublish, carries attributes org and agent, and the room configuration
// of RoomConfig: LiveKit creates the room from it when the first
// participant joins, and dispatches the agent then. Token makes no network
// call.
func (c *Client) Token(p Participant) (string, error) {
	grant := &auth.VideoGrant{RoomJoin: true, Room: p.Room}
	grant.SetCanPublish(p.CanPublish)
	grant.SetCanSubscribe(true)
	grant.SetCanPublishData(true)
	grant.SetCanUpdateOwnMetadata(false)
	attrs := make(map[string]string, len(p.Attributes)+2)
	for k, v := range p.Attributes {
		attrs[k] = v
	}
	attrs["org"] = p.Org
	attrs["agent"] = p.Agent
	return auth.NewAccessToken(c.opt.APIKey, c.opt.APISecret).
		SetIdentity(p.Identity).
		SetName(p.Name).
		SetValidFor(c.opt.TokenTTL).
		SetVideoGrant(grant).
		SetMetadata(p.Metadata).
		SetAttributes(attrs).
		SetRoomConfig(c.RoomConfig(p)).
		ToJWT()
}

func (c *Client) call(ctx context.Context, op string, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.opt.Timeout)
	defer cancel()
	start := time.Now()
	err := f(ctx)
	if c.opt.Observe != nil {
		c.opt.Observe(op, time.Since(start), err)
	}
	if err == nil {
		return nil
	}
	var te twirp.Error
	if errors.As(err, &te) && te.Code() == twirp.NotFound {
		return fmt.Errorf("%w: %s", ErrNotFound, op)
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
}

// RoomState is what LookupRoom found.
type RoomState struct {
	Exists bool
	Owner  string // the auth_id of its metadata; "" for none
}

// LookupRoom looks room up in LiveKit without creating it.
func (c *Client) LookupRoom(ctx context.Context, room string) (RoomState, error) {
	var res *lkproto.ListRoomsResponse
	if err := c.call(ctx, "list_rooms", func(ctx context.Context) (err error) {
		res, err = c.rooms.ListRooms(ctx, &lkproto.ListRoomsRequest{Names: []string{room}})
		return err
	}); err != nil {
		return RoomState{}, err
	}
	for _, r := range res.Rooms {
		if r.Name == room {
			return RoomState{Exists: true, Owner: OwnerOf(r)}, nil
		}
	}
	return RoomState{}, nil
}

// SetRoomOwner writes org's metadata {"auth_id","agent"} on an existing
// room: for a room created outside the broker, to which a token's room
// configuration no longer applies. Claim the room in the store first.
func (c *Client) SetRoomOwner(ctx context.Context, room, org, agent string) error {
	md, _ := json.Marshal(RoomMetadata{AuthID: org, Agent: agent})
	return c.call(ctx, "update_room_metadata", func(ctx context.Context) error {
		_, err := c.rooms.UpdateRoomMetadata(ctx, &lkproto.UpdateRoomMetadataRequest{Room: room, Metadata: string(md)})
		return err
	})
}

// Rooms lists the rooms whose metadata says org owns them.
func (c *Client) Rooms(ctx context.Context, org string) ([]*lkproto.Room, error) {
	all, err := c.AllRooms(ctx)
	if err != nil {
		return nil, err
	}
	var out []*lkproto.Room
	for _, r := range all {
		if OwnerOf(r) == org {
			out = append(out, r)
		}
	}
	return out, nil
}

// AllRooms lists every room the project's API key sees, whoever owns it:
// on a self-hosted server, that is every room of the server, whichever of
// its keys made it.
func (c *Client) AllRooms(ctx context.Context) ([]*lkproto.Room, error) {
	var res *lkproto.ListRoomsResponse
	if err := c.call(ctx, "list_rooms", func(ctx context.Context) (err error) {
		res, err = c.rooms.ListRooms(ctx, &lkproto.ListRoomsRequest{})
		return err
	}); err != nil {
		return nil, err
	}
	return res.Rooms, nil
}

// Room returns room if org owns it; another org's room is ErrNotFound,
// indistinguishable from a missing one.
func (c *Client) Room(ctx context.Context, room, org string) (*lkproto.Room, error) {
	var res *lkproto.ListRoomsResponse
	if err := c.call(ctx, "list_rooms", func(ctx context.Context) (err error) {
		res, err = c.rooms.ListRooms(ctx, &lkproto.ListRoomsRequest{Names: []string{room}})
		return err
	}); err != nil {
		return nil, err
	}
	for _, r := range res.Rooms {
		if r.Name == room && OwnerOf(r) == org {
			return r, nil
		}
	}
	return nil, ErrNotFound
}

// DeleteRoom ends a room: its participants are disconnected (check
// ownership first). A room that no longer exists is not an error.
func (c *Client) DeleteRoom(ctx context.Context, room string) error {
	err := c.call(ctx, "delete_room", func(ctx context.Context) error {
		_, err := c.rooms.DeleteRoom(ctx, &lkproto.DeleteRoomRequest{Room: room})
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// Participants lists the participants of a room (check ownership first).
func (c *Client) Participants(ctx context.Context, room string) ([]*lkproto.ParticipantInfo, error) {
	var res *lkproto.ListParticipantsResponse
	if err := c.call(ctx, "list_participants", func(ctx context.Context) (err error) {
		res, err = c.rooms.ListParticipants(ctx, &lkproto.ListParticipantsRequest{Room: room})
		return err
	}); err != nil {
		return nil, err
	}
	return res.Participants, nil
}

// RemoveParticipant removes identity from room (check ownership first).
func (c *Client) RemoveParticipant(ctx context.Context, room, identity string) error {
	return c.call(ctx, "remove_participant", func(ctx context.Context) error {
		_, err := c.rooms.RemoveParticipant(ctx, &lkproto.RoomParticipantIdentity{Room: room, Identity: identity})
		return err
	})
}

// MuteTrack mutes or unmutes a published track (check ownership first).
func (c *Client) MuteTrack(ctx context.Context, room, identity, trackSID string, muted bool) (*lkproto.TrackInfo, error) {
	var res *lkproto.MuteRoomTrackResponse
	if err := c.call(ctx, "mute_track", func(ctx context.Context) (err error) {
		res, err = c.rooms.MutePublishedTrack(ctx, &lkproto.MuteRoomTrackRequest{
			Room: room, Identity: identity, TrackSid: trackSID, Muted: muted,
		})
		return err
	}); err != nil {
		return nil, err
	}
	if res.GetTrack().GetSid() == "" {
		// LiveKit answers an unknown track with an empty one.
		return nil, fmt.Errorf("%w: track", ErrNotFound)
	}
	return res.Track, nil
}

// ReceiveWebhook verifies a webhook request (the JWT in Authorization,
// signed with the API secret, and the SHA-256 of the body it carries) and
// returns the event. The body must already be bounded by the caller.
func (c *Client) ReceiveWebhook(r *http.Request) (*lkproto.WebhookEvent, error) {
	ev, err := webhook.ReceiveWebhookEvent(r, c.keys)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrWebhook, err)
	}
	return ev, nil
}
