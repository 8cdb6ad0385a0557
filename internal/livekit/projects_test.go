package livekit_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"

	"github.com/voicebroker/voicebroker/internal/livekit"
	"github.com/voicebroker/voicebroker/internal/registry"
)

const (
	defaultSecret = "default-project-secret-0123456789abcdef"
	acmeSecret    = "acme-project-secret-0123456789abcdefghij"
)

// snapshots builds registry snapshots in which acme has the project lk (nil
// for none) and globex has none.
type snapshots struct {
	t   *testing.T
	asm registry.Assembler
	v   int64
}

func (s *snapshots) with(lk *registry.LiveKitData) *registry.Snapshot {
	s.t.Helper()
	s.v++
	snap, err := s.asm.Apply(map[string]*registry.OrgData{
		"acme":   {Org: registry.Org{ID: "acme", Tier: "free"}, LiveKit: lk},
		"globex": {Org: registry.Org{ID: "globex", Tier: "free"}},
	}, s.v)
	if err != nil {
		s.t.Fatal(err)
	}
	return snap
}

func acmeProject(secret string) *registry.LiveKitData {
	return &registry.LiveKitData{URL: "ws://127.0.0.1:7990", APIKey: "APIacme", APISecret: registry.Secret(secret)}
}

func newProjects(t *testing.T, def *livekit.Client, snap *registry.Snapshot) (*livekit.Projects, *atomic.Pointer[registry.Snapshot]) {
	var cur atomic.Pointer[registry.Snapshot]
	cur.Store(snap)
	return livekit.NewProjects(def, cur.Load, livekit.Options{TokenTTL: time.Minute}), &cur
}

func defaultClient() *livekit.Client {
	return livekit.New(livekit.Options{URL: "ws://127.0.0.1:7880", APIKey: "APIdefault", APISecret: defaultSecret})
}

