// Package redis is the shared Store: nonces, room owners, webhook events and
// rate limits in Redis (one node via a URL, or a Redis Cluster), so that any number of
// broker replicas agree on which ticket was used.
//
// Every call carries a deadline (the store timeout) and go-redis retries
// nothing: a command that may or may not have run is reported as
// store.ErrUnavailable and the broker fails closed. Every command is on one
// cluster slot: it touches one key, or keys that share the org's hash tag,
// or a room's owner record and its claim time (see claimedKey).
//
// The commands go through a pipeliner (batch.go): those that concurrent
// requests issue while a batch is out go together in the next one, one
// write and one read for many requests, each command with its own reply or
// error. Batching changes the system calls, not the answers.
package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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

// roomKeys are the keys of room's scripts: the owner key, then, if it has
// them, the claim time's and the tokens key (under the same tag), which
// holds when the last token issued with a claim of the owner is dead
// (Redis's clock, in ms). Brokers before the tokens key pass only the
// first two; its absence means no such time is known.
func roomKeys(room string) []string {
	if k, ok := claimedKey(room); ok {
		return []string{roomPrefix + room, k, strings.TrimSuffix(k, ":claimed") + ":tokens"}
	}
	return []string{roomPrefix + room}
}

func nonceKey(n store.Nonce) string { return "vb:n:{" + n.Org + "}:" + n.ID }

// proofKey is where a DPoP proof is recorded: one key whatever the org of
// the ticket it came with, since a proof is accepted once (contract §6).
// Its hash tag is the proof's own, so on a cluster it is on a slot of its
// own (see ConsumeNonceWithProof).
func proofKey(p store.Proof) string { return "vb:p:{" + p.Key + "}" }

// rateKey is the redis_rate key of a store.Limiter key, so that Allow(key)
// and a limited nonce call on the same key share one bucket.
func rateKey(key string) string { return "rate:" + ratePrefix + key }

// limitedNonce is one GCRA step on KEYS[1], then, if allowed, SET NX PX
// of the record ARGV[6] (ARGV[4] "put") or, for ARGV[4] "consume", GETDEL
// on KEYS[2], or with a record ARGV[6] a DEL only if KEYS[2] holds it. With
// a third key (a gate: ARGV[7..9] its burst, rate and period), a GCRA step
// on it comes first, and a refusal there ends the script before anything
// else is counted. It keeps the limiter state in redis_rate's form (the theoretical
// arrival time in seconds since 2017-01-01, with the same emission interval
// and burst arithmetic), so redis_rate.Allow on the same key sees the same
// bucket. Its reply is one string (see parseLimited).
var limitedNonce = redis.NewScript(limitedNonceLua)

// limitedNonceLua is limitedNonce's source. The script replies with one
// string of six fields, "allowed remaining retry_after reset_after done
// gated", rather than an array of them: go-redis reads an array into an
// []interface{} with each value boxed, 6 allocations a call, where a
// string is one. done is 1 when the nonce was stored or consumed, 0 when
// it existed or was absent, 2 when it is kept with another record; gated
// is 1 when the gate refused (the numbers are then the gate's). The
// numbers are in Lua's tostring form ("%.14g"), which is what an array
// reply carried for the two fractions; remaining, an integer at most the
// burst, reads the same as the integer an array reply held for any burst
// below 10^14.
const limitedNonceLua = consumeRecordLua + `
local t = redis.call('TIME')
local now = (t[1] - 1483228800) + (t[2] / 1000000)
local function step(key, burst, rate, period)
  local interval = period / rate
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  local new_tat = tat + interval
  local diff = now - (new_tat - interval * burst)
  if diff < 0 then
    return false, 0, tostring(-diff), tostring(tat - now)
  end
  redis.call('SET', key, new_tat, 'EX', math.ceil(new_tat - now))
  return true, math.floor(diff / interval), '-1', tostring(new_tat - now)
end
if KEYS[3] then
  local ok, remaining, retry, reset = step(KEYS[3], tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]))
  if not ok then
    return '0 ' .. remaining .. ' ' .. retry .. ' ' .. reset .. ' 0 1'
  end
end
local ok, remaining, retry, reset = step(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
if not ok then
  return '0 ' .. remaining .. ' ' .. retry .. ' ' .. reset .. ' 0 0'
end
local done = 0
if ARGV[4] == 'put' then
  if redis.call('SET', KEYS[2], ARGV[6], 'NX', 'PX', ARGV[5]) then done = 1 end
elseif ARGV[6] == '' then
  if redis.call('GETDEL', KEYS[2]) then done = 1 end
else
  done = consume_record(KEYS[2], ARGV[6])
end
return '1 ' .. remaining .. ' ' .. retry .. ' ' .. reset .. ' ' .. done .. ' 0'
`

