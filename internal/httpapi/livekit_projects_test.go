package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	lkauth "github.com/livekit/protocol/auth"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/livekit"
	"github.com/voicebroker/voicebroker/internal/metrics"
	"github.com/voicebroker/voicebroker/internal/registry"
	"github.com/voicebroker/voicebroker/internal/store"
	"github.com/voicebroker/voicebroker/internal/store/memory"
)

const (
	whDefaultSecret = "default-project-secret-0123456789abcdef"
	whAcmeSecret    = "acme-own-project-secret-0123456789abcdef"
)

// webhookServer is a server whose default project has key APIdefault
// (none when withDefault is false: LIVEKIT_* unset) and whose org acme has,
// when acmeProject, its own project with key APIacme; globex has none.
func webhookServer(t *testing.T, withDefault bool, acmeProject bool) (http.Handler, store.Store, *bytes.Buffer, *testClock) {
	t.Helper()
	var asm registry.Assembler
	orgs := map[string]*registry.OrgData{
		"acme":   {Org: registry.Org{ID: "acme", Tier: "free"}},
		"globex": {Org: registry.Org{ID: "globex", Tier: "free"}},
	}
	if acmeProject {
		orgs["acme"].LiveKit = &registry.LiveKitData{URL: "ws://127.0.0.1:7990", APIKey: "APIacme", APISecret: registry.Secret(whAcmeSecret)}
	}
	snap, err := asm.Apply(orgs, 1)
	if err != nil {
		t.Fatal(err)
	}
	var cur atomic.Pointer[registry.Snapshot]
	cur.Store(snap)
	var def *livekit.Client
	if withDefault {
		def = livekit.New(livekit.Options{URL: "ws://127.0.0.1:7880", APIKey: "APIdefault", APISecret: whDefaultSecret})
	}
	clk := &testClock{t: time.Now()}
	st := memory.NewWithClock(clk.now)
	logs := &bytes.Buffer{}
	h := New(Deps{
		Tenants: staticTenants{snap}, Store: st, Metrics: metrics.New("test"),
		Log: slog.New(slog.NewJSONHandler(logs, nil)), LiveKit: def,
		LiveKitProjects: livekit.NewProjects(def, cur.Load, livekit.Options{}),
	})
	return h, st, logs, clk
}

// testClock is a store's clock that a test moves.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// tokenLife is how long after the later of its claim and its end a
// released room stays its org's with the default token lifetime (5
// minutes): an agent's job token's hour, and LiveKit's leeway.
const tokenLife = liveKitAgentLife + liveKitLeeway

type staticTenants struct{ s *registry.Snapshot }

func (s staticTenants) Current() *config.Tenants { return s.s.Tenants }

// webhookIDs numbers the events postWebhook sends: each is a new event.
var webhookIDs atomic.Int64

