package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrateLock is the advisory lock key under which migrations run, so that
// replicas starting together apply each migration once.
const migrateLock int64 = 0x7662_7265_6769_7374 // "vbregist"

type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations() ([]migration, error) {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, n := range names {
		base := strings.TrimPrefix(n, "migrations/")
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: the name must start with its number", base)
		}
		b, err := migrations.ReadFile(n)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(b)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: numbers must run 1, 2, 3, ...", m.name)
		}
	}
	return ms, nil
}

// SchemaVersion is the schema version this broker brings.
func SchemaVersion() int {
	ms, _ := loadMigrations()
	return len(ms)
}

// Migrate brings the database's schema up to this broker's version and
// returns the migrations it applied. Concurrent callers (replicas starting
// together) wait on an advisory lock, so each migration runs once; each
// runs in its own transaction. A database whose schema is newer than this
// broker is an error: an older broker must not write to it.
func Migrate(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	ms, err := loadMigrations()
	if err != nil {
		return nil, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", dbError(err))
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLock); err != nil {
		return nil, fmt.Errorf("migrate: taking the lock: %w", dbError(err))
	}
	defer func() {
		// The lock is the session's: release it even when ctx has ended,
		// or the pooled connection would keep it.
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", migrateLock); err != nil {
			conn.Conn().Close(uctx)
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS voicebroker;
CREATE TABLE IF NOT EXISTS voicebroker.schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
		return nil, fmt.Errorf("migrate: %w", dbError(err))
	}
	var current int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM voicebroker.schema_migrations").Scan(&current); err != nil {
		return nil, fmt.Errorf("migrate: %w", dbError(err))
	}
	if current > len(ms) {
		return nil, fmt.Errorf("the database's registry schema is version %d, newer than this broker's %d: run a newer broker", current, len(ms))
	}
	var applied []string
	for _, m := range ms[current:] {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO voicebroker.schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name)
			return err
		})
		if err != nil {
			return applied, fmt.Errorf("migration %s: %w", m.name, dbError(err))
		}
		applied = append(applied, m.name)
	}
	return applied, nil
}

// MigrateURL runs Migrate on the database at url (`broker migrate`).
func MigrateURL(ctx context.Context, url string) ([]string, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, errors.New("BROKER_DATABASE_URL: not a valid PostgreSQL URL")
	}
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("BROKER_DATABASE_URL: %w", dbError(err))
	}
	defer pool.Close()
	if err := pool.Ping(ctx); err != nil {
		return nil, fmt.Errorf("BROKER_DATABASE_URL (%s): %w", where(url), dbError(err))
	}
	return Migrate(ctx, pool)
}
