package livekit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/livekit/protocol/auth"
	lkproto "github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/utils/xtwirp"
	"github.com/twitchtv/twirp"
)

// MaxResponseBytes bounds a RoomService answer. ListRooms of a server with
// 10,000 rooms, each with 2 KiB of metadata, is about 25 MiB; an answer
// past the bound is an error, not a broker out of memory.
const MaxResponseBytes = 64 << 20

// roomService calls LiveKit's RoomService (Twirp, protobuf) as server-sdk-go's
// RoomServiceClient does, with a token of the grants each call needs, but
// over an HTTP client of its own: it follows no redirect (an API URL that
// answers one is misconfigured, or leads elsewhere, and the token must not
// follow it) and reads no answer over MaxResponseBytes. An org's own project
// names its URL, and the room keeper calls every project's on its own.
type roomService struct {
	rpc         lkproto.RoomService
	key, secret string
}

func newRoomService(url, key, secret string) *roomService {
	hc := &http.Client{
		Transport: boundedTransport{next: http.DefaultTransport, max: MaxResponseBytes},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errRedirect
		},
	}
	return &roomService{
		rpc: lkproto.NewRoomServiceProtobufClient(httpURL(url), hc, xtwirp.DefaultClientOptions()...),
		key: key, secret: secret,
	}
}

var errRedirect = errors.New("livekit: the RoomService answered with a redirect, which is not followed")

// ErrTooLarge: a RoomService answer was over MaxResponseBytes.
var ErrTooLarge = fmt.Errorf("livekit: a RoomService answer over %d bytes", MaxResponseBytes)

// with returns ctx carrying a token of grant, good for a minute.
func (s *roomService) with(ctx context.Context, grant auth.VideoGrant) (context.Context, error) {
	at := auth.NewAccessToken(s.key, s.secret).SetVideoGrant(&grant).SetValidFor(time.Minute)
	jwt, err := at.ToJWT()
	if err != nil {
		return nil, err
	}
	h := make(http.Header, 1)
	h.Set("Authorization", "Bearer "+jwt)
	return twirp.WithHTTPRequestHeaders(ctx, h)
}

func (s *roomService) ListRooms(ctx context.Context, req *lkproto.ListRoomsRequest) (*lkproto.ListRoomsResponse, error) {
	ctx, err := s.with(ctx, auth.VideoGrant{RoomList: true})
	if err != nil {
		return nil, err
	}
	return s.rpc.ListRooms(ctx, req)
}

func (s *roomService) UpdateRoomMetadata(ctx context.Context, req *lkproto.UpdateRoomMetadataRequest) (*lkproto.Room, error) {
	ctx, err := s.with(ctx, auth.VideoGrant{RoomAdmin: true, Room: req.Room})
	if err != nil {
		return nil, err
	}
	return s.rpc.UpdateRoomMetadata(ctx, req)
}

func (s *roomService) ListParticipants(ctx context.Context, req *lkproto.ListParticipantsRequest) (*lkproto.ListParticipantsResponse, error) {
	ctx, err := s.with(ctx, auth.VideoGrant{RoomAdmin: true, Room: req.Room})
	if err != nil {
		return nil, err
	}
	return s.rpc.ListParticipants(ctx, req)
}

func (s *roomService) RemoveParticipant(ctx context.Context, req *lkproto.RoomParticipantIdentity) (*lkproto.RemoveParticipantResponse, error) {
	ctx, err := s.with(ctx, auth.VideoGrant{RoomAdmin: true, Room: req.Room})
	if err != nil {
		return nil, err
	}
	return s.rpc.RemoveParticipant(ctx, req)
}

func (s *roomService) MutePublishedTrack(ctx context.Context, req *lkproto.MuteRoomTrackRequest) (*lkproto.MuteRoomTrackResponse, error) {
	ctx, err := s.with(ctx, auth.VideoGrant{RoomAdmin: true, Room: req.Room})
	if err != nil {
		return nil, err
	}
	return s.rpc.MutePublishedTrack(ctx, req)
}

// boundedTransport makes every response body fail with ErrTooLarge past
// max bytes.
type boundedTransport struct {
	next http.RoundTripper
	max  int64
}

func (t boundedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &boundedBody{ReadCloser: resp.Body, left: t.max}
	return resp, nil
}

type boundedBody struct {
	io.ReadCloser
	left int64
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more tells a body of exactly max from a longer one.
		var one [1]byte
		if n, _ := b.ReadCloser.Read(one[:]); n > 0 {
			return 0, ErrTooLarge
		}
		return b.ReadCloser.Read(p)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}
