package app_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	lkproto "github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/redis/go-redis/v9"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/app"
	"github.com/voicebroker/voicebroker/internal/httpapi"
	"github.com/voicebroker/voicebroker/internal/testenv"
)

// TestOrgProjectOnTheDefaultServer: an org's own project on the default
// project's LiveKit server (a self-hosted livekit-server with a second key
// for acme, however its URL is spelt) is refused at reload, with a message
// naming LIVEKIT_URL, the server and the org, and the tenants in force
// stay: any key of a server signs tokens for every room on it, as the
// real server shows here by letting acme's key into globex's room. Such a
// file stops the broker at start too. Renewing live rooms is tested on
// two servers (TestLiveRoomsKeepTheirNamesOnTwoServers).
func TestOrgProjectOnTheDefaultServer(t *testing.T) {
	if testing.Short() {
		t.Skip("needs livekit-server and redis-server")
	}
	hook := testenv.NewForwarder(t)
	lk := testenv.StartLiveKitWithKeys(t, hook.URL+"/livekit/webhook", "testkey", "vb-test-secret-0123456789abcdef0123456789",
		map[string]string{acmeLKKey: acmeLKSecret})
	t.Setenv(acmeLKEnv, acmeLKSecret)
	k := newKeys(t)
	vars := map[string]string{
		"LIVEKIT_URL": lk.URL, "LIVEKIT_API_KEY": lk.APIKey, "LIVEKIT_API_SECRET": lk.APISecret,
		"BROKER_REDIS_URL": nextRedisURL(t),
	}
	b := startBroker(t, k, vars)
	hook.To(t, b.URL)
	b.rewriteTenants(t, tenantsYAML(k, globexRooms), "ok")

	// Why: globex's room on the default project, joined with a token that
	// acme's key signed, as acme could sign it with its project's secret.
	const globexRoom = "agent_florencia_1700000000_KeepGlobex1"
	join(t, do(t, "POST", b.URL+"/livekit/token", k.globex, map[string]any{"room_name": globexRoom, "agent": "florencia", "participant_identity": "user"}))
	at := auth.NewAccessToken(acmeLKKey, acmeLKSecret).SetIdentity("intruder").SetValidFor(time.Minute).
		SetVideoGrant(&auth.VideoGrant{RoomJoin: true, Room: globexRoom})
	jwt, err := at.ToJWT()
	if err != nil {
		t.Fatal(err)
	}
	intruder, err := lksdk.ConnectToRoomWithToken(lk.URL, jwt, &lksdk.RoomCallback{}, lksdk.WithAutoSubscribe(false))
	if err != nil {
		t.Fatalf("the server refused a second key's token (the refusal below would not be needed): %v", err)
	}
	intruder.Disconnect()

	server := strings.TrimPrefix(lk.URL, "ws://")
	want := `LIVEKIT_URL: is the LiveKit server (` + server + `) of the livekit.url of org "acme"; an API key of a LiveKit server opens every room on it`
	logged := strings.ReplaceAll(want, `"`, `\"`) // in a JSON string
	for _, url := range []string{lk.URL, strings.Replace(lk.HTTPURL(), "http://", "HTTP://", 1) + "/"} {
		before := strings.Count(b.Logs.String(), logged)
		b.rewriteTenants(t, tenantsYAML(k, globexRooms, acmeOwnLiveKit(url)), "error")
		if strings.Count(b.Logs.String(), logged) <= before {
			t.Fatalf("the refused reload (%s) does not say why:\n%s", url, b.Logs.String())
		}
		if b.app.Tenants.Snapshot().LiveKit("acme") != nil {
			t.Fatal("acme got its project on the default server")
		}
	}
	// The tenants in force are the earlier ones: acme's tokens are the
	// default project's.
	r := do(t, "POST", b.URL+"/livekit/token", k.acme, map[string]any{"agent": "florencia", "participant_identity": "u"})
	if v, err := auth.ParseAPIToken(str(r, "participant_token")); r.Status != 201 || err != nil || v.APIKey() != lk.APIKey {
		t.Fatalf("acme's token after the refused reload: %d %s", r.Status, r.Raw)
	}
	for _, secret := range []string{acmeLKSecret, lk.APISecret} {
		if strings.Contains(b.Logs.String(), secret) {
			t.Fatal("a LiveKit secret in the log")
		}
	}

	// At start, the same file is refused with the same words.
	path := filepath.Join(t.TempDir(), "tenants.yaml")
	writeFile(t, path, tenantsYAML(k, globexRooms, acmeOwnLiveKit(lk.URL)))
	vars["BROKER_CONFIG"], vars["BROKER_ADDR"] = path, "127.0.0.1:0"
	env, err := config.LoadEnv(func(n string) string { return vars[n] })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.New(env, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("start: %v", err)
	}
}

