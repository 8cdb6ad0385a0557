package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	lkproto "github.com/livekit/protocol/livekit"

	"github.com/voicebroker/voicebroker/internal/store"
	"github.com/voicebroker/voicebroker/internal/store/memory"
)

// clockUnit is a unit whose memory store reads the time from a clock the
// test moves (claim times, event records), with LiveKit.
type clockUnit struct {
	*unit
	mu  sync.Mutex
	now time.Time
}

func newClockUnit(t *testing.T) *clockUnit {
	t.Helper()
	cu := &clockUnit{now: time.Unix(1_795_517_000, 0)}
	mem := memory.NewWithClock(func() time.Time {
		cu.mu.Lock()
		defer cu.mu.Unlock()
		return cu.now
	})
	cu.unit = newUnitWithStore(t, true, mem)
	return cu
}

func (cu *clockUnit) advance(d time.Duration) time.Time {
	cu.mu.Lock()
	defer cu.mu.Unlock()
	cu.now = cu.now.Add(d)
	return cu.now
}

func (cu *clockUnit) claim(t *testing.T, room, org string) {
	t.Helper()
	if o, err := cu.store.ClaimRoom(context.Background(), room, org, RoomOwnerTTL, 0); err != nil || o != org {
		t.Fatalf("claim by %s: owner %q, %v", org, o, err)
	}
}

// ended checks that a room_finished at end ended org's record of room: the
// name stays org's, and no other org's, while tokens issued for the room
// live, and is free once they are dead (tokenLife after end, which is
// after the claim).
func (cu *clockUnit) ended(t *testing.T, room, org string, end time.Time) {
	t.Helper()
	cu.advance(end.Add(tokenLife - time.Millisecond).Sub(cu.advance(0)))
	if o := cu.owner(t, room); o != org {
		t.Fatalf("owner %q while tokens issued with the claim live, want %q", o, org)
	}
	if o, err := cu.store.ClaimRoom(context.Background(), room, "globex", RoomOwnerTTL, 0); err != nil || o != org {
		t.Fatalf("another org's claim while tokens live: owner %q, %v", o, err)
	}
	cu.advance(time.Millisecond)
	if o := cu.owner(t, room); o != "" {
		t.Fatalf("owner %q once the tokens are dead, want none", o)
	}
}

