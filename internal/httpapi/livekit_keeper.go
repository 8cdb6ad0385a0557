package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"
	"unicode/utf8"

	lkproto "github.com/livekit/protocol/livekit"

	"github.com/voicebroker/voicebroker/internal/livekit"
	"github.com/voicebroker/voicebroker/internal/store"
	"github.com/voicebroker/voicebroker/pkg/rooms"
)

// RoomRenewInterval is how often RoomKeeper.Run renews the owner records
// of live rooms: well within the shortest life room_finished leaves a
// record (an agent's hour, see roomTokenLife), so that a room reopened
// meanwhile is renewed in time even if its room_started is lost, and 48
// times within RoomOwnerTTL, so a live room's record outlives 47 sweeps
// that fail in a row (LiveKit or the store down).
const RoomRenewInterval = 30 * time.Minute

// RoomKeeper renews the owner records of live rooms (RenewLiveRooms). It
// runs beside the server, from the same Deps.
type RoomKeeper struct{ s *Server }

// NewRoomKeeper returns the RoomKeeper of the LiveKit projects and store
// of d; it contacts nothing.
func NewRoomKeeper(d Deps) *RoomKeeper {
	return &RoomKeeper{s: &Server{Deps: d.withoutNilLiveKit(), log: d.Log}}
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
			slog.Int("renewed", sw.Renewed), slog.Int("foreign", sw.Foreign), slog.Int("ended", sw.Ended),
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
				append(attrs, slog.String("result", "failed"), slog.Int("failed_servers", sw.Failed), slog.String("cause", truncateCause(err.Error())))...)
		default:
			k.s.log.LogAttrs(ctx, slog.LevelInfo, "renewed the owner records of live rooms", append(attrs, slog.String("result", "ok"))...)
		}
		wait = every - time.Duration(tenth) + time.Duration(rand.Int64N(2*tenth+1))
	}
}

// RoomSweep is what one RenewLiveRooms did.
type RoomSweep struct {
	Servers int // LiveKit servers swept (projects with one URL are one server)
	Failed  int // of which could not be listed, or whose renewals the store failed
	Rooms   int // live rooms of the orgs those servers speak for
	Renewed int // owner records renewed (or, on the default server, made)
	Foreign int // rooms live under a name another org owns in the store
	Ended   int // rooms of orgs that are no more, ended (default server)
}

// orphanAge is how old a default-server room of an org the registry does
// not have must be before the sweep ends it: a replica's snapshot may lag
// another's by up to a second, and an org created there may already have
// its first room.
const orphanAge = 2 * time.Minute

// maxOrgLookups bounds the store lookups one sweep makes for an org's own
// server, which lists what it likes (millions of names would cost every
// replica millions of store calls each sweep). The names looked up are a
// new random part of its list each time, so a larger org still has every
// live room renewed within a few sweeps, far within the 47 a record
// outlives.
const maxOrgLookups = 10_000

// maxCauseBytes bounds the error text a sweep logs: a LiveKit server's
// own words, which an org's server chooses.
const maxCauseBytes = 256

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
// in LiveKit under another org's metadata, or without metadata, but not a
// name whose room has just finished.
//
// Each LiveKit server is listed once: the projects (the default one and
// every org's own) that share a URL share a server and its one room
// namespace; if one project cannot list it, the next of that URL is tried.
// A room's org is its metadata's auth_id, else the store's owner of its
// name, and an org the registry no longer has is renewed nothing. A server
// speaks for the orgs it may: the default project's for
// any org (only the broker writes its rooms' metadata, so a room an org
// left there when it moved to a project of its own is still renewed), an
// org's own server for that org alone (whoever holds that project's secret
// can make any room with any metadata in it, as with its webhooks). A
// record is renewed, never made, except for a room of the default server
// with the broker's metadata, whose record a store that lost its data
// gets back; a name another org holds is left as it is (Foreign counts
// those, and each server's are logged once). Names outside the room
// grammar are skipped (the broker never claims one), and each name is
// handled once per server.
//
// A room that finishes between the listing and its renewal keeps its name
// for its org for RoomOwnerTTL: the org holds its own name longer, no
// other org gains it.
//
// Servers are swept in a new random order each time. A server that cannot
// be listed, or whose renewals the store fails, is counted in Failed and
// the others are still swept; the first such error is returned with the
// counts.
func (k *RoomKeeper) RenewLiveRooms(ctx context.Context) (RoomSweep, error) {
	s := k.s
	var sw RoomSweep
	var first error
	fail := func(err error) {
		sw.Failed++
		if first == nil {
			first = err
		}
	}
	servers := s.liveKitServers()
	// The default server first (the orgs without a server of their own
	// wait behind no org's server), then the others in a new order.
	rest := servers
	if len(servers) > 0 && servers[0].def {
		rest = servers[1:]
	}
	rand.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
	for _, srv := range servers {
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
			fail(err)
			continue
		}
		if err := s.renewRooms(ctx, srv, rooms, &sw); err != nil {
			fail(err)
		}
	}
	return sw, first
}

