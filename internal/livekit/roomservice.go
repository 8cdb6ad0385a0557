package livekit

import (
	"bytes"
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
	"google.golang.org/protobuf/encoding/protowire"
)

// Bounds on a RoomService answer, past which it is an error, not a broker
// out of memory: its bytes (ListRooms of 10,000 rooms, each with 2 KiB of
// metadata, is about 25 MiB; the broker's own metadata is under 100
// bytes), read as sent (no compression is asked for, so no small answer
// inflates), and its entries (rooms or participants: an empty room is two
// bytes on the wire and a few hundred in memory, so the bytes alone would
// let 16 MiB make 8 million of them).
const (
	MaxResponseBytes   = 32 << 20
	MaxResponseEntries = 100_000
)

// roomService calls LiveKit's RoomService (Twirp, protobuf) as server-sdk-go's
// RoomServiceClient does, with a token of the grants each call needs, but
// over an HTTP client of its own: it follows no redirect (an API URL that
// answers one is misconfigured, or leads elsewhere, and the token must not
// follow it), asks for no compression, and decodes no answer over
// MaxResponseBytes or MaxResponseEntries. An org's own project names its
// URL, and the room keeper calls every project's on its own.
type roomService struct {
	rpc         lkproto.RoomService
	key, secret string
}

func newRoomService(url, key, secret string) *roomService {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableCompression = true
	hc := &http.Client{
		Transport: boundedTransport{next: tr, max: MaxResponseBytes, entries: MaxResponseEntries},
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

// ErrTooLarge: a RoomService answer was over MaxResponseBytes or
// MaxResponseEntries.
var ErrTooLarge = fmt.Errorf("livekit: a RoomService answer over %d bytes or %d entries", MaxResponseBytes, MaxResponseEntries)

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
// max bytes, and refuses a protobuf answer of more than entries top-level
// fields (a response's repeated rooms or participants) before anything
// decodes it.
type boundedTransport struct {
	next    http.RoundTripper
	max     int64
	entries int
}

func (t boundedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &boundedBody{ReadCloser: resp.Body, left: t.max}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/protobuf" {
		return resp, nil // an error's JSON, bounded
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	for n, b := 0, data; len(b) > 0; n++ {
		if n == t.entries {
			return nil, ErrTooLarge
		}
		_, _, size := protowire.ConsumeField(b)
		if size < 0 {
			break // not protobuf: the decoder says so
		}
		b = b[size:]
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
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
