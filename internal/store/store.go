// Package store declares what the broker keeps outside its process: ticket
// nonces, room owners, the webhook events already handled and rate-limit
// state. memory/ and redis/ implement it, and storetest/ holds the
// conformance suite both must pass.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Errors of the Store contract, tested with errors.Is.
var (
	// ErrUnavailable wraps every failure of the backing service, including
	// a deadline passed. Callers must fail closed on it.
	ErrUnavailable = errors.New("store unavailable")
	// ErrNotFound: the nonce is absent (consumed, expired or never stored).
	ErrNotFound = errors.New("not found")
	// ErrExists: PutNonce found the nonce already present.
	ErrExists = errors.New("already exists")
	// ErrReplayed: ConsumeNonceWithProof found the proof already recorded;
	// nothing was consumed.
	ErrReplayed = errors.New("proof already used")
	// ErrMismatch: ConsumeNonce with a Nonce.Record found the nonce kept
	// with another record (or none: one stored by a broker that kept no
	// record); nothing was consumed.
	ErrMismatch = errors.New("record does not match")
)

// Nonce names a ticket's nonce: its ID and the org it belongs to. The org
// places the nonce beside the org's rate-limit state (in Redis Cluster, on
// the same slot), so that counting a request and storing or consuming its
// nonce is one atomic round trip.
type Nonce struct {
	Org string
	ID  string
	// Record is what PutNonce keeps with the nonce (token.Issuer.Record:
	// the MAC of the whole ticket) and what ConsumeNonce must find there to
	// consume it; at most MaxRecord bytes. Empty, PutNonce keeps a bare
	// marker and ConsumeNonce (like ConsumeNonceWithProof, which ignores
	// Record) consumes whatever is kept. It does not name the nonce either.
	Record string
	// PublicAgent, when set, makes a limited call count against that
	// agent's public budget (PublicKey(Org, PublicAgent)) instead of the
	// org's (OrgKey(Org)). It does not name the nonce: Org and ID do.
	PublicAgent string
	// Gate, when its Key is set, is counted first, in the same call: a
	// limit of its own key (a client address's, say) that the call must
	// pass before anything else is counted or stored. Refused there, the
	// call counts and stores nothing else and returns the gate's Result
	// with Gated set. It does not name the nonce either.
	Gate Gate
}

// MaxRecord bounds Nonce.Record.
const MaxRecord = 64

// CheckRecord returns an error for a record no store keeps: over
// MaxRecord bytes. It is a caller's mistake, not ErrUnavailable.
func (n Nonce) CheckRecord() error {
	if len(n.Record) > MaxRecord {
		return errors.New("store: a nonce's record is at most 64 bytes")
	}
	return nil
}

// Gate is a limit on a Limiter key of its own; Allow on Key counts against
// the same bucket. The call is one round trip where the store can make it
// one (one Redis node); on a Redis Cluster the gate's key is on another
// slot, and the gate is a call of its own, made first.
type Gate struct {
	Key   string
	Limit Limit
}

// LimitKey returns the Limiter key a limited call on n counts against.
// It always carries n.Org's hash tag, so it shares the nonce's slot.
func (n Nonce) LimitKey() string {
	if n.PublicAgent != "" {
		return PublicKey(n.Org, n.PublicAgent)
	}
	return OrgKey(n.Org)
}

// OrgKey is the Limiter key of an org's per-minute limit: requests
// authenticated by the org's own credentials count against it.
func OrgKey(org string) string { return "org:{" + org + "}" }

// PublicKey is the Limiter key of an agent's public budget: publishable-key
// requests count against it, never against OrgKey, so holders of a page's
// publishable key cannot starve the org's backend.
func PublicKey(org, agent string) string { return "org:{" + org + "}:public:" + agent }

// Nonces makes tickets single-use.
//
// Both methods take an optional limit: when set, the event is first counted
// against the nonce's budget (Nonce.LimitKey) under it, in the same atomic step; a
// refused event stores or consumes nothing and returns a Result with
// Allowed false and a nil error. With a nil limit the Result is Allowed.
type Nonces interface {
	// PutNonce stores n for ttl. It returns ErrExists if n is already
	// stored, and ErrUnavailable if it cannot tell whether n was stored.
	PutNonce(ctx context.Context, n Nonce, ttl time.Duration, limit *Limit) (Result, error)
	// ConsumeNonce atomically removes n. Of any number of concurrent calls
	// for one nonce, across every process sharing the store, exactly one
	// returns a nil error; the others return ErrNotFound. With n.Record
	// set, it removes n only if n is kept with that record, compared in the
	// same atomic step; kept with another, it returns ErrMismatch and leaves
	// n in place (a limit is counted all the same).
	ConsumeNonce(ctx context.Context, n Nonce, limit *Limit) (Result, error)
	// ConsumeNonceWithProof redeems a sender-constrained ticket: in one
	// atomic step it records p and consumes n. If p is already recorded
	// (a replayed DPoP proof) it returns ErrReplayed and consumes nothing;
	// if n is absent it returns ErrNotFound and records nothing; otherwise
	// n is gone, p is remembered for p.TTL, and it returns nil. Of any
	// number of concurrent calls with one proof, across every process
	// sharing the store, at most one returns nil. A proof is recorded once
	// whatever the org of the ticket it comes with (contract §6: a proof's
	// jti is accepted once). On a Redis Cluster its record is on another
	// slot than the nonce, and the step takes two round trips: the proof is
	// recorded first, and taken back if n is absent.
	ConsumeNonceWithProof(ctx context.Context, n Nonce, p Proof) error
}

