package app_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/apikey"
	"github.com/voicebroker/voicebroker/internal/app"
	"github.com/voicebroker/voicebroker/internal/registry"
	"github.com/voicebroker/voicebroker/internal/registry/postgres"
	"github.com/voicebroker/voicebroker/internal/registry/secretbox"
	"github.com/voicebroker/voicebroker/internal/testenv"
)

// within polls fn (an HTTP request) until it gives status, for up to d.
func within(t *testing.T, d time.Duration, what string, status int, fn func() response) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		r := fn()
		if r.Status == status {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s (last answer %d %s)", d, what, r.Status, r.Raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A broker on the database: keys created and revoked through another
// registry (an admin, another replica) work and stop working on it within
// a second; several publishable keys open one agent (rotation).
func TestBrokerOnDatabase(t *testing.T) {
	db := testenv.PostgresURL(t)
	k := newKeys(t)
	ctx, admin := importTenants(t, k, postgres.Options{URL: db})
	b := startBroker(t, k, map[string]string{"BROKER_CONFIG": "", "BROKER_DATABASE_URL": db})
	expect(t, do(t, "POST", b.URL+"/token", k.acme, flo), 201, "")
	expect(t, do(t, "POST", b.URL+"/token", k.acmeRevoked, flo), 401, "unauthorized")

	_, key, err := admin.CreateKey(ctx, "acme", registry.KeySpec{ID: "made-by-admin", Scopes: []string{"tokens:create"}})
	if err != nil {
		t.Fatal(err)
	}
	within(t, time.Second, "a new key usable", 201, func() response { return do(t, "POST", b.URL+"/token", key, flo) })
	// Its use is recorded (written in batches; flushed here).
	if err := b.app.Tenants.(*postgres.Registry).FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	keys, err := admin.ListKeys(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if last := keys[len(keys)-1]; last.ID != "made-by-admin" || last.LastUsedAt == nil || time.Since(*last.LastUsedAt) > time.Minute {
		t.Fatalf("last_used_at after a use: %+v", last)
	}
	if err := admin.RevokeKey(ctx, "acme", "made-by-admin"); err != nil {
		t.Fatal(err)
	}
	within(t, time.Second, "a revoked key refused", 401, func() response { return do(t, "POST", b.URL+"/token", key, flo) })

	// Publishable keys: a second one opens the agent too; deleting the
	// first stops only it.
	origin := []string{"Origin", "https://demo.acme.example"}
	public := func(pk string) func() response {
		return func() response { return do(t, "POST", b.URL+"/public/token", pk, flo, origin...) }
	}
	expect(t, public(k.pk)(), 201, "")
	_, pk2, err := admin.CreatePublishableKey(ctx, "acme", "florencia", apikey.Live)
	if err != nil {
		t.Fatal(err)
	}
	within(t, time.Second, "a second publishable key usable", 201, public(pk2))
	expect(t, public(k.pk)(), 201, "")
	if err := admin.DeletePublishableKey(ctx, "acme", "florencia", registry.DefaultPublishableKeyID); err != nil {
		t.Fatal(err)
	}
	within(t, time.Second, "the deleted publishable key refused", 401, public(k.pk))
	expect(t, public(pk2)(), 201, "")

	// Deleting the org stops all of it.
	if err := admin.DeleteOrg(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	within(t, time.Second, "a deleted org's key refused", 401, func() response { return do(t, "POST", b.URL+"/token", k.acme, flo) })
	expect(t, do(t, "POST", b.URL+"/token", k.globex, map[string]any{"agent": "hank", "channel": "webrtc"}), 201, "")

	logs := b.Logs.String()
	for _, s := range []string{k.acme, key, pk2, k.pk, "sha256:"} {
		if strings.Contains(logs, s) {
			t.Fatal("a key or hash in the broker's log")
		}
	}
	if !strings.Contains(logs, `"tenants":"database"`) {
		t.Fatal("the start line does not say the tenants come from the database")
	}
}

// The embedded development tenant is a writable registry: a key made
// through it works at once.
func TestDemoRegistryWritable(t *testing.T) {
	a, url := testenv.StartDemoBroker(t)
	_, key, err := a.Tenants.CreateKey(context.Background(), "demo", registry.KeySpec{ID: "second", Scopes: []string{"tokens:create"}, Env: apikey.Test})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, do(t, "POST", url+"/token", key, map[string]any{"agent": "demo-bot", "channel": "chat"}), 201, "")
	if err := a.Tenants.RevokeKey(context.Background(), "demo", "second"); err != nil {
		t.Fatal(err)
	}
	expect(t, do(t, "POST", url+"/token", key, map[string]any{"agent": "demo-bot", "channel": "chat"}), 401, "unauthorized")
	expect(t, do(t, "POST", url+"/token", a.DevKeys.Secret, map[string]any{"agent": "demo-bot", "channel": "chat"}), 201, "")
}

// With the database down past BROKER_REGISTRY_MAX_STALENESS, the broker
// fails closed (503 registry_unavailable) on everything that reads the
// tenants, keeps answering probes and scrapes, and recovers by itself.
func TestBrokerFailsClosedOnStaleRegistry(t *testing.T) {
	srv := testenv.StartTestPostgres(t)
	db := testenv.NewDatabase(t, srv.URL("postgres"))
	k := newKeys(t)
	admin, err := postgres.Open(context.Background(), postgres.Options{URL: db, Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	f, err := registry.ParseFile([]byte(tenantsYAML(k)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Import(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	admin.Close()
	b := startBroker(t, k, map[string]string{"BROKER_CONFIG": "", "BROKER_DATABASE_URL": db,
		"BROKER_REGISTRY_REFRESH": "1s", "BROKER_REGISTRY_MAX_STALENESS": "2s"})
	checkWithDocument(t, b.URL)
	mint := func() response { return do(t, "POST", b.URL+"/token", k.acme, flo) }
	expect(t, mint(), 201, "")

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	// Poll /readyz, which the rate limits do not count.
	ready := func() response { return do(t, "GET", b.URL+"/readyz", "", nil) }
	within(t, 15*time.Second, "fail closed past the staleness", 503, ready)
	expect(t, mint(), 503, "registry_unavailable")
	expect(t, do(t, "POST", b.URL+"/public/token", k.pk, flo, "Origin", "https://demo.acme.example"), 503, "registry_unavailable")
	expect(t, do(t, "POST", b.URL+"/connect", "", map[string]any{"token": "x"}), 503, "registry_unavailable")
	// /readyz says how old the snapshot is (past the 2s staleness), in the
	// contract's error shape (the message; the OpenAPI document checks it).
	r := ready()
	expect(t, r, 503, "registry_unavailable")
	msg, _ := r.Body["message"].(string)
	var age float64
	if _, after, ok := strings.Cut(msg, "snapshot_age_seconds "); !ok {
		t.Fatalf("/readyz during the outage does not give the snapshot's age: %s", r.Raw)
	} else if _, err := fmt.Sscanf(after, "%g", &age); err != nil || age < 2 {
		t.Fatalf("/readyz during the outage does not give the snapshot's age past the staleness: %s", r.Raw)
	}
	if r.Header.Get("Retry-After") == "" {
		t.Fatal("/readyz's 503 has no Retry-After")
	}
	if r := do(t, "GET", b.URL+"/healthz", "", nil); r.Status != 200 {
		t.Fatalf("/healthz = %d", r.Status)
	}
	m := do(t, "GET", b.URL+"/metrics", "", nil)
	if m.Status != 200 || !strings.Contains(m.Raw, "voicebroker_registry_unavailable 1") || !strings.Contains(m.Raw, "voicebroker_registry_snapshot_age_seconds") {
		t.Fatalf("/metrics during the outage: %d", m.Status)
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	within(t, 20*time.Second, "recovery without a restart", 200, ready)
	if r := ready(); r.Body["snapshot_age_seconds"] == nil {
		t.Fatalf("/readyz after recovery has no snapshot age: %s", r.Raw)
	} else if age := r.Body["snapshot_age_seconds"].(float64); age >= 2 {
		t.Fatalf("/readyz after recovery: snapshot age %v, want under the staleness", age)
	}
	expect(t, mint(), 201, "")
	if m := do(t, "GET", b.URL+"/metrics", "", nil); !strings.Contains(m.Raw, "voicebroker_registry_unavailable 0") {
		t.Fatal("the unavailable gauge stays up after recovery")
	}
}

// /readyz gives the snapshot's age for every registry: 0 for a tenants
// file and for the embedded development tenant (their source is local).
func TestReadyzShowsSnapshotAge(t *testing.T) {
	k := newKeys(t)
	b := startBroker(t, k, nil)
	_, demo := testenv.StartDemoBroker(t)
	checkWithDocument(t, b.URL, demo)
	for _, url := range []string{b.URL, demo} {
		r := do(t, "GET", url+"/readyz", "", nil)
		expect(t, r, 200, "")
		if age, ok := r.Body["snapshot_age_seconds"].(float64); !ok || age != 0 {
			t.Fatalf("%s/readyz: snapshot_age_seconds missing or not 0: %s", url, r.Raw)
		}
	}
}

// An API secret (AUTH_API_SECRETS_JSON) naming an org deleted through the
// database: the snapshot is the truth and is taken, the error is logged
// (registry.check, no secret) and flagged by a gauge, and that secret fails
// closed with 401 unauthorized, like a revoked key, while the other org's
// secret keeps working. Recreating the org, once its id's quarantine has
// passed, clears the gauge.
func TestDatabaseAPISecretOfDeletedOrg(t *testing.T) {
	db := testenv.PostgresURL(t)
	k := newKeys(t)
	ctx, admin := importTenants(t, k, postgres.Options{URL: db})
	acmeSecret, globexSecret := "acme-"+randomWord(t)+strings.Repeat("a", 32), "globex-"+randomWord(t)+strings.Repeat("g", 32)
	b := startBroker(t, k, map[string]string{"BROKER_CONFIG": "", "BROKER_DATABASE_URL": db,
		"AUTH_API_SECRETS_JSON": fmt.Sprintf(`[{"id":"acme","secret":"%s"},{"id":"globex","secret":"%s"}]`, acmeSecret, globexSecret)})
	hank := map[string]any{"agent": "hank", "channel": "webrtc"}
	expect(t, do(t, "POST", b.URL+"/token", acmeSecret, flo), 201, "")
	gauge := func(v string) func() response {
		return func() response {
			m := do(t, "GET", b.URL+"/metrics", "", nil)
			if strings.Contains(m.Raw, "\nvoicebroker_registry_config_mismatch "+v+"\n") {
				return response{Status: 1}
			}
			return response{Status: 0, Raw: "voicebroker_registry_config_mismatch is not " + v}
		}
	}
	expect(t, gauge("0")(), 1, "")

	if err := admin.DeleteOrg(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	within(t, time.Second, "the deleted org's API secret refused", 401, func() response { return do(t, "POST", b.URL+"/token", acmeSecret, flo) })
	expect(t, do(t, "POST", b.URL+"/token", acmeSecret, flo), 401, "unauthorized")
	expect(t, do(t, "POST", b.URL+"/token", globexSecret, hank), 201, "")
	within(t, time.Second, "the mismatch gauge up", 1, gauge("1"))
	// /readyz stays 200: the broker serves every other credential.
	expect(t, do(t, "GET", b.URL+"/readyz", "", nil), 200, "")
	within(t, time.Second, "the registry.check error logged", 1, func() response {
		for _, l := range strings.Split(b.Logs.String(), "\n") {
			if strings.Contains(l, `"event":"registry.check"`) && strings.Contains(l, `"level":"ERROR"`) && strings.Contains(l, `\"acme\"`) {
				return response{Status: 1}
			}
		}
		return response{}
	})
	if !strings.Contains(b.Logs.String(), "api_secret_org_gone") {
		t.Fatal("the refusal's audit reason is not in the log")
	}

	// The org back (empty), once the id's quarantine has passed (its
	// tombstone moved back by registry.IDQuarantine): the secret works for
	// it again, the gauge is 0.
	if _, err := admin.CreateOrg(ctx, registry.OrgSpec{ID: "acme", Tier: "pro"}); !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("recreating a deleted org at once: err = %v, want the quarantine's ErrConflict", err)
	}
	if _, err := admin.Pool().Exec(ctx, "UPDATE voicebroker.org_tombstones SET deleted_at = deleted_at - $1::bigint * interval '1 microsecond'",
		registry.IDQuarantine.Microseconds()); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateOrg(ctx, registry.OrgSpec{ID: "acme", Tier: "pro"}); err != nil {
		t.Fatal(err)
	}
	within(t, time.Second, "the mismatch gauge down", 1, gauge("0"))
	logs := b.Logs.String()
	for _, s := range []string{acmeSecret, globexSecret} {
		if strings.Contains(logs, s) {
			t.Fatal("an API secret in the broker's log")
		}
	}
}

// importTenants opens the database of opts as a test admin (offline: it
// listens for nothing) and imports tenantsYAML(k) into it. The registry
// closes with the test; ctx carries the admin as the actor of its writes.
func importTenants(t *testing.T, k keys, opts postgres.Options) (context.Context, *postgres.Registry) {
	t.Helper()
	ctx := registry.WithActor(context.Background(), registry.Actor{Subject: "test:admin"})
	opts.Offline = true
	admin, err := postgres.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	f, err := registry.ParseFile([]byte(tenantsYAML(k)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Import(ctx, f); err != nil {
		t.Fatal(err)
	}
	return ctx, admin
}

// An org's LiveKit project on the default project's server, written to the
// database behind the admin API's back (which refuses it: see
// TestAdminLiveKitProjectServers): the snapshot is taken, the check fails
// as a reload of a file would (registry.check, naming LIVEKIT_URL and the
// org, no secret; the mismatch gauge up) until the project goes, and a
// broker starting on that database refuses to start.
func TestDatabaseLiveKitProjectOnTheDefaultServer(t *testing.T) {
	db := testenv.PostgresURL(t)
	k := newKeys(t)
	keyFile := secretsKeyFile(t)
	keys, err := secretbox.LoadKeyFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, admin := importTenants(t, k, postgres.Options{URL: db, Keyring: keys})
	def := hangingLiveKit(t)
	vars := map[string]string{"BROKER_CONFIG": "", "BROKER_DATABASE_URL": db, "BROKER_SECRETS_KEY_FILE": keyFile,
		"LIVEKIT_URL": def, "LIVEKIT_API_KEY": "APIdefault", "LIVEKIT_API_SECRET": strings.Repeat("d", 40)}
	b := startBroker(t, k, vars)
	gauge := func(v string) func() response {
		return func() response {
			if m := do(t, "GET", b.URL+"/metrics", "", nil); strings.Contains(m.Raw, "\nvoicebroker_registry_config_mismatch "+v+"\n") {
				return response{Status: 1}
			}
			return response{Raw: "voicebroker_registry_config_mismatch is not " + v}
		}
	}
	expect(t, gauge("0")(), 1, "")

	server := strings.TrimPrefix(def, "ws://")
	lkSecret := strings.Repeat("L", 40)
	if _, err := admin.PutLiveKit(ctx, "acme", registry.LiveKitSpec{URL: "http://" + server + "/", APIKey: "APIacme", APISecret: lkSecret}); err != nil {
		t.Fatal(err)
	}
	withinSecond(t, "acme's project in force", func() bool { return b.app.Tenants.Snapshot().LiveKit("acme") != nil })
	within(t, time.Second, "the mismatch gauge up", 1, gauge("1"))
	want := `LIVEKIT_URL: is the LiveKit server (` + server + `) of the livekit.url of org \"acme\"; an API key of a LiveKit server opens every room on it`
	within(t, time.Second, "the registry.check error logged", 1, func() response {
		for _, l := range strings.Split(b.Logs.String(), "\n") {
			if strings.Contains(l, `"event":"registry.check"`) && strings.Contains(l, `"level":"ERROR"`) && strings.Contains(l, want) {
				return response{Status: 1}
			}
		}
		return response{}
	})
	// A broker starting on this database refuses to.
	env, err := config.LoadEnv(func(n string) string {
		if n == "BROKER_ADDR" {
			return "127.0.0.1:0"
		}
		return vars[n]
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = app.New(env, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), strings.ReplaceAll(want, `\"`, `"`)) {
		t.Fatalf("start: %v", err)
	}
	if err := admin.DeleteLiveKit(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	within(t, time.Second, "the mismatch gauge down", 1, gauge("0"))
	if strings.Contains(b.Logs.String(), lkSecret) || strings.Contains(err.Error(), lkSecret) {
		t.Fatal("the project's secret in the log or the error")
	}
}
