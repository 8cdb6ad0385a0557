package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/apikey"
	"github.com/voicebroker/voicebroker/internal/registry"
	"github.com/voicebroker/voicebroker/internal/registry/postgres"
	"github.com/voicebroker/voicebroker/internal/registry/registrytest"
	"github.com/voicebroker/voicebroker/internal/registry/secretbox"
	"github.com/voicebroker/voicebroker/internal/testenv"
)

// eventually polls cond every 20ms for up to d.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func seed(t testing.TB, r registry.Registry) {
	t.Helper()
	f := registrytest.Seed(t)
	if _, err := r.Import(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	registrytest.WaitFor(t, r, "seed in force", registrytest.HasSeed)
}

// withPassword puts a password in a database URL; trust authentication
// ignores it, and nothing may ever print it.
func withPassword(raw, pw string) string {
	u, _ := url.Parse(raw)
	u.User = url.UserPassword(u.User.Username(), pw)
	return u.String()
}

// Two replicas on one database: a key created, or revoked, through one is
// in force on the other within a second.
func TestChangeReachesOtherReplicaWithinASecond(t *testing.T) {
	db := testenv.PostgresURL(t)
	a := open(t, db, nil)
	b := open(t, db, nil)
	seed(t, a)
	registrytest.WaitFor(t, b, "seed on b", registrytest.HasSeed)
	ctx := context.Background()

	_, key, err := a.CreateKey(ctx, "acme", registry.KeySpec{ID: "fresh", Scopes: []string{"tokens:create"}})
	if err != nil {
		t.Fatal(err)
	}
	d := registrytest.WaitWithin(t, b, time.Second, "a key created on a, usable on b", func(ten *config.Tenants) bool {
		k := ten.KeyByHash(apikey.Hash(key))
		return k != nil && !k.Revoked
	})
	t.Logf("create reached the other replica in %s", d)
	if err := b.RevokeKey(ctx, "acme", "fresh"); err != nil {
		t.Fatal(err)
	}
	d = registrytest.WaitWithin(t, a, time.Second, "a key revoked on b, refused on a", func(ten *config.Tenants) bool {
		k := ten.KeyByHash(apikey.Hash(key))
		return k != nil && k.Revoked
	})
	t.Logf("revocation reached the other replica in %s", d)
	if err := a.DeleteOrg(ctx, "globex"); err != nil {
		t.Fatal(err)
	}
	registrytest.WaitWithin(t, b, time.Second, "a deleted org's key refused on b", func(ten *config.Tenants) bool {
		return ten.KeyByHash(apikey.Hash(registrytest.KeyGlobex)) == nil
	})
	if b.Snapshot().Version < 3 || b.Snapshot().Version != a.Snapshot().Version {
		// Both followed the same writes.
		registrytest.WaitWithin(t, a, time.Second, "versions agree", func(*config.Tenants) bool { return a.Snapshot().Version == b.Snapshot().Version })
	}
}

// Concurrent creates of one id through two replicas: one succeeds, the
// others are conflicts.
func TestConcurrentCreatesAcrossReplicas(t *testing.T) {
	db := testenv.PostgresURL(t)
	rs := []*postgres.Registry{open(t, db, nil), open(t, db, nil)}
	seed(t, rs[0])
	var ok, conflict atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := rs[i%2].CreateKey(context.Background(), "acme", registry.KeySpec{ID: "same", Scopes: []string{"tokens:create"}})
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, registry.ErrConflict):
				conflict.Add(1)
			default:
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if ok.Load() != 1 || conflict.Load() != 15 {
		t.Fatalf("%d created, %d conflicts", ok.Load(), conflict.Load())
	}
}