// consumeRecordLua defines consume_record(key, rec), the consumption of a
// nonce kept with a record, for the scripts that consume one: it deletes
// key only if it holds rec, and returns 1 when it did, 0 when key is
// absent, 2 when it holds another value.
const consumeRecordLua = `
local function consume_record(key, rec)
  -- A plain comparison, not a constant-time one, and that is safe: both
  -- sides are MACs of the presented ticket (the kept one of the ticket
  -- minted), under a key only the broker has, so how long the comparison
  -- takes tells a client nothing it can steer towards a match.
  local kept = redis.call('GET', key)
  if kept == rec then
    redis.call('DEL', key)
    return 1
  elseif kept then
    return 2
  end
  return 0
end
`

// consumeRecord is an unlimited ConsumeNonce with a record: consume_record
// on KEYS[1] with ARGV[1].
var consumeRecord = redis.NewScript(consumeRecordLua + `
return consume_record(KEYS[1], ARGV[1])
`)

// consumeWithProof is ConsumeNonceWithProof on one node, on KEYS[1] (the
// nonce) and KEYS[2] (the proof). Returns 2 when the proof is recorded
// already (nothing consumed), 0 when the nonce is absent (nothing
// recorded), 1 when the nonce was consumed and the proof recorded for
// ARGV[1] ms.
var consumeWithProof = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 1 then return 2 end
if not redis.call('GETDEL', KEYS[1]) then return 0 end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
return 1
`)

// deleteIfHolds deletes KEYS[1] if it holds ARGV[1].
var deleteIfHolds = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// claimRoom sets the owner KEYS[1] to ARGV[1] for ARGV[2] ms unless
// another org holds the room, and returns the owner after the call. A
// successful claim also writes its time, Redis's TIME in ms, to KEYS[2]
// (when given), and to KEYS[3] (when given) that time plus ARGV[3] ms, or
// what KEYS[3] held if that is later and the owner is the same, all with
// the same ttl.
var claimRoom = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  if KEYS[2] then
    local t = redis.call('TIME')
    local now = t[1] * 1000 + math.floor(t[2] / 1000)
    redis.call('SET', KEYS[2], string.format('%.0f', now), 'PX', ARGV[2])
    if KEYS[3] then
      local u = now + tonumber(ARGV[3])
      local old = tonumber(redis.call('GET', KEYS[3]))
      if cur ~= false and old ~= nil and old > u then u = old end
      redis.call('SET', KEYS[3], string.format('%.0f', u), 'PX', ARGV[2])
    end
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

// releaseRoomClaimedBy ends the owner record, its claim time and its
// tokens key if ARGV[1] owns the room and the claim time is known and at
// most ARGV[2] (ms): all are deleted when ARGV[2] (so the claim too) is
// ARGV[3] ms old or more by Redis's clock (the claim time's) and the time
// in the tokens key, if any, has passed; else they are set to expire at
// the later of the two, unless they expire sooner already. Returns 1 when
// it ended them.
var releaseRoomClaimedBy = redis.NewScript(`
if not KEYS[2] or redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local at = tonumber(redis.call('GET', KEYS[2]))
if at == nil or at > tonumber(ARGV[2]) then return 0 end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local left = tonumber(ARGV[2]) + tonumber(ARGV[3]) - now
local u = KEYS[3] and tonumber(redis.call('GET', KEYS[3]))
if u and u - now > left then left = u - now end
if left <= 0 then
  redis.call('DEL', unpack(KEYS))
  return 1
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 or left < ttl then
  for _, k in ipairs(KEYS) do redis.call('PEXPIRE', k, left) end
