package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"

	lkproto "github.com/livekit/protocol/livekit"

	"github.com/voicebroker/voicebroker/internal/livekit"
	"github.com/voicebroker/voicebroker/internal/store"
)

// RoomRenewInterval is how often RoomKeeper.Run renews the owner records
// of live rooms. RoomOwnerTTL is 24 times longer, so a live room's record
// outlives 23 sweeps that fail in a row (LiveKit or the store down).
const RoomRenewInterval = time.Hour

// RoomKeeper renews the owner records of live rooms (RenewLiveRooms). It
// runs beside the server, from the same Deps.
type RoomKeeper struct{ s *Server }

// NewRoomKeeper returns the RoomKeeper of the LiveKit projects and store
// of d; it contacts nothing.
func NewRoomKeeper(d Deps) *RoomKeeper {
	if c, ok := d.LiveKit.(*livekit.Client); ok && c == nil {
		d.LiveKit = nil
	}
	return &RoomKeeper{s: &Server{Deps: d, log: d.Log}}
}

// Run renews the owner records of the rooms live in LiveKit
// (RenewLiveRooms) until ctx ends: first after a random moment in the
// first tenth of every (so that replicas started together spread their
// LiveKit calls, and a replica restarted more often than every still
// sweeps), then every every, give or take a tenth. Each sweep's outcome is
// logged; a failed one is retried at the next.
func (k *RoomKeeper) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = RoomRenewInterval
	}
	tenth := int64(every / 10)
	wait := time.Duration(rand.Int64N(tenth + 1))
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		start := time.Now()
		sw, err := k.RenewLiveRooms(ctx)
		attrs := []slog.Attr{
			slog.String("event", "rooms.renew"), slog.Int("servers", sw.Servers), slog.Int("rooms", sw.Rooms),
			slog.Int("renewed", sw.Renewed), slog.Int("foreign", sw.Foreign),
			slog.Float64("seconds", time.Since(start).Seconds()),
		}
		switch {
		case ctx.Err() != nil:
			return
		case err == nil && sw.Servers == 0:
			// No LiveKit project yet (an org's may come with the
			// registry): nothing to say.
		case err != nil:
			k.s.log.LogAttrs(ctx, slog.LevelWarn, "could not renew the owner records of every live room; retried at the next sweep",
				append(attrs, slog.String("result", "failed"), slog.Int("failed_servers", sw.Failed), slog.String("cause", err.Error()))...)
		default:
			k.s.log.LogAttrs(ctx, slog.LevelInfo, "renewed the owner records of live rooms", append(attrs, slog.String("result", "ok"))...)
		}
		wait = every - time.Duration(tenth) + time.Duration(rand.Int64N(2*tenth+1))
	}
}

// RoomSweep is what one RenewLiveRooms did.
type RoomSweep struct {
	Servers int // LiveKit servers listed (projects with one URL are one server)
	Failed  int // of which none of their projects could list
	Rooms   int // live rooms of orgs whose project is on those servers
	Renewed int // owner records renewed
	Foreign int // rooms live under a name another org owns in the store
}