// TestLiveRoomsKeepTheirNamesOnTwoServers: with the default project and
// acme's own on two servers (as LiveKit Cloud projects are, and as an
// org's project must be), each server is listed and each org's live room
// renewed, and so is a room without owner metadata (as an agent's job
// token reopens one) for the org the store names; a room on acme's server
// whose metadata names globex, which acme can make with its project's
// secret, renews nothing of globex's, and one naming acme without a
// record gets none (only the default server's rooms, whose metadata only
// the broker writes, get a lost record back); a room acme left on the
// default server when it moved to its own project is still renewed. A
// record left to its last minute (a room that has run for a day) is back
// to RoomOwnerTTL, globex is refused each of acme's live names, and the
// sweep's log line holds counts, never a credential.
func TestLiveRoomsKeepTheirNamesOnTwoServers(t *testing.T) {
	redisURL := nextRedisURL(t)
	b, def, acmeLK := brokerOfTwoProjects(t, map[string]string{"BROKER_REDIS_URL": redisURL})
	k := b.keys

	const acmeRoom, globexRoom, fake = "agent_florencia_1700000000_TwoAcme1", "agent_florencia_1700000000_TwoGlobex1", "agent_florencia_1700000000_TwoFake1"
	const unrecorded, moved = "agent_florencia_1700000000_TwoNoRec1", "agent_florencia_1700000000_TwoMoved1"
	const bareRoom = "agent_florencia_1700000000_TwoBare1"
	for _, c := range []struct{ cred, room string }{{k.acme, acmeRoom}, {k.globex, globexRoom}} {
		room := join(t, do(t, "POST", b.URL+"/livekit/token", c.cred, map[string]any{"room_name": c.room, "agent": "florencia", "participant_identity": "user"}))
		t.Cleanup(room.Disconnect)
	}
	for _, r := range []struct {
		lk       *testenv.LiveKit
		name, md string
	}{
		{acmeLK, fake, `{"auth_id":"globex"}`}, {acmeLK, unrecorded, `{"auth_id":"acme"}`},
		{acmeLK, bareRoom, ""}, // without owner metadata, whose name acme holds
		{def, moved, `{"auth_id":"acme"}`},
	} {
		if _, err := lksdk.NewRoomServiceClient(r.lk.HTTPURL(), r.lk.APIKey, r.lk.APISecret).CreateRoom(context.Background(),
			&lkproto.CreateRoomRequest{Name: r.name, EmptyTimeout: 600, Metadata: r.md}); err != nil {
			t.Fatal(err)
		}
	}
	owners := map[string]string{acmeRoom: "acme", globexRoom: "globex", bareRoom: "acme", moved: "acme"}
	lastMinute(t, b, map[string]string{acmeRoom: "acme", globexRoom: "globex", bareRoom: "acme", fake: "globex", moved: "acme"})
	sweepRenews(t, b, redisURL, httpapi.RoomSweep{Servers: 2, Rooms: 5, Renewed: 4}, owners)
	if o, err := b.app.Store.RoomOwner(context.Background(), unrecorded); err == nil {
		t.Fatalf("a record was made for %q from a room on its own server", o)
	}
	if ttl := redisClient(t, redisURL).PTTL(context.Background(), "vb:room:"+fake).Val(); ttl > time.Minute {
		t.Fatalf("globex's record of a room made on acme's server was renewed (%v left)", ttl)
	}
	// globex, refused each live name of acme's (LiveKit's metadata and the
	// store agree), and the bare room's (the store's record).
	for _, room := range []string{acmeRoom, bareRoom} {
		expect(t, do(t, "POST", b.URL+"/livekit/token", k.globex, map[string]any{"room_name": room, "agent": "florencia"}), 403, "room_forbidden")
	}
	for _, secret := range []string{acmeLKSecret, def.APISecret} {
		if strings.Contains(b.Logs.String(), secret) {
			t.Fatal("a LiveKit secret in the log")
		}
	}
}

func redisClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// lastMinute leaves each room's owner record (room to org) at its last
// minute, as after a day of its room.
func lastMinute(t *testing.T, b *broker, owners map[string]string) {
	t.Helper()
	for room, org := range owners {
		if o, err := b.app.Store.ClaimRoom(context.Background(), room, org, time.Minute, 0); err != nil || o != org {
			t.Fatalf("%s: owner %q, %v", room, o, err)
		}
	}
}

// sweepRenews runs a sweep (again, within a second, until LiveKit lists
// every room just joined) and checks its counts, and that each room's
// record is its org's, back to about RoomOwnerTTL.
func sweepRenews(t *testing.T, b *broker, redisURL string, want httpapi.RoomSweep, owners map[string]string) {
	t.Helper()
	ctx := context.Background()
	var sw httpapi.RoomSweep
	var err error
	withinSecond(t, "every live room listed", func() bool {
		sw, err = b.app.Rooms.RenewLiveRooms(ctx)
		return err == nil && sw.Rooms >= want.Rooms
	})
	if sw != want {
		t.Fatalf("sweep %+v, want %+v", sw, want)
	}
	rdb := redisClient(t, redisURL)
	for room, org := range owners {
		if o, err := b.app.Store.RoomOwner(ctx, room); err != nil || o != org {
			t.Fatalf("%s: owner %q, %v; want %s", room, o, err, org)
		}
		if ttl := rdb.PTTL(ctx, "vb:room:"+room).Val(); ttl < httpapi.RoomOwnerTTL-time.Hour {
			t.Fatalf("%s: the record lives %v more, want about %v", room, ttl, httpapi.RoomOwnerTTL)
		}
	}
}

