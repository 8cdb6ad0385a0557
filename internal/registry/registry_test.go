package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/voicebroker/voicebroker/internal/registry"
)

func TestUsageRecorder(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	r := &registry.UsageRecorder{Now: func() time.Time { return now }}
	r.Used("acme", "k")
	r.Used("acme", "k")
	r.Used("acme", "j")
	got := r.Take()
	if len(got) != 2 || !got[registry.KeyRef{Org: "acme", ID: "k"}].Equal(now) {
		t.Fatalf("take = %v", got)
	}
	if len(r.Take()) != 0 {
		t.Fatal("a second take returned the same uses")
	}
	// Within the minute: nothing new, even after a Take.
	now = now.Add(59 * time.Second)
	r.Used("acme", "k")
	if len(r.Take()) != 0 {
		t.Fatal("a use within the minute was recorded")
	}
	now = now.Add(2 * time.Second)
	r.Used("acme", "k")
	p := r.Take()
	if len(p) != 1 {
		t.Fatalf("a use after the minute: %v", p)
	}
	// A failed write puts the uses back.
	r.Putback(p)
	if len(r.Take()) != 1 {
		t.Fatal("putback lost a use")
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := registry.Secret("super-secret-value-1234567890")
	p := registry.LiveKitProject{Org: "acme", APISecret: s}
	var b strings.Builder
	slog.New(slog.NewJSONHandler(&b, nil)).Info("x", "project", p, "secret", s)
	js, _ := json.Marshal(p)
	out := fmt.Sprintf("%v %+v %#v %s %q", p, p, p, s, s) + string(js) + b.String()
	if strings.Contains(out, "super-secret") {
		t.Fatalf("the secret prints: %s", out)
	}
	if s.Reveal() != "super-secret-value-1234567890" {
		t.Fatal("Reveal")
	}
}

func TestActorFrom(t *testing.T) {
	if a := registry.ActorFrom(context.Background()); a.Subject != "system" {
		t.Fatalf("default actor = %+v", a)
	}
	long := "a" + strings.Repeat("é", 300)
	a := registry.ActorFrom(registry.WithActor(context.Background(), registry.Actor{Subject: long, RequestID: "r1"}))
	if len(a.Subject) > 200 || !utf8.ValidString(a.Subject) || !strings.HasPrefix(long, a.Subject) || a.RequestID != "r1" {
		t.Fatalf("actor = %q", a.Subject)
	}
}

func TestMarshalFileKeepsEmptyKeyList(t *testing.T) {
	f, err := registry.ParseFile([]byte("orgs:\n  - id: a\n    tier: free\n    agents:\n      - id: b\n        channels: [chat]\n        server: \"\"\n        public:\n          keys: []\n          allowed_origins: [https://a.example]\n"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := registry.MarshalFile(f)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	if !strings.Contains(s, "keys: []") || strings.Contains(s, "server:") || strings.Contains(s, "rate_per_minute") || strings.Contains(s, "revoked") {
		t.Fatalf("export:\n%s", s)
	}
	if _, err := registry.ParseFile(out); err != nil {
		t.Fatal(err)
	}
}

// TestNotFound: the error is ErrNotFound, names the kind and the id
// quoted, and cuts an id past 64 bytes at a character boundary.
func TestNotFound(t *testing.T) {
	for _, tc := range []struct{ kind, id, want string }{
		{"agent", "bot", `not found: agent "bot"`},
		{"key", `a"b`, `not found: key "a\"b"`},
		{"org", strings.Repeat("x", 65), `not found: org "` + strings.Repeat("x", 64) + `…"`},
		{"org", strings.Repeat("x", 63) + "é", `not found: org "` + strings.Repeat("x", 63) + `…"`},
	} {
		err := registry.NotFound(tc.kind, tc.id)
		if !errors.Is(err, registry.ErrNotFound) {
			t.Fatalf("%v is not ErrNotFound", err)
		}
		if err.Error() != tc.want {
			t.Fatalf("got %q, want %q", err, tc.want)
		}
	}
}

// The snapshot leaves out a project on another org's LiveKit server, as it
// leaves out one with another org's API key, whichever source the orgs
// come from (a PostgreSQL registry written before the rule, a replica
// following another): any key of a server opens every room on it.
func TestSnapshotOneOrgPerLiveKitServer(t *testing.T) {
	secret := registry.Secret(strings.Repeat("s", 40))
	org := func(id, url, key string) *registry.OrgData {
		return &registry.OrgData{Org: registry.Org{ID: id, Tier: "free"},
			LiveKit: &registry.LiveKitData{URL: url, APIKey: key, APISecret: secret}}
	}
	var asm registry.Assembler
	snap, err := asm.Apply(map[string]*registry.OrgData{
		"acme":    org("acme", "ws://127.0.0.1:7880", "KA"),
		"globex":  org("globex", "http://127.0.0.1:7880/twirp", "KB"),
		"initech": org("initech", "ws://127.0.0.1:7890", "KC"),
	}, 1)
	if err == nil || !strings.Contains(err.Error(), "org globex left out of the snapshot: livekit.url: the same LiveKit server (127.0.0.1:7880) as the project of org acme") {
		t.Fatalf("Apply: %v", err)
	}
	if snap.LiveKit("acme") == nil || snap.LiveKit("globex") != nil || snap.LiveKitByAPIKey("KB") != nil || snap.LiveKit("initech") == nil {
		t.Fatalf("projects in the snapshot: %v", snap.LiveKitOrgs())
	}
	// Once acme leaves the server, globex may have it.
	snap, err = asm.Apply(map[string]*registry.OrgData{"acme": org("acme", "ws://127.0.0.1:7870", "KA"),
		"globex": org("globex", "http://127.0.0.1:7880/twirp", "KB")}, 2)
	if err != nil || snap.LiveKit("globex") == nil {
		t.Fatalf("Apply: %v; projects %v", err, snap.LiveKitOrgs())
	}
}

// Quarantined says why and until when, and never too early: the end is
// rounded up to the second.
func TestQuarantined(t *testing.T) {
	for _, c := range []struct {
		name      string
		deletedAt time.Time
		want      string
	}{
		{"on the second", time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC),
			`already exists: org "acme": the id was deleted at 2026-11-25T10:00:00Z; it can be used again from 2026-11-26T10:02:00Z: tokens issued for the old org's rooms may still be live until then`},
		{"within a second", time.Date(2026, 11, 25, 10, 0, 0, 1000, time.UTC),
			`already exists: org "acme": the id was deleted at 2026-11-25T10:00:00Z; it can be used again from 2026-11-26T10:02:01Z: tokens issued for the old org's rooms may still be live until then`},
		{"in another zone", time.Date(2026, 11, 25, 11, 0, 0, 0, time.FixedZone("CET", 3600)),
			`already exists: org "acme": the id was deleted at 2026-11-25T10:00:00Z; it can be used again from 2026-11-26T10:02:00Z: tokens issued for the old org's rooms may still be live until then`},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := registry.Quarantined("acme", c.deletedAt)
			if !errors.Is(err, registry.ErrConflict) || err.Error() != c.want {
				t.Fatalf("err = %v\nwant %s", err, c.want)
			}
		})
	}
	if registry.IDQuarantine != 24*time.Hour+2*time.Minute {
		t.Fatalf("IDQuarantine = %v", registry.IDQuarantine)
	}
}
