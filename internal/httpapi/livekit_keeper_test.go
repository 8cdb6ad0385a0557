package httpapi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	lkproto "github.com/livekit/protocol/livekit"

	"github.com/voicebroker/voicebroker/internal/livekit"
	"github.com/voicebroker/voicebroker/internal/store"
)

// live puts room in the fake LiveKit, with org's owner metadata ("" for
// a room without metadata, as one reopened by an agent's job token).
func (cu *clockUnit) live(room, org string) {
	cu.lk.mu.Lock()
	defer cu.lk.mu.Unlock()
	if org == "" {
		cu.lk.rooms[room] = &lkproto.Room{Name: room, Sid: "RM_" + room}
		return
	}
	cu.lk.rooms[room] = ownedRoom(room, org)
}

// TestRoomKeeperRenewsLiveRooms: a room that runs longer than its owner
// record keeps its name for its org, through a sweep; on the default
// server a live room with the broker's metadata gets its record back if
// the store lost it; names of rooms that are not live, without an owner,
// or whose record is another org's are left as they are. Without the
// sweep the long-running rooms' names expire and globex claims them.
func TestRoomKeeperRenewsLiveRooms(t *testing.T) {
	for _, sweep := range []bool{true, false} {
		t.Run(map[bool]string{true: "swept", false: "unswept control"}[sweep], func(t *testing.T) {
			cu := newClockUnit(t)
			k := NewRoomKeeper(cu.deps)
			const (
				long     = "agent_bot_1700000000_Long01" // live, acme's metadata and record
				bare     = "agent_bot_1700000000_Bare01" // live without metadata, acme's record
				lost     = "agent_bot_1700000000_Free01" // live, acme's metadata, no record (the store lost it)
				foreign  = "agent_bot_1700000000_Other1" // live, acme's metadata, globex's record
				finished = "agent_bot_1700000000_Ended1" // acme's record, not live
				garbage  = "agent_bot_1700000000_Weird1" // live, unreadable metadata, no record
			)
			cu.claim(t, long, "acme")
			cu.claim(t, bare, "acme")
			cu.claim(t, foreign, "globex")
			cu.claim(t, finished, "acme")
			cu.live(long, "acme")
			cu.live(bare, "")
			cu.live(lost, "acme")
			cu.live(foreign, "acme")
			cu.live(garbage, "")
			cu.lk.mu.Lock()
			cu.lk.rooms[garbage].Metadata = `{"auth_id":`
			cu.lk.mu.Unlock()

			cu.advance(RoomOwnerTTL - time.Hour)
			if sweep {
				sw, err := k.RenewLiveRooms(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if want := (RoomSweep{Servers: 1, Rooms: 4, Renewed: 3, Foreign: 1}); sw != want {
					t.Fatalf("sweep %+v, want %+v", sw, want)
				}
				if o := cu.owner(t, foreign); o != "globex" {
					t.Fatalf("another org's record: owner %q, want globex's kept", o)
				}
			}
			cu.advance(RoomOwnerTTL - time.Hour)
			kept := []string{long, bare}
			if sweep {
				kept = append(kept, lost)
			} else if o := cu.owner(t, lost); o != "" {
				t.Fatalf("control: %s has owner %q", lost, o)
			}
			for _, room := range kept {
				o, err := cu.store.ClaimRoom(context.Background(), room, "globex", RoomOwnerTTL, 0)
				if err != nil {
					t.Fatal(err)
				}
				if sweep && o != "acme" {
					t.Fatalf("%s, live for two days: globex claimed it (owner %q)", room, o)
				}
				if !sweep && o != "globex" {
					t.Fatalf("control: %s's record outlived RoomOwnerTTL without a sweep (owner %q)", room, o)
				}
			}
			for _, room := range []string{finished, garbage} {
				if o := cu.owner(t, room); o != "" {
					t.Fatalf("%s: owner %q, want none (not live; no owner)", room, o)
				}
			}
		})
	}
}

// TestRoomKeeperFailures: a LiveKit project that cannot be listed is an
// error with the counts (fail closed: nothing is released by it); a store
// that fails stops the sweep with its error.
func TestRoomKeeperFailures(t *testing.T) {
	cu := newClockUnit(t)
	k := NewRoomKeeper(cu.deps)
	cu.claim(t, "agent_bot_1700000000_Long01", "acme")
	cu.live("agent_bot_1700000000_Long01", "acme")

	cu.lk.mu.Lock()
	cu.lk.roomsErr = livekit.ErrUnavailable
	cu.lk.mu.Unlock()
	sw, err := k.RenewLiveRooms(context.Background())
	if !errors.Is(err, livekit.ErrUnavailable) || sw.Servers != 1 || sw.Failed != 1 || sw.Renewed != 0 {
		t.Fatalf("LiveKit down: %+v, %v", sw, err)
	}
	cu.lk.mu.Lock()
	cu.lk.roomsErr = nil
	cu.lk.mu.Unlock()

	cu.store.failOn("ClaimRoom", store.ErrUnavailable)
	if sw, err := k.RenewLiveRooms(context.Background()); !errors.Is(err, store.ErrUnavailable) || sw.Renewed != 0 {
		t.Fatalf("store down: %+v, %v", sw, err)
	}
	cu.store.failOn("ClaimRoom", nil)
	if sw, err := k.RenewLiveRooms(context.Background()); err != nil || sw.Renewed != 1 {
		t.Fatalf("recovered: %+v, %v", sw, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := k.RenewLiveRooms(ctx); err == nil {
		t.Fatal("a cancelled sweep reported success")
	}
}

// TestRoomKeeperRuns: Run sweeps on its own, logs each sweep without a
// credential, and returns once its context ends.
func TestRoomKeeperRuns(t *testing.T) {
	cu := newClockUnit(t)
	cu.claim(t, "agent_bot_1700000000_Long01", "acme")
	cu.live("agent_bot_1700000000_Long01", "acme")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { NewRoomKeeper(cu.deps).Run(ctx, 20*time.Millisecond); close(done) }()
	swept := func() int {
		n := 0
		for _, l := range logLines(t, cu.logs) {
			if l["event"] == "rooms.renew" && l["result"] == "ok" && l["renewed"] == float64(1) {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(10 * time.Second); swept() < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no two sweeps logged in 10 s: %s", cu.logs.String())
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return once its context ended")
	}
	if logs := cu.logs.String(); strings.Contains(logs, "lk-token") || strings.Contains(logs, "secret") {
		t.Fatalf("a sweep logged a credential: %s", logs)
	}
}

// TestRoomKeeperTakesNoBait: what a LiveKit server lists is handled once
// per name, names outside the room grammar (which the broker never
// claims, and which the store may refuse: a 513 MiB one reset the Redis
// connection) reach no store call, and the rooms live under other orgs'
// names are logged once per server, with a few examples, however many the
// server lists.
func TestRoomKeeperTakesNoBait(t *testing.T) {
	cu := newClockUnit(t)
	k := NewRoomKeeper(cu.deps)
	const mine = "agent_bot_1700000000_Mine01"
	cu.claim(t, mine, "acme")
	var extra []*lkproto.Room
	for range 1000 {
		extra = append(extra, ownedRoom(mine, "acme"))
	}
	for i := range 50 {
		name := fmt.Sprintf("agent_bot_1700000000_Glbx%02d", i)
		cu.claim(t, name, "globex")
		extra = append(extra, ownedRoom(name, "acme"), ownedRoom(name, "acme"))
	}
	for _, bad := range []string{strings.Repeat("a", 129), "agent_bot_1700000000_" + strings.Repeat("x", 200), "lobby", "demo_{x}", ""} {
		extra = append(extra, ownedRoom(bad, "acme"))
	}
	cu.lk.mu.Lock()
	cu.lk.extra = extra
	cu.lk.mu.Unlock()
	claims := cu.store.count("ClaimRoom")
	sw, err := k.RenewLiveRooms(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := (RoomSweep{Servers: 1, Rooms: 51, Renewed: 1, Foreign: 50}); sw != want {
		t.Fatalf("sweep %+v, want %+v", sw, want)
	}
	if n := cu.store.count("ClaimRoom") - claims; n != 1 {
		t.Fatalf("%d claims for one renewable name", n)
	}
	var lines int
	for _, l := range logLines(t, cu.logs) {
		if l["result"] == "foreign_owner" {
			lines++
			if ex, _ := l["examples"].([]any); len(ex) != 3 || l["rooms"] != float64(50) {
				t.Fatalf("foreign line %v", l)
			}
		}
	}
	if lines != 1 {
		t.Fatalf("%d foreign_owner lines, want 1", lines)
	}
}

// TestTruncateCause: a server's error text is logged up to 256 bytes, cut
// at a rune boundary.
func TestTruncateCause(t *testing.T) {
	if got := truncateCause("short"); got != "short" {
		t.Fatal(got)
	}
	long := strings.Repeat("é", 1000)
	got := truncateCause(long)
	if len(got) > maxCauseBytes+len("…") || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
		t.Fatalf("%d bytes, valid %v", len(got), utf8.ValidString(got))
	}
}

// TestRoomStartedWithoutMetadataRenewsTheHolder: an agent's job token
// reopens a finished room with no owner metadata; room_started renews the
// claim of the org that holds the name, so the name outlives the keep
// room_finished left it while the room runs again.
func TestRoomStartedWithoutMetadataRenewsTheHolder(t *testing.T) {
	const room = "agent_bot_1700000000_Reopen1"
	cu := newClockUnit(t)
	cu.claim(t, room, "acme")
	end := cu.advance(time.Minute)
	cu.deliver(t, finished("EV_end", room, "acme", end)).expect(t, 200, "")
	again := &lkproto.WebhookEvent{Event: "room_started", Id: "EV_again", CreatedAt: cu.advance(time.Minute).Unix(),
		Room: &lkproto.Room{Name: room, Sid: "RM_again"}}
	cu.deliver(t, again).expect(t, 200, "")
	cu.advance(2 * tokenLife)
	if o, err := cu.store.ClaimRoom(context.Background(), room, "globex", RoomOwnerTTL, 0); err != nil || o != "acme" {
		t.Fatalf("another org's claim on a room reopened without metadata: owner %q, %v", o, err)
	}
	// A free name stays free.
	free := &lkproto.WebhookEvent{Event: "room_started", Id: "EV_free", CreatedAt: cu.advance(time.Second).Unix(),
		Room: &lkproto.Room{Name: "agent_bot_1700000000_Nobody", Sid: "RM_free"}}
	cu.deliver(t, free).expect(t, 200, "")
	if o := cu.owner(t, "agent_bot_1700000000_Nobody"); o != "" {
		t.Fatalf("room_started made a record for %q", o)
	}
}

// TestRoomKeeperRenewsNoDeletedOrg: a live room of an org the registry no
// longer has (deleted while its room ran on, or reopened afterwards by a
// token issued before) is renewed nothing, with metadata or without; on
// the default server, where only the broker writes metadata, one naming
// such an org is ended, unless it is under two minutes old (a replica's
// registry may lag another's, whose new org may already have a room).
func TestRoomKeeperRenewsNoDeletedOrg(t *testing.T) {
	cu := newClockUnit(t)
	const withMD, bare, fresh = "agent_bot_1700000000_Gone01", "agent_bot_1700000000_Gone02", "agent_bot_1700000000_Gone03"
	for _, r := range []string{withMD, bare, fresh} {
		cu.claim(t, r, "initech")
	}
	cu.live(withMD, "initech")
	cu.live(bare, "")
	cu.live(fresh, "initech")
	cu.lk.mu.Lock()
	cu.lk.rooms[withMD].CreationTime = time.Now().Add(-time.Hour).Unix()
	cu.lk.rooms[fresh].CreationTime = time.Now().Unix()
	cu.lk.mu.Unlock()
	sw, err := NewRoomKeeper(cu.deps).RenewLiveRooms(context.Background())
	if err != nil || sw.Rooms != 0 || sw.Renewed != 0 || sw.Ended != 1 {
		t.Fatalf("sweep %+v, %v: want nothing renewed for a deleted org, and its old room ended", sw, err)
	}
	cu.lk.mu.Lock()
	_, stillLive := cu.lk.rooms[withMD]
	ended := slices.Clone(cu.lk.deleted)
	cu.lk.mu.Unlock()
	if stillLive || !slices.Equal(ended, []string{withMD}) {
		t.Fatalf("rooms ended %v; want %s alone", ended, withMD)
	}
	cu.advance(RoomOwnerTTL)
	for _, r := range []string{withMD, bare, fresh} {
		if o := cu.owner(t, r); o != "" {
			t.Fatalf("%s: owner %q past RoomOwnerTTL", r, o)
		}
	}
}