// RenewLiveRooms renews, for RoomOwnerTTL, the owner record of every room
// live in LiveKit now, so that no name passes to another org while its
// room runs.
//
// A record lives RoomOwnerTTL from its latest claim, and /connect,
// /livekit/token and room_started are the only claims. Nothing else renews
// it while the room runs, and LiveKit keeps a room open as long as anyone
// is in it: it re-signs every connected participant's token every few
// minutes, and a refreshed token reopens the room after it closes (see
// roomTokenLife). A room that outlived its record would leave its name
// free for another org, whose user would then share the room with the
// first org's, or be met by its agent. /livekit/token refuses a name live
// in LiveKit under another org's metadata, but not a name whose room has
// just finished, nor one whose room has no owner metadata (one reopened by
// an agent's job token, which carries no room configuration).
//
// Each LiveKit server is listed once: the projects (the default one and
// every org's own) that share a URL share a server and its one room
// namespace, as a self-hosted server with several API keys does; if one
// project cannot list it, the next of that URL is tried. A room's org is
// its metadata's auth_id, else the store's owner of its name, and the room
// is renewed for that org only if the org's project is on the server that
// listed it: on LiveKit Cloud, where each project has a URL of its own, a
// room in an org's project renews nothing for another org whatever its
// metadata says (whoever holds that project's secret can make any room,
// as with its webhooks). A record is renewed, never made: a name with no
// record, or another org's, is left as it is (Foreign counts the latter),
// so that nobody can take names past /livekit/token and its limits.
//
// A room that finishes between the listing and its renewal keeps its name
// for its org for RoomOwnerTTL: the org holds its own name longer, no
// other org gains it.
//
// A server that cannot be listed is skipped and the others are still
// swept; the first such error is returned with the counts. A store
// failure stops the sweep.
func (k *RoomKeeper) RenewLiveRooms(ctx context.Context) (RoomSweep, error) {
	s := k.s
	var sw RoomSweep
	var listErr error
	for _, srv := range s.liveKitServers() {
		if err := ctx.Err(); err != nil {
			return sw, err
		}
		sw.Servers++
		var rooms []*lkproto.Room
		var err error
		for _, lk := range srv.projects {
			if rooms, err = lk.AllRooms(ctx); err == nil {
				break
			}
		}
		if err != nil {
			sw.Failed++
			if listErr == nil {
				listErr = err
			}
			continue
		}
		if err := s.renewRooms(ctx, srv.url, rooms, &sw); err != nil {
			return sw, err
		}
	}
	return sw, listErr
}

// renewRooms renews the records of rooms, listed by the server at url,
// whose orgs' projects are on that server.
func (s *Server) renewRooms(ctx context.Context, url string, rooms []*lkproto.Room, sw *RoomSweep) error {
	for _, r := range rooms {
		name := r.GetName()
		if name == "" {
			continue
		}
		owner, recorded := livekit.OwnerOf(r), ""
		if owner == "" {
			var err error
			switch recorded, err = s.Store.RoomOwner(ctx, name); {
			case errors.Is(err, store.ErrNotFound):
				continue
			case err != nil:
				return err
			}
			owner = recorded
		}
		if lk, err := s.liveKitFor(owner); err != nil || lk.URL() != url {
			continue // an org of another server, or of none
		}
		sw.Rooms++
		if recorded == "" {
			var err error
			switch recorded, err = s.Store.RoomOwner(ctx, name); {
			case errors.Is(err, store.ErrNotFound):
				continue // renewed, never made
			case err != nil:
				return err
			}
		}
		if recorded == owner {
			var err error
			if recorded, err = s.Store.ClaimRoom(ctx, name, owner, RoomOwnerTTL, 0); err != nil {
				return err
			}
		}
		if recorded != owner {
			sw.Foreign++
			s.log.LogAttrs(ctx, slog.LevelWarn, "room live under a name another org owns",
				slog.String("event", "rooms.renew"), slog.String("result", "foreign_owner"),
				slog.String("room", name), slog.String("org", owner), slog.String("owner", recorded))
			continue
		}
		sw.Renewed++
	}
	return nil
}

// liveKitServer is one LiveKit server (a URL) and the projects on it: the
// default project first, then orgs' own in the order of their ids.
type liveKitServer struct {
	url      string
	projects []roomService
}

// liveKitServers lists the LiveKit servers of every project, in the order
// their first projects come.
func (s *Server) liveKitServers() []liveKitServer {
	var out []liveKitServer
	add := func(url string, lk roomService) {
		for i := range out {
			if out[i].url == url {
				out[i].projects = append(out[i].projects, lk)
				return
			}
		}
		out = append(out, liveKitServer{url: url, projects: []roomService{lk}})
	}
	if s.LiveKit != nil {
		add(s.LiveKit.URL(), s.LiveKit)
	}
	if s.LiveKitProjects != nil {
		for _, org := range s.LiveKitProjects.Orgs() {
			if c := s.LiveKitProjects.Own(org); c != nil {
				add(c.URL(), c)
			}
		}
	}
	return out
}