// With the database stopped, a replica serves its snapshot until the
// allowed staleness, then fails closed; it recovers by itself when the
// database is back, and follows changes again.
func TestDatabaseOutage(t *testing.T) {
	srv := testenv.StartTestPostgres(t)
	const password = "s3cret-db-password"
	db := withPassword(testenv.NewDatabase(t, srv.URL("postgres")), password)
	logs := &syncBuffer{}
	r := open(t, db, func(o *postgres.Options) {
		o.Refresh, o.MaxStaleness = 300*time.Millisecond, 1500*time.Millisecond
		o.Backoff, o.MaxBackoff, o.Timeout = 50*time.Millisecond, 300*time.Millisecond, time.Second
		o.Log = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	seed(t, r)
	if err := r.Check(); err != nil {
		t.Fatal(err)
	}

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	// The snapshot is still served...
	if k := r.Current().KeyByHash(apikey.Hash(registrytest.KeyActive)); k == nil || k.Revoked {
		t.Fatal("the snapshot was dropped at the outage")
	}
	// ...writes fail as unavailable...
	_, _, err := r.CreateKey(context.Background(), "acme", registry.KeySpec{ID: "down", Scopes: []string{"tokens:create"}})
	if !errors.Is(err, registry.ErrUnavailable) || strings.Contains(err.Error(), password) {
		t.Fatalf("write during the outage: %v", err)
	}
	// ...and past the staleness allowed, the registry fails closed.
	eventually(t, 10*time.Second, "Check fails past MaxStaleness", func() bool { return r.Check() != nil })
	if err := r.Check(); !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("Check = %v", err)
	}
	if r.Age() < 1500*time.Millisecond {
		t.Fatalf("age %s below the staleness that failed", r.Age())
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "recovery without a restart", func() bool { return r.Check() == nil })
	if r.Age() > time.Second {
		t.Fatalf("age after recovery = %s", r.Age())
	}
	// Changes flow again.
	if err := r.RevokeKey(context.Background(), "acme", "backend"); err != nil {
		t.Fatal(err)
	}
	registrytest.WaitWithin(t, r, 2*time.Second, "a revocation after the outage", func(ten *config.Tenants) bool {
		return ten.KeyByHash(apikey.Hash(registrytest.KeyActive)).Revoked
	})
	out := logs.String()
	for _, want := range []string{"registry.disconnected", "registry.stale", "registry.recovered", "registry.connected"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %s in the log", want)
		}
	}
	for _, bad := range []string{password, "sha256:", "sk_live_", "pk_live_"} {
		if strings.Contains(out, bad) {
			t.Fatalf("the log holds %q", bad)
		}
	}
}

// A change made behind the broker's back (no notification) is caught by
// the periodic full refresh.
func TestRefreshCatchesLostNotification(t *testing.T) {
	db := testenv.PostgresURL(t)
	r := open(t, db, func(o *postgres.Options) { o.Refresh = 200 * time.Millisecond })
	seed(t, r)
	if _, err := r.Pool().Exec(context.Background(), "UPDATE voicebroker.secret_keys SET revoked_at = now() WHERE id = 'backend'"); err != nil {
		t.Fatal(err)
	}
	registrytest.WaitFor(t, r, "refresh applies an unannounced revocation", func(ten *config.Tenants) bool {
		return ten.KeyByHash(apikey.Hash(registrytest.KeyActive)).Revoked
	})
}

// An org whose stored rows no longer check is left out (its credentials
// stop working) while every other org goes on.
func TestCorruptOrgIsLeftOut(t *testing.T) {
	db := testenv.PostgresURL(t)
	logs := &syncBuffer{}
	r := open(t, db, func(o *postgres.Options) { o.Log = slog.New(slog.NewJSONHandler(logs, nil)) })
	seed(t, r)
	ctx := context.Background()
	if _, err := r.Pool().Exec(ctx, `UPDATE voicebroker.agents SET spec = '{"channels": ["video"]}' WHERE org_id = 'acme' AND id = 'bot';
		SELECT pg_notify('voicebroker_registry', '999999 acme')`); err != nil {
		t.Fatal(err)
	}
	registrytest.WaitFor(t, r, "the corrupt org left out", func(ten *config.Tenants) bool { return ten.Org("acme") == nil })
	ten := r.Current()
	if ten.KeyByHash(apikey.Hash(registrytest.KeyActive)) != nil || ten.PublishableByHash(apikey.Hash(registrytest.PubA)) != nil {
		t.Fatal("a credential of the left-out org still works")
	}
	if ten.KeyByHash(apikey.Hash(registrytest.KeyGlobex)) == nil {
		t.Fatal("another org went with it")
	}
	if !strings.Contains(logs.String(), "registry.org_left_out") || strings.Contains(logs.String(), "sha256:") {
		t.Fatalf("log: %s", logs.String())
	}
	// Mended, it comes back.
	if _, _, err := r.PutAgent(ctx, "acme", config.Agent{ID: "bot", Channels: []config.Channel{"chat"}}); err != nil {
		t.Fatal(err)
	}
	registrytest.WaitFor(t, r, "the org back", func(ten *config.Tenants) bool { return ten.Org("acme") != nil })
}

