// Package redis is the shared Store: nonces, room owners, webhook events and
// rate limits in Redis (one node via a URL, or a Redis Cluster), so that any number of
// broker replicas agree on which ticket was used.
//
// Every call carries a deadline (the store timeout) and go-redis retries
// nothing: a command that may or may not have run is reported as
// store.ErrUnavailable and the broker fails closed. Every command is on one
// cluster slot: it touches one key, or keys that share the org's hash tag,
// or a room's owner record and its claim time (see claimedKey).
package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/voicebroker/voicebroker/internal/store"
)

var _ store.Store = (*Store)(nil)

// Key prefixes. redis_rate adds its own "rate:" before the limiter keys.
// A nonce key carries its org as a hash tag, {org}, as store.OrgKey does:
// a nonce and its org's limiter state share a cluster slot, so one script
// can count the request and store or consume the nonce.
const (
	roomPrefix  = "vb:room:"
	ratePrefix  = "vb:"
	eventPrefix = "vb:wh:"
)

// claimedKey is where the time of room's latest claim is kept, beside its
// owner record (roomPrefix+room, which stays a plain string holding the
// org, as brokers before claim times read and write it). The hash tag is
// the whole owner key, so both keys are on the owner key's cluster slot. A
// room name with a brace would make that tag differ; there is then no
// claim-time key ("", false), and such a record is never released by
// ReleaseRoomClaimedBy (the broker never claims such a name: the room
// grammar has no braces).
func claimedKey(room string) (string, bool) {
	if strings.ContainsAny(room, "{}") {
		return "", false
	}
	return "{" + roomPrefix + room + "}:claimed", true
}

// roomKeys are the keys of room's scripts: the owner key, then the claim
// time's if it has one.
func roomKeys(room string) []string {
	if k, ok := claimedKey(room); ok {
		return []string{roomPrefix + room, k}
	}
	return []string{roomPrefix + room}
}

func nonceKey(n store.Nonce) string { return "vb:n:{" + n.Org + "}:" + n.ID }

// proofKey is where a DPoP proof of n's org is recorded: beside the nonce,
// under the same {org} hash tag.
func proofKey(n store.Nonce, p store.Proof) string { return "vb:p:{" + n.Org + "}:" + p.Key }

// rateKey is the redis_rate key of a store.Limiter key, so that Allow(key)
// and a limited nonce call on the same key share one bucket.
func rateKey(key string) string { return "rate:" + ratePrefix + key }

// limitedNonce is one GCRA step on KEYS[1], then, if allowed, SET NX PX
// (ARGV[4] "put") or GETDEL (ARGV[4] "consume") on KEYS[2]. It keeps the
// limiter state in redis_rate's form (the theoretical arrival time in
// seconds since 2017-01-01, with the same emission interval and burst
// arithmetic), so redis_rate.Allow on the same key sees the same bucket.
// Returns {allowed, remaining, retry_after, reset_after, done}; done is 1
// when the nonce was stored or consumed, 0 when it existed or was absent.
var limitedNonce = redis.NewScript(`
local burst, rate, period = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local interval = period / rate
local t = redis.call('TIME')
local now = (t[1] - 1483228800) + (t[2] / 1000000)
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local diff = now - (new_tat - interval * burst)
if diff < 0 then
  return {0, 0, tostring(-diff), tostring(tat - now), 0}
end
redis.call('SET', KEYS[1], new_tat, 'EX', math.ceil(new_tat - now))
local remaining = math.floor(diff / interval)
local done = 0
if ARGV[4] == 'put' then
  if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[5]) then done = 1 end
else
  if redis.call('GETDEL', KEYS[2]) then done = 1 end
end
return {1, remaining, '-1', tostring(new_tat - now), done}
`)

// consumeWithProof is ConsumeNonceWithProof on KEYS[1] (the nonce) and
// KEYS[2] (the proof), both under the org's hash tag. Returns 2 when the
// proof is recorded already (nothing consumed), 0 when the nonce is absent
// (nothing recorded), 1 when the nonce was consumed and the proof recorded
// for ARGV[1] ms.
var consumeWithProof = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 1 then return 2 end
if not redis.call('GETDEL', KEYS[1]) then return 0 end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
return 1
`)

// claimRoom sets the owner KEYS[1] to ARGV[1] for ARGV[2] ms unless
// another org holds the room, and returns the owner after the call. A
// successful claim also writes its time, Redis's TIME in ms, to KEYS[2]
// (when given) with the same ttl.
var claimRoom = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  if KEYS[2] then
    local t = redis.call('TIME')
    redis.call('SET', KEYS[2], string.format('%.0f', t[1] * 1000 + math.floor(t[2] / 1000)), 'PX', ARGV[2])
  end
  return ARGV[1]
end
return cur
`)

// releaseRoom deletes the owner record (and its claim time) only if
// ARGV[1] owns it.
var releaseRoom = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', unpack(KEYS))
end
return 0
`)

// releaseRoomClaimedBy deletes the owner record and its claim time if
// ARGV[1] owns the room and the claim time is known and at most ARGV[2]
// (ms). Returns 1 when it deleted them.
var releaseRoomClaimedBy = redis.NewScript(`
if not KEYS[2] or redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local at = tonumber(redis.call('GET', KEYS[2]))
if at == nil or at > tonumber(ARGV[2]) then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
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

// quiet discards go-redis's own log lines (dial retries and the like): every
// failure reaches the broker as an error, which it logs in its own format.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// New wraps an existing client; timeout bounds every call.
func New(rdb redis.UniversalClient, timeout time.Duration) *Store {
	redis.SetLogger(quiet{})
	return &Store{rdb: rdb, limiter: redis_rate.NewLimiter(rdb), timeout: timeout}
}

