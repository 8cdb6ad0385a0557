package livekit_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/livekit/protocol/auth"
	lkproto "github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/proto"

	"github.com/voicebroker/voicebroker/internal/livekit"
)

// These run the RoomService client against httptest servers that play a
// broken or hostile LiveKit API (a real livekit-server never answers
// so); internal/app runs it against real ones.

func client(url string) *livekit.Client {
	return livekit.New(livekit.Options{URL: url, APIKey: "k", APISecret: secret})
}

// TestRoomServiceSignsEachCall: each call carries a token of the project's
// key, signed with its secret, with the grant the call needs and no more.
func TestRoomServiceSignsEachCall(t *testing.T) {
	var grants []*auth.VideoGrant
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := auth.ParseAPIToken(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		if err != nil || v.APIKey() != "k" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		g, err := v.Verify(secret)
		if err != nil {
			http.Error(w, "bad token", http.StatusUnauthorized)
			return
		}
		grants = append(grants, g.Video)
		var out proto.Message = &lkproto.ListRoomsResponse{Rooms: []*lkproto.Room{{Name: "r", Metadata: `{"auth_id":"acme"}`}}}
		if strings.HasSuffix(r.URL.Path, "/ListParticipants") {
			out = &lkproto.ListParticipantsResponse{}
		}
		b, _ := proto.Marshal(out)
		w.Header().Set("Content-Type", "application/protobuf")
		w.Write(b)
	}))
	defer srv.Close()
	c := client("ws" + strings.TrimPrefix(srv.URL, "http"))
	rooms, err := c.AllRooms(context.Background())
	if err != nil || len(rooms) != 1 || livekit.OwnerOf(rooms[0]) != "acme" {
		t.Fatalf("AllRooms = %v, %v", rooms, err)
	}
	if _, err := c.Participants(context.Background(), "r"); err != nil {
		t.Fatal(err)
	}
	if len(grants) != 2 || !grants[0].RoomList || grants[0].RoomAdmin || !grants[1].RoomAdmin || grants[1].Room != "r" || grants[1].RoomList {
		t.Fatalf("grants %+v", grants)
	}
}

// TestRoomServiceFollowsNoRedirect: an API that answers a redirect is an
// error, and the token does not go where it points.
func TestRoomServiceFollowsNoRedirect(t *testing.T) {
	var reached atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Add(1) }))
	defer elsewhere.Close()
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, elsewhere.URL+r.URL.Path, code)
		}))
		_, err := client(srv.URL).AllRooms(context.Background())
		srv.Close()
		if !errors.Is(err, livekit.ErrUnavailable) {
			t.Fatalf("%d: err %v, want ErrUnavailable", code, err)
		}
	}
	if n := reached.Load(); n != 0 {
		t.Fatalf("a redirect was followed %d times", n)
	}
}

// TestRoomServiceBoundsItsAnswers: an answer over MaxResponseBytes (here
// an endless one) is an error, read no further than the bound; one just
// under it is read.
func TestRoomServiceBoundsItsAnswers(t *testing.T) {
	var sent atomic.Int64
	endless := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/protobuf")
		chunk := make([]byte, 1<<20)
		for sent.Load() < 4*livekit.MaxResponseBytes {
			n, err := w.Write(chunk)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	_, err := client(endless.URL).AllRooms(context.Background())
	endless.Close() // waits for the handler
	if !errors.Is(err, livekit.ErrUnavailable) || !errors.Is(err, livekit.ErrTooLarge) {
		t.Fatalf("err %v, want ErrUnavailable and ErrTooLarge", err)
	}
	if n := sent.Load(); n >= 2*livekit.MaxResponseBytes {
		t.Fatalf("%d bytes sent before the client stopped reading, for a bound of %d", n, livekit.MaxResponseBytes)
	}
	// Just under the bound: one room whose metadata fills it.
	big := &lkproto.ListRoomsResponse{Rooms: []*lkproto.Room{{Name: "r", Metadata: strings.Repeat("m", livekit.MaxResponseBytes-64)}}}
	b, _ := proto.Marshal(big)
	under := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/protobuf")
		w.Write(b)
	}))
	defer under.Close()
	if rooms, err := client(under.URL).AllRooms(context.Background()); err != nil || len(rooms) != 1 {
		t.Fatalf("an answer of %d bytes: %v", len(b), err)
	}
}

// TestRoomServiceBoundsItsEntries: an answer of more than
// MaxResponseMessages rooms is an error before it is decoded (an empty room
// is two bytes on the wire); one of exactly that many is read. No
// compression is asked for, so a small answer cannot inflate.
func TestRoomServiceBoundsItsEntries(t *testing.T) {
	var gzipAsked atomic.Bool
	serve := func(n int) *httptest.Server {
		body := make([]byte, 0, 2*n)
		for range n {
			body = append(body, 0x0a, 0x00) // field 1 (rooms), length 0
		}
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
				gzipAsked.Store(true)
			}
			w.Header().Set("Content-Type", "application/protobuf")
			w.Write(body)
		}))
	}
	over := serve(livekit.MaxResponseMessages + 1)
	defer over.Close()
	if _, err := client(over.URL).AllRooms(context.Background()); !errors.Is(err, livekit.ErrUnavailable) || !errors.Is(err, livekit.ErrTooLarge) {
		t.Fatalf("%d rooms: err %v, want ErrTooLarge", livekit.MaxResponseMessages+1, err)
	}
	at := serve(livekit.MaxResponseMessages)
	defer at.Close()
	if rooms, err := client(at.URL).AllRooms(context.Background()); err != nil || len(rooms) != livekit.MaxResponseMessages {
		t.Fatalf("%d rooms: %d read, %v", livekit.MaxResponseMessages, len(rooms), err)
	}
	if gzipAsked.Load() {
		t.Fatal("the client asked for a compressed answer")
	}
}
