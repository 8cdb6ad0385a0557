// Package postgres is the tenant registry in PostgreSQL (BROKER_DATABASE_URL),
// for platforms with many orgs managed through the admin API.
//
// Every replica holds the whole registry in memory (registry.Snapshot) and
// follows changes: each write bumps a version row and sends NOTIFY in its
// own transaction, and a dedicated connection LISTENs and reloads the orgs
// named, in a few milliseconds; a full refresh every Refresh catches what a
// lost notification missed. With the database unreachable, a replica keeps
// serving its snapshot for MaxStaleness, then Check fails (503
// registry_unavailable) until it reconnects, which it keeps trying with
// backoff. Only this package knows pgx.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/voicebroker/voicebroker/internal/registry"
	"github.com/voicebroker/voicebroker/internal/registry/secretbox"
)

// channel is the LISTEN/NOTIFY channel of registry changes.
const channel = "voicebroker_registry"

// Defaults of Options.
const (
	DefaultRefresh      = 30 * time.Second
	DefaultMaxStaleness = 15 * time.Minute
	DefaultUsageFlush   = 10 * time.Second
	DefaultTimeout      = 10 * time.Second
)

// Options configure a Registry.
type Options struct {
	// URL is BROKER_DATABASE_URL. It holds a password: it is never logged.
	URL string
	// Refresh is the interval of the full refresh behind LISTEN/NOTIFY;
	// 0 means DefaultRefresh.
	Refresh time.Duration
	// MaxStaleness is how long the snapshot is served with the database
	// unreachable; 0 means forever (BROKER_REGISTRY_MAX_STALENESS=0).
	MaxStaleness time.Duration
	// Keyring seals per-org LiveKit secrets; nil when
	// BROKER_SECRETS_KEY_FILE is unset (Open then refuses a database that
	// holds a secret, and PutLiveKit returns registry.ErrNoSecretsKey).
	Keyring *secretbox.Keyring
	// Log receives the registry's events; nil discards them.
	Log *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// UsageFlush is how often last_used_at uses are written; 0 means
	// DefaultUsageFlush. UsageEvery is the least time between two writes
	// for one key; 0 means a minute.
	UsageFlush, UsageEvery time.Duration
	// Timeout bounds each database call made without a deadline of its
	// own; 0 means DefaultTimeout.
	Timeout time.Duration
	// Backoff is the first and MaxBackoff the longest wait between two
	// reconnection attempts; 0 means 100ms and 5s.
	Backoff, MaxBackoff time.Duration
	// MaxConns bounds the pool; 0 means 10.
	MaxConns int32
	// Offline opens the registry for a command that only reads and writes
	// the database (broker tenants import and export): no snapshot is
	// loaded, Run must not be called, and LiveKit secrets are never opened,
	// so BROKER_SECRETS_KEY_FILE is not needed.
	Offline bool
}

// Registry is the tenant registry in PostgreSQL.
// fullLoad bounds a read of the whole registry: Open's, and a replica's
// on reconnect and at each full refresh. It is the same for all three, so
// that a registry Open could load is never too big to reload: a replica
// that could not would fail closed beside a healthy database.
func (o Options) fullLoad() time.Duration { return 4 * o.Timeout }

type Registry struct {
	registry.Holder

	opt   Options
	pool  *pgxpool.Pool
	log   *slog.Logger
	usage registry.UsageRecorder

	confirmed atomic.Int64 // unix nanos when the snapshot was last confirmed current
	stale     atomic.Bool  // reported once per outage

	// The follower's state, owned by the goroutine that runs follow (or
	// by Open before it starts).
	asm     registry.Assembler
	digests map[string][32]byte
	version int64

	closeOnce sync.Once
}

var _ registry.Registry = (*Registry)(nil)

