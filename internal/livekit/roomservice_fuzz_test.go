package livekit

import (
	"testing"

	lkproto "github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/proto"
)

// FuzzCountMessages: countMessages never panics, counts no more messages
// than the bytes can hold (each costs at least its tag and length), stops
// soon after its limit, and counts every room of an answer LiveKit's own
// encoding makes.
func FuzzCountMessages(f *testing.F) {
	b, _ := proto.Marshal(&lkproto.ListRoomsResponse{Rooms: []*lkproto.Room{
		{Name: "agent_a_1700000000_x", Metadata: `{"auth_id":"acme"}`, EnabledCodecs: []*lkproto.Codec{{Mime: "audio/opus"}}},
		{Name: "demo_b"},
	}})
	f.Add(b, 10)
	f.Add([]byte{0x0a, 0x00, 0x0a, 0x02, 0x3a, 0x00}, 1)
	f.Add([]byte{0x0a, 0x80}, 5)
	f.Fuzz(func(t *testing.T, b []byte, limit int) {
		limit = max(limit, 0) % 1000
		n, _ := countMessages(b, maxMessageDepth, limit)
		if n > len(b)/2 {
			t.Fatalf("%d messages counted in %d bytes", n, len(b))
		}
		if n > limit+maxMessageDepth+1 {
			t.Fatalf("counted %d past a limit of %d", n, limit)
		}
		var res lkproto.ListRoomsResponse
		if proto.Unmarshal(b, &res) == nil && len(res.Rooms) > 0 {
			if all, ok := countMessages(b, maxMessageDepth, len(b)); !ok || all < len(res.Rooms) {
				t.Fatalf("%d messages counted (ok %v) in an answer of %d rooms", all, ok, len(res.Rooms))
			}
		}
	})
}