// Secrets at rest: keys as hashes only, LiveKit secrets sealed and bound
// to their org; a broker without the key refuses to start.
func TestSecretsAtRest(t *testing.T) {
	db := testenv.PostgresURL(t)
	r := open(t, db, nil)
	seed(t, r)
	ctx := context.Background()
	_, key, err := r.CreateKey(ctx, "acme", registry.KeySpec{ID: "new", Scopes: []string{"tokens:create"}})
	if err != nil {
		t.Fatal(err)
	}
	_, pk, err := r.CreatePublishableKey(ctx, "acme", "web", "")
	if err != nil {
		t.Fatal(err)
	}
	lkSecret := "livekit-secret-" + strings.Repeat("k", 30)
	if _, err := r.PutLiveKit(ctx, "acme", registry.LiveKitSpec{URL: "wss://acme.example", APIKey: "APIacme", APISecret: lkSecret}); err != nil {
		t.Fatal(err)
	}
	dump := dumpDB(t, r.Pool())
	for _, s := range []string{key, pk, lkSecret, registrytest.KeyActive, registrytest.PubA} {
		if strings.Contains(dump, s) {
			t.Fatalf("a secret is stored in the clear")
		}
	}
	if !strings.Contains(dump, apikey.Hash(key)) || !strings.Contains(dump, "v1:"+testKeyring.ID()+":") {
		t.Fatal("the hash or the sealed secret is missing")
	}

	// Without the key, or with another key only, the broker does not start.
	_, err = postgres.Open(ctx, postgres.Options{URL: db})
	if err == nil || !strings.Contains(err.Error(), "BROKER_SECRETS_KEY_FILE is not set") {
		t.Fatalf("open without a key: %v", err)
	}
	other, _ := secretbox.New(bytes.Repeat([]byte{0x17}, 32))
	_, err = postgres.Open(ctx, postgres.Options{URL: db, Keyring: other})
	if err == nil || !strings.Contains(err.Error(), testKeyring.ID()) {
		t.Fatalf("open with another key: %v", err)
	}
	// Rotation: the new key first, the old one after, opens the secret.
	rotated, _ := secretbox.New(bytes.Repeat([]byte{0x17}, 32), bytes.Repeat([]byte{0x42}, 32))
	r2 := open(t, db, func(o *postgres.Options) { o.Keyring = rotated })
	if p := r2.Snapshot().LiveKit("acme"); p == nil || p.APISecret.Reveal() != lkSecret {
		t.Fatal("the rotated keyring does not open the secret")
	}

	// A sealed secret moved to another org's row does not open there: that
	// org is left out rather than signing with another org's project.
	if _, err := r.PutLiveKit(ctx, "globex", registry.LiveKitSpec{URL: "wss://globex.example", APIKey: "APIglobex", APISecret: strings.Repeat("g", 40)}); err != nil {
		t.Fatal(err)
	}
	registrytest.WaitFor(t, r, "globex project", func(*config.Tenants) bool { return r.Snapshot().LiveKit("globex") != nil })
	if _, err := r.Pool().Exec(ctx, `UPDATE voicebroker.livekit_projects SET secret_sealed = (SELECT secret_sealed FROM voicebroker.livekit_projects WHERE org_id = 'acme')
		WHERE org_id = 'globex'; SELECT pg_notify('voicebroker_registry', '999999 globex')`); err != nil {
		t.Fatal(err)
	}
	registrytest.WaitFor(t, r, "the org with a swapped secret left out", func(ten *config.Tenants) bool { return ten.Org("globex") == nil })
	if r.Snapshot().LiveKit("globex") != nil || r.Snapshot().LiveKit("acme") == nil {
		t.Fatal("LiveKit projects after the swap")
	}
}

// dumpDB returns every row of the registry's tables as text.
func dumpDB(t testing.TB, pool *pgxpool.Pool) string {
	t.Helper()
	var b strings.Builder
	for _, table := range []string{"orgs", "secret_keys", "agents", "publishable_keys", "jwt_issuers", "livekit_projects", "org_tombstones", "audit_events"} {
		rows, err := pool.Query(context.Background(), "SELECT row_to_json(t)::text FROM voicebroker."+table+" t")
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(strings.Join(lines, "\n"))
	}
	return b.String()
}

