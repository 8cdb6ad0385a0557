package app_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	lkproto "github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/webrtc/v4"

	"github.com/voicebroker/voicebroker/internal/store"
	"github.com/voicebroker/voicebroker/internal/testenv"
)

// startWithLiveKit starts a real livekit-server whose webhooks reach a
// broker, then that broker. The webhooks go through a forwarder bound
// before LiveKit starts: a port reserved for the broker could be taken
// while LiveKit started (it was, once, in CI).
func startWithLiveKit(t *testing.T, k keys, vars map[string]string) (*broker, *testenv.LiveKit) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs livekit-server")
	}
	hook := testenv.NewForwarder(t)
	lk := testenv.StartLiveKit(t, hook.URL+"/livekit/webhook")
	env := map[string]string{
		"LIVEKIT_URL":        lk.URL,
		"LIVEKIT_API_KEY":    lk.APIKey,
		"LIVEKIT_API_SECRET": lk.APISecret,
	}
	for name, v := range vars {
		env[name] = v
	}
	b := startBroker(t, k, env)
	hook.To(t, b.URL)
	return b, lk
}

// join connects a real participant with a LiveKit token from the broker.
func join(t *testing.T, r response) *lksdk.Room {
	t.Helper()
	expect(t, r, 201, "")
	room, err := lksdk.ConnectToRoomWithToken(r.Body["server_url"].(string), r.Body["participant_token"].(string),
		&lksdk.RoomCallback{}, lksdk.WithAutoSubscribe(false))
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	t.Cleanup(room.Disconnect)
	return room
}

// TestConnectJoinsRealRoom: a ticket from /token opens a real LiveKit room
// at /connect; the participant is listed for its org and invisible to
// another; the ticket is single-use.
func TestConnectJoinsRealRoom(t *testing.T) {
	b, _ := startWithLiveKit(t, newKeys(t), nil)
	k := b.keys
	ticket := b.mint(t, k.acme, map[string]any{"agent": "florencia", "channel": "webrtc", "identity": "caller-7"})

	r := do(t, "POST", b.URL+"/connect", ticket, nil)
	expect(t, r, 201, "")
	roomName, _ := r.Body["room_name"].(string)
	if !strings.HasPrefix(roomName, "agent_florencia_") || r.Body["participant_identity"] != "caller-7" || r.Body["expires_in"] != 300.0 {
		t.Fatalf("connect body %s", r.Raw)
	}
	// The same ticket, again, by header and by body: used.
	expect(t, do(t, "POST", b.URL+"/connect", ticket, nil), 401, "token_used")
	expect(t, do(t, "POST", b.URL+"/connect", "", map[string]string{"token": ticket}), 401, "token_used")

	room := join(t, r)
	if room.Name() != roomName {
		t.Fatalf("joined %q, want %q", room.Name(), roomName)
	}
	got := waitParticipant(t, b, k.acme, roomName, "caller-7")
	if got["can_publish"] != true {
		t.Fatalf("webrtc participant cannot publish: %v", got)
	}
	attrs, _ := got["attributes"].(map[string]any)
	if attrs["org"] != "acme" || attrs["agent"] != "florencia" || attrs["channel"] != "webrtc" {
		t.Fatalf("attributes %v", attrs)
	}
	// The room carries its owner and agent in LiveKit's metadata.
	detail := do(t, "GET", b.URL+"/livekit/rooms/"+roomName, k.acme, nil)
	if md, _ := detail.Body["room"].(map[string]any)["metadata"].(string); md != `{"auth_id":"acme","agent":"florencia"}` {
		t.Fatalf("room metadata %q", md)
	}
	// Another org: 404, exactly like a missing room.
	other := do(t, "GET", b.URL+"/livekit/rooms/"+roomName, k.globex2(t, b), nil)
	missing := do(t, "GET", b.URL+"/livekit/rooms/agent_florencia_1700000000_nothere", k.globex2(t, b), nil)
	expect(t, other, 404, "room_not_found")
	expect(t, missing, 404, "room_not_found")
	if other.Raw != missing.Raw {
		t.Fatalf("another org's room is distinguishable: %s vs %s", other.Raw, missing.Raw)
	}
	list := do(t, "GET", b.URL+"/livekit/rooms", k.acme, nil)
	if !strings.Contains(list.Raw, roomName) {
		t.Fatalf("own room not listed: %s", list.Raw)
	}
	if list := do(t, "GET", b.URL+"/livekit/rooms", k.globex2(t, b), nil); list.Status != 200 || strings.Contains(list.Raw, roomName) {
		t.Fatalf("another org lists the room: %s", list.Raw)
	}
}