func (cu *clockUnit) owner(t *testing.T, room string) string {
	t.Helper()
	o, err := cu.store.RoomOwner(context.Background(), room)
	if errors.Is(err, store.ErrNotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// deliver posts ev as the webhook (the fake LiveKit verified it).
func (cu *clockUnit) deliver(t *testing.T, ev *lkproto.WebhookEvent) answer {
	t.Helper()
	cu.lk.mu.Lock()
	cu.lk.event = ev
	cu.lk.mu.Unlock()
	return cu.do(t, "POST", "/livekit/webhook", "", "{}")
}

// post posts an empty JSON object to path and returns the status; safe
// from any goroutine (it fails no test).
func (u *unit) post(path string) (int, error) {
	resp, err := http.Post(u.URL+path, "application/json", strings.NewReader("{}"))
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func finished(id, room, org string, at time.Time) *lkproto.WebhookEvent {
	return &lkproto.WebhookEvent{Event: "room_finished", Id: id, CreatedAt: at.Unix(), Room: ownedRoom(room, org)}
}

// TestWebhookReplayUnit: a webhook event is acted on once, and a
// room_finished releases only an owner record claimed at or before the
// room finished; so a captured room_finished replayed after the name was
// claimed again releases nothing, and another org still cannot claim it.
func TestWebhookReplayUnit(t *testing.T) {
	const room = "demo_sales"
	t.Run("a replay after a re-claim releases nothing", func(t *testing.T) {
		cu := newClockUnit(t)
		cu.claim(t, room, "acme")
		end := cu.advance(time.Minute)
		ev := finished("EV_first", room, "acme", end)
		cu.deliver(t, ev).expect(t, 200, "")
		cu.ended(t, room, "acme", end)
		cu.advance(30 * time.Second)
		cu.claim(t, room, "acme") // the next session of that name
		cu.deliver(t, ev).expect(t, 200, "")
		if o := cu.owner(t, room); o != "acme" {
			t.Fatalf("the replay released the new claim: owner %q", o)
		}
		// The id's record lost (a flushed store): the claim time still
		// keeps the record, under the same event or a copy with a new id.
		if err := cu.store.ForgetWebhookEvent(context.Background(), ev.Id); err != nil {
			t.Fatal(err)
		}
		cu.deliver(t, ev).expect(t, 200, "")
		cu.deliver(t, finished("EV_copy", room, "acme", end)).expect(t, 200, "")
		if o := cu.owner(t, room); o != "acme" {
			t.Fatalf("a stale room_finished released the new claim: owner %q", o)
		}
		if o, _ := cu.store.ClaimRoom(context.Background(), room, "globex", RoomOwnerTTL, 0); o != "acme" {
			t.Fatalf("another org claimed the name: %q", o)
		}
	})
	t.Run("the same event twice, the second ignored", func(t *testing.T) {
		cu := newClockUnit(t)
		cu.claim(t, room, "acme")
		ev := finished("EV_twice", room, "acme", cu.advance(time.Minute))
		cu.deliver(t, ev).expect(t, 200, "")
		cu.claim(t, room, "acme") // at the same instant as the event: kept either way
		cu.deliver(t, ev).expect(t, 200, "")
		if n := cu.store.count("ReleaseRoomClaimedBy"); n != 1 {
			t.Fatalf("ReleaseRoomClaimedBy called %d times, want 1", n)
		}
		var dup bool
		for _, line := range logLines(t, cu.logs) {
			if line["event"] == "livekit.webhook" && line["result"] == "duplicate" && line["id"] == "EV_twice" {
				dup = true
			}
		}
		if !dup {
			t.Fatal("no livekit.webhook line with result duplicate")
		}
	})
	t.Run("a claim in the same second as the event is kept", func(t *testing.T) {
		cu := newClockUnit(t)
		end := cu.advance(time.Minute)
		cu.advance(400 * time.Millisecond)
		cu.claim(t, room, "acme") // 0.4 s into the second LiveKit stamps the event with
		cu.deliver(t, finished("EV_same_second", room, "acme", end)).expect(t, 200, "")
		if o := cu.owner(t, room); o != "acme" {
			t.Fatalf("owner %q", o)
		}
	})
	t.Run("an event without createdAt releases nothing", func(t *testing.T) {
		cu := newClockUnit(t)
		cu.claim(t, room, "acme")
		ev := finished("EV_no_time", room, "acme", time.Time{})
		ev.CreatedAt = 0
		cu.deliver(t, ev).expect(t, 200, "")
		if o := cu.owner(t, room); o != "acme" {
			t.Fatalf("owner %q", o)
		}
	})
	t.Run("a room_finished naming another org releases nothing", func(t *testing.T) {
		cu := newClockUnit(t)
		cu.claim(t, room, "acme")
		cu.deliver(t, finished("EV_other_org", room, "globex", cu.advance(time.Minute))).expect(t, 200, "")
		if o := cu.owner(t, room); o != "acme" {
			t.Fatalf("owner %q", o)
		}
	})
	for name, id := range map[string]string{"no id": "", "an id over 128 bytes": "EV_" + strings.Repeat("x", 126)} {
		t.Run(name+": 400, nothing recorded or released", func(t *testing.T) {
			cu := newClockUnit(t)
			cu.claim(t, room, "acme")
			cu.deliver(t, finished(id, room, "acme", cu.advance(time.Minute))).expect(t, 400, "invalid_request")
			if o := cu.owner(t, room); o != "acme" || cu.store.count("RecordWebhookEvent") != 0 {
				t.Fatalf("owner %q, %d records", o, cu.store.count("RecordWebhookEvent"))
			}
		})
	}
	t.Run("the store down while recording: 503, nothing released, the retry handled", func(t *testing.T) {
		cu := newClockUnit(t)
		cu.claim(t, room, "acme")
		end := cu.advance(time.Minute)
		ev := finished("EV_down", room, "acme", end)
		cu.store.failOn("RecordWebhookEvent", storeDown)
		cu.deliver(t, ev).expect(t, 503, "store_unavailable")
		if o := cu.owner(t, room); o != "acme" || cu.store.count("ReleaseRoomClaimedBy") != 0 {
			t.Fatalf("owner %q after a failed record", o)
		}
		cu.store.failOn("RecordWebhookEvent", nil)
		cu.deliver(t, ev).expect(t, 200, "")
		cu.ended(t, room, "acme", end)
	})
	t.Run("release and forget both fail: the retry is a duplicate and the record stays (fail closed)", func(t *testing.T) {
		cu := newClockUnit(t)
		cu.claim(t, room, "acme")
		ev := finished("EV_stuck", room, "acme", cu.advance(time.Minute))
		cu.store.failOn("ReleaseRoomClaimedBy", storeDown)
		cu.store.failOn("ForgetWebhookEvent", storeDown)
		cu.deliver(t, ev).expect(t, 503, "store_unavailable")
		cu.store.failOn("ReleaseRoomClaimedBy", nil)
		cu.store.failOn("ForgetWebhookEvent", nil)
		cu.deliver(t, ev).expect(t, 200, "")
		if o := cu.owner(t, room); o != "acme" {
			t.Fatalf("owner %q", o)
		}
	})
	t.Run("concurrent deliveries of one event: one release", func(t *testing.T) {
		cu := newClockUnit(t)
		cu.claim(t, room, "acme")
		cu.lk.event = finished("EV_race", room, "acme", cu.advance(time.Minute))
		var wg sync.WaitGroup
		codes := make([]int, 20)
		for i := range codes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a, err := cu.post("/livekit/webhook")
				if err == nil {
					codes[i] = a
				}
			}()
		}
		wg.Wait()
		for i, c := range codes {
			if c != 200 {
				t.Fatalf("delivery %d: %d", i, c)
			}
		}
		if n := cu.store.count("ReleaseRoomClaimedBy"); n != 1 {
			t.Fatalf("ReleaseRoomClaimedBy called %d times, want 1", n)
		}
	})
}

// TestWebhookRoomStartedRenewsTheClaim: a room that starts again after it
// finished (a user back with the token it held, which LiveKit re-signs
// while it stays) claims its name for its owner for the room's life, so
// that the name does not pass to another org while it runs; a room started
// under a name another org holds changes nothing and is logged.
func TestWebhookRoomStartedRenewsTheClaim(t *testing.T) {
	const room = "demo_sales"
	started := func(id, room, org string, at time.Time) *lkproto.WebhookEvent {
		return &lkproto.WebhookEvent{Event: "room_started", Id: id, CreatedAt: at.Unix(), Room: ownedRoom(room, org)}
	}
	cu := newClockUnit(t)
	cu.claim(t, room, "acme")
	end := cu.advance(time.Minute)
	cu.deliver(t, finished("EV_end", room, "acme", end)).expect(t, 200, "")
	// Back in the room before its tokens are dead: the room runs past
	// the record's kept life, and the name stays acme's.
	cu.deliver(t, started("EV_again", room, "acme", cu.advance(time.Minute))).expect(t, 200, "")
	cu.advance(2 * tokenLife)
	if o := cu.owner(t, room); o != "acme" {
		t.Fatalf("owner %q of a room that started again, want acme", o)
	}
	if o, _ := cu.store.ClaimRoom(context.Background(), room, "globex", RoomOwnerTTL, 0); o != "acme" {
		t.Fatalf("another org claimed a running room's name: %q", o)
	}
	// A name with no record is left free: room_started renews a claim,
	// never makes one (an org's own project can sign any event).
	cu.deliver(t, started("EV_fresh", "demo_fresh", "acme", cu.advance(time.Second))).expect(t, 200, "")
	if o := cu.owner(t, "demo_fresh"); o != "" {
		t.Fatalf("owner %q of a name room_started found free, want none", o)
	}
	// Another org's name: unchanged, and said.
	cu.claim(t, "demo_other", "globex")
	cu.deliver(t, started("EV_foreign", "demo_other", "acme", cu.advance(time.Second))).expect(t, 200, "")
	if o := cu.owner(t, "demo_other"); o != "globex" {
		t.Fatalf("a room_started took globex's name: owner %q", o)
	}
	var said bool
	for _, line := range logLines(t, cu.logs) {
		if line["result"] == "foreign_owner" && line["owner"] == "globex" && line["room"] == "demo_other" {
			said = true
		}
	}
	if !said {
		t.Fatal("no foreign_owner line for a room started under another org's name")
	}
	// The store down: 503, and the retry is handled.
	cu.claim(t, "demo_down", "acme")
	cu.store.failOn("ClaimRoom", storeDown)
	ev := started("EV_down", "demo_down", "acme", cu.advance(time.Second))
	cu.deliver(t, ev).expect(t, 503, "store_unavailable")
	cu.store.failOn("ClaimRoom", nil)
	cu.deliver(t, ev).expect(t, 200, "")
	if o := cu.owner(t, "demo_down"); o != "acme" {
		t.Fatalf("the retry did not claim: owner %q", o)
	}
}

// TestReleaseOutlivesTokensOfALongerLifetime: a token issued while the
// broker's token lifetime was 3 h keeps the room's name its org's until
// it is dead, though the broker that handles room_finished has a lifetime
// of 5 minutes by then (an operator lowered it): the keep it computes
// (an agent's hour and the leeway) would free the name two hours early.
func TestReleaseOutlivesTokensOfALongerLifetime(t *testing.T) {
	const room = "agent_bot_1700000000_LongTTL1"
	cu := newClockUnit(t)
	cu.lk.mu.Lock()
	cu.lk.ttl = 3 * time.Hour
	cu.lk.mu.Unlock()
	issued := cu.advance(0)
	cu.do(t, "POST", "/livekit/token", "sk_any", `{"agent":"bot","room_name":"`+room+`"}`).expect(t, 201, "")
	cu.lk.mu.Lock()
	cu.lk.ttl = 5 * time.Minute
	cu.lk.mu.Unlock()
	end := cu.advance(10 * time.Minute)
	cu.deliver(t, finished("EV_long", room, "acme", end)).expect(t, 200, "")
	cu.advance(issued.Add(3*time.Hour + liveKitLeeway - time.Millisecond).Sub(cu.advance(0)))
	if o, err := cu.store.ClaimRoom(context.Background(), room, "globex", RoomOwnerTTL, 0); err != nil || o != "acme" {
		t.Fatalf("another org's claim while a 3-hour token of acme's opens the room: owner %q, %v", o, err)
	}
	cu.advance(time.Millisecond)
	if o := cu.owner(t, room); o != "" {
		t.Fatalf("owner %q once the token is dead, want none", o)
	}
}