// renewRooms renews the records of the rooms list, listed by srv, whose orgs srv
// speaks for.
func (s *Server) renewRooms(ctx context.Context, srv liveKitServer, list []*lkproto.Room, sw *RoomSweep) error {
	seen := make(map[string]bool, len(list))
	tenants := s.Tenants.Current()
	var foreign []string
	nForeign, lookups := 0, 0
	if !srv.def {
		// An org's own server lists what it likes: a random part of it,
		// up to maxOrgLookups, is looked up each sweep.
		list = slices.Clone(list)
		rand.Shuffle(len(list), func(i, j int) { list[i], list[j] = list[j], list[i] })
	}
	for _, r := range list {
		name := r.GetName()
		if seen[name] || !rooms.Valid(name) {
			continue
		}
		seen[name] = true
		owner := livekit.OwnerOf(r)
		if !srv.def && owner != "" && srv.org(owner) == "" {
			continue // another org's metadata on an org's own server: nothing to look up
		}
		if lookups++; !srv.def && lookups > maxOrgLookups {
			break
		}
		holder, err := s.Store.RoomOwner(ctx, name)
		switch {
		case errors.Is(err, store.ErrNotFound):
			holder = ""
		case err != nil:
			return err
		}
		mayMake := owner != "" && srv.def
		if mayMake && tenants.Org(owner) == nil && time.Since(time.Unix(r.GetCreationTime(), 0)) > orphanAge {
			// A room of the default server whose metadata (the broker's)
			// names an org that is no more: one a token issued before the
			// org was deleted reopened, with the deleted org's agent
			// dispatched again. It is ended, so that no tenant created
			// later under the id finds it.
			if err := srv.projects[0].DeleteRoom(ctx, name); err != nil {
				return err
			}
			sw.Ended++
			s.log.LogAttrs(ctx, slog.LevelWarn, "ended a live room of an org that is no more",
				slog.String("event", "rooms.renew"), slog.String("result", "ended_orphan"),
				slog.String("room", name), slog.String("org", owner))
			continue
		}
		if owner == "" {
			owner = holder
		}
		if owner == "" || !srv.def && srv.org(owner) == "" || tenants.Org(owner) == nil {
			// No org to renew for, one this server does not speak for, or
			// one that is no more: a deleted org's names go with it (the
			// registry quarantines its id for as long).
			continue
		}
		sw.Rooms++
		if holder == "" && !mayMake {
			continue // renewed, never made
		}
		if holder == owner || holder == "" {
			if holder, err = s.Store.ClaimRoom(ctx, name, owner, RoomOwnerTTL, 0); err != nil {
				return err
			}
		}
		if holder != owner {
			sw.Foreign++
			nForeign++
			if len(foreign) < 3 {
				foreign = append(foreign, name)
			}
			continue
		}
		sw.Renewed++
	}
	if len(foreign) > 0 {
		s.log.LogAttrs(ctx, slog.LevelWarn, "rooms live under names another org owns; their records are left as they are",
			slog.String("event", "rooms.renew"), slog.String("result", "foreign_owner"),
			slog.String("server", srv.url), slog.Int("rooms", nForeign), slog.Any("examples", foreign))
	}
	return nil
}

// liveKitServer is one LiveKit server (a URL) and the projects on it: the
// default project first, then orgs' own in the order of their ids.
type liveKitServer struct {
	url      string
	def      bool     // the default project is on it
	orgs     []string // the orgs whose own projects are on it
	projects []roomService
}

// org returns org if its own project is on the server, else "".
func (srv liveKitServer) org(org string) string {
	if slices.Contains(srv.orgs, org) {
		return org
	}
	return ""
}

// liveKitServers lists the LiveKit servers of every project, in the order
// their first projects come.
func (s *Server) liveKitServers() []liveKitServer {
	var out []liveKitServer
	add := func(url, org string, lk roomService) {
		i := slices.IndexFunc(out, func(srv liveKitServer) bool { return srv.url == url })
		if i < 0 {
			out = append(out, liveKitServer{url: url})
			i = len(out) - 1
		}
		srv := &out[i]
		if org == "" {
			srv.def = true
		} else {
			srv.orgs = append(srv.orgs, org)
		}
		srv.projects = append(srv.projects, lk)
	}
	if s.LiveKit != nil {
		add(s.LiveKit.URL(), "", s.LiveKit)
	}
	if s.LiveKitProjects != nil {
		for _, org := range s.LiveKitProjects.Orgs() {
			if c := s.LiveKitProjects.Own(org); c != nil && !s.onDefaultServer(c) {
				// (One on the default server is refused, and speaks
				// for nobody: see liveKitFor.)
				add(c.URL(), org, c)
			}
		}
	}
	return out
}

// truncateCause keeps the first maxCauseBytes of an error's text, cut at a
// rune boundary.
func truncateCause(s string) string {
	if len(s) <= maxCauseBytes {
		return s
	}
	cut := maxCauseBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