// TestBrokerSweepsLiveRooms: a running broker sweeps on its own, and logs
// each sweep.
func TestBrokerSweepsLiveRooms(t *testing.T) {
	roomRenewInterval = 50 * time.Millisecond
	b, _ := startWithLiveKit(t, newKeys(t), nil)
	roomRenewInterval = 1000 * time.Hour
	room := join(t, do(t, "POST", b.URL+"/livekit/token", b.keys.acme, map[string]any{"agent": "florencia", "participant_identity": "user"}))
	t.Cleanup(room.Disconnect)
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(b.Logs.String(), `"event":"rooms.renew","servers":1,"rooms":1,"renewed":1,`) {
		if time.Now().After(deadline) {
			t.Fatalf("no sweep renewed the live room in 15 s: %s", b.Logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLiveRoomWithoutMetadata: a live room without owner metadata (as an
// agent's job token reopens one) on the default server, which every org
// without a project of its own shares, goes to no org that does not hold
// its name, and to the one that does (its metadata then written); on an
// org's own server, whose rooms are all that org's, it goes to that org.
func TestLiveRoomWithoutMetadata(t *testing.T) {
	b, def, acmeLK := brokerOfTwoProjects(t, nil)
	k := b.keys
	const onDefault, onOwn = "agent_florencia_1700000000_BareDef1", "agent_florencia_1700000000_BareOwn1"
	for _, r := range []struct {
		lk   *testenv.LiveKit
		name string
	}{{def, onDefault}, {acmeLK, onOwn}} {
		if _, err := lksdk.NewRoomServiceClient(r.lk.HTTPURL(), r.lk.APIKey, r.lk.APISecret).CreateRoom(context.Background(),
			&lkproto.CreateRoomRequest{Name: r.name, EmptyTimeout: 600}); err != nil {
			t.Fatal(err)
		}
	}
	body := map[string]any{"room_name": onDefault, "agent": "florencia"}
	expect(t, do(t, "POST", b.URL+"/livekit/token", k.globex, body), 403, "room_forbidden")
	if _, err := b.app.Store.RoomOwner(context.Background(), onDefault); err == nil {
		t.Fatal("a refused org claimed the room")
	}
	// globex holds the name (its agent's room, reopened): it gets it, and
	// the room its metadata.
	if _, err := b.app.Store.ClaimRoom(context.Background(), onDefault, "globex", time.Hour, 0); err != nil {
		t.Fatal(err)
	}
	expect(t, do(t, "POST", b.URL+"/livekit/token", k.globex, body), 201, "")
	res, err := lksdk.NewRoomServiceClient(def.HTTPURL(), def.APIKey, def.APISecret).ListRooms(context.Background(), &lkproto.ListRoomsRequest{Names: []string{onDefault}})
	if err != nil || len(res.Rooms) != 1 || !strings.Contains(res.Rooms[0].Metadata, `"auth_id":"globex"`) {
		t.Fatalf("metadata after the holder's token: %v, %v", res.GetRooms(), err)
	}
	// On acme's own server: acme's.
	expect(t, do(t, "POST", b.URL+"/livekit/token", k.acme, map[string]any{"room_name": onOwn, "agent": "florencia"}), 201, "")
}

// TestDeletingAnOrgEndsItsRooms: deleting an org through the admin API
// ends its live rooms (its user is disconnected, the room is gone from
// LiveKit) and leaves other orgs' alone; an org whose LiveKit cannot be
// reached is not deleted (502), so that the call can be made again. The
// sweep renews no record of an org the registry no longer has.
func TestDeletingAnOrgEndsItsRooms(t *testing.T) {
	if testing.Short() {
		t.Skip("needs livekit-server")
	}
	lk := testenv.StartLiveKit(t, "")
	a := startAdmin(t, map[string]string{
		"BROKER_CONFIG": "", "LIVEKIT_URL": lk.URL, "LIVEKIT_API_KEY": lk.APIKey, "LIVEKIT_API_SECRET": lk.APISecret,
	})
	call := func(method, path string, body any, status int) response {
		t.Helper()
		r := a.do(t, method, path, body)
		expect(t, r, status, "")
		return r
	}
	keys, rooms, users := map[string]string{}, map[string]string{}, map[string]*lksdk.Room{}
	for _, org := range []string{"initech", "hooli"} {
		call("POST", "/admin/orgs", map[string]any{"id": org, "tier": "free"}, 201)
		call("PUT", "/admin/orgs/"+org+"/agents/bob", map[string]any{"channels": []string{"webrtc"}, "livekit_agent_name": org + "-bob"}, 201)
		keys[org] = str(call("POST", "/admin/orgs/"+org+"/keys", map[string]any{"id": "ops", "scopes": []string{"livekit:token"}}, 201), "key")
		var r response
		within(t, time.Second, "the new key usable", 201, func() response {
			r = do(t, "POST", a.URL+"/livekit/token", keys[org], map[string]any{"agent": "bob", "participant_identity": "user"})
			return r
		})
		rooms[org], users[org] = str(r, "room_name"), join(t, r)
		t.Cleanup(users[org].Disconnect)
	}
	live := func(room string) bool { return has(roomsOf(t, lk), room) }
	withinSecond(t, "both rooms live", func() bool { return live(rooms["initech"]) && live(rooms["hooli"]) })

	call("DELETE", "/admin/orgs/initech", nil, 204)
	withinSecond(t, "the deleted org's room ended", func() bool { return !live(rooms["initech"]) })
	withinSecond(t, "its user disconnected", func() bool {
		return users["initech"].ConnectionState() == lksdk.ConnectionStateDisconnected
	})
	if !live(rooms["hooli"]) {
		t.Fatal("another org's room was ended")
	}
	if sw, err := a.app.Rooms.RenewLiveRooms(context.Background()); err != nil || sw.Rooms != 1 || sw.Renewed != 1 {
		t.Fatalf("sweep after the deletion %+v, %v: want hooli's room alone", sw, err)
	}

	// An org whose own LiveKit cannot be reached: 502, and it stays.
	call("POST", "/admin/orgs", map[string]any{"id": "pied-piper", "tier": "free"}, 201)
	call("PUT", "/admin/orgs/pied-piper/livekit", map[string]any{
		"url": "ws://127.0.0.1:9", "api_key": "APIpiedpiper", "api_secret": strings.Repeat("p", 40)}, 200)
	expect(t, a.do(t, "DELETE", "/admin/orgs/pied-piper", nil), 502, "livekit_unavailable")
	call("GET", "/admin/orgs/pied-piper", nil, 200)
}

// TestDeletingAnOrgEndsItsRoomsOnEveryProject: an org that moved to a
// project of its own leaves its rooms on the default server (the sweep
// still renews them); deleting it ends those too, not only its own
// project's. (A reviewer's finding: the first version looked at the
// org's own project alone.)
func TestDeletingAnOrgEndsItsRoomsOnEveryProject(t *testing.T) {
	if testing.Short() {
		t.Skip("needs livekit-server")
	}
	def := testenv.StartLiveKit(t, "")
	own := testenv.StartLiveKitWithKey(t, "", acmeLKKey, acmeLKSecret)
	a := startAdmin(t, map[string]string{
		"BROKER_CONFIG": "", "LIVEKIT_URL": def.URL, "LIVEKIT_API_KEY": def.APIKey, "LIVEKIT_API_SECRET": def.APISecret,
	})
	expect(t, a.do(t, "POST", "/admin/orgs", map[string]any{"id": "initech", "tier": "free"}), 201, "")
	expect(t, a.do(t, "PUT", "/admin/orgs/initech/agents/bob", map[string]any{"channels": []string{"webrtc"}, "livekit_agent_name": "initech-bob"}), 201, "")
	key := str(a.do(t, "POST", "/admin/orgs/initech/keys", map[string]any{"id": "ops", "scopes": []string{"livekit:token"}}), "key")
	var r response
	within(t, time.Second, "the new key usable", 201, func() response {
		r = do(t, "POST", a.URL+"/livekit/token", key, map[string]any{"agent": "bob", "participant_identity": "user"})
		return r
	})
	room, user := str(r, "room_name"), join(t, r)
	t.Cleanup(user.Disconnect)
	withinSecond(t, "the room live on the default server", func() bool { return has(roomsOf(t, def), room) })
	expect(t, a.do(t, "PUT", "/admin/orgs/initech/livekit", map[string]any{"url": own.URL, "api_key": own.APIKey, "api_secret": own.APISecret}), 200, "")
	expect(t, a.do(t, "DELETE", "/admin/orgs/initech", nil), 204, "")
	withinSecond(t, "the room left on the default server ended", func() bool { return !has(roomsOf(t, def), room) })
}

// TestOrgProjectOnAnotherBrokersDefaultServer: two brokers of one
// database whose LIVEKIT_URLs differ (a move rolled out one broker at a
// time). Broker A, still on the old URL, accepts an org project on the
// new default server, which broker B refuses itself; B then serves that
// org nothing of LiveKit (500 config_error), since the project's key
// would open every room of B's default server, and its sweep does not
// list with it, while A, for which it is a server of the org's own, goes
// on. (A reviewer's finding: B kept serving it, only logging.)
func TestOrgProjectOnAnotherBrokersDefaultServer(t *testing.T) {
	vars := map[string]string{"BROKER_CONFIG": "", "BROKER_DATABASE_URL": testenv.PostgresURL(t), "BROKER_SECRETS_KEY_FILE": secretsKeyFile(t)}
	const oldDef, newDef = "ws://127.0.0.1:17001", "ws://127.0.0.1:17002"
	lk := func(url string) []string {
		return []string{"LIVEKIT_URL", url, "LIVEKIT_API_KEY", "APIdefault", "LIVEKIT_API_SECRET", strings.Repeat("d", 40)}
	}
	b := startAdmin(t, vars, lk(newDef)...)
	a := startAdmin(t, vars, lk(oldDef)...)
	expect(t, a.do(t, "POST", "/admin/orgs", map[string]any{"id": "acme", "tier": "free"}), 201, "")
	expect(t, a.do(t, "PUT", "/admin/orgs/acme/agents/bob", map[string]any{"channels": []string{"webrtc"}}), 201, "")
	key := str(a.do(t, "POST", "/admin/orgs/acme/keys", map[string]any{"id": "ops", "scopes": []string{"livekit:token"}}), "key")
	project := map[string]any{"url": newDef, "api_key": "APIacme", "api_secret": strings.Repeat("L", 40)}
	expect(t, b.do(t, "PUT", "/admin/orgs/acme/livekit", project), 400, "invalid_request")
	expect(t, a.do(t, "PUT", "/admin/orgs/acme/livekit", project), 200, "")
	body := map[string]any{"agent": "bob", "participant_identity": "u"}
	within(t, 2*time.Second, "B refuses acme's LiveKit", 500, func() response { return do(t, "POST", b.URL+"/livekit/token", key, body) })
	expect(t, do(t, "POST", b.URL+"/livekit/token", key, body), 500, "config_error")
	within(t, 2*time.Second, "A serves acme's own project", 201, func() response { return do(t, "POST", a.URL+"/livekit/token", key, body) })
	for _, srv := range []*adminBroker{a, b} {
		sw, _ := srv.app.Rooms.RenewLiveRooms(context.Background())
		if want := map[*adminBroker]int{a: 2, b: 1}[srv]; sw.Servers != want {
			t.Fatalf("sweep %+v: want %d servers listed", sw, want)
		}
	}
}
