// Package redis is the shared Store: nonces, room owners and rate limits in
// Redis (one node via a URL, or a Redis Cluster), so that any number of
// broker replicas agree on which ticket was used.
//
// Every call carries a deadline (the store timeout) and go-redis retries
// nothing: a command that may or may not have run is reported as
// store.ErrUnavailable and the broker fails closed. Every command touches
// one key, so every command is on one cluster slot.
package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/voicebroker/voicebroker/internal/store"
)

var _ store.Store = (*Store)(nil)

// Key prefixes. redis_rate adds its own "rate:" before the limiter keys.
const (
	noncePrefix = "vb:nonce:"
	roomPrefix  = "vb:room:"
	ratePrefix  = "vb:"
)

// claimRoom sets the owner unless another org holds the room, and returns
// the owner after the call.
var claimRoom = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
return cur
`)

// releaseRoom deletes the owner record only if ARGV[1] owns it.
var releaseRoom = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// Store is a store.Store on Redis.
type Store struct {
	rdb     redis.UniversalClient
	limiter *redis_rate.Limiter
	timeout time.Duration
}

// Options configures the client; zero fields take the defaults.
type Options struct {
	// Timeout bounds every call, dial included (default 500ms).
	Timeout time.Duration
	// PoolSize is the number of connections per node (default go-redis's).
	PoolSize int
}

func (o *Options) timeout() time.Duration {
	if o == nil || o.Timeout <= 0 {
		return 500 * time.Millisecond
	}
	return o.Timeout
}

// NewURL connects to one Redis node given as redis:// or rediss:// URL.
// Nothing is sent until the first call; use Ping to check.
func NewURL(url string, o *Options) (*Store, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		// The URL may hold a password: do not echo it.
		return nil, errors.New("redis: BROKER_REDIS_URL does not parse")
	}
	t := o.timeout()
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.PoolTimeout = t, t, t, t
	opt.MaxRetries = -1
	opt.ContextTimeoutEnabled = true
	if o != nil && o.PoolSize > 0 {
		opt.PoolSize = o.PoolSize
	}
	return New(redis.NewClient(opt), t), nil
}

// NewCluster connects to a Redis Cluster through any of addrs (host:port).
func NewCluster(addrs []string, o *Options) *Store {
	t := o.timeout()
	opt := &redis.ClusterOptions{
		Addrs:       addrs,
		DialTimeout: t, ReadTimeout: t, WriteTimeout: t, PoolTimeout: t,
		MaxRetries:            -1,
		ContextTimeoutEnabled: true,
	}
	if o != nil && o.PoolSize > 0 {
		opt.PoolSize = o.PoolSize
	}
	return New(redis.NewClusterClient(opt), t)
}

// New wraps an existing client; timeout bounds every call.
func New(rdb redis.UniversalClient, timeout time.Duration) *Store {
	return &Store{rdb: rdb, limiter: redis_rate.NewLimiter(rdb), timeout: timeout}
}

// Client returns the underlying client, for tests and INFO scrapes.
func (s *Store) Client() redis.UniversalClient { return s.rdb }

func (s *Store) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

func unavailable(op string, err error) error {
	return fmt.Errorf("%w: redis %s: %v", store.ErrUnavailable, op, err)
}

// PutNonce implements store.Nonces with one SET NX PX.
func (s *Store) PutNonce(ctx context.Context, id string, ttl time.Duration) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	// SetArgs rather than SetNX: one command whose reply tells stored from present.
	err := s.rdb.SetArgs(ctx, noncePrefix+id, "1", redis.SetArgs{Mode: "NX", TTL: ttl}).Err()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, redis.Nil):
		return store.ErrExists
	}
	return unavailable("SET", err)
}

// ConsumeNonce implements store.Nonces with one GETDEL: Redis runs it
// atomically, so exactly one of concurrent callers sees the value.
func (s *Store) ConsumeNonce(ctx context.Context, id string) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	err := s.rdb.GetDel(ctx, noncePrefix+id).Err()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, redis.Nil):
		return store.ErrNotFound
	}
	return unavailable("GETDEL", err)
}

// ClaimRoom implements store.Rooms with one script on one key.
func (s *Store) ClaimRoom(ctx context.Context, room, org string, ttl time.Duration) (string, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	owner, err := claimRoom.Run(ctx, s.rdb, []string{roomPrefix + room}, org, ttl.Milliseconds()).Text()
	if err != nil {
		return "", unavailable("claim room", err)
	}
	return owner, nil
}

// RoomOwner implements store.Rooms.
func (s *Store) RoomOwner(ctx context.Context, room string) (string, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	owner, err := s.rdb.Get(ctx, roomPrefix+room).Result()
	switch {
	case err == nil:
		return owner, nil
	case errors.Is(err, redis.Nil):
		return "", store.ErrNotFound
	}
	return "", unavailable("GET", err)
}

// ReleaseRoom implements store.Rooms.
func (s *Store) ReleaseRoom(ctx context.Context, room, org string) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	if err := releaseRoom.Run(ctx, s.rdb, []string{roomPrefix + room}, org).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return unavailable("release room", err)
	}
	return nil
}

// Allow implements store.Limiter with redis_rate's GCRA script.
func (s *Store) Allow(ctx context.Context, key string, limit store.Limit) (store.Result, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	l := redis_rate.Limit{Rate: limit.Rate, Burst: limit.Burst, Period: limit.Period}
	r, err := s.limiter.Allow(ctx, ratePrefix+key, l)
	if err != nil {
		return store.Result{}, unavailable("rate limit", err)
	}
	res := store.Result{Limit: limit, Allowed: r.Allowed > 0, Remaining: r.Remaining, ResetAfter: r.ResetAfter}
	if r.RetryAfter > 0 {
		res.RetryAfter = r.RetryAfter
	}
	return res, nil
}

// Ping implements store.Store. On a cluster it pings every master.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	var err error
	if c, ok := s.rdb.(*redis.ClusterClient); ok {
		err = c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return n.Ping(ctx).Err() })
	} else {
		err = s.rdb.Ping(ctx).Err()
	}
	if err != nil {
		return unavailable("PING", err)
	}
	return nil
}

// Close closes the client.
func (s *Store) Close() error { return s.rdb.Close() }
