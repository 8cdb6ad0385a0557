// Package livekit is the broker's LiveKit side: participant tokens, the
// RoomService calls that create, list and inspect rooms, and the webhook
// receiver. It knows net/http but no routing.
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
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/twitchtv/twirp"
)

// Errors of this package, tested with errors.Is.
var (
	// ErrUnavailable: LiveKit could not be reached or failed the call.
	ErrUnavailable = errors.New("livekit unavailable")
	// ErrNotFound: no such room or participant.
	ErrNotFound = errors.New("livekit: not found")
	// ErrForeignRoom: the room exists and belongs to another org.
	ErrForeignRoom = errors.New("livekit: room owned by another org")
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
	// EmptyTimeout closes a created room nobody joined, in seconds.
	EmptyTimeout uint32
	// Observe, if set, is called after every RoomService call.
	Observe func(op string, d time.Duration, err error)
}

// Client talks to one LiveKit deployment. It is safe for concurrent use.
type Client struct {
	opt   Options
	rooms *lksdk.RoomServiceClient
	keys  auth.KeyProvider
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
	return &Client{
		opt:   opt,
		rooms: lksdk.NewRoomServiceClient(httpURL(opt.URL), opt.APIKey, opt.APISecret),
		keys:  auth.NewSimpleKeyProvider(opt.APIKey, opt.APISecret),
	}
}

// URL returns the LiveKit URL clients connect to.
func (c *Client) URL() string { return c.opt.URL }

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

// Participant is what a participant token grants.
type Participant struct {
	Identity   string
	Name       string
	Room       string
	Org        string
	Agent      string // dispatched by the room configuration; "" for none
	AgentMeta  string // metadata for the agent dispatch
	CanPublish bool   // true for webrtc, false for chat
	Metadata   string
	Attributes map[string]string // org and agent are set here, overriding
}

// Token returns a participant token (HS256 with the API secret) that joins
// exactly p.Room, may subscribe and publish data, publishes media only if
// CanPublish, carries attributes org and agent, and dispatches p.Agent.
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
	at := auth.NewAccessToken(c.opt.APIKey, c.opt.APISecret).
		SetIdentity(p.Identity).
		SetName(p.Name).
		SetValidFor(c.opt.TokenTTL).
		SetVideoGrant(grant).
		SetMetadata(p.Metadata).
		SetAttributes(attrs)
	if p.Agent != "" {
		at.SetRoomConfig(&lkproto.RoomConfiguration{
			Agents: []*lkproto.RoomAgentDispatch{{AgentName: p.Agent, Metadata: p.AgentMeta}},
		})
	}
	return at.ToJWT()
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
	return fmt.Errorf("%w: %s: %v", ErrUnavailable, op, err)
}

// EnsureRoom makes sure room exists, owned by org, dispatching agent. It is
// idempotent: an existing room of org is returned as it is; one without an
// owner gets org's metadata; one of another org is ErrForeignRoom.
func (c *Client) EnsureRoom(ctx context.Context, room, org, agent string) (*lkproto.Room, error) {
	md, _ := json.Marshal(RoomMetadata{AuthID: org, Agent: agent})
	req := &lkproto.CreateRoomRequest{Name: room, Metadata: string(md), EmptyTimeout: c.opt.EmptyTimeout, DepartureTimeout: 20}
	if agent != "" {
		req.Agents = []*lkproto.RoomAgentDispatch{{AgentName: agent}}
	}
	var r *lkproto.Room
	if err := c.call(ctx, "create_room", func(ctx context.Context) (err error) {
		r, err = c.rooms.CreateRoom(ctx, req)
		return err
	}); err != nil {
		return nil, err
	}
	switch OwnerOf(r) {
	case org:
		return r, nil
	case "":
		// Created earlier without metadata (a participant auto-created it,
		// or an older broker): claim it; the store has already said org may.
		if err := c.call(ctx, "update_room_metadata", func(ctx context.Context) (err error) {
			r, err = c.rooms.UpdateRoomMetadata(ctx, &lkproto.UpdateRoomMetadataRequest{Room: room, Metadata: string(md)})
			return err
		}); err != nil {
			return nil, err
		}
		return r, nil
	}
	return nil, ErrForeignRoom
}

// Rooms lists the rooms whose metadata says org owns them.
func (c *Client) Rooms(ctx context.Context, org string) ([]*lkproto.Room, error) {
	var res *lkproto.ListRoomsResponse
	if err := c.call(ctx, "list_rooms", func(ctx context.Context) (err error) {
		res, err = c.rooms.ListRooms(ctx, &lkproto.ListRoomsRequest{})
		return err
	}); err != nil {
		return nil, err
	}
	var out []*lkproto.Room
	for _, r := range res.Rooms {
		if OwnerOf(r) == org {
			out = append(out, r)
		}
	}
	return out, nil
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
