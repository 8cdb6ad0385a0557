// Package memory is the in-process Store: the default for a single broker
// instance and for development. Nothing survives a restart and nothing is
// shared between processes.
package memory

import (
	"context"
	"crypto/subtle"
	"math"
	"runtime"
	"sync"
	"time"

	"github.com/voicebroker/voicebroker/internal/store"
)

var _ store.Store = (*Store)(nil)

// Store keeps nonces, room owners, webhook events and limiter state in maps, sweeping
// expired entries in the background.
type Store struct {
	now func() time.Time

	mu     sync.Mutex
	nonces map[string]nonce     // org and id -> record and expiry
	proofs map[string]time.Time // proof key -> expiry
	rooms  map[string]owner
	events map[string]time.Time // webhook event id -> expiry
	tats   map[string]time.Time // GCRA theoretical arrival times

	// yield runs between two sweepChunk pieces of a sweep, with mu not
	// held: runtime.Gosched, so that the calls that waited get it.
	yield func()

	stop chan struct{}
	once sync.Once
}

type nonce struct {
	record  string // store.Nonce.Record, or "" when none was given
	expires time.Time
}

type owner struct {
	org     string
	claimed time.Time // the latest claim
	tokens  time.Time // when the last token issued with a claim is dead
	expires time.Time
}

// New returns an empty store whose janitor sweeps expired entries every
// sweep interval until Close.
func New(sweep time.Duration) *Store {
	s := NewWithClock(time.Now)
	go s.janitor(sweep)
	return s
}

// NewWithClock returns a store reading time from now, without a janitor;
// for tests.
func NewWithClock(now func() time.Time) *Store {
	return &Store{
		now:    now,
		nonces: make(map[string]nonce),
		proofs: make(map[string]time.Time),
		rooms:  make(map[string]owner),
		events: make(map[string]time.Time),
		tats:   make(map[string]time.Time),
		yield:  runtime.Gosched,
		stop:   make(chan struct{}),
	}
}

func (s *Store) janitor(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.sweep()
		}
	}
}

// sweepChunk is how many entries a sweep looks at under one hold of the
// lock. A broker minting 20,000 tickets a second keeps over a million
// nonces; a sweep of them under one hold stalled every call of the store
// for 17 ms, and for 120 ms when half of them had expired. A chunk takes
// about a tenth of a millisecond.
const sweepChunk = 1024

func (s *Store) sweep() {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	expire(s, s.nonces, now, func(n nonce) time.Time { return n.expires })
	expire(s, s.proofs, now, at)
	expire(s, s.rooms, now, func(o owner) time.Time { return o.expires })
	expire(s, s.events, now, at)
	expire(s, s.tats, now, at)
}

// expire deletes the entries of m whose expiry, exp of the value, is not
// after now. Called with s.mu held, it lets go of it after every
// sweepChunk entries. The calls that take it meanwhile may add and delete
// entries: ranging over a map that changes is defined (an entry deleted
// before the range reaches it is not produced; one added may or may not
// be), and every change is made under the lock, so the sweep sees each
// entry as it is when it looks.
func expire[V any](s *Store, m map[string]V, now time.Time, exp func(V) time.Time) {
	n := 0
	for k, v := range m {
		if !now.Before(exp(v)) {
			delete(m, k)
		}
		if n++; n%sweepChunk == 0 {
			s.mu.Unlock()
			s.yield()
			s.mu.Lock()
		}
	}
}

// at is the expiry of a value that is one.
func at(t time.Time) time.Time { return t }

// limited counts an event against n's gate, if any, then against n's
// budget (n.LimitKey) when limit is set; call with s.mu held.
func (s *Store) limited(now time.Time, n store.Nonce, limit *store.Limit) store.Result {
	if n.Gate.Key != "" {
		if g := gcra(now, s.tats, n.Gate.Key, n.Gate.Limit); !g.Allowed {
			g.Gated = true
			return g
		}
	}
	if limit == nil {
		return store.Result{Allowed: true}
	}
	return gcra(now, s.tats, n.LimitKey(), *limit)
}

func nonceKey(n store.Nonce) string { return n.Org + "/" + n.ID }

// PutNonce implements store.Nonces.
func (s *Store) PutNonce(ctx context.Context, n store.Nonce, ttl time.Duration, limit *store.Limit) (store.Result, error) {
	if err := n.CheckRecord(); err != nil {
		return store.Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return store.Result{}, store.ErrUnavailable
	}
	now, key := s.now(), nonceKey(n)
	s.mu.Lock()
	defer s.mu.Unlock()
	if res := s.limited(now, n, limit); !res.Allowed {
		return res, nil
	} else if kept, ok := s.nonces[key]; ok && now.Before(kept.expires) {
		return res, store.ErrExists
	} else {
		s.nonces[key] = nonce{record: n.Record, expires: now.Add(ttl)}
		return res, nil
	}
}