// postWebhook posts a room_finished webhook for room, whose metadata names
// owner, signed with key and secret: a new event (its own id), stamped a
// minute from now, so after any claim the test made.
func postWebhook(t *testing.T, h http.Handler, key, secret, room, owner string) *httptest.ResponseRecorder {
	t.Helper()
	md, _ := json.Marshal(map[string]string{"auth_id": owner})
	body, _ := json.Marshal(map[string]any{"event": "room_finished", "id": fmt.Sprintf("EV_%d", webhookIDs.Add(1)),
		"createdAt": time.Now().Add(time.Minute).Unix(), "room": map[string]string{"name": room, "metadata": string(md)}})
	sum := sha256.Sum256(body)
	at := lkauth.NewAccessToken(key, secret).SetValidFor(time.Minute)
	at.SetSha256(base64.StdEncoding.EncodeToString(sum[:]))
	jwt, err := at.ToJWT()
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("POST", "/livekit/webhook", bytes.NewReader(body))
	r.Header.Set("Authorization", jwt)
	r.Header.Set("Content-Type", "application/webhook+json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// A webhook is verified with the secret of the project whose key signed
// it. One from an org's own project releases that org's rooms only: signed
// with acme's key, a body naming globex's room (with globex's auth_id, or
// with acme's) changes nothing. The default project speaks for every org.
func TestWebhookProjectReleasesOnlyItsOrgsRooms(t *testing.T) {
	h, st, logs, clk := webhookServer(t, true, true)
	ctx := context.Background()
	claim := func(room, org string) {
		if owner, err := st.ClaimRoom(ctx, room, org, time.Hour, 0); err != nil || owner != org {
			t.Fatalf("claim %s: %q %v", room, owner, err)
		}
	}
	owner := func(room string) string {
		o, err := st.RoomOwner(ctx, room)
		if err != nil {
			return ""
		}
		return o
	}
	claim("demo_acme", "acme")
	claim("demo_globex", "globex")

	// Forged by acme's project: globex's room, under either auth_id.
	if w := postWebhook(t, h, "APIacme", whAcmeSecret, "demo_globex", "globex"); w.Code != 200 || !strings.Contains(w.Body.String(), `"ignored"`) {
		t.Fatalf("acme's webhook for globex's room: %d %s", w.Code, w.Body)
	}
	if w := postWebhook(t, h, "APIacme", whAcmeSecret, "demo_globex", "acme"); w.Code != 200 {
		t.Fatalf("acme's webhook naming globex's room as its own: %d %s", w.Code, w.Body)
	}
	if owner("demo_globex") != "globex" {
		t.Fatal("acme's project released globex's room")
	}
	if !strings.Contains(logs.String(), `"result":"foreign_room"`) || !strings.Contains(logs.String(), `"project":"acme"`) {
		t.Fatalf("the ignored webhook is not logged:\n%s", logs)
	}
	// acme's own room, from acme's project: released, once the tokens
	// issued with its claim are dead.
	if w := postWebhook(t, h, "APIacme", whAcmeSecret, "demo_acme", "acme"); w.Code != 200 || owner("demo_acme") != "acme" {
		t.Fatalf("acme's webhook for its room: %d %s, owner %q while its tokens live", w.Code, w.Body, owner("demo_acme"))
	}
	clk.advance(time.Minute + tokenLife) // postWebhook dates its event a minute ahead
	if o := owner("demo_acme"); o != "" {
		t.Fatalf("acme's room not released once its tokens are dead: owner %q", o)
	}
	// The default project's webhook releases globex's room.
	if w := postWebhook(t, h, "APIdefault", whDefaultSecret, "demo_globex", "globex"); w.Code != 200 || owner("demo_globex") != "" {
		t.Fatalf("the default project's webhook: %d %s", w.Code, w.Body)
	}
	// Unknown key, or acme's key with the default secret: 401.
	claim("demo_acme", "acme")
	for _, c := range [][2]string{{"APIother", whAcmeSecret}, {"APIacme", whDefaultSecret}, {"APIdefault", whAcmeSecret}} {
		if w := postWebhook(t, h, c[0], c[1], "demo_acme", "acme"); w.Code != 401 || !strings.Contains(w.Body.String(), `"unauthorized"`) {
			t.Fatalf("%s: %d %s", c[0], w.Code, w.Body)
		}
	}
	if owner("demo_acme") != "acme" {
		t.Fatal("a refused webhook released a room")
	}
	for _, s := range []string{whAcmeSecret, whDefaultSecret} {
		if strings.Contains(logs.String(), s) {
			t.Fatal("a secret in the log")
		}
	}
}

// Without LIVEKIT_*, an org project's webhooks still verify; with no
// project at all the webhook is 501 as before.
func TestWebhookWithoutDefaultProject(t *testing.T) {
	h, st, _, clk := webhookServer(t, false, true)
	st.ClaimRoom(context.Background(), "demo_acme", "acme", time.Hour, 0)
	if w := postWebhook(t, h, "APIacme", whAcmeSecret, "demo_acme", "acme"); w.Code != 200 {
		t.Fatalf("acme's webhook without a default project: %d %s", w.Code, w.Body)
	}
	clk.advance(time.Minute + tokenLife)
	if _, err := st.RoomOwner(context.Background(), "demo_acme"); err == nil {
		t.Fatal("not released")
	}
	if w := postWebhook(t, h, "APIdefault", whDefaultSecret, "demo_acme", "acme"); w.Code != 401 {
		t.Fatalf("a default-key webhook without a default project: %d %s", w.Code, w.Body)
	}
	h, _, _, _ = webhookServer(t, false, false)
	if w := postWebhook(t, h, "APIacme", whAcmeSecret, "demo_acme", "acme"); w.Code != 501 || !strings.Contains(w.Body.String(), "livekit_not_configured") {
		t.Fatalf("no project at all: %d %s", w.Code, w.Body)
	}
}
