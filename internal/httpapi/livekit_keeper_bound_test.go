package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	lkproto "github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/proto"

	"github.com/voicebroker/voicebroker/internal/livekit"
	"github.com/voicebroker/voicebroker/internal/metrics"
	"github.com/voicebroker/voicebroker/internal/registry"
	"github.com/voicebroker/voicebroker/internal/store"
	"github.com/voicebroker/voicebroker/internal/store/memory"
)

// lookupCounter counts RoomOwner calls.
type lookupCounter struct {
	store.Store
	lookups atomic.Int64
}

func (c *lookupCounter) RoomOwner(ctx context.Context, room string) (string, error) {
	c.lookups.Add(1)
	return c.Store.RoomOwner(ctx, room)
}

// TestRoomKeeperBoundsAnOrgsServer: an org's own server (here an
// httptest server playing a hostile one) that lists 50,000 names without
// metadata and 20,000 under another org's costs a sweep at most
// maxOrgLookups store lookups (none for the other org's names), and the
// default server's rooms are renewed first whatever it does. (A reviewer
// measured 2.4 million lookups, two minutes a sweep on loopback Redis,
// before.)
func TestRoomKeeperBoundsAnOrgsServer(t *testing.T) {
	var hostile lkproto.ListRoomsResponse
	for i := range 50_000 {
		hostile.Rooms = append(hostile.Rooms, &lkproto.Room{Name: fmt.Sprintf("demo_a%d", i)})
	}
	for i := range 20_000 {
		hostile.Rooms = append(hostile.Rooms, ownedRoom(fmt.Sprintf("demo_g%d", i), "globex"))
	}
	serve := func(m proto.Message) *httptest.Server {
		b, _ := proto.Marshal(m)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/protobuf")
			w.Write(b)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	acmeLK := serve(&hostile)
	defLK := serve(&lkproto.ListRoomsResponse{Rooms: []*lkproto.Room{ownedRoom("demo_globexlive", "globex")}})

	var asm registry.Assembler
	snap, err := asm.Apply(map[string]*registry.OrgData{
		"acme":   {Org: registry.Org{ID: "acme", Tier: "free"}, LiveKit: &registry.LiveKitData{URL: acmeLK.URL, APIKey: "APIacme", APISecret: registry.Secret(whAcmeSecret)}},
		"globex": {Org: registry.Org{ID: "globex", Tier: "free"}},
	}, 1)
	if err != nil {
		t.Fatal(err)
	}
	mem := memory.New(time.Minute)
	defer mem.Close()
	st := &lookupCounter{Store: mem}
	if _, err := st.ClaimRoom(context.Background(), "demo_globexlive", "globex", time.Minute, 0); err != nil {
		t.Fatal(err)
	}
	def := livekit.New(livekit.Options{URL: defLK.URL, APIKey: "APIdefault", APISecret: whDefaultSecret})
	k := NewRoomKeeper(Deps{
		Tenants: staticTenants{snap}, Store: st, Metrics: metrics.New("test"),
		Log: slog.New(slog.NewJSONHandler(&bytes.Buffer{}, nil)), LiveKit: def,
		LiveKitProjects: livekit.NewProjects(def, func() *registry.Snapshot { return snap }, livekit.Options{}),
	})
	sw, err := k.RenewLiveRooms(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// 10,000: maxOrgLookups, written out so that raising it fails here.
	if n := st.lookups.Load(); n > 10_000+1 {
		t.Fatalf("%d store lookups in one sweep; at most 10,000 for acme's server and 1 for the default's", n)
	}
	if sw.Servers != 2 || sw.Renewed != 1 {
		t.Fatalf("sweep %+v: globex's room on the default server not renewed", sw)
	}
}