func (s *Store) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

func unavailable(op string, err error) error {
	return fmt.Errorf("%w: redis %s: %v", store.ErrUnavailable, op, err)
}

// PutNonce implements store.Nonces in one round trip: SET NX PX, or the
// limitedNonce script when a limit is given.
func (s *Store) PutNonce(ctx context.Context, n store.Nonce, ttl time.Duration, limit *store.Limit) (store.Result, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	if limit != nil {
		return s.limited(ctx, n, limit, "put", ttl, store.ErrExists)
	}
	// SetArgs rather than SetNX: one command whose reply tells stored from present.
	err := s.rdb.SetArgs(ctx, nonceKey(n), "1", redis.SetArgs{Mode: "NX", TTL: ttl}).Err()
	switch {
	case err == nil:
		return store.Result{Allowed: true}, nil
	case errors.Is(err, redis.Nil):
		return store.Result{Allowed: true}, store.ErrExists
	}
	return store.Result{}, unavailable("SET", err)
}

// ConsumeNonce implements store.Nonces in one round trip: GETDEL, which
// Redis runs atomically so exactly one of concurrent callers sees the
// value, or the limitedNonce script when a limit is given.
func (s *Store) ConsumeNonce(ctx context.Context, n store.Nonce, limit *store.Limit) (store.Result, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	if limit != nil {
		return s.limited(ctx, n, limit, "consume", 0, store.ErrNotFound)
	}
	err := s.rdb.GetDel(ctx, nonceKey(n)).Err()
	switch {
	case err == nil:
		return store.Result{Allowed: true}, nil
	case errors.Is(err, redis.Nil):
		return store.Result{Allowed: true}, store.ErrNotFound
	}
	return store.Result{}, unavailable("GETDEL", err)
}

func (s *Store) limited(ctx context.Context, n store.Nonce, limit *store.Limit, op string, ttl time.Duration, notDone error) (store.Result, error) {
	v, err := limitedNonce.Run(ctx, s.rdb, []string{rateKey(n.LimitKey()), nonceKey(n)},
		limit.Burst, limit.Rate, limit.Period.Seconds(), op, ttl.Milliseconds()).Slice()
	if err != nil {
		return store.Result{}, unavailable("limited "+op, err)
	}
	if len(v) != 5 {
		return store.Result{}, unavailable("limited "+op, fmt.Errorf("reply of %d values", len(v)))
	}
	allowed, _ := v[0].(int64)
	remaining, _ := v[1].(int64)
	retry, _ := strconv.ParseFloat(fmt.Sprint(v[2]), 64)
	reset, _ := strconv.ParseFloat(fmt.Sprint(v[3]), 64)
	done, _ := v[4].(int64)
	res := store.Result{Limit: *limit, Allowed: allowed == 1, Remaining: int(remaining), ResetAfter: seconds(reset)}
	if !res.Allowed {
		res.RetryAfter = seconds(retry)
		return res, nil
	}
	if done != 1 {
		return res, notDone
	}
	return res, nil
}

// ConsumeNonceWithProof implements store.Nonces in one round trip: the
// consumeWithProof script, whose two keys share the org's cluster slot.
func (s *Store) ConsumeNonceWithProof(ctx context.Context, n store.Nonce, p store.Proof) error {
	if err := p.Check(); err != nil {
		return err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	v, err := consumeWithProof.Run(ctx, s.rdb, []string{nonceKey(n), proofKey(n, p)}, p.TTL.Milliseconds()).Int()
	if err != nil {
		return unavailable("consume with proof", err)
	}
	switch v {
	case 1:
		return nil
	case 2:
		return store.ErrReplayed
	case 0:
		return store.ErrNotFound
	}
	return unavailable("consume with proof", fmt.Errorf("reply %d", v))
}

func seconds(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

// ClaimRoom implements store.Rooms with one script on the room's slot.
func (s *Store) ClaimRoom(ctx context.Context, room, org string, ttl time.Duration) (string, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	owner, err := claimRoom.Run(ctx, s.rdb, roomKeys(room), org, ttl.Milliseconds()).Text()
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
	if err := releaseRoom.Run(ctx, s.rdb, roomKeys(room), org).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return unavailable("release room", err)
	}
	return nil
}

// ReleaseRoomClaimedBy implements store.Rooms with one script on the
// room's slot. t is compared in whole milliseconds, rounded down: a claim
// in the same millisecond as t counts as made at t.
func (s *Store) ReleaseRoomClaimedBy(ctx context.Context, room, org string, t time.Time) (bool, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	n, err := releaseRoomClaimedBy.Run(ctx, s.rdb, roomKeys(room), org, t.UnixMilli()).Int()
	if err != nil {
		return false, unavailable("release room claimed by", err)
	}
	return n == 1, nil
}

// RecordWebhookEvent implements store.Webhooks: SET NX PX on one key.
func (s *Store) RecordWebhookEvent(ctx context.Context, id string, ttl time.Duration) error {
	if err := store.CheckEventID(id); err != nil {
		return err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	err := s.rdb.SetArgs(ctx, eventPrefix+id, "1", redis.SetArgs{Mode: "NX", TTL: ttl}).Err()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, redis.Nil):
		return store.ErrExists
	}
	return unavailable("SET", err)
}

// ForgetWebhookEvent implements store.Webhooks.
func (s *Store) ForgetWebhookEvent(ctx context.Context, id string) error {
	if err := store.CheckEventID(id); err != nil {
		return err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	if err := s.rdb.Del(ctx, eventPrefix+id).Err(); err != nil {
		return unavailable("DEL", err)
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
