package livekit_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/voicebroker/voicebroker/internal/livekit"
)

// These two began as a reviewer's attacks on the bound of 100,000
// top-level entries, which a Content-Type or one room's codecs went past.

func heapAfter(f func()) (uint64, uint64) {
	runtime.GC()
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc, b.HeapAlloc
}

// TestRoomServiceCountsEveryAnswer: Twirp's client decodes a 200 answer
// whatever its Content-Type says, so every one is counted: ten times
// MaxResponseMessages empty rooms are refused under any Content-Type.
func TestRoomServiceCountsEveryAnswer(t *testing.T) {
	n := 10 * livekit.MaxResponseMessages
	body := make([]byte, 0, 2*n)
	for range n {
		body = append(body, 0x0a, 0x00)
	}
	for _, ct := range []string{"application/protobuf; charset=utf-8", "Application/Protobuf", "", "text/plain"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if ct == "" {
				w.Header()["Content-Type"] = nil
			} else {
				w.Header().Set("Content-Type", ct)
			}
			w.Write(body)
		}))
		var got int
		var err error
		alloc, _ := heapAfter(func() {
			rooms, e := client(srv.URL).AllRooms(context.Background())
			got, err = len(rooms), e
		})
		srv.Close()
		if !errors.Is(err, livekit.ErrTooLarge) {
			t.Errorf("Content-Type %q: %d rooms decoded (%d MiB allocated), err %v; want ErrTooLarge", ct, got, alloc>>20, err)
		}
	}
}

// TestRoomServiceCountsNestedMessages: messages are counted at every
// depth: one room holding 8 million empty enabled_codecs (two bytes each
// on the wire, under the byte bound) is refused before it decodes into
// millions of objects.
func TestRoomServiceCountsNestedMessages(t *testing.T) {
	n := (livekit.MaxResponseBytes - 64) / 2
	inner := make([]byte, 0, 2*n)
	for range n {
		inner = append(inner, 0x3a, 0x00) // Room.enabled_codecs, empty Codec
	}
	var body []byte
	body = protowire.AppendTag(body, 1, protowire.BytesType)
	body = protowire.AppendBytes(body, inner)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/protobuf")
		w.Write(body)
	}))
	defer srv.Close()
	var codecs int
	var err error
	alloc, _ := heapAfter(func() {
		rooms, e := client(srv.URL).AllRooms(context.Background())
		err = e
		if len(rooms) == 1 {
			codecs = len(rooms[0].EnabledCodecs)
		}
	})
	if !errors.Is(err, livekit.ErrTooLarge) {
		t.Fatalf("one room with %d codecs decoded from %d MiB on the wire: %d MiB allocated; err %v, want ErrTooLarge",
			codecs, len(body)>>20, alloc>>20, err)
	}
}
