package httpapi

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

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
// record keeps its name for its org, through a sweep; names of rooms that
// are not live, that have no record or whose record is another org's are
// left as they are. Without the sweep the long-running rooms' names
// expire and globex claims them.
func TestRoomKeeperRenewsLiveRooms(t *testing.T) {
	for _, sweep := range []bool{true, false} {
		t.Run(map[bool]string{true: "swept", false: "unswept control"}[sweep], func(t *testing.T) {
			cu := newClockUnit(t)
			k := NewRoomKeeper(cu.deps)
			const (
				long     = "agent_bot_1700000000_Long01" // live, acme's metadata and record
				bare     = "agent_bot_1700000000_Bare01" // live without metadata, acme's record
				unowned  = "agent_bot_1700000000_Free01" // live, acme's metadata, no record
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
			cu.live(unowned, "acme")
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
				if want := (RoomSweep{Servers: 1, Rooms: 4, Renewed: 2, Foreign: 1}); sw != want {
					t.Fatalf("sweep %+v, want %+v", sw, want)
				}
				if o := cu.owner(t, foreign); o != "globex" {
					t.Fatalf("another org's record: owner %q, want globex's kept", o)
				}
			}
			cu.advance(RoomOwnerTTL - time.Hour)
			for _, room := range []string{long, bare} {
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
			for _, room := range []string{unowned, finished, garbage} {
				if o := cu.owner(t, room); o != "" {
					t.Fatalf("%s: owner %q, want none (renewed, never made; not live)", room, o)
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
