package app_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	lkproto "github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/webrtc/v4"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/livekit"
	"github.com/voicebroker/voicebroker/internal/testenv"
)

// These tests run the real livekit-server and real agent workers
// (examples/agent, npm's @livekit/agents): LiveKit dispatches an agent
// when a join creates the room, from the room configuration the broker's
// token carries.

// grantsOf verifies a participant token with LiveKit's secret, as LiveKit
// does, and returns its claims.
func grantsOf(t *testing.T, lk *testenv.LiveKit, r response) *auth.ClaimGrants {
	t.Helper()
	expect(t, r, 201, "")
	v, err := auth.ParseAPIToken(r.Body["participant_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	g, err := v.Verify(lk.APISecret)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// dispatchOf returns the one agent dispatch of a token's room
// configuration and its metadata; "" when the token dispatches none.
func dispatchOf(t *testing.T, g *auth.ClaimGrants) (string, livekit.DispatchMetadata) {
	t.Helper()
	var md livekit.DispatchMetadata
	agents := g.GetRoomConfiguration().GetAgents()
	switch len(agents) {
	case 0:
		return "", md
	case 1:
	default:
		t.Fatalf("%d dispatches", len(agents))
	}
	if err := json.Unmarshal([]byte(agents[0].Metadata), &md); err != nil {
		t.Fatalf("dispatch metadata %q: %v", agents[0].Metadata, err)
	}
	return agents[0].AgentName, md
}

// jobMetadata decodes an agent.job event's dispatch metadata.
func jobMetadata(t *testing.T, job map[string]any) livekit.DispatchMetadata {
	t.Helper()
	var md livekit.DispatchMetadata
	if err := json.Unmarshal([]byte(job["metadata"].(string)), &md); err != nil {
		t.Fatalf("job metadata %v: %v", job["metadata"], err)
	}
	return md
}

// roomNames lists the rooms LiveKit has.
func roomNames(t *testing.T, lk *testenv.LiveKit) []string {
	t.Helper()
	res, err := lksdk.NewRoomServiceClient(lk.HTTPURL(), lk.APIKey, lk.APISecret).ListRooms(context.Background(), &lkproto.ListRoomsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range res.Rooms {
		out = append(out, r.Name)
	}
	return out
}

// TestAgentDispatchedAtJoin: the room and the dispatch happen when the
// caller joins, from the token. A worker that registers after /connect and
// before the join gets the job, with the org, the agent and the caller's
// metadata; a /connect whose token is never used creates no room and
// dispatches nothing; the room carries exactly the broker's metadata.
func TestAgentDispatchedAtJoin(t *testing.T) {
	if testing.Short() {
		t.Skip("needs livekit-server and node")
	}
	b, lk := startWithLiveKit(t, newKeys(t), nil)
	k := b.keys

	// /connect before any worker exists.
	early := do(t, "POST", b.URL+"/connect", b.mint(t, k.acme, map[string]any{
		"agent": "florencia", "channel": "webrtc", "identity": "early-caller", "metadata": map[string]any{"plan": "gold", "lang": "es"},
	}), nil)
	expect(t, early, 201, "")
	earlyRoom := early.Body["room_name"].(string)
	name, md := dispatchOf(t, grantsOf(t, lk, early))
	if name != "florencia" || md.Org != "acme" || md.Agent != "florencia" || !jsonEqual(md.Metadata, `{"plan":"gold","lang":"es"}`) {
		t.Fatalf("dispatch %q %+v", name, md)
	}

	w := testenv.StartAgentWorker(t, lk, "florencia")

	// A /connect with the worker registered, whose token is never used.
	unused := do(t, "POST", b.URL+"/connect", b.mint(t, k.acme, flo), nil)
	expect(t, unused, 201, "")
	unusedRoom := unused.Body["room_name"].(string)

	caller, heard := joinListening(t, early)
	job := w.WaitJob(earlyRoom)
	if job["agentName"] != "florencia" {
		t.Errorf("job agentName %v", job["agentName"])
	}
	if got := jobMetadata(t, job); got.Org != "acme" || got.Agent != "florencia" || !jsonEqual(got.Metadata, `{"plan":"gold","lang":"es"}`) {
		t.Errorf("job metadata %+v", got)
	}
	if job["roomMetadata"] != `{"auth_id":"acme","agent":"florencia"}` {
		t.Errorf("room metadata %v", job["roomMetadata"])
	}
	// The agent joins the caller's room.
	w.WaitEvent(60*time.Second, "caller", func(e map[string]any) bool {
		return e["event"] == "agent.caller" && e["room"] == earlyRoom && e["caller"] == "early-caller"
	})
	waitParticipant(t, b, k.acme, earlyRoom, "agent-"+job["jobId"].(string))
	// The caller hears the agent's greeting: Opus packets far larger than
	// silence's, for half a second at least (a silent agent fails this).
	waitForWithin(t, 60*time.Second, "the agent's greeting", func() bool { return heard.Load() >= 25 })
	// The agent echoes what the caller publishes.
	mic, err := lksdk.NewLocalSampleTrack(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := caller.LocalParticipant.PublishTrack(mic, &lksdk.TrackPublicationOptions{Name: "mic"}); err != nil {
		t.Fatal(err)
	}
	w.WaitEvent(60*time.Second, "echo", func(e map[string]any) bool {
		return e["event"] == "agent.echo" && e["room"] == earlyRoom
	})

	// The unused token: no room in LiveKit, no job.
	for _, r := range roomNames(t, lk) {
		if r == unusedRoom {
			t.Fatalf("room %s of an unused /connect exists", r)
		}
	}
	if jobs := w.Jobs(unusedRoom); len(jobs) != 0 {
		t.Fatalf("an unused /connect dispatched %v", jobs)
	}
	caller.Disconnect()
}

// TestTokenSourceBodies: LiveKit's TokenSourceRequest in snake_case and in
// camelCase, with and without the broker's agent, gets 201 and the right
// dispatch: the agent inferred from agent, from room_config's LiveKit agent
// name or from an agent_ room name; none for a demo_ room. A real worker
// receives the caller's agent metadata.
func TestTokenSourceBodies(t *testing.T) {
	if testing.Short() {
		t.Skip("needs livekit-server and node")
	}
	k := newKeys(t)
	b, lk := startWithLiveKit(t, k, nil)
	// acme's florencia is dispatched under its own LiveKit name; demo rooms on.
	writeFile(t, b.Dir+"/tenants.yaml", tenantsYAML(k, func(y string) string {
		y = strings.Replace(y, "      - id: florencia\n        channels: [webrtc, chat]\n",
			"      - id: florencia\n        channels: [webrtc, chat]\n        livekit_agent_name: acme-florencia\n", 1)
		return strings.Replace(y, "    tier: free\n", "    tier: free\n    allow_demo_rooms: true\n", 1)
	}))
	waitFor(t, "the reload", func() bool {
		return do(t, "POST", b.URL+"/livekit/token", k.acme, map[string]any{"room_name": "demo_probe"}).Status == 201
	})

	const agentRoom = "agent_florencia_1700000000_"
	for _, tc := range []struct {
		name     string
		body     string
		room     string // "" for a generated one
		dispatch string // LiveKit agent name; "" for none
		agent    string
		meta     string
		channel  string
	}{
		{"snake_case, agent from room_config", `{"room_name":"` + agentRoom + `Snake1","participant_identity":"snake","participant_name":"Snake","participant_metadata":"{\"a\":1}","participant_attributes":{"team":"blue"},"room_config":{"agents":[{"agent_name":"acme-florencia","metadata":"{\"topic\":\"snake\"}"}]}}`,
			agentRoom + "Snake1", "acme-florencia", "florencia", `{"topic":"snake"}`, "webrtc"},
		{"camelCase, agent from room_config", `{"roomName":"` + agentRoom + `Camel1","participantIdentity":"camel","participantName":"Camel","participantAttributes":{"team":"red"},"roomConfig":{"agents":[{"agentName":"acme-florencia","metadata":"camel"}]}}`,
			agentRoom + "Camel1", "acme-florencia", "florencia", "camel", "webrtc"},
		{"snake_case with agent and channel", `{"room_name":"` + agentRoom + `Agent1","agent":"florencia","channel":"chat"}`,
			agentRoom + "Agent1", "acme-florencia", "florencia", "", "chat"},
		{"camelCase with agent, metadata only in room_config", `{"roomName":"` + agentRoom + `Agent2","agent":"florencia","roomConfig":{"agents":[{"metadata":"m2"}]}}`,
			agentRoom + "Agent2", "acme-florencia", "florencia", "m2", "webrtc"},
		{"room name only", `{"room_name":"` + agentRoom + `Named1"}`, agentRoom + "Named1", "acme-florencia", "florencia", "", "webrtc"},
		{"camelCase room name only", `{"roomName":"agent_texter_1700000000_Named2"}`, "agent_texter_1700000000_Named2", "texter", "texter", "", "chat"},
		{"agent only, generated room", `{"agent":"florencia"}`, "", "acme-florencia", "florencia", "", "webrtc"},
		{"room_config only, generated room", `{"room_config":{"agents":[{"agent_name":"acme-florencia","metadata":"gen"}]}}`, "", "acme-florencia", "florencia", "gen", "webrtc"},
		{"demo room without agent", `{"room_name":"demo_lobby-1","participant_identity":"guest"}`, "demo_lobby-1", "", "", "", "webrtc"},
		{"demo room with agent", `{"roomName":"demo_lobby-2","roomConfig":{"agents":[{"agentName":"acme-florencia"}]}}`, "demo_lobby-2", "acme-florencia", "florencia", "", "webrtc"},
		{"nulls are unset", `{"room_name":"demo_lobby-3","room_config":null,"agent":null,"participant_identity":null}`, "demo_lobby-3", "", "", "", "webrtc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, "POST", b.URL+"/livekit/token", k.acme, tc.body)
			g := grantsOf(t, lk, r)
			room, _ := r.Body["room_name"].(string)
			if tc.room != "" && room != tc.room {
				t.Fatalf("room %q, want %q", room, tc.room)
			}
			if tc.room == "" && !strings.HasPrefix(room, "agent_florencia_") {
				t.Fatalf("generated room %q", room)
			}
			if g.Video.Room != room {
				t.Fatalf("token for room %q, answer says %q", g.Video.Room, room)
			}
			name, md := dispatchOf(t, g)
			if name != tc.dispatch {
				t.Fatalf("dispatch %q, want %q", name, tc.dispatch)
			}
			if tc.dispatch != "" && md != (livekit.DispatchMetadata{Org: "acme", Agent: tc.agent, Metadata: tc.meta}) {
				t.Fatalf("dispatch metadata %+v", md)
			}
			wantRoomMD := `{"auth_id":"acme","agent":"` + tc.agent + `"}`
			if tc.agent == "" {
				wantRoomMD = `{"auth_id":"acme"}`
			}
			if got := g.GetRoomConfiguration().GetMetadata(); got != wantRoomMD {
				t.Fatalf("room metadata %q, want %q", got, wantRoomMD)
			}
			if g.Attributes["org"] != "acme" || g.Attributes["agent"] != tc.agent || g.Attributes["channel"] != tc.channel {
				t.Fatalf("attributes %v", g.Attributes)
			}
			if g.Video.GetCanPublish() != (tc.channel == "webrtc") {
				t.Fatalf("can publish %v for %s", g.Video.GetCanPublish(), tc.channel)
			}
		})
	}
	// Same-org ambiguity and a mismatch are refused.
	expect(t, do(t, "POST", b.URL+"/livekit/token", k.acme, `{"room_name":"`+agentRoom+`BadOne1","room_config":{"agents":[{"agent_name":"texter"}]}}`), 400, "invalid_room_name")
	expect(t, do(t, "POST", b.URL+"/livekit/token", k.acme, `{"room_config":{"agents":[{"agent_name":"florencia"}]}}`), 404, "unknown_agent")
	expect(t, do(t, "POST", b.URL+"/livekit/token", k.acme, `{"room_name":"demo_x","room_config":{"agents":[{"metadata":"for nobody"}]}}`), 400, "invalid_request")

	// The caller's agent metadata reaches a real worker's job, snake_case and camelCase.
	w := testenv.StartAgentWorker(t, lk, "acme-florencia")
	for _, c := range []struct{ room, body, meta string }{
		{agentRoom + "JobOne1", `{"room_name":"` + agentRoom + `JobOne1","participant_identity":"j1","room_config":{"agents":[{"agent_name":"acme-florencia","metadata":"{\"user\":\"ana\"}"}]}}`, `{"user":"ana"}`},
		{agentRoom + "JobTwo2", `{"roomName":"` + agentRoom + `JobTwo2","participantIdentity":"j2","roomConfig":{"agents":[{"agentName":"acme-florencia","metadata":"camel job"}]}}`, "camel job"},
	} {
		caller := join(t, do(t, "POST", b.URL+"/livekit/token", k.acme, c.body))
		job := w.WaitJob(c.room)
		if got := jobMetadata(t, job); got != (livekit.DispatchMetadata{Org: "acme", Agent: "florencia", Metadata: c.meta}) || job["agentName"] != "acme-florencia" {
			t.Errorf("job %v", job)
		}
		caller.Disconnect()
	}
	// A demo room without an agent gets no job.
	guest := join(t, do(t, "POST", b.URL+"/livekit/token", k.acme, `{"room_name":"demo_quiet","participant_identity":"guest"}`))
	waitParticipant(t, b, k.acme, "demo_quiet", "guest")
	probe := join(t, do(t, "POST", b.URL+"/livekit/token", k.acme, `{"room_name":"`+agentRoom+`After1"}`))
	w.WaitJob(agentRoom + "After1")
	if jobs := w.Jobs("demo_quiet"); len(jobs) != 0 {
		t.Fatalf("a room without an agent got %v", jobs)
	}
	guest.Disconnect()
	probe.Disconnect()
}

// TestAgentNamesDoNotCrossOrgs: two orgs with the same agent id reach two
// different workers (each agent its own livekit_agent_name), and a fleet
// shared on purpose (livekit_agent_shared) gets both orgs' jobs, told apart
// by the job's metadata.
func TestAgentNamesDoNotCrossOrgs(t *testing.T) {
	if testing.Short() {
		t.Skip("needs livekit-server and node")
	}
	k := newKeys(t)
	b, lk := startWithLiveKit(t, k, nil)
	writeFile(t, b.Dir+"/tenants.yaml", tenantsYAML(k, globexRooms, func(y string) string {
		// acme's texter and globex's hank: one shared fleet.
		y = strings.Replace(y, "        server: wss://voice.acme.example\n",
			"        server: wss://voice.acme.example\n        livekit_agent_name: fleet\n        livekit_agent_shared: true\n", 1)
		return strings.Replace(y, "      - id: hank\n        channels: [webrtc]\n",
			"      - id: hank\n        channels: [webrtc]\n        livekit_agent_name: fleet\n        livekit_agent_shared: true\n", 1)
	}))
	waitFor(t, "the reload", func() bool {
		return do(t, "POST", b.URL+"/token", k.globex, map[string]any{"agent": "florencia", "channel": "webrtc"}).Status == 201
	})
	acmeW := testenv.StartAgentWorker(t, lk, "florencia")
	globexW := testenv.StartAgentWorker(t, lk, "globex-florencia")
	fleetW := testenv.StartAgentWorker(t, lk, "fleet")

	connect := func(key, agent, channel string) (*lksdk.Room, string) {
		r := do(t, "POST", b.URL+"/connect", b.mint(t, key, map[string]any{"agent": agent, "channel": channel}), nil)
		return join(t, r), r.Body["room_name"].(string)
	}
	acmeCall, acmeRoom := connect(k.acme, "florencia", "webrtc")
	globexCall, globexRoom := connect(k.globex, "florencia", "webrtc")
	if md := jobMetadata(t, acmeW.WaitJob(acmeRoom)); md.Org != "acme" || md.Agent != "florencia" {
		t.Errorf("acme's worker got %+v", md)
	}
	if md := jobMetadata(t, globexW.WaitJob(globexRoom)); md.Org != "globex" || md.Agent != "florencia" {
		t.Errorf("globex's worker got %+v", md)
	}
	acmeCall.Disconnect()
	globexCall.Disconnect()

	textCall, textRoom := connect(k.acme, "texter", "chat")
	hankCall, hankRoom := connect(k.globex, "hank", "webrtc")
	if md := jobMetadata(t, fleetW.WaitJob(textRoom)); md.Org != "acme" || md.Agent != "texter" {
		t.Errorf("the fleet got %+v for acme", md)
	}
	if md := jobMetadata(t, fleetW.WaitJob(hankRoom)); md.Org != "globex" || md.Agent != "hank" {
		t.Errorf("the fleet got %+v for globex", md)
	}
	textCall.Disconnect()
	hankCall.Disconnect()

	// No worker saw a job that was not its own.
	for _, c := range []struct {
		w    *testenv.AgentWorker
		want []string
	}{{acmeW, []string{acmeRoom}}, {globexW, []string{globexRoom}}, {fleetW, []string{textRoom, hankRoom}}} {
		for _, j := range c.w.Jobs("") {
			if !contains(c.want, j["room"].(string)) {
				t.Errorf("worker %q got a job for %v", c.w.Name, j["room"])
			}
		}
	}
}

// joinListening joins like join, subscribed to everything, and counts the
// audio packets it receives whose Opus payload is larger than silence's:
// silence from the agent is 1 to 3 bytes (DTX) with a 55-byte packet now
// and then, its 440 Hz greeting 90 to 190 bytes a packet (measured here).
// No Opus decoder is at hand in Go; a browser test can measure levels.
func joinListening(t *testing.T, r response) (*lksdk.Room, *atomic.Int64) {
	t.Helper()
	expect(t, r, 201, "")
	var loud atomic.Int64
	cb := &lksdk.RoomCallback{ParticipantCallback: lksdk.ParticipantCallback{
		OnTrackSubscribed: func(track *webrtc.TrackRemote, _ *lksdk.RemoteTrackPublication, _ *lksdk.RemoteParticipant) {
			if track.Kind() != webrtc.RTPCodecTypeAudio {
				return
			}
			go func() {
				for {
					p, _, err := track.ReadRTP()
					if err != nil {
						return
					}
					if len(p.Payload) > 80 {
						loud.Add(1)
					}
				}
			}()
		},
	}}
	room, err := lksdk.ConnectToRoomWithToken(r.Body["server_url"].(string), r.Body["participant_token"].(string), cb)
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	t.Cleanup(room.Disconnect)
	return room, &loud
}

// jsonEqual reports whether two JSON texts hold the same value.
func jsonEqual(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitForWithin(t, 10*time.Second, what, cond)
}

// waitForWithin polls cond for up to within.
func waitForWithin(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAgentNameCollisionRefused: a tenants file where two orgs' agents
// would share a LiveKit agent name is refused at start, and on reload the
// old tenants stay in force.
func TestAgentNameCollisionRefused(t *testing.T) {
	k := newKeys(t)
	colliding := tenantsYAML(k, func(y string) string { // globex gets a florencia too, same LiveKit name
		return strings.Replace(y, "    agents:\n      - id: hank", "    agents:\n      - id: florencia\n        channels: [webrtc]\n      - id: hank", 1)
	})
	dir := t.TempDir()
	writeFile(t, dir+"/tenants.yaml", colliding)
	// What the broker loads at start (app.New builds its tenants holder so).
	_, err := config.NewHolder(dir+"/tenants.yaml", slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err == nil || !strings.Contains(err.Error(), `orgs[1].agents[0].livekit_agent_name: LiveKit agent name "florencia"`) {
		t.Fatalf("start with a shared LiveKit agent name: %v", err)
	}

	b := startBroker(t, k, nil)
	b.rewriteTenants(t, colliding, "error")
	expect(t, do(t, "POST", b.URL+"/token", k.globex, map[string]any{"agent": "florencia", "channel": "webrtc"}), 404, "unknown_agent")
	if !strings.Contains(b.Logs.String(), "livekit_agent_name") {
		t.Fatal("the refused reload does not say why")
	}
}