// Proof names a DPoP proof that may be accepted once.
type Proof struct {
	// Key identifies the proof: token.DPoPProof.ReplayKey (thumbprint and
	// jti), at most MaxProofKey bytes.
	Key string
	// TTL is how long the proof is remembered: token.DPoPVerifier.ReplayTTL,
	// the time in which its iat keeps it acceptable.
	TTL time.Duration
}

// MaxProofKey bounds Proof.Key.
const MaxProofKey = 256

// Check returns an error for a proof no store can record: an empty or
// overlong key, or a ttl under a millisecond. It is a caller's mistake,
// not ErrUnavailable.
func (p Proof) Check() error {
	if p.Key == "" || len(p.Key) > MaxProofKey || p.TTL < time.Millisecond {
		return errors.New("store: a proof needs a key of 1 to 256 bytes and a ttl of at least 1ms")
	}
	return nil
}

// Rooms records which org owns a LiveKit room, and when it claimed it.
type Rooms interface {
	// ClaimRoom makes org the owner of room for ttl unless another org owns
	// it, and returns the owner after the call: org if the claim succeeded
	// or org already owned it, another org's id otherwise. An existing claim
	// by org has its ttl extended. Every successful claim, extensions
	// included, records its time with the owner record, by the store's own
	// clock (Redis's TIME: one clock for every replica), for
	// ReleaseRoomClaimedBy. tokens is how long the room token issued with
	// the claim may open the room (0 for a claim that issues none); the
	// record remembers the latest moment any token issued with one of
	// org's claims on it may, which ReleaseRoomClaimedBy never ends it
	// before. A claim by a new owner forgets the previous owner's.
	ClaimRoom(ctx context.Context, room, org string, ttl, tokens time.Duration) (owner string, err error)
	// RoomOwner returns the owner of room, or ErrNotFound.
	RoomOwner(ctx context.Context, room string) (string, error)
	// ReleaseRoom removes the owner record of room if org owns it; releasing
	// a room not owned by org is a no-op.
	ReleaseRoom(ctx context.Context, room, org string) error
	// ReleaseRoomClaimedBy ends the owner record of room if org owns it
	// and its latest claim was made at or before t, and reports whether it
	// did: a release for something that happened at t (a room that
	// finished) never ends a claim made after it. The record is ended keep
	// after t (by the store's clock), so after its claim too, or when the
	// last token issued with org's claims on it is dead (ClaimRoom's
	// tokens), whichever is later: removed at once if that time has
	// passed, else left to expire then (never later than it would have). keep is how long a token issued for the room,
	// by the broker or by LiveKit itself, may still open it after the
	// event: until then the name must not pass to another org. A record whose claim
	// time is unknown (one written before claim times were recorded) is not
	// ended; it expires with its ttl.
	ReleaseRoomClaimedBy(ctx context.Context, room, org string, t time.Time, keep time.Duration) (released bool, err error)
}

// Webhooks makes LiveKit's webhook events single-use: each event id is
// acted on once.
type Webhooks interface {
	// RecordWebhookEvent records the event id for ttl. It returns ErrExists
	// if id is recorded already (a replay, or LiveKit's retry of an event
	// that was handled), and ErrUnavailable if it cannot tell. Of any number
	// of concurrent calls for one id, across every process sharing the
	// store, exactly one returns nil.
	RecordWebhookEvent(ctx context.Context, id string, ttl time.Duration) error
	// ForgetWebhookEvent removes the record of id, so that LiveKit's retry
	// of an event whose handling failed after it was recorded is handled.
	ForgetWebhookEvent(ctx context.Context, id string) error
}

// MaxEventID bounds a webhook event id as the store records it (the
// broker's are the LiveKit project's name, "/", and LiveKit's id of at
// most 128 bytes).
const MaxEventID = 256

// CheckEventID returns an error for an event id no store can record: empty
// or over MaxEventID bytes. It is a caller's mistake, not ErrUnavailable.
func CheckEventID(id string) error {
	if id == "" || len(id) > MaxEventID {
		return errors.New("store: an event id is 1 to 256 bytes")
	}
	return nil
}

// Limiter applies GCRA rate limits.
type Limiter interface {
	// Allow counts one event against key under limit.
	Allow(ctx context.Context, key string, limit Limit) (Result, error)
}

// Store is everything the broker keeps outside its process.
type Store interface {
	Nonces
	Rooms
	Webhooks
	Limiter
	// Ping reports whether the store is reachable, for /readyz.
	Ping(ctx context.Context) error
	// Close releases the store's resources.
	Close() error
}

// Limit is a GCRA limit: Rate events per Period, with bursts up to Burst.
type Limit struct {
	Rate   int
	Burst  int
	Period time.Duration
}

// PerMinute returns a limit of rate events a minute with a burst of rate.
func PerMinute(rate int) Limit { return Limit{Rate: rate, Burst: rate, Period: time.Minute} }

// String returns, for example, "60 req/1m0s (burst 60)".
func (l Limit) String() string {
	return fmt.Sprintf("%d req/%s (burst %d)", l.Rate, l.Period, l.Burst)
}

// Result is the outcome of Allow.
type Result struct {
	// Limit is the limit the result was computed for.
	Limit Limit
	// Allowed is true when the event was counted and may proceed.
	Allowed bool
	// Remaining is how many more events would be allowed right now.
	Remaining int
	// RetryAfter is how long until the next event would be allowed; 0 when
	// Allowed.
	RetryAfter time.Duration
	// ResetAfter is how long until the key is back to its full burst.
	ResetAfter time.Duration
	// Gated is set when the call's Gate refused it: the other fields are
	// then the gate's.
	Gated bool
}
