package app_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	lkproto "github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/webrtc/v4"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/app"
	"github.com/voicebroker/voicebroker/internal/registry"
	"github.com/voicebroker/voicebroker/internal/registry/postgres"
	"github.com/voicebroker/voicebroker/internal/registry/secretbox"
	"github.com/voicebroker/voicebroker/internal/testenv"
)

// acme's own LiveKit project in these tests: its API key, and its secret,
// which the tenants file names by the variable acmeLKEnv.
const (
	acmeLKKey    = "APIacmeOwnProject"
	acmeLKSecret = "acme-own-livekit-secret-0123456789abcdefgh"
	acmeLKEnv    = "VB_TEST_ACME_LIVEKIT_SECRET"
)

// acmeOwnLiveKit gives acme its own LiveKit project at url.
func acmeOwnLiveKit(url string) func(string) string {
	return func(y string) string {
		return strings.Replace(y, "  - id: acme\n    tier: free\n",
			"  - id: acme\n    tier: free\n    livekit:\n      url: "+url+"\n      api_key: "+acmeLKKey+"\n      api_secret_env: "+acmeLKEnv+"\n", 1)
	}
}

// twoProjects starts the default project's livekit-server and acme's own,
// with different keys and ports, both sending their webhooks through hook,
// which the caller points at its broker once it is up.
func twoProjects(t *testing.T) (hook *testenv.Forwarder, def, acme *testenv.LiveKit) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs livekit-server")
	}
	hook = testenv.NewForwarder(t)
	def = testenv.StartLiveKit(t, hook.URL+"/livekit/webhook")
	acme = testenv.StartLiveKitWithKey(t, hook.URL+"/livekit/webhook", acmeLKKey, acmeLKSecret)
	return hook, def, acme
}

// brokerOfTwoProjects starts twoProjects and a broker (vars added to its
// environment) whose default project is def, with globex's room scopes;
// acme's own project, acmeLK, comes in by a reload, as an operator would
// add it.
func brokerOfTwoProjects(t *testing.T, vars map[string]string) (b *broker, def, acmeLK *testenv.LiveKit) {
	t.Helper()
	hook, def, acmeLK := twoProjects(t)
	t.Setenv(acmeLKEnv, acmeLKSecret)
	k := newKeys(t)
	env := map[string]string{"LIVEKIT_URL": def.URL, "LIVEKIT_API_KEY": def.APIKey, "LIVEKIT_API_SECRET": def.APISecret}
	for n, v := range vars {
		env[n] = v
	}
	b = startBroker(t, k, env)
	hook.To(t, b.URL)
	b.rewriteTenants(t, tenantsYAML(k, globexRooms, acmeOwnLiveKit(acmeLK.URL)), "ok")
	return b, def, acmeLK
}

// issuedFor checks that a /connect or /livekit/token answer is a token of
// the project lk: its server_url, its API key as iss, signed with its
// secret and not with other's.
func issuedFor(t *testing.T, r response, lk, other *testenv.LiveKit) {
	t.Helper()
	expect(t, r, 201, "")
	if r.Body["server_url"] != lk.URL {
		t.Fatalf("server_url %v, want %s", r.Body["server_url"], lk.URL)
	}
	v, err := auth.ParseAPIToken(r.Body["participant_token"].(string))
	if err != nil || v.APIKey() != lk.APIKey {
		t.Fatalf("token iss %v (%v), want %s", v, err, lk.APIKey)
	}
	if _, err := v.Verify(lk.APISecret); err != nil {
		t.Fatalf("not signed with the project's secret: %v", err)
	}
	if _, err := v.Verify(other.APISecret); err == nil {
		t.Fatal("signed with the other project's secret")
	}
}

