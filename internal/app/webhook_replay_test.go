package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	lkproto "github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"

	"github.com/voicebroker/voicebroker/internal/store"
	"github.com/voicebroker/voicebroker/internal/testenv"
)

// capturedWebhook is one delivery LiveKit made, as it made it.
type capturedWebhook struct {
	header http.Header
	body   []byte
	event  struct {
		Event string `json:"event"`
		ID    string `json:"id"`
		Room  struct {
			Name string `json:"name"`
		} `json:"room"`
	}
}

// webhookTap is what an attacker on the path between LiveKit and the
// broker has: every delivery, copied on its way to the broker.
type webhookTap struct {
	URL    string
	target atomic.Value // string: the broker's base URL
	mu     sync.Mutex
	seen   []*capturedWebhook
}

func startWebhookTap(t *testing.T) *webhookTap {
	tap := &webhookTap{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c := &capturedWebhook{header: r.Header.Clone(), body: body}
		json.Unmarshal(body, &c.event)
		tap.mu.Lock()
		tap.seen = append(tap.seen, c)
		tap.mu.Unlock()
		resp, err := replay(tap.target.Load().(string), c)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
	}))
	t.Cleanup(srv.Close)
	tap.URL = srv.URL + "/livekit/webhook"
	return tap
}

// find waits for LiveKit's delivery of event for room.
func (tap *webhookTap) find(t *testing.T, event, room string) *capturedWebhook {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		tap.mu.Lock()
		for _, c := range tap.seen {
			if c.event.Event == event && c.event.Room.Name == room {
				tap.mu.Unlock()
				return c
			}
		}
		tap.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("LiveKit never sent %s for %s", event, room)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// replay sends a captured delivery, byte for byte, to the broker at base.
func replay(base string, c *capturedWebhook) (*http.Response, error) {
	req, err := http.NewRequest("POST", base+"/livekit/webhook", bytes.NewReader(c.body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", c.header.Get("Authorization"))
	req.Header.Set("Content-Type", c.header.Get("Content-Type"))
	return client.Do(req)
}

// TestWebhookReplayAfterReclaim: the real livekit-server's room_finished,
// captured on its way to the broker and replayed (within the 5 minutes its
// signature is good for) after the room's name was claimed again, releases
// nothing, on the replica that got it or on another sharing the store, and
// another org still cannot claim the name. With the event's record gone
// from the store (a flushed Redis), the claim time alone still keeps the
// new claim.
func TestWebhookReplayAfterReclaim(t *testing.T) {
	if testing.Short() {
		t.Skip("needs livekit-server and redis-server")
	}
	tap := startWebhookTap(t)
	lk := testenv.StartLiveKit(t, tap.URL)
	k := newKeys(t)
	vars := map[string]string{
		"BROKER_REDIS_URL": nextRedisURL(t), "LIVEKIT_URL": lk.URL, "LIVEKIT_API_KEY": lk.APIKey, "LIVEKIT_API_SECRET": lk.APISecret,
	}
	a, b := startBroker(t, k, vars), startBroker(t, k, vars) // two replicas, one Redis
	tap.target.Store(a.URL)
	globexA, globexB := k.globex2(t, a), k.globex2(t, b)
	ctx := context.Background()
	const room = "agent_florencia_1700000000_Replay1"
	owner := func() string {
		o, err := a.app.Store.RoomOwner(ctx, room)
		if errors.Is(err, store.ErrNotFound) {
			return ""
		}
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	lkToken := func(br *broker, cred string) response {
		return do(t, "POST", br.URL+"/livekit/token", cred, map[string]any{"room_name": room, "agent": "florencia", "participant_identity": "caller"})
	}

	// A session in the room, then the room finishes: LiveKit's
	// room_finished, through the tap, releases the name.
	joined := join(t, lkToken(a, k.acme))
	claimed := time.Now()
	waitParticipant(t, a, k.acme, room, "caller")
	afterSecond(claimed) // room_finished is stamped in whole seconds
	rs := lksdk.NewRoomServiceClient(lk.HTTPURL(), lk.APIKey, lk.APISecret)
	if _, err := rs.DeleteRoom(ctx, &lkproto.DeleteRoomRequest{Room: room}); err != nil {
		t.Fatal(err)
	}
	joined.Disconnect()
	captured := tap.find(t, "room_finished", room)
	roomFinishedEnded(t, a, room)
	if captured.event.ID == "" {
		t.Fatalf("LiveKit's room_finished has no id: %s", captured.body)
	}

	// The next session of that name: acme claims it again.
	expect(t, lkToken(b, k.acme), 201, "")
	for name, base := range map[string]string{"the replica LiveKit sent it to": a.URL, "another replica": b.URL} {
		resp, err := replay(base, captured)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("replay to %s: %d", name, resp.StatusCode)
		}
		if o := owner(); o != "acme" {
			t.Fatalf("a replayed room_finished sent to %s released the new claim (owner %q)", name, o)
		}
		expect(t, lkToken(b, globexB), 403, "room_forbidden")
		expect(t, lkToken(a, globexA), 403, "room_forbidden")
	}
	if !strings.Contains(a.Logs.String()+b.Logs.String(), `"result":"duplicate"`) {
		t.Fatal("the replays were not audited as duplicates")
	}

	// The event's record lost: the claim time alone keeps the claim.
	// (The broker keeps ids per LiveKit project; "" is the default one.)
	if err := a.app.Store.ForgetWebhookEvent(ctx, "/"+captured.event.ID); err != nil {
		t.Fatal(err)
	}
	resp, err := replay(b.URL, captured)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if o := owner(); resp.StatusCode != 200 || o != "acme" {
		t.Fatalf("replay with the record lost: %d, owner %q\n%s", resp.StatusCode, o, b.Logs.String())
	}
	expect(t, lkToken(b, globexB), 403, "room_forbidden")
	if !strings.Contains(b.Logs.String(), `"result":"kept"`) {
		t.Fatal("the stale room_finished was not audited as kept")
	}
}