end
return 1
`)

// Store is a store.Store on Redis.
type Store struct {
	rdb     redis.UniversalClient
	scripts redis.Scripter // rdb, or the batcher that pipelines its commands
	pipe    *pipeliner     // nil when unbatched
	limiter *redis_rate.Limiter
	timeout time.Duration
}

// Options configures the client; zero fields take the defaults.
type Options struct {
	// Timeout bounds every call, dial included (default 500ms).
	Timeout time.Duration
	// PoolSize is the number of connections per node (default go-redis's).
	PoolSize int
	// Unbatched sends each command on a pooled connection of its own
	// instead of through the pipeliner; for comparisons.
	Unbatched bool
}

func (o *Options) batched() bool { return o == nil || !o.Unbatched }

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
	s := New(redis.NewClient(opt), t)
	if o.batched() {
		s.batch()
	}
	return s, nil
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
	s := New(redis.NewClusterClient(opt), t)
	if o.batched() {
		s.batch()
	}
	return s
}

// quiet discards go-redis's own log lines (dial retries and the like): every
// failure reaches the broker as an error, which it logs in its own format.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// New wraps an existing client; timeout bounds every call. Its commands
// are not batched.
func New(rdb redis.UniversalClient, timeout time.Duration) *Store {
	redis.SetLogger(quiet{})
	return &Store{rdb: rdb, scripts: rdb, limiter: redis_rate.NewLimiter(rdb), timeout: timeout}
}

// batch sends the store's commands through a pipeliner.
func (s *Store) batch() {
	s.pipe = newPipeliner(s.rdb, maxQueued)
	b := &batcher{pipe: s.pipe, timeout: s.timeout, rdb: s.rdb}
	s.scripts, s.limiter = b, redis_rate.NewLimiter(b)
}

// Batched reports whether the store's commands go through the pipeliner.
func (s *Store) Batched() bool { return s.pipe != nil }

// maxQueued bounds the commands waiting for Redis. Past it a call fails at
// once (ErrUnavailable) rather than queueing behind a stalled Redis.
const maxQueued = 4096

// batcher is a redis.Scripter (and redis_rate's client) whose EVAL and
// EVALSHA go through the pipeliner, each waiting at most the store timeout.
// A caller that stops waiting gets a command of its own holding the error:
// the one it queued may still be written by the pipeliner and is never
// read, so no reply can reach a caller it was not meant for.
type batcher struct {
	pipe    *pipeliner
	timeout time.Duration
	rdb     redis.UniversalClient // SCRIPT LOAD, SCRIPT EXISTS, DEL: not on the hot path
}

func (b *batcher) eval(ctx context.Context, name, payload string, keys []string, args []any) *redis.Cmd {
	cmdArgs := make([]any, 0, 3+len(keys)+len(args))
	cmdArgs = append(cmdArgs, name, payload, len(keys))
	for _, k := range keys {
		cmdArgs = append(cmdArgs, k)
	}
	cmdArgs = append(cmdArgs, args...)
	cmd := redis.NewCmd(ctx, cmdArgs...)
	if len(keys) > 0 {
		cmd.SetFirstKeyPos(3) // the cluster routes by the first key
	}
	if err := b.pipe.process(ctx, b.timeout, cmd); err != nil && !ran(err) {
		gave := redis.NewCmd(ctx, cmdArgs...)
		gave.SetErr(err)
		return gave
	}
	return cmd
}

// ran reports whether an error of pipeliner.process is the command's own
// (its result is complete and may be read), not the caller giving up.
func ran(err error) bool {
	return !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) &&
		!errors.Is(err, errQueueFull) && !errors.Is(err, errClosed)
}

func (b *batcher) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return b.eval(ctx, "eval", script, keys, args)
}

func (b *batcher) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return b.eval(ctx, "evalsha", sha1, keys, args)
}

func (b *batcher) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return b.eval(ctx, "eval_ro", script, keys, args)
}

func (b *batcher) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return b.eval(ctx, "evalsha_ro", sha1, keys, args)
}

func (b *batcher) ScriptExists(ctx context.Context, hashes ...string) *redis.BoolSliceCmd {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.rdb.ScriptExists(ctx, hashes...)
}

func (b *batcher) ScriptLoad(ctx context.Context, script string) *redis.StringCmd {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.rdb.ScriptLoad(ctx, script)
}

func (b *batcher) Del(ctx context.Context, keys ...string) *redis.IntCmd {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.rdb.Del(ctx, keys...)
}

// ctx bounds a call that does not go through the pipeliner (which applies
// the timeout itself) by the store timeout.
func (s *Store) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.pipe != nil {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.timeout)
}

// do runs one command, through the pipeliner when there is one. On an
// error the command must not be read: with the pipeliner it may be a
// caller that stopped waiting.
func (s *Store) do(ctx context.Context, cmd redis.Cmder) error {
	if s.pipe != nil {
		return s.pipe.process(ctx, s.timeout, cmd)
	}
	return s.rdb.Process(ctx, cmd)
}

func unavailable(op string, err error) error {
	return fmt.Errorf("%w: redis %s: %v", store.ErrUnavailable, op, err)
}

// PutNonce implements store.Nonces in one round trip: SET NX PX, or the
// limitedNonce script when a limit is given.
func (s *Store) PutNonce(ctx context.Context, n store.Nonce, ttl time.Duration, limit *store.Limit) (store.Result, error) {
	if err := n.CheckRecord(); err != nil {
		return store.Result{}, err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	if res, pass, err := s.gate(ctx, &n, limit); !pass {
		return res, err
	}
	if limit != nil {
		return s.limited(ctx, n, limit, "put", ttl, store.ErrExists)
	}
	err := s.setNX(ctx, nonceKey(n), record(n), ttl)
	switch {
	case err == nil:
		return store.Result{Allowed: true}, nil
	case errors.Is(err, redis.Nil):
		return store.Result{Allowed: true}, store.ErrExists
	}
	return store.Result{}, unavailable("SET", err)
}

// setNX sets key to value for ttl (for ever when ttl <= 0) unless key
// exists: redis.Nil when it does. SET NX PX rather than SETNX: one command
// whose reply tells stored from present.
func (s *Store) setNX(ctx context.Context, key, value string, ttl time.Duration) error {
	args := []any{"set", key, value, "nx"}
	if ttl > 0 {
		args = append(args, "px", max(1, ttl.Milliseconds()))
	}
	return s.do(ctx, redis.NewStatusCmd(ctx, args...))
}

// ConsumeNonce implements store.Nonces in one round trip: GETDEL, which
// Redis runs atomically so exactly one of concurrent callers sees the
// value, or the limitedNonce script when a limit is given.
func (s *Store) ConsumeNonce(ctx context.Context, n store.Nonce, limit *store.Limit) (store.Result, error) {
	if err := n.CheckRecord(); err != nil {
		return store.Result{}, err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	if res, pass, err := s.gate(ctx, &n, limit); !pass {
		return res, err
	}
	if limit != nil {
		return s.limited(ctx, n, limit, "consume", 0, store.ErrNotFound)
	}
	if n.Record != "" {
		v, err := consumeRecord.Run(ctx, s.scripts, []string{nonceKey(n)}, n.Record).Int()
		switch {
		case err != nil:
			return store.Result{}, unavailable("consume record", err)
		case v == 1:
			return store.Result{Allowed: true}, nil
		case v == 2:
			return store.Result{Allowed: true}, store.ErrMismatch
		}
		return store.Result{Allowed: true}, store.ErrNotFound
	}
	err := s.do(ctx, redis.NewStringCmd(ctx, "getdel", nonceKey(n)))
	switch {
	case err == nil:
		return store.Result{Allowed: true}, nil
	case errors.Is(err, redis.Nil):
		return store.Result{Allowed: true}, store.ErrNotFound
	}
	return store.Result{}, unavailable("GETDEL", err)
}

// gate counts n's gate on its own, when the limited script cannot carry it
// (no limit, or a cluster, where the gate's key is on another slot), and
// clears it from n. pass is false when the call ends here: refused by the
// gate (res.Gated) or the store unavailable (err).
func (s *Store) gate(ctx context.Context, n *store.Nonce, limit *store.Limit) (res store.Result, pass bool, err error) {
	if n.Gate.Key == "" {
		return store.Result{}, true, nil
	}
	if _, cluster := s.rdb.(*redis.ClusterClient); limit != nil && !cluster {
		return store.Result{}, true, nil // in the limited script
	}
	g := n.Gate
	n.Gate = store.Gate{}
	res, err = s.Allow(ctx, g.Key, g.Limit)
	switch {
	case err != nil:
		return res, false, err
	case !res.Allowed:
		res.Gated = true
		return res, false, nil
	}
	return store.Result{}, true, nil
}

func (s *Store) limited(ctx context.Context, n store.Nonce, limit *store.Limit, op string, ttl time.Duration, notDone error) (store.Result, error) {
	c := newLimitedCall(n, limit, op, ttl)
	cmd := redis.NewStringCmd(ctx, c.args[:c.nargs]...)
	cmd.SetFirstKeyPos(3) // the cluster routes by the first key
	err := s.do(ctx, cmd)
	if err != nil && (errors.Is(err, redis.ErrNoScript) || redis.HasErrorPrefix(err, "NOSCRIPT")) {
		// Not in this node's script cache (a restart, a new node): send
		// the source, which also caches it, as redis.Script.Run does.
		// The first command was answered, so nothing reads c any more.
		c.args[0], c.args[1] = "eval", &limitedNonceSource
		cmd = redis.NewStringCmd(ctx, c.args[:c.nargs]...)
		cmd.SetFirstKeyPos(3)
		err = s.do(ctx, cmd)
	}
	if err != nil {
		return store.Result{}, unavailable("limited "+op, err)
	}
	r, ok := parseLimited(cmd.Val())
	if !ok {
		return store.Result{}, unavailable("limited "+op, fmt.Errorf("reply %q", cmd.Val()))
	}
	res := store.Result{Limit: *limit, Allowed: r.allowed, Remaining: r.remaining, ResetAfter: seconds(r.reset)}
	if r.gated {
		res.Limit, res.Gated = n.Gate.Limit, true
	}
	if !res.Allowed {
		res.RetryAfter = seconds(r.retry)
		return res, nil
	}
	switch r.done {
	case 1:
		return res, nil
	case 2:
		return res, store.ErrMismatch
	}
	return res, notDone
}

// limitedNonceSource and limitedNonceHash are what EVAL and EVALSHA of
// limitedNonce send; variables, so that a limitedCall can point at them.
var (
	limitedNonceSource = limitedNonceLua
	limitedNonceHash   = limitedNonce.Hash()
)

// limitedCall is the EVALSHA command of one limitedNonce run: its keys
// and arguments, and the argument list go-redis writes, which points at
// them. go-redis writes a *string, *int, *int64 or *float64 as the value
// it points at, and a pointer goes into an interface without an
// allocation where a string, a float or an int above 255 takes one each.
// The command's keys and arguments take this and the keys' strings, where
// redis.Script.Run's took sixteen allocations; with the one-string reply,
// BenchmarkLimitedPut went from 29 to 10 allocations a call (before the
// batcher's reuse) and from about 9.2 to 7.5 µs of client CPU.
type limitedCall struct {
	keys                [3]string
	burst, rate         int
	period              float64
	op, record          string
	ttl                 int64
	gateBurst, gateRate int
	gatePeriod          float64
	args                [3 + 3 + 9]any
	nargs               int
}

func newLimitedCall(n store.Nonce, limit *store.Limit, op string, ttl time.Duration) *limitedCall {
	c := &limitedCall{burst: limit.Burst, rate: limit.Rate, period: limit.Period.Seconds(),
		op: op, ttl: ttl.Milliseconds(), record: n.Record}
	if op == "put" {
		c.record = record(n)
	}
	c.keys[0], c.keys[1] = rateKey(n.LimitKey()), nonceKey(n)
	nkeys := 2
	if n.Gate.Key != "" {
		c.keys[2], nkeys = rateKey(n.Gate.Key), 3
	}
	c.args[0], c.args[1], c.args[2] = "evalsha", &limitedNonceHash, nkeys
	i := 3
	for k := range nkeys {
		c.args[i] = &c.keys[k]
		i++
	}
	i += copy(c.args[i:], []any{&c.burst, &c.rate, &c.period, &c.op, &c.ttl, &c.record})
	if nkeys == 3 {
		g := n.Gate.Limit
		c.gateBurst, c.gateRate, c.gatePeriod = g.Burst, g.Rate, g.Period.Seconds()
		i += copy(c.args[i:], []any{&c.gateBurst, &c.gateRate, &c.gatePeriod})
	}
	c.nargs = i
	return c
}

// limitedReply is limitedNonce's reply, read.
type limitedReply struct {
	allowed, gated bool
	remaining      int
	retry, reset   float64 // seconds
	done           int
}

// parseLimited reads limitedNonce's reply, "allowed remaining retry reset
// done gated"; ok is false when it is not one.
func parseLimited(s string) (r limitedReply, ok bool) {
	var f [6]string
	for i := range 5 {
		if f[i], s, ok = strings.Cut(s, " "); !ok {
			return limitedReply{}, false
		}
	}
	f[5] = s
	remaining, err1 := strconv.Atoi(f[1])
	retry, err2 := strconv.ParseFloat(f[2], 64)
	reset, err3 := strconv.ParseFloat(f[3], 64)
	done := strings.Index("012", f[4])
	if err1 != nil || err2 != nil || err3 != nil || len(f[4]) != 1 || done < 0 || !flag(f[0]) || !flag(f[5]) {
		return limitedReply{}, false
	}
	return limitedReply{allowed: f[0] == "1", gated: f[5] == "1", remaining: remaining, retry: retry, reset: reset, done: done}, true
}

// flag reports whether s is a flag of limitedNonce's reply, "0" or "1".
func flag(s string) bool { return s == "0" || s == "1" }

// record is the value a nonce is stored with: its record, or "1", the
// marker brokers before records stored, when it has none.
func record(n store.Nonce) string {
	if n.Record == "" {
		return "1"
	}
	return n.Record
}

// ConsumeNonceWithProof implements store.Nonces: on one node in one round
// trip, the consumeWithProof script; on a cluster, where the proof's key is
// on another slot than the nonce's, in two (consumeWithProofOnCluster).
func (s *Store) ConsumeNonceWithProof(ctx context.Context, n store.Nonce, p store.Proof) error {
	if err := p.Check(); err != nil {
		return err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	if _, cluster := s.rdb.(*redis.ClusterClient); cluster {
		return s.consumeWithProofOnCluster(ctx, n, p)
	}
	v, err := consumeWithProof.Run(ctx, s.scripts, []string{nonceKey(n), proofKey(p)}, p.TTL.Milliseconds()).Int()
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

// consumeWithProofOnCluster records the proof first (SET NX PX: of
// concurrent calls with one proof, one gets on), then consumes the nonce
// (GETDEL). A nonce found absent takes the proof's record back (compare
// and delete, so no other record is touched), as one node records nothing
// then. Were the second step to fail, the proof stays recorded and the
// nonce in place: the client sends a new proof, as after any refusal.
func (s *Store) consumeWithProofOnCluster(ctx context.Context, n store.Nonce, p store.Proof) error {
	var b [16]byte
	rand.Read(b[:])                  // never fails (crypto/rand)
	mark := hex.EncodeToString(b[:]) // this call's record, which only it deletes
	switch err := s.setNX(ctx, proofKey(p), mark, p.TTL); {
	case errors.Is(err, redis.Nil):
		return store.ErrReplayed
	case err != nil:
		return unavailable("SET", err)
	}
	switch err := s.do(ctx, redis.NewStringCmd(ctx, "getdel", nonceKey(n))); {
	case err == nil:
		return nil
	case !errors.Is(err, redis.Nil):
		return unavailable("GETDEL", err)
	}
	if err := deleteIfHolds.Run(ctx, s.scripts, []string{proofKey(p)}, mark).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return unavailable("consume with proof", err)
	}
	return store.ErrNotFound
}
func seconds(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

// ClaimRoom implements store.Rooms with one script on the room's slot.
func (s *Store) ClaimRoom(ctx context.Context, room, org string, ttl, tokens time.Duration) (string, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	tokensMS := (max(tokens, 0) + time.Millisecond - 1) / time.Millisecond
	owner, err := claimRoom.Run(ctx, s.scripts, roomKeys(room), org, ttl.Milliseconds(), int64(tokensMS)).Text()
	if err != nil {
		return "", unavailable("claim room", err)
	}
	return owner, nil
}

// RoomOwner implements store.Rooms.
func (s *Store) RoomOwner(ctx context.Context, room string) (string, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	cmd := redis.NewStringCmd(ctx, "get", roomPrefix+room)
	err := s.do(ctx, cmd)
	switch {
	case err == nil:
		return cmd.Val(), nil
	case errors.Is(err, redis.Nil):
		return "", store.ErrNotFound
	}
	return "", unavailable("GET", err)
}

// ReleaseRoom implements store.Rooms.
func (s *Store) ReleaseRoom(ctx context.Context, room, org string) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	if err := releaseRoom.Run(ctx, s.scripts, roomKeys(room), org).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return unavailable("release room", err)
	}
	return nil
}

// ReleaseRoomClaimedBy implements store.Rooms with one script on the
// room's slot. t is compared in whole milliseconds, rounded down: a claim
// in the same millisecond as t counts as made at t. keep is rounded up to
// a whole millisecond.
func (s *Store) ReleaseRoomClaimedBy(ctx context.Context, room, org string, t time.Time, keep time.Duration) (bool, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	keepMS := (max(keep, 0) + time.Millisecond - 1) / time.Millisecond
	n, err := releaseRoomClaimedBy.Run(ctx, s.scripts, roomKeys(room), org, t.UnixMilli(), int64(keepMS)).Int()
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
	err := s.setNX(ctx, eventPrefix+id, "1", ttl)
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
	if err := s.do(ctx, redis.NewIntCmd(ctx, "del", eventPrefix+id)); err != nil {
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
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
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

// Close stops the pipeliner, then closes the client.
func (s *Store) Close() error {
	if s.pipe != nil {
		s.pipe.close()
	}
	return s.rdb.Close()
}