// An org with its own project gets a Client of that project, made once and
// kept while the snapshot keeps the project; one without gets the default.
func TestProjectsPickAndCache(t *testing.T) {
	s := &snapshots{t: t}
	def := defaultClient()
	p, cur := newProjects(t, def, s.with(acmeProject(acmeSecret)))

	acme := p.Own("acme")
	if acme == nil || acme.URL() != "ws://127.0.0.1:7990" || acme.TokenTTL() != time.Minute {
		t.Fatalf("acme's client: %v", acme)
	}
	if p.Own("acme") != acme || p.For("acme") != acme {
		t.Fatal("a second Client for the same project")
	}
	if p.Own("globex") != nil || p.For("globex") != def || p.For("nobody") != def || !p.Any() {
		t.Fatal("an org without a project does not get the default")
	}
	// Its tokens are signed for its project: its key as iss, its secret.
	jwt, err := acme.Token(livekit.Participant{Identity: "u", Room: "demo_x", Org: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.ParseAPIToken(jwt)
	if err != nil || v.APIKey() != "APIacme" {
		t.Fatalf("iss %v %v", v, err)
	}
	if _, err := v.Verify(acmeSecret); err != nil {
		t.Fatalf("not signed with acme's secret: %v", err)
	}
	if _, err := v.Verify(defaultSecret); err == nil {
		t.Fatal("verifies with the default secret")
	}

	// A new snapshot with the same project keeps the Client; a changed
	// secret makes a new one; a removed project drops it.
	cur.Store(s.with(acmeProject(acmeSecret)))
	if p.Own("acme") != acme {
		t.Fatal("an unchanged project was rebuilt")
	}
	cur.Store(s.with(acmeProject(acmeSecret + "-rotated")))
	rotated := p.Own("acme")
	if rotated == nil || rotated == acme {
		t.Fatal("a changed secret kept the old Client")
	}
	jwt, _ = rotated.Token(livekit.Participant{Identity: "u", Room: "demo_x", Org: "acme"})
	if v, _ := auth.ParseAPIToken(jwt); v == nil {
		t.Fatal("no token")
	} else if _, err := v.Verify(acmeSecret + "-rotated"); err != nil {
		t.Fatal("not signed with the new secret")
	}
	cur.Store(s.with(nil))
	if p.Own("acme") != nil || p.For("acme") != def {
		t.Fatal("a removed project still serves")
	}
}

// Without LIVEKIT_*, an org with its own project is served and the others
// are not; with no project at all, Any is false.
func TestProjectsWithoutDefault(t *testing.T) {
	s := &snapshots{t: t}
	p, cur := newProjects(t, nil, s.with(acmeProject(acmeSecret)))
	if p.For("acme") == nil || p.For("globex") != nil || !p.Any() {
		t.Fatal("without a default project")
	}
	cur.Store(s.with(nil))
	if p.Any() || p.For("acme") != nil {
		t.Fatal("no project at all, yet Any")
	}
}

// webhookRequest is a webhook request whose JWT is signed with key and
// secret over body.
func webhookRequest(t *testing.T, key, secret string, body []byte) *http.Request {
	t.Helper()
	sum := sha256.Sum256(body)
	at := auth.NewAccessToken(key, secret).SetValidFor(time.Minute)
	at.SetSha256(base64.StdEncoding.EncodeToString(sum[:]))
	jwt, err := at.ToJWT()
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("POST", "/livekit/webhook", bytes.NewReader(body))
	r.Header.Set("Authorization", jwt)
	r.Header.Set("Content-Type", "application/webhook+json")
	return r
}

// The webhook receiver verifies with the secret of the project whose API
// key signed it and says whose project that is; a key of no project, or a
// project's key with another secret, does not verify.
func TestProjectsReceiveWebhook(t *testing.T) {
	s := &snapshots{t: t}
	p, _ := newProjects(t, defaultClient(), s.with(acmeProject(acmeSecret)))
	body := []byte(`{"event":"room_finished","room":{"name":"demo_x","metadata":"{\"auth_id\":\"acme\"}"}}`)

	ev, org, err := p.ReceiveWebhook(webhookRequest(t, "APIacme", acmeSecret, body))
	if err != nil || org != "acme" || ev.Event != "room_finished" {
		t.Fatalf("acme's webhook: %v %q %v", ev, org, err)
	}
	ev, org, err = p.ReceiveWebhook(webhookRequest(t, "APIdefault", defaultSecret, body))
	if err != nil || org != "" || ev.GetRoom().GetName() != "demo_x" {
		t.Fatalf("the default project's webhook: %v %q %v", ev, org, err)
	}
	for _, c := range []struct{ name, key, secret string }{
		{"acme's key, the default secret", "APIacme", defaultSecret},
		{"the default key, acme's secret", "APIdefault", acmeSecret},
		{"an unknown key", "APIother", acmeSecret},
	} {
		_, org, err := p.ReceiveWebhook(webhookRequest(t, c.key, c.secret, body))
		if !errors.Is(err, livekit.ErrWebhook) || org != "" {
			t.Fatalf("%s: org %q, err %v", c.name, org, err)
		}
		if c.key == "APIother" && !errors.Is(err, livekit.ErrUnknownWebhookKey) {
			t.Fatalf("%s: %v", c.name, err)
		}
		for _, secret := range []string{acmeSecret, defaultSecret} {
			if bytes.Contains([]byte(err.Error()), []byte(secret)) {
				t.Fatal("the error holds a secret")
			}
		}
	}
	// Without the default project, acme's webhooks still verify.
	p2, _ := newProjects(t, nil, s.with(acmeProject(acmeSecret)))
	if _, org, err := p2.ReceiveWebhook(webhookRequest(t, "APIacme", acmeSecret, body)); err != nil || org != "acme" {
		t.Fatalf("without a default: %q %v", org, err)
	}
	if _, _, err := p2.ReceiveWebhook(webhookRequest(t, "APIdefault", defaultSecret, body)); !errors.Is(err, livekit.ErrUnknownWebhookKey) {
		t.Fatalf("the default key without a default project: %v", err)
	}
}

// Requests and snapshot changes race: every Client handed out is of a
// project some snapshot held, and the race detector sees no race.
func TestProjectsConcurrent(t *testing.T) {
	s := &snapshots{t: t}
	snaps := []*registry.Snapshot{s.with(acmeProject(acmeSecret)), s.with(acmeProject(acmeSecret + "-2")), s.with(nil)}
	p, cur := newProjects(t, defaultClient(), snaps[0])
	var wg sync.WaitGroup
	bad := make(chan string, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				if c := p.For("acme"); c == nil || (c.URL() != "ws://127.0.0.1:7990" && c.URL() != "ws://127.0.0.1:7880") {
					bad <- "a Client of no project"
					return
				}
			}
		}()
	}
	for i := 0; i < 300; i++ {
		cur.Store(snaps[i%3])
	}
	wg.Wait()
	close(bad)
	if msg, ok := <-bad; ok {
		t.Fatal(msg)
	}
}