// globex2 gives globex the room scopes for these tests.
func (keys) globex2(t *testing.T, b *broker) string {
	t.Helper()
	want := tenantsYAML(b.keys, globexRooms)
	if current, err := os.ReadFile(b.app.Env.ConfigFile); err != nil || string(current) != want {
		b.rewriteTenants(t, want, "ok")
	}
	return b.keys.globex
}

// globexRooms gives globex the room scopes and an agent whose id,
// florencia, is also one of acme's: the two orgs then share the agent_
// room namespace, which is where ownership matters. Its LiveKit agent name
// is its own (a shared one is refused).
func globexRooms(y string) string {
	return strings.Replace(y, "scopes: [tokens:create, tokens:redeem]\n    agents:\n      - id: hank",
		"scopes: [tokens:create, tokens:redeem, livekit:token, rooms:read, rooms:write]\n    agents:\n      - id: florencia\n        channels: [webrtc]\n        livekit_agent_name: globex-florencia\n      - id: hank", 1)
}

// waitParticipant polls GET /livekit/rooms/{room} until identity is there.
func waitParticipant(t *testing.T, b *broker, cred, room, identity string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := do(t, "GET", b.URL+"/livekit/rooms/"+room, cred, nil)
		if r.Status == 200 {
			ps, _ := r.Body["participants"].([]any)
			for _, p := range ps {
				if pm := p.(map[string]any); pm["identity"] == identity {
					return pm
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("participant %q never listed: %d %s", identity, r.Status, r.Raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestChatTicketCannotPublishAudio: a chat ticket's participant joins but
// LiveKit refuses its audio track.
func TestChatTicketCannotPublishAudio(t *testing.T) {
	b, _ := startWithLiveKit(t, newKeys(t), nil)
	ticket := b.mint(t, b.keys.acme, map[string]any{"agent": "texter", "channel": "chat", "identity": "texter-1"})
	r := do(t, "POST", b.URL+"/connect", "", map[string]string{"token": ticket})
	room := join(t, r)
	p := waitParticipant(t, b, b.keys.acme, r.Body["room_name"].(string), "texter-1")
	if p["can_publish"] != false {
		t.Fatalf("chat participant can publish: %v", p)
	}
	track, err := lksdk.NewLocalSampleTrack(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2})
	if err != nil {
		t.Fatal(err)
	}
	// The SDK returns only once the server has answered the AddTrack request
	// with the published track, or after its own timeout: a nil error means
	// LiveKit accepted the track.
	pub, err := room.LocalParticipant.PublishTrack(track, &lksdk.TrackPublicationOptions{Name: "mic"})
	if err == nil {
		t.Fatalf("LiveKit accepted a chat participant's audio track %s", pub.SID())
	}
	p = waitParticipant(t, b, b.keys.acme, r.Body["room_name"].(string), "texter-1")
	if tracks, _ := p["tracks"].([]any); len(tracks) != 0 {
		t.Fatalf("chat participant published %v", tracks)
	}
}

// TestLiveKitTokenOwnership: /livekit/token claims a room for the first
// org; another org gets 403 and no token, even once the store has forgotten
// the claim while the room is live in LiveKit; names are validated.
func TestLiveKitTokenOwnership(t *testing.T) {
	b, _ := startWithLiveKit(t, newKeys(t), nil)
	k := b.keys
	globex := k.globex2(t, b)
	room := "agent_florencia_1700000000_Shared1"
	r := do(t, "POST", b.URL+"/livekit/token", k.acme, map[string]any{
		"room_name": room, "participant_identity": "ops-1", "participant_name": "Ops",
		"participant_attributes": map[string]string{"team": "blue"}, "agent": "florencia",
	})
	expect(t, r, 201, "")
	if r.Body["room_name"] != room || r.Body["participant_token"] == "" {
		t.Fatalf("body %s", r.Raw)
	}
	// Claimed, not yet joined: the other org is refused by the store.
	forbidden := do(t, "POST", b.URL+"/livekit/token", globex, map[string]any{"room_name": room, "agent": "florencia"})
	expect(t, forbidden, 403, "room_forbidden")
	if strings.Contains(forbidden.Raw, "participant_token") {
		t.Fatal("a token was issued for another org's room")
	}
	join(t, r)
	waitParticipant(t, b, k.acme, room, "ops-1")
	// Live in LiveKit, and the store forgot the claim (a flushed Redis, an
	// expired record): LiveKit's metadata still says acme.
	if err := b.app.Store.ReleaseRoom(context.Background(), room, "acme"); err != nil {
		t.Fatal(err)
	}
	expect(t, do(t, "POST", b.URL+"/livekit/token", globex, map[string]any{"room_name": room}), 403, "room_forbidden")
	if owner, err := b.app.Store.RoomOwner(context.Background(), room); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the refused org claimed the room in the store: %q %v", owner, err)
	}
	// Same org again: fine. room_config naming the agent instead of "agent": fine.
	expect(t, do(t, "POST", b.URL+"/livekit/token", k.acme, map[string]any{
		"room_name": room, "room_config": map[string]any{"agents": []any{map[string]any{"agent_name": "florencia"}}},
	}), 201, "")
	// A generated room when none is named.
	gen := do(t, "POST", b.URL+"/livekit/token", k.acme, map[string]any{"agent": "texter"})
	expect(t, gen, 201, "")
	if !strings.HasPrefix(gen.Body["room_name"].(string), "agent_texter_") {
		t.Fatalf("generated room %v", gen.Body["room_name"])
	}

	for _, tc := range []struct {
		name   string
		body   map[string]any
		status int
		code   string
	}{
		{"bad grammar", map[string]any{"room_name": "lobby", "agent": "florencia"}, 400, "invalid_room_name"},
		{"another org's agent in the name", map[string]any{"room_name": "agent_hank_1700000000_abcdef", "agent": "florencia"}, 400, "invalid_room_name"},
		{"the name names another agent", map[string]any{"room_name": "agent_texter_1700000000_abcdef", "agent": "florencia"}, 400, "invalid_room_name"},
		{"demo room without allow_demo_rooms", map[string]any{"room_name": "demo_x", "agent": "florencia"}, 400, "invalid_room_name"},
		{"no room and no agent", map[string]any{"participant_identity": "x"}, 400, "invalid_request"},
		{"unknown agent", map[string]any{"agent": "hank"}, 404, "unknown_agent"},
		{"room_config names another org's agent", map[string]any{"room_config": map[string]any{"agents": []any{map[string]any{"agent_name": "hank"}}}}, 404, "unknown_agent"},
		{"agent and room_config disagree", map[string]any{"agent": "florencia", "room_config": map[string]any{"agents": []any{map[string]any{"agent_name": "texter"}}}}, 400, "invalid_request"},
		{"room_config sets the room metadata", map[string]any{"agent": "florencia", "room_config": map[string]any{"metadata": `{"auth_id":"globex"}`}}, 400, "invalid_request"},
		{"two dispatches", map[string]any{"room_config": map[string]any{"agents": []any{map[string]any{"agent_name": "florencia"}, map[string]any{"agent_name": "texter"}}}}, 400, "invalid_request"},
		{"reserved attribute", map[string]any{"agent": "florencia", "participant_attributes": map[string]string{"org": "globex"}}, 400, "invalid_request"},
		{"LiveKit's attribute", map[string]any{"agent": "florencia", "participant_attributes": map[string]string{"lk.agent.state": "speaking"}}, 400, "invalid_request"},
		{"too many attributes", map[string]any{"agent": "florencia", "participant_attributes": manyAttrs(17)}, 400, "invalid_request"},
		{"identity too long", map[string]any{"agent": "florencia", "participant_identity": strings.Repeat("x", 129)}, 400, "invalid_request"},
		{"chat agent asked for webrtc", map[string]any{"agent": "texter", "channel": "webrtc"}, 400, "invalid_request"},
		{"unknown field", map[string]any{"agent": "florencia", "room": "x"}, 400, "invalid_request"},
		{"agent metadata over 2 KiB", map[string]any{"agent": "florencia", "room_config": map[string]any{"agents": []any{map[string]any{"metadata": strings.Repeat("m", 2049)}}}}, 400, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expect(t, do(t, "POST", b.URL+"/livekit/token", k.acme, tc.body), tc.status, tc.code)
		})
	}
	expect(t, do(t, "POST", b.URL+"/livekit/token", k.acmeRedeemOnly, map[string]any{"agent": "florencia"}), 403, "insufficient_scope")

	// Demo rooms for an org that allows them.
	b.rewriteTenants(t, tenantsYAML(k, globexRooms, func(y string) string {
		return strings.Replace(y, "    tier: free\n", "    tier: free\n    allow_demo_rooms: true\n", 1)
	}), "ok")
	expect(t, do(t, "POST", b.URL+"/livekit/token", k.acme, map[string]any{"room_name": "demo_Sales-1", "agent": "florencia"}), 201, "")
}

func manyAttrs(n int) map[string]string {
	m := map[string]string{}
	for i := range n {
		m[fmt.Sprintf("k%d", i)] = "v"
	}
	return m
}

// TestParticipantEndpoints: remove and mute act on the caller's rooms
// only; another org gets 404.
func TestParticipantEndpoints(t *testing.T) {
	b, _ := startWithLiveKit(t, newKeys(t), nil)
	k := b.keys
	globex := k.globex2(t, b)
	r := do(t, "POST", b.URL+"/livekit/token", k.acme, map[string]any{"agent": "florencia", "participant_identity": "speaker"})
	room := join(t, r)
	roomName := r.Body["room_name"].(string)
	track, err := lksdk.NewLocalSampleTrack(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := room.LocalParticipant.PublishTrack(track, &lksdk.TrackPublicationOptions{Name: "mic"})
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	waitParticipant(t, b, k.acme, roomName, "speaker")
	mute := map[string]any{"room_name": roomName, "participant_identity": "speaker", "track_sid": pub.SID(), "muted": true}
	expect(t, do(t, "POST", b.URL+"/livekit/participant/mute", globex, mute), 404, "room_not_found")
	deadline := time.Now().Add(15 * time.Second)
	for {
		mr := do(t, "POST", b.URL+"/livekit/participant/mute", k.acme, mute)
		if mr.Status == 200 {
			if tr, _ := mr.Body["track"].(map[string]any); tr["muted"] != true {
				t.Fatalf("mute body %s", mr.Raw)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mute: %d %s", mr.Status, mr.Raw)
		}
		time.Sleep(100 * time.Millisecond) // the track may not be published server-side yet
	}
	expect(t, do(t, "POST", b.URL+"/livekit/participant/mute", k.acme, map[string]any{"room_name": roomName, "participant_identity": "speaker"}), 400, "invalid_request")

	del := map[string]any{"room_name": roomName, "participant_identity": "speaker"}
	expect(t, do(t, "DELETE", b.URL+"/livekit/participant", globex, del), 404, "room_not_found")
	expect(t, do(t, "DELETE", b.URL+"/livekit/participant", k.acmeRedeemOnly, del), 403, "insufficient_scope")
	expect(t, do(t, "DELETE", b.URL+"/livekit/participant", k.acme, del), 200, "")
	deadline = time.Now().Add(15 * time.Second)
	for {
		d := do(t, "GET", b.URL+"/livekit/rooms/"+roomName, k.acme, nil)
		if d.Status == 404 || !strings.Contains(d.Raw, `"identity":"speaker"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("participant still listed after removal")
		}
		time.Sleep(100 * time.Millisecond)
	}
	expect(t, do(t, "DELETE", b.URL+"/livekit/participant", k.acme, map[string]any{"room_name": "bad name", "participant_identity": "x"}), 400, "invalid_room_name")
}

// TestConnectSurvivesLiveKitOutage: /connect makes no LiveKit call, so
// with LiveKit down it still answers 201; the participant token it gives is
// the session, valid for BROKER_LIVEKIT_TOKEN_TTL, and joins once LiveKit
// is back. The ticket is spent exactly once.
func TestConnectSurvivesLiveKitOutage(t *testing.T) {
	b, lk := startWithLiveKit(t, newKeys(t), map[string]string{"BROKER_LIVEKIT_TIMEOUT": "2s"})
	ticket := b.mint(t, b.keys.acme, map[string]any{"agent": "florencia", "channel": "webrtc", "identity": "patient"})
	lk.Stop()
	r := do(t, "POST", b.URL+"/connect", ticket, nil)
	expect(t, r, 201, "")
	expect(t, do(t, "POST", b.URL+"/connect", ticket, nil), 401, "token_used")
	lk.Start()
	room := join(t, r)
	waitParticipant(t, b, b.keys.acme, room.Name(), "patient")
}

// TestWebhookReleasesOwnership: the real server's room_finished reaches the
// broker and ends the owner record, which is kept while the tokens issued
// with it live: another org cannot take the name of a finished room while
// the first org's user can still rejoin it with the token it holds (LiveKit
// would give the room the configuration of whoever joined first, so that
// user would walk into the other org's room). Forged webhooks are refused.
func TestWebhookReleasesOwnership(t *testing.T) {
	b, lk := startWithLiveKit(t, newKeys(t), nil)
	k := b.keys
	globex := k.globex2(t, b)
	room := "agent_florencia_1700000000_Finish1"
	issued := do(t, "POST", b.URL+"/livekit/token", k.acme, map[string]any{"room_name": room, "agent": "florencia", "participant_identity": "finisher"})
	joined := join(t, issued)
	claimed := time.Now()
	waitParticipant(t, b, k.acme, room, "finisher")
	ctx := context.Background()
	if owner, err := b.app.Store.RoomOwner(ctx, room); err != nil || owner != "acme" {
		t.Fatalf("owner %q %v", owner, err)
	}
	expect(t, do(t, "POST", b.URL+"/livekit/token", globex, map[string]any{"room_name": room, "agent": "florencia"}), 403, "room_forbidden")

	// LiveKit stamps room_finished in whole seconds, and a claim in the
	// second the room finished is kept (it may be later than the finish):
	// finish the room in a later second than the claim.
	afterSecond(claimed)
	rs := lksdk.NewRoomServiceClient(lk.HTTPURL(), lk.APIKey, lk.APISecret)
	if _, err := rs.DeleteRoom(ctx, &lkproto.DeleteRoomRequest{Room: room}); err != nil {
		t.Fatal(err)
	}
	joined.Disconnect()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(b.Logs.String(), `"type":"room_finished"`) {
		if time.Now().After(deadline) {
			t.Fatalf("room_finished never reached the broker\n%s", b.Logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Finished, but acme's token still opens the room: the name stays
	// acme's, and globex is refused it.
	if owner, err := b.app.Store.RoomOwner(ctx, room); err != nil || owner != "acme" {
		t.Fatalf("owner %q %v while acme's token lives", owner, err)
	}
	expect(t, do(t, "POST", b.URL+"/livekit/token", globex, map[string]any{"room_name": room, "agent": "florencia"}), 403, "room_forbidden")
	// acme's user rejoins with the token it holds: an acme room again.
	join(t, issued)
	waitParticipant(t, b, k.acme, room, "finisher")

	// Forged webhooks: a room_finished for a claim of globex's, dated
	// after it.
	room = "agent_florencia_1700000000_Finish2"
	expect(t, do(t, "POST", b.URL+"/livekit/token", globex, map[string]any{"room_name": room, "agent": "florencia"}), 201, "")
	body := []byte(`{"event":"room_finished","id":"EV_forged1","createdAt":"` + fmt.Sprint(time.Now().Add(time.Hour).Unix()) +
		`","room":{"name":"` + room + `","metadata":"{\"auth_id\":\"globex\"}"}}`)
	sign := func(secret string, payload []byte) string {
		sum := sha256.Sum256(payload)
		at := auth.NewAccessToken(lk.APIKey, secret).SetValidFor(time.Minute)
		at.SetSha256(base64.StdEncoding.EncodeToString(sum[:]))
		s, err := at.ToJWT()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	post := func(authz string, payload []byte) response {
		req, _ := http.NewRequest("POST", b.URL+"/livekit/webhook", bytes.NewReader(payload))
		req.Header.Set("Content-Type", "application/webhook+json")
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		return response{Status: resp.StatusCode, Raw: buf.String(), Body: decode(t, buf.String())}
	}
	expect(t, post("", body), 401, "unauthorized")
	expect(t, post(sign("wrong-secret-0123456789abcdef0123456789", body), body), 401, "unauthorized")
	tampered := bytes.Replace(body, []byte("globex"), []byte("acme"), 1)
	expect(t, post(sign(lk.APISecret, body), tampered), 401, "unauthorized")
	if owner, _ := b.app.Store.RoomOwner(ctx, room); owner != "globex" {
		t.Fatalf("a forged webhook changed ownership: %q", owner)
	}
	// A genuine signature over the same body is accepted and ends the
	// record (kept for globex while its token lives).
	expect(t, post(sign(lk.APISecret, body), body), 200, "")
	roomFinishedEnded(t, b, room)
	if owner, _ := b.app.Store.RoomOwner(ctx, room); owner != "globex" {
		t.Fatalf("owner %q while globex's token lives", owner)
	}
}

// afterSecond waits until the wall clock is in a later second than t.
func afterSecond(t time.Time) {
	for time.Now().Unix() <= t.Unix() {
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLiveKitNotConfigured: without LIVEKIT_* the LiveKit endpoints are 501
// and a ticket presented at /connect is not consumed.
func TestLiveKitNotConfigured(t *testing.T) {
	b := startBroker(t, newKeys(t), nil)
	ticket := b.mint(t, b.keys.acme, flo)
	for _, c := range []struct{ method, path, cred string }{
		{"POST", "/connect", ticket}, {"POST", "/livekit/token", b.keys.acme}, {"GET", "/livekit/rooms", b.keys.acme},
		{"GET", "/livekit/rooms/demo_x", b.keys.acme}, {"DELETE", "/livekit/participant", b.keys.acme},
		{"POST", "/livekit/participant/mute", b.keys.acme}, {"POST", "/livekit/webhook", ""},
	} {
		expect(t, do(t, c.method, b.URL+c.path, c.cred, map[string]any{}), 501, "livekit_not_configured")
	}
	expect(t, do(t, "POST", b.URL+"/token/redeem", b.keys.acme, map[string]string{"token": ticket}), 200, "")
}

// TestConnectPublicTicketOrigin: a public ticket trades only from its own
// origin; a refusal leaves it usable. A backend ticket trades from anywhere.
func TestConnectPublicTicketOrigin(t *testing.T) {
	b, _ := startWithLiveKit(t, newKeys(t), nil)
	const allowed = "https://demo.acme.example"
	r := do(t, "POST", b.URL+"/public/token", b.keys.pk, map[string]any{"agent": "florencia", "channel": "webrtc"}, "Origin", allowed)
	expect(t, r, 201, "")
	ticket := r.Body["token"].(string)
	expect(t, do(t, "POST", b.URL+"/connect", ticket, nil, "Origin", "https://evil.example"), 403, "origin_not_allowed")
	expect(t, do(t, "POST", b.URL+"/connect", ticket, nil), 403, "origin_not_allowed")
	ok := do(t, "POST", b.URL+"/connect", ticket, nil, "Origin", allowed)
	expect(t, ok, 201, "")
	if ok.Header.Get("Access-Control-Allow-Origin") != allowed {
		t.Fatalf("connect CORS %v", ok.Header)
	}
	backend := b.mint(t, b.keys.acme, flo)
	expect(t, do(t, "POST", b.URL+"/connect", backend, nil, "Origin", "https://anywhere.example"), 201, "")
}