// Open connects, migrates the schema (under an advisory lock), checks that
// every stored secret can be opened, and loads the first snapshot. An
// error means the broker must not start; it never holds the password.
func Open(ctx context.Context, opt Options) (*Registry, error) {
	if opt.Refresh <= 0 {
		opt.Refresh = DefaultRefresh
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.UsageFlush <= 0 {
		opt.UsageFlush = DefaultUsageFlush
	}
	if opt.UsageEvery <= 0 {
		opt.UsageEvery = time.Minute
	}
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultTimeout
	}
	if opt.Backoff <= 0 {
		opt.Backoff = 100 * time.Millisecond
	}
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = 5 * time.Second
	}
	if opt.MaxConns <= 0 {
		opt.MaxConns = 10
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(opt.URL)
	if err != nil {
		// pgx's message may quote the URL: say only what is wrong.
		return nil, errors.New("BROKER_DATABASE_URL: not a valid PostgreSQL URL")
	}
	cfg.MaxConns = opt.MaxConns
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > opt.Timeout {
		cfg.ConnConfig.ConnectTimeout = opt.Timeout
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "voicebroker"
	r := &Registry{opt: opt, log: opt.Log, digests: map[string][32]byte{}}
	r.usage.Every, r.usage.Now = opt.UsageEvery, opt.Now

	ctx, cancel := context.WithTimeout(ctx, opt.fullLoad())
	defer cancel()
	if r.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("BROKER_DATABASE_URL: %w", dbError(err))
	}
	if err := r.pool.Ping(ctx); err != nil {
		r.pool.Close()
		return nil, fmt.Errorf("BROKER_DATABASE_URL (%s): %w", where(opt.URL), dbError(err))
	}
	applied, err := Migrate(ctx, r.pool)
	if err != nil {
		r.pool.Close()
		return nil, err
	}
	if len(applied) > 0 {
		r.log.Info("registry schema migrated", "event", "registry.migrate", "applied", applied)
	}
	if opt.Offline {
		return r, nil
	}
	if err := r.checkSecrets(ctx); err != nil {
		r.pool.Close()
		return nil, err
	}
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		r.pool.Close()
		return nil, dbError(err)
	}
	err = r.refreshAll(ctx, conn.Conn())
	conn.Release()
	if err != nil {
		r.pool.Close()
		return nil, fmt.Errorf("loading the registry: %w", err)
	}
	return r, nil
}

// where names the database of a URL without its password, for messages.
func where(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "?"
	}
	return u.Host + u.Path
}

// checkSecrets refuses a database holding per-org LiveKit secrets that
// this broker cannot open.
func (r *Registry) checkSecrets(ctx context.Context) error {
	rows, err := r.pool.Query(ctx, "SELECT secret_key_id, count(*) FROM voicebroker.livekit_projects GROUP BY 1 ORDER BY 1")
	if err != nil {
		return dbError(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return dbError(err)
		}
		if r.opt.Keyring == nil {
			return fmt.Errorf("BROKER_SECRETS_KEY_FILE is not set, and the database holds %d per-org LiveKit secret(s) sealed with key %s", n, id)
		}
		if !r.opt.Keyring.Has(id) {
			return fmt.Errorf("BROKER_SECRETS_KEY_FILE lacks key %s, which sealed %d per-org LiveKit secret(s) (it holds %s); list the old key after the new one to rotate", id, n, r.opt.Keyring.ID())
		}
	}
	return dbError(rows.Err())
}

// Kind is "postgres".
func (r *Registry) Kind() string { return "postgres" }

// Pool returns the connection pool (for `broker migrate` and tests).
func (r *Registry) Pool() *pgxpool.Pool { return r.pool }

// Age is how long ago the snapshot was last confirmed current.
func (r *Registry) Age() time.Duration {
	c := r.confirmed.Load()
	if c == 0 {
		return 0
	}
	return max(r.opt.Now().Sub(time.Unix(0, c)), 0)
}

// Check fails, wrapping registry.ErrUnavailable, once the snapshot is older
// than MaxStaleness.
func (r *Registry) Check() error {
	if r.opt.MaxStaleness <= 0 {
		return nil
	}
	if age := r.Age(); age > r.opt.MaxStaleness {
		if r.stale.CompareAndSwap(false, true) {
			r.log.Error("registry snapshot past BROKER_REGISTRY_MAX_STALENESS: failing closed", "event", "registry.stale",
				"age_seconds", int(age.Seconds()), "max_staleness_seconds", int(r.opt.MaxStaleness.Seconds()))
		}
		return fmt.Errorf("%w: the snapshot is %s old, past the %s allowed", registry.ErrUnavailable, age.Round(time.Second), r.opt.MaxStaleness)
	}
	return nil
}

func (r *Registry) confirm() {
	r.confirmed.Store(r.opt.Now().UnixNano())
	if r.stale.CompareAndSwap(true, false) {
		r.log.Info("registry snapshot current again", "event", "registry.recovered")
	}
}

// Used records a key's use; a batch is written every UsageFlush.
func (r *Registry) Used(org, keyID string) { r.usage.Used(org, keyID) }

// Run follows the database (LISTEN/NOTIFY, refreshes, reconnection) and
// writes last_used_at batches until ctx ends.
func (r *Registry) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.follow(ctx) }()
	go func() { defer wg.Done(); r.flushLoop(ctx) }()
	wg.Wait()
	return nil
}

// Close writes the pending uses and closes the pool. Call it after Run
// has returned.
func (r *Registry) Close() error {
	r.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), r.opt.Timeout)
		defer cancel()
		if err := r.FlushUsage(ctx); err != nil {
			r.log.Warn("last_used_at not written at close", "event", "registry.usage", "error", err.Error())
		}
		r.pool.Close()
	})
	return nil
}

func (r *Registry) stamp() time.Time { return r.opt.Now().UTC().Truncate(time.Microsecond) }

// timeout gives ctx the default deadline when it has none.
func (r *Registry) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, r.opt.Timeout)
}