// last_used_at: one write a minute per key at most, across replicas.
func TestLastUsedBatched(t *testing.T) {
	db := testenv.PostgresURL(t)
	var now atomic.Int64
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	now.Store(t0.UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	a := open(t, db, func(o *postgres.Options) { o.Now = clock })
	b := open(t, db, func(o *postgres.Options) { o.Now = clock })
	seed(t, a)
	ctx := context.Background()
	lastUsed := func() time.Time {
		keys, err := a.ListKeys(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if keys[0].LastUsedAt == nil {
			return time.Time{}
		}
		return *keys[0].LastUsedAt
	}
	for range 1000 {
		a.Used("acme", "backend")
	}
	if err := a.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	if got := lastUsed(); !got.Equal(t0) {
		t.Fatalf("last_used_at = %v, want %v", got, t0)
	}
	// 30 s later, on either replica: nothing is written.
	now.Store(t0.Add(30 * time.Second).UnixNano())
	a.Used("acme", "backend")
	b.Used("acme", "backend")
	for _, r := range []*postgres.Registry{a, b} {
		if err := r.FlushUsage(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := lastUsed(); !got.Equal(t0) {
		t.Fatalf("last_used_at moved within the minute: %v", got)
	}
	// A minute on, it moves (a's last recorded use was at t0; b's at
	// t0+30s, so b would wait until t0+90s).
	t1 := t0.Add(61 * time.Second)
	now.Store(t1.UnixNano())
	a.Used("acme", "backend")
	if err := a.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	if got := lastUsed(); !got.Equal(t1) {
		t.Fatalf("last_used_at = %v, want %v", got, t1)
	}
	// A use that could not be written is kept for the next flush.
	now.Store(t1.Add(2 * time.Minute).UnixNano())
	a.Used("acme", "backend")
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := a.FlushUsage(cctx); err == nil {
		t.Fatal("a flush with a cancelled context succeeded")
	}
	if err := a.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	if got := lastUsed(); !got.Equal(t1.Add(2 * time.Minute)) {
		t.Fatalf("a use lost with a failed flush: %v", got)
	}
}

// Migrations: concurrent starts apply each migration once; a second run
// applies nothing; a newer schema is refused.
func TestMigrationsConcurrent(t *testing.T) {
	db := testenv.PostgresURL(t)
	ctx := context.Background()
	const n = 6
	var wg sync.WaitGroup
	applied := make([][]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pool, err := pgxpool.New(ctx, db)
			if err != nil {
				errs[i] = err
				return
			}
			defer pool.Close()
			applied[i], errs[i] = postgres.Migrate(ctx, pool)
		}()
	}
	wg.Wait()
	total := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("migrate %d: %v", i, errs[i])
		}
		total += len(applied[i])
	}
	if total != postgres.SchemaVersion() {
		t.Fatalf("%d migrations applied in all, want %d once each: %v", total, postgres.SchemaVersion(), applied)
	}
	pool, err := pgxpool.New(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var rows int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM voicebroker.schema_migrations").Scan(&rows); err != nil || rows != postgres.SchemaVersion() {
		t.Fatalf("schema_migrations rows = %d, %v", rows, err)
	}
	if again, err := postgres.Migrate(ctx, pool); err != nil || len(again) != 0 {
		t.Fatalf("second run: %v %v", again, err)
	}
	if _, err := pool.Exec(ctx, "INSERT INTO voicebroker.schema_migrations (version, name) VALUES (99, 'future')"); err != nil {
		t.Fatal(err)
	}
	_, err = postgres.Migrate(ctx, pool)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("version 99, newer than this broker's %d", postgres.SchemaVersion())) {
		t.Fatalf("newer schema: %v", err)
	}
	// The advisory lock was released: a registry still opens... no: it is
	// refused for the newer schema, with the same message.
	_, err = postgres.Open(ctx, postgres.Options{URL: db, Keyring: testKeyring})
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("open on a newer schema: %v", err)
	}
}

// Open's errors name the problem, never the password.
func TestOpenErrors(t *testing.T) {
	const password = "p4ssw0rd-never-shown"
	for name, u := range map[string]string{
		"bad url":     "postgres://vb:" + password + "@[::1",
		"nobody home": "postgres://vb:" + password + "@127.0.0.1:1/none?connect_timeout=2",
	} {
		_, err := postgres.Open(context.Background(), postgres.Options{URL: u, Timeout: 2 * time.Second})
		if err == nil || strings.Contains(err.Error(), password) || !strings.Contains(err.Error(), "BROKER_DATABASE_URL") {
			t.Fatalf("%s: %v", name, err)
		}
	}
}