// roomsOf lists the room names of a LiveKit server, asked directly.
func roomsOf(t *testing.T, lk *testenv.LiveKit) []string {
	t.Helper()
	res, err := lksdk.NewRoomServiceClient(lk.HTTPURL(), lk.APIKey, lk.APISecret).ListRooms(context.Background(), &lkproto.ListRoomsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range res.Rooms {
		names = append(names, r.Name)
	}
	return names
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestOrgLiveKitProject: acme has its own LiveKit project in the tenants
// file (secret from a variable), globex uses the default one. acme's
// tokens, from /livekit/token and /connect, are signed for its project and
// join its server (a real participant), and its server only; its room
// reads, mute and remove go to its server; globex's go to the default, and
// neither org sees the other's rooms. A webhook from acme's server
// releases acme's room; one signed with acme's key about globex's room
// changes nothing; the secrets never reach the log.
func TestOrgLiveKitProject(t *testing.T) {
	b, def, acmeLK := brokerOfTwoProjects(t, nil)
	k := b.keys
	globex := k.globex

	// /livekit/token: acme's project for acme, the default for globex.
	const acmeRoom, globexRoom = "agent_florencia_1700000000_AcmeOwn1", "agent_florencia_1700000000_GlobexDef1"
	r := do(t, "POST", b.URL+"/livekit/token", k.acme, map[string]any{"room_name": acmeRoom, "agent": "florencia", "participant_identity": "speaker"})
	acmeClaimed := time.Now()
	issuedFor(t, r, acmeLK, def)
	// The default server refuses acme's token; acme's server admits it.
	if room, err := lksdk.ConnectToRoomWithToken(def.URL, r.Body["participant_token"].(string), &lksdk.RoomCallback{}, lksdk.WithAutoSubscribe(false)); err == nil {
		room.Disconnect()
		t.Fatal("the default LiveKit server admitted a token of acme's project")
	}
	speaker := join(t, r)
	g := do(t, "POST", b.URL+"/livekit/token", globex, map[string]any{"room_name": globexRoom, "agent": "florencia", "participant_identity": "g-user"})
	issuedFor(t, g, def, acmeLK)
	join(t, g)

	// /connect: the same.
	ticket := b.mint(t, k.acme, map[string]any{"agent": "florencia", "channel": "webrtc", "identity": "caller"})
	c := do(t, "POST", b.URL+"/connect", ticket, nil)
	issuedFor(t, c, acmeLK, def)
	join(t, c)

	// Each room lives on its org's server only.
	waitParticipant(t, b, k.acme, acmeRoom, "speaker")
	waitParticipant(t, b, globex, globexRoom, "g-user")
	if on := roomsOf(t, acmeLK); !has(on, acmeRoom) || has(on, globexRoom) {
		t.Fatalf("acme's server holds %v", on)
	}
	if on := roomsOf(t, def); has(on, acmeRoom) || !has(on, globexRoom) {
		t.Fatalf("the default server holds %v", on)
	}
	// Room reads go to the caller's server: another org's room is 404.
	expect(t, do(t, "GET", b.URL+"/livekit/rooms/"+acmeRoom, globex, nil), 404, "room_not_found")
	expect(t, do(t, "GET", b.URL+"/livekit/rooms/"+globexRoom, k.acme, nil), 404, "room_not_found")
	if l := do(t, "GET", b.URL+"/livekit/rooms", k.acme, nil); l.Status != 200 || !strings.Contains(l.Raw, acmeRoom) || strings.Contains(l.Raw, globexRoom) {
		t.Fatalf("acme's rooms: %s", l.Raw)
	}
	if l := do(t, "GET", b.URL+"/livekit/rooms", globex, nil); l.Status != 200 || strings.Contains(l.Raw, acmeRoom) || !strings.Contains(l.Raw, globexRoom) {
		t.Fatalf("globex's rooms: %s", l.Raw)
	}

	// Mute and remove act on acme's server.
	track, err := lksdk.NewLocalSampleTrack(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := speaker.LocalParticipant.PublishTrack(track, &lksdk.TrackPublicationOptions{Name: "mic"})
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	mute := map[string]any{"room_name": acmeRoom, "participant_identity": "speaker", "track_sid": pub.SID(), "muted": true}
	expect(t, do(t, "POST", b.URL+"/livekit/participant/mute", globex, mute), 404, "room_not_found")
	eventually(t, "acme mutes its participant's track", func() bool {
		mr := do(t, "POST", b.URL+"/livekit/participant/mute", k.acme, mute)
		tr, _ := mr.Body["track"].(map[string]any)
		return mr.Status == 200 && tr["muted"] == true
	})
	del := map[string]any{"room_name": acmeRoom, "participant_identity": "speaker"}
	expect(t, do(t, "DELETE", b.URL+"/livekit/participant", globex, del), 404, "room_not_found")
	expect(t, do(t, "DELETE", b.URL+"/livekit/participant", k.acme, del), 200, "")
	acmeRooms := lksdk.NewRoomServiceClient(acmeLK.HTTPURL(), acmeLK.APIKey, acmeLK.APISecret)
	eventually(t, "the participant gone from acme's server", func() bool {
		res, err := acmeRooms.ListParticipants(context.Background(), &lkproto.ListParticipantsRequest{Room: acmeRoom})
		if err != nil {
			return false
		}
		for _, p := range res.Participants {
			if p.Identity == "speaker" {
				return false
			}
		}
		return true
	})

	// A webhook from acme's server (signed with its key) releases acme's
	// room when LiveKit closes it.
	ctx := context.Background()
	if owner, err := b.app.Store.RoomOwner(ctx, acmeRoom); err != nil || owner != "acme" {
		t.Fatalf("owner %q %v", owner, err)
	}
	afterSecond(acmeClaimed) // room_finished is stamped in whole seconds; a claim in its second is kept
	if _, err := acmeRooms.DeleteRoom(ctx, &lkproto.DeleteRoomRequest{Room: acmeRoom}); err != nil {
		t.Fatal(err)
	}
	roomFinishedEnded(t, b, acmeRoom)
	if !strings.Contains(b.Logs.String(), `"project":"acme"`) {
		t.Fatal("the webhook's project is not logged")
	}

	// Forged with acme's key: globex's room, under globex's auth_id or
	// acme's, changes nothing; an unknown key is 401.
	post := func(key, secret, owner string) response {
		body := []byte(`{"event":"room_finished","id":"EV_forged","room":{"name":"` + globexRoom + `","metadata":"{\"auth_id\":\"` + owner + `\"}"}}`)
		sum := sha256.Sum256(body)
		at := auth.NewAccessToken(key, secret).SetValidFor(time.Minute)
		at.SetSha256(base64.StdEncoding.EncodeToString(sum[:]))
		jwt, err := at.ToJWT()
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("POST", b.URL+"/livekit/webhook", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/webhook+json")
		req.Header.Set("Authorization", jwt)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		return response{Status: resp.StatusCode, Raw: buf.String(), Body: decode(t, buf.String())}
	}
	if f := post(acmeLKKey, acmeLKSecret, "globex"); f.Status != 200 || f.Body["status"] != "ignored" {
		t.Fatalf("forged webhook for globex's room: %d %s", f.Status, f.Raw)
	}
	expect(t, post(acmeLKKey, acmeLKSecret, "acme"), 200, "")
	expect(t, post("APIunknown", acmeLKSecret, "globex"), 401, "unauthorized")
	expect(t, post(acmeLKKey, def.APISecret, "globex"), 401, "unauthorized")
	if owner, err := b.app.Store.RoomOwner(ctx, globexRoom); err != nil || owner != "globex" {
		t.Fatalf("a webhook signed with acme's key changed globex's room: %q %v", owner, err)
	}

	logs := b.Logs.String()
	for _, s := range []string{acmeLKSecret, def.APISecret} {
		if strings.Contains(logs, s) {
			t.Fatal("a LiveKit secret in the broker's log")
		}
	}
}

// TestOrgLiveKitProjectWithoutDefault: with LIVEKIT_* unset, an org with
// its own project is served (no 501), and a real participant joins with its
// token; an org without one gets 501 livekit_not_configured and its ticket
// is not spent.
func TestOrgLiveKitProjectWithoutDefault(t *testing.T) {
	if testing.Short() {
		t.Skip("needs livekit-server")
	}
	acmeLK := testenv.StartLiveKitWithKey(t, "", acmeLKKey, acmeLKSecret)
	t.Setenv(acmeLKEnv, acmeLKSecret)
	k := newKeys(t)
	b := startBroker(t, k, nil)
	b.rewriteTenants(t, tenantsYAML(k, globexRooms, acmeOwnLiveKit(acmeLK.URL)), "ok")

	r := do(t, "POST", b.URL+"/livekit/token", k.acme, map[string]any{"agent": "florencia", "participant_identity": "solo"})
	expect(t, r, 201, "")
	if r.Body["server_url"] != acmeLK.URL {
		t.Fatalf("server_url %v", r.Body["server_url"])
	}
	join(t, r)
	waitParticipant(t, b, k.acme, r.Body["room_name"].(string), "solo")
	ticket := b.mint(t, k.acme, flo)
	expect(t, do(t, "POST", b.URL+"/connect", ticket, nil), 201, "")

	nc := do(t, "POST", b.URL+"/livekit/token", k.globex, map[string]any{"agent": "florencia"})
	expect(t, nc, 501, "livekit_not_configured")
	if msg, _ := nc.Body["message"].(string); !strings.Contains(msg, "your org has no livekit project of its own") {
		t.Fatalf("the 501 does not say what to configure: %q", msg)
	}
	expect(t, do(t, "GET", b.URL+"/livekit/rooms", k.globex, nil), 501, "livekit_not_configured")
	gt := b.mint(t, k.globex, map[string]any{"agent": "hank", "channel": "webrtc"})
	expect(t, do(t, "POST", b.URL+"/connect", gt, nil), 501, "livekit_not_configured")
	expect(t, do(t, "POST", b.URL+"/token/redeem", k.globex, map[string]string{"token": gt}), 200, "")
	// A webhook with a key of no project: 401, as with a default project.
	expect(t, do(t, "POST", b.URL+"/livekit/webhook", "", map[string]any{}), 401, "unauthorized")
}

// TestOrgLiveKitProjectConfigErrors: a livekit block with an inline
// secret, a missing variable, a short secret or an unreadable file stops
// the broker at start with the field's path, and a reload to such a file
// is refused (the project in force stays); the secret is never echoed.
func TestOrgLiveKitProjectConfigErrors(t *testing.T) {
	dir := t.TempDir()
	k := newKeys(t)
	os.Unsetenv("VB_TEST_LK_UNSET")
	t.Setenv("VB_TEST_LK_SHORT", "short-secret")
	t.Setenv(acmeLKEnv, acmeLKSecret)
	block := func(lines string) string {
		return tenantsYAML(k, func(y string) string {
			return strings.Replace(y, "  - id: acme\n    tier: free\n", "  - id: acme\n    tier: free\n    livekit:\n      url: ws://127.0.0.1:7990\n      api_key: "+acmeLKKey+"\n"+lines, 1)
		})
	}
	for _, c := range []struct{ name, lines, want string }{
		{"inline secret", "      api_secret: " + acmeLKSecret + "\n", "orgs[0].livekit.api_secret: a secret is never written in the tenants file"},
		{"missing variable", "      api_secret_env: VB_TEST_LK_UNSET\n", "orgs[0].livekit.api_secret_env: the environment variable VB_TEST_LK_UNSET is not set"},
		{"short secret", "      api_secret_env: VB_TEST_LK_SHORT\n", "orgs[0].livekit.api_secret_env: VB_TEST_LK_SHORT: the secret is shorter than 32 characters"},
		{"unreadable file", "      api_secret_file: " + filepath.Join(dir, "absent.secret") + "\n", "orgs[0].livekit.api_secret_file: cannot read " + filepath.Join(dir, "absent.secret")},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, "tenants.yaml")
			writeFile(t, path, block(c.lines))
			env, err := config.LoadEnv(func(n string) string {
				return map[string]string{"BROKER_CONFIG": path, "BROKER_ADDR": "127.0.0.1:0"}[n]
			})
			if err != nil {
				t.Fatal(err)
			}
			_, err = app.New(env, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "BROKER_CONFIG "+path) {
				t.Fatalf("start: %v", err)
			}
			if strings.Contains(err.Error(), acmeLKSecret) || strings.Contains(err.Error(), "short-secret") {
				t.Fatal("the error holds the secret")
			}
		})
	}
	// A reload to a bad block keeps the project in force.
	b := startBroker(t, k, nil)
	good := tenantsYAML(k, acmeOwnLiveKit("ws://127.0.0.1:7990"))
	b.rewriteTenants(t, good, "ok")
	b.rewriteTenants(t, strings.Replace(good, "api_secret_env: "+acmeLKEnv, "api_secret_env: VB_TEST_LK_UNSET", 1), "error")
	if p := b.app.Tenants.Snapshot().LiveKit("acme"); p == nil || p.APISecret.Reveal() != acmeLKSecret {
		t.Fatal("a refused reload changed acme's project")
	}
	if !strings.Contains(b.Logs.String(), "orgs[0].livekit.api_secret_env") || strings.Contains(b.Logs.String(), acmeLKSecret) {
		t.Fatalf("the refused reload's log:\n%s", b.Logs.String())
	}
}

// TestOrgLiveKitProjectOnDatabase: in database mode, an org's LiveKit
// project written through the registry (the admin API's Writer) is in
// force within a second: tokens for the org are signed for the new project
// and join its server; deleting it takes the org back to the default
// project within a second. The secret appears in no log, export or error.
func TestOrgLiveKitProjectOnDatabase(t *testing.T) {
	db := testenv.PostgresURL(t)
	_, def, acmeLK := twoProjects(t)
	k := newKeys(t)
	keyFile := filepath.Join(t.TempDir(), "secrets.key")
	writeFile(t, keyFile, base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))+"\n")
	keys, err := secretbox.LoadKeyFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, admin := importTenants(t, k, postgres.Options{URL: db, Keyring: keys})
	b := startBroker(t, k, map[string]string{"BROKER_CONFIG": "", "BROKER_DATABASE_URL": db, "BROKER_SECRETS_KEY_FILE": keyFile,
		"LIVEKIT_URL": def.URL, "LIVEKIT_API_KEY": def.APIKey, "LIVEKIT_API_SECRET": def.APISecret})
	token := func() response {
		return do(t, "POST", b.URL+"/livekit/token", k.acme, map[string]any{"agent": "florencia", "participant_identity": "db-user"})
	}
	issuedFor(t, token(), def, acmeLK)

	// A bad project is refused without echoing the secret.
	_, err = admin.PutLiveKit(ctx, "acme", registry.LiveKitSpec{URL: "ftp://x", APIKey: acmeLKKey, APISecret: "short " + acmeLKSecret[:8]})
	if err == nil || strings.Contains(err.Error(), acmeLKSecret[:8]) {
		t.Fatalf("bad project: %v", err)
	}
	if _, err := admin.PutLiveKit(ctx, "acme", registry.LiveKitSpec{URL: acmeLK.URL, APIKey: acmeLKKey, APISecret: acmeLKSecret}); err != nil {
		t.Fatal(err)
	}
	switched := func(want *testenv.LiveKit) func() bool {
		return func() bool {
			r := token()
			return r.Status == 201 && r.Body["server_url"] == want.URL
		}
	}
	withinSecond(t, "tokens for acme's new project", switched(acmeLK))
	r := token()
	issuedFor(t, r, acmeLK, def)
	join(t, r)
	waitParticipant(t, b, k.acme, r.Body["room_name"].(string), "db-user")

	if err := admin.DeleteLiveKit(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	withinSecond(t, "tokens for the default project again", switched(def))

	exp, err := admin.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := registry.MarshalFile(exp)
	if _, err := admin.PutLiveKit(ctx, "globex", registry.LiveKitSpec{URL: acmeLK.URL, APIKey: "APIglobex", APISecret: acmeLKSecret}); err != nil {
		t.Fatal(err)
	}
	exp, _ = admin.Export(ctx)
	out2, _ := registry.MarshalFile(exp)
	events, _, err := admin.Audit(ctx, registry.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	for what, s := range map[string]string{"the log": b.Logs.String(), "the export": string(out) + string(out2), "the audit trail": fmt.Sprint(events)} {
		if strings.Contains(s, acmeLKSecret) || strings.Contains(s, def.APISecret) {
			t.Fatalf("a LiveKit secret in %s", what)
		}
	}
	if !strings.Contains(string(out2), "api_secret_env: LIVEKIT_API_SECRET_GLOBEX") {
		t.Fatalf("the export does not name the secret's variable:\n%s", out2)
	}
}

// withinSecond polls cond for up to a second.
func withinSecond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 1s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestREADMELiveKitExampleParses: the README's livekit block passes the
// broker's own check, with its secret from the variable it names or from
// the file of its comment.
func TestREADMELiveKitExampleParses(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n### An org's own LiveKit project\n")
	_, example, ok2 := strings.Cut(section, "```yaml\n")
	example, _, ok3 := strings.Cut(example, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("no yaml block under \"### An org's own LiveKit project\"")
	}
	t.Setenv("ACME_LIVEKIT_SECRET", acmeLKSecret)
	ten, err := config.Parse([]byte(example))
	if err != nil {
		t.Fatalf("the README's livekit example: %v", err)
	}
	if l := ten.Org("acme").LiveKit; l == nil || l.Secret() != acmeLKSecret {
		t.Fatal("the example's project lacks its secret")
	}
	file := filepath.Join(t.TempDir(), "acme-livekit")
	writeFile(t, file, acmeLKSecret+"\n")
	alt := regexp.MustCompile(`api_secret_env: \S+\s+# or (api_secret_file): \S+`).ReplaceAllString(example, "$1: "+file)
	if alt == example {
		t.Fatal("the example does not show api_secret_file")
	}
	if _, err := config.Parse([]byte(alt)); err != nil {
		t.Fatalf("the README's livekit example with api_secret_file: %v", err)
	}
}
