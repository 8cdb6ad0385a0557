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
// out of memory: its bytes, read as sent (no compression is asked for, so
// no small answer inflates; ListRooms of 10,000 of the broker's rooms is
// about 3 MiB), and its messages at any depth (rooms, participants, and
// what they hold: an empty message is two bytes on the wire and over a
// hundred in memory, so the bytes alone would let 16 MiB make 8 million of
// them, in one room's codecs as well as in the list of rooms).
const (
	MaxResponseBytes    = 16 << 20
	MaxResponseMessages = 200_000
)

// maxMessageDepth is how deep countMessages looks: deeper than any message
// of LiveKit's RoomService answers nests (a participant's track's codec's
// layers).
const maxMessageDepth = 10

// roomService calls LiveKit's RoomService (Twirp, protobuf) as server-sdk-go's
// RoomServiceClient does, with a token of the grants each call needs, but
// over an HTTP client of its own: it follows no redirect (an API URL that
// answers one is misconfigured, or leads elsewhere, and the token must not
// follow it), asks for no compression, and decodes no answer over
// MaxResponseBytes or MaxResponseMessages. An org's own project names its
// URL, and the room keeper calls every project's on its own.
type roomService struct {
	rpc         lkproto.RoomService
	key, secret string
}

func newRoomService(url, key, secret string) *roomService {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableCompression = true
	hc := &http.Client{
		Transport: boundedTransport{next: tr, max: MaxResponseBytes, messages: MaxResponseMessages},
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
// MaxResponseMessages.
var ErrTooLarge = fmt.Errorf("livekit: a RoomService answer over %d bytes or %d messages", MaxResponseBytes, MaxResponseMessages)

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

// signed calls f with ctx carrying a token of grant: each RoomService
// call with the grant it needs, as server-sdk-go's client signs them.
func signed[Q, R any](s *roomService, ctx context.Context, grant auth.VideoGrant, req Q, f func(context.Context, Q) (R, error)) (R, error) {
	ctx, err := s.with(ctx, grant)
	if err != nil {
		var zero R
		return zero, err
	}
	return f(ctx, req)
}

func (s *roomService) ListRooms(ctx context.Context, req *lkproto.ListRoomsRequest) (*lkproto.ListRoomsResponse, error) {
	return signed(s, ctx, auth.VideoGrant{RoomList: true}, req, s.rpc.ListRooms)
}

func (s *roomService) DeleteRoom(ctx context.Context, req *lkproto.DeleteRoomRequest) (*lkproto.DeleteRoomResponse, error) {
	return signed(s, ctx, auth.VideoGrant{RoomCreate: true}, req, s.rpc.DeleteRoom)
}

func (s *roomService) UpdateRoomMetadata(ctx context.Context, req *lkproto.UpdateRoomMetadataRequest) (*lkproto.Room, error) {
	return signed(s, ctx, auth.VideoGrant{RoomAdmin: true, Room: req.Room}, req, s.rpc.UpdateRoomMetadata)
}

func (s *roomService) ListParticipants(ctx context.Context, req *lkproto.ListParticipantsRequest) (*lkproto.ListParticipantsResponse, error) {
	return signed(s, ctx, auth.VideoGrant{RoomAdmin: true, Room: req.Room}, req, s.rpc.ListParticipants)
}

func (s *roomService) RemoveParticipant(ctx context.Context, req *lkproto.RoomParticipantIdentity) (*lkproto.RemoveParticipantResponse, error) {
	return signed(s, ctx, auth.VideoGrant{RoomAdmin: true, Room: req.Room}, req, s.rpc.RemoveParticipant)
}

func (s *roomService) MutePublishedTrack(ctx context.Context, req *lkproto.MuteRoomTrackRequest) (*lkproto.MuteRoomTrackResponse, error) {
	return signed(s, ctx, auth.VideoGrant{RoomAdmin: true, Room: req.Room}, req, s.rpc.MutePublishedTrack)
}

// boundedTransport makes every response body fail with ErrTooLarge past
// max bytes, and refuses a successful answer of more than messages
// protobuf messages at any depth before anything decodes it. Twirp's
// client decodes a 200 answer as protobuf whatever its Content-Type says,
// so every one is counted.
type boundedTransport struct {
	next     http.RoundTripper
	max      int64
	messages int
}

func (t boundedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &boundedBody{ReadCloser: resp.Body, left: t.max}
	if resp.StatusCode != http.StatusOK {
		return resp, nil // an error's JSON, bounded
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if n, _ := countMessages(data, maxMessageDepth, t.messages); n > t.messages {
		return nil, ErrTooLarge
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
	return resp, nil
}

// countMessages counts the messages in b if b is a protobuf message:
// every length-delimited field of it that is one too, and theirs, to
// depth levels. A field that is not (a string, packed numbers) counts
// nothing; ok is false when b itself is not a message. It stops once the
// count is over limit. Without the schema it errs toward counting: a
// string that happens to parse as a message counts as one.
func countMessages(b []byte, depth, limit int) (n int, ok bool) {
	for len(b) > 0 {
		num, typ, size := protowire.ConsumeTag(b)
		if size < 0 || num < protowire.MinValidNumber {
			return n, false
		}
		b = b[size:]
		if typ != protowire.BytesType {
			if size = protowire.ConsumeFieldValue(num, typ, b); size < 0 {
				return n, false
			}
			b = b[size:]
			continue
		}
		v, size := protowire.ConsumeBytes(b)
		if size < 0 {
			return n, false
		}
		b = b[size:]
		if depth > 0 {
			if k, isMessage := countMessages(v, depth-1, limit-n-1); isMessage {
				n += 1 + k
			}
		}
		if n > limit {
			return n, true
		}
	}
	return n, true
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
