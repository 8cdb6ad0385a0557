package postgres_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/voicebroker/voicebroker/internal/registry"
	"github.com/voicebroker/voicebroker/internal/registry/postgres"
	"github.com/voicebroker/voicebroker/internal/testenv"
)

// tombstones lists the org ids of the tombstone rows.
func tombstones(t testing.TB, r *postgres.Registry) []string {
	t.Helper()
	rows, err := r.Pool().Query(context.Background(), "SELECT id FROM voicebroker.org_tombstones ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// The quarantine is timed by the database's clock, one for every replica:
// a replica whose own clock is a week ahead refuses an id another replica
// has just deleted.
func TestQuarantineDatabaseClock(t *testing.T) {
	db := testenv.PostgresURL(t)
	a := open(t, db, nil)
	b := open(t, db, func(o *postgres.Options) {
		o.Now = func() time.Time { return time.Now().Add(7 * 24 * time.Hour) }
	})
	seed(t, a)
	ctx := context.Background()
	if err := a.DeleteOrg(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateOrg(ctx, registry.OrgSpec{ID: "acme", Tier: "free"}); !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("another replica, its clock ahead: err = %v, want the quarantine's ErrConflict", err)
	}
}

// Tombstones past the quarantine are pruned at the next delete.
func TestTombstonesPruned(t *testing.T) {
	r := open(t, testenv.PostgresURL(t), nil)
	seed(t, r)
	ctx := context.Background()
	if err := r.DeleteOrg(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	backdate(t, r, registry.IDQuarantine-time.Minute)
	if err := r.DeleteOrg(ctx, "globex"); err != nil {
		t.Fatal(err)
	}
	if got := tombstones(t, r); !slices.Equal(got, []string{"acme", "globex"}) {
		t.Fatalf("tombstones within the quarantine = %v", got)
	}
	backdate(t, r, time.Minute)
	if _, err := r.CreateOrg(ctx, registry.OrgSpec{ID: "hooli", Tier: "free"}); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteOrg(ctx, "hooli"); err != nil {
		t.Fatal(err)
	}
	if got := tombstones(t, r); !slices.Equal(got, []string{"globex", "hooli"}) {
		t.Fatalf("tombstones after a delete = %v, want acme's pruned", got)
	}
}

// A registry at schema version 1 (before tombstones), orgs in it, migrates
// to the tombstones table, and its deletes are quarantined from then on.
func TestMigrationTombstones(t *testing.T) {
	db := testenv.PostgresURL(t)
	r := open(t, db, nil)
	seed(t, r)
	ctx := context.Background()
	pool := r.Pool()
	if _, err := pool.Exec(ctx, `DROP TABLE voicebroker.org_tombstones;
		DELETE FROM voicebroker.schema_migrations WHERE version >= 2`); err != nil {
		t.Fatal(err)
	}
	applied, err := postgres.Migrate(ctx, pool)
	if err != nil || !slices.Equal(applied, []string{"0002_org_tombstones.sql"}) {
		t.Fatalf("migrate from version 1: %v %v", applied, err)
	}
	if err := r.DeleteOrg(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.CreateOrg(ctx, registry.OrgSpec{ID: "acme", Tier: "free"}); !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("after the migration: err = %v, want the quarantine's ErrConflict", err)
	}
}