// ConsumeNonce implements store.Nonces.
func (s *Store) ConsumeNonce(ctx context.Context, n store.Nonce, limit *store.Limit) (store.Result, error) {
	if err := n.CheckRecord(); err != nil {
		return store.Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return store.Result{}, store.ErrUnavailable
	}
	now, key := s.now(), nonceKey(n)
	s.mu.Lock()
	defer s.mu.Unlock()
	res := s.limited(now, n, limit)
	if !res.Allowed {
		return res, nil
	}
	kept, ok := s.nonces[key]
	if !ok {
		return res, store.ErrNotFound
	}
	if !now.Before(kept.expires) {
		delete(s.nonces, key)
		return res, store.ErrNotFound
	}
	// The records are MACs: compared in constant time.
	if n.Record != "" && subtle.ConstantTimeCompare([]byte(kept.record), []byte(n.Record)) != 1 {
		return res, store.ErrMismatch
	}
	delete(s.nonces, key)
	return res, nil
}

// ConsumeNonceWithProof implements store.Nonces under the store's one
// lock: the proof is looked up, the nonce consumed and the proof recorded
// with no other call in between.
func (s *Store) ConsumeNonceWithProof(ctx context.Context, n store.Nonce, p store.Proof) error {
	if err := p.Check(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return store.ErrUnavailable
	}
	now, key := s.now(), nonceKey(n)
	pk := p.Key // once, whatever the org of the ticket it came with
	s.mu.Lock()
	defer s.mu.Unlock()
	if exp, ok := s.proofs[pk]; ok && now.Before(exp) {
		return store.ErrReplayed
	}
	kept, ok := s.nonces[key]
	if !ok || !now.Before(kept.expires) {
		delete(s.nonces, key)
		return store.ErrNotFound
	}
	delete(s.nonces, key)
	s.proofs[pk] = now.Add(p.TTL)
	return nil
}

// ClaimRoom implements store.Rooms.
func (s *Store) ClaimRoom(ctx context.Context, room, org string, ttl, tokens time.Duration) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", store.ErrUnavailable
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.rooms[room]
	held := ok && now.Before(o.expires)
	if held && o.org != org {
		return o.org, nil
	}
	until := now.Add(max(tokens, 0))
	if held && o.tokens.After(until) {
		until = o.tokens
	}
	s.rooms[room] = owner{org: org, claimed: now, tokens: until, expires: now.Add(ttl)}
	return org, nil
}

// RoomOwner implements store.Rooms.
func (s *Store) RoomOwner(ctx context.Context, room string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", store.ErrUnavailable
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if o, ok := s.rooms[room]; ok && now.Before(o.expires) {
		return o.org, nil
	}
	return "", store.ErrNotFound
}

// ReleaseRoom implements store.Rooms.
func (s *Store) ReleaseRoom(ctx context.Context, room, org string) error {
	if err := ctx.Err(); err != nil {
		return store.ErrUnavailable
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if o, ok := s.rooms[room]; ok && o.org == org {
		delete(s.rooms, room)
	}
	return nil
}

// ReleaseRoomClaimedBy implements store.Rooms.
func (s *Store) ReleaseRoomClaimedBy(ctx context.Context, room, org string, t time.Time, keep time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, store.ErrUnavailable
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.rooms[room]
	if !ok || !now.Before(o.expires) || o.org != org || o.claimed.After(t) {
		return false, nil
	}
	end := t.Add(keep) // t is at or after the claim
	if o.tokens.After(end) {
		end = o.tokens
	}
	switch {
	case !now.Before(end):
		delete(s.rooms, room)
	case end.Before(o.expires):
		o.expires = end
		s.rooms[room] = o
	}
	return true, nil
}

// RecordWebhookEvent implements store.Webhooks.
func (s *Store) RecordWebhookEvent(ctx context.Context, id string, ttl time.Duration) error {
	if err := store.CheckEventID(id); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return store.ErrUnavailable
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if exp, ok := s.events[id]; ok && now.Before(exp) {
		return store.ErrExists
	}
	s.events[id] = now.Add(ttl)
	return nil
}

// ForgetWebhookEvent implements store.Webhooks.
func (s *Store) ForgetWebhookEvent(ctx context.Context, id string) error {
	if err := store.CheckEventID(id); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return store.ErrUnavailable
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.events, id)
	return nil
}

// Allow implements store.Limiter with the GCRA of redis_rate's script, so
// both stores limit alike.
func (s *Store) Allow(ctx context.Context, key string, limit store.Limit) (store.Result, error) {
	if err := ctx.Err(); err != nil {
		return store.Result{}, store.ErrUnavailable
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	return gcra(now, s.tats, key, limit), nil
}

// gcra is one step of the generic cell rate algorithm; tats holds each
// key's theoretical arrival time.
func gcra(now time.Time, tats map[string]time.Time, key string, limit store.Limit) store.Result {
	interval := limit.Period / time.Duration(limit.Rate)
	burstOffset := interval * time.Duration(limit.Burst)
	tat, ok := tats[key]
	if !ok || tat.Before(now) {
		tat = now
	}
	newTAT := tat.Add(interval)
	allowAt := newTAT.Add(-burstOffset)
	diff := now.Sub(allowAt)
	if diff < 0 {
		return store.Result{Limit: limit, RetryAfter: -diff, ResetAfter: tat.Sub(now)}
	}
	tats[key] = newTAT
	return store.Result{
		Limit:      limit,
		Allowed:    true,
		Remaining:  int(math.Floor(float64(diff) / float64(interval))),
		ResetAfter: newTAT.Sub(now),
	}
}

// Ping implements store.Store; the memory store is always reachable.
func (s *Store) Ping(ctx context.Context) error { return nil }

// Close stops the janitor.
func (s *Store) Close() error {
	s.once.Do(func() { close(s.stop) })
	return nil
}
