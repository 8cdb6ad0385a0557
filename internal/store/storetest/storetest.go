// Package storetest is the conformance suite every store.Store passes.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/internal/store"
	"github.com/voicebroker/voicebroker/pkg/token"
)

// Run runs the suite against the store newStore returns; each subtest gets
// a fresh store (or a shared one; keys are unique per test).
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	ctx := context.Background()
	nonce := func(t *testing.T) string {
		n, err := token.NewNonce()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	t.Run("NonceConsumedOnce", func(t *testing.T) {
		s := newStore(t)
		id := nonce(t)
		if err := put(s, ctx, id, time.Minute); err != nil {
			t.Fatalf("PutNonce: %v", err)
		}
		if err := consume(s, ctx, id); err != nil {
			t.Fatalf("first ConsumeNonce: %v", err)
		}
		if err := consume(s, ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second ConsumeNonce = %v, want ErrNotFound", err)
		}
	})

	t.Run("NonceNeverStored", func(t *testing.T) {
		s := newStore(t)
		if err := consume(s, ctx, nonce(t)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("ConsumeNonce = %v, want ErrNotFound", err)
		}
	})

	t.Run("NoncePutTwice", func(t *testing.T) {
		s := newStore(t)
		id := nonce(t)
		if err := put(s, ctx, id, time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := put(s, ctx, id, time.Minute); !errors.Is(err, store.ErrExists) {
			t.Fatalf("second PutNonce = %v, want ErrExists", err)
		}
		// The nonce is still there exactly once.
		if err := consume(s, ctx, id); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("NonceExpires", func(t *testing.T) {
		s := newStore(t)
		id := nonce(t)
		if err := put(s, ctx, id, 20*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		// Poll rather than sleep a fixed time: correctness, not timing, is tested.
		deadline := time.Now().Add(5 * time.Second)
		for {
			time.Sleep(25 * time.Millisecond)
			if err := consume(s, ctx, id); errors.Is(err, store.ErrNotFound) {
				return
			} else if err != nil {
				t.Fatal(err)
			} else {
				// Consumed before expiry on a slow machine: that is legal; put again.
				if err := put(s, ctx, id, 20*time.Millisecond); err != nil {
					t.Fatal(err)
				}
			}
			if time.Now().After(deadline) {
				t.Fatal("nonce never expired")
			}
		}
	})

	t.Run("NonceConcurrentConsume", func(t *testing.T) {
		s := newStore(t)
		id := nonce(t)
		if err := put(s, ctx, id, time.Minute); err != nil {
			t.Fatal(err)
		}
		var ok, gone, other atomic.Int32
		var wg sync.WaitGroup
		for range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				switch err := consume(s, ctx, id); {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, store.ErrNotFound):
					gone.Add(1)
				default:
					other.Add(1)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 1 || gone.Load() != 99 || other.Load() != 0 {
			t.Fatalf("ok=%d notfound=%d other=%d, want 1/99/0", ok.Load(), gone.Load(), other.Load())
		}
	})

	t.Run("CanceledContextFailsClosed", func(t *testing.T) {
		s := newStore(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		id := nonce(t)
		if err := put(s, cctx, id, time.Minute); !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("PutNonce on canceled ctx = %v, want ErrUnavailable", err)
		}
		if err := consume(s, cctx, id); !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("ConsumeNonce on canceled ctx = %v, want ErrUnavailable", err)
		}
		if _, err := s.Allow(cctx, "k"+id, store.PerMinute(10)); !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("Allow on canceled ctx = %v, want ErrUnavailable", err)
		}
	})

	t.Run("RoomClaim", func(t *testing.T) {
		s := newStore(t)
		room := "agent_bot_1700000000_" + nonce(t)[:12]
		if _, err := s.RoomOwner(ctx, room); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("RoomOwner of new room = %v, want ErrNotFound", err)
		}
		if owner, err := s.ClaimRoom(ctx, room, "acme", time.Minute, 0); err != nil || owner != "acme" {
			t.Fatalf("first claim = %q, %v", owner, err)
		}
		if owner, err := s.ClaimRoom(ctx, room, "acme", time.Minute, 0); err != nil || owner != "acme" {
			t.Fatalf("re-claim by owner = %q, %v", owner, err)
		}
		if owner, err := s.ClaimRoom(ctx, room, "globex", time.Minute, 0); err != nil || owner != "acme" {
			t.Fatalf("claim by other org = %q, %v; want acme", owner, err)
		}
		if err := s.ReleaseRoom(ctx, room, "globex"); err != nil {
			t.Fatal(err)
		}
		if owner, err := s.RoomOwner(ctx, room); err != nil || owner != "acme" {
			t.Fatalf("owner after foreign release = %q, %v", owner, err)
		}
		if err := s.ReleaseRoom(ctx, room, "acme"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RoomOwner(ctx, room); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("RoomOwner after release = %v, want ErrNotFound", err)
		}
		if owner, err := s.ClaimRoom(ctx, room, "globex", time.Minute, 0); err != nil || owner != "globex" {
			t.Fatalf("claim after release = %q, %v", owner, err)
		}
	})

	t.Run("RoomClaimRace", func(t *testing.T) {
		s := newStore(t)
		room := "demo_" + nonce(t)
		owners := make([]string, 50)
		var wg sync.WaitGroup
		for i := range owners {
			wg.Add(1)
			go func() {
				defer wg.Done()
				o, err := s.ClaimRoom(ctx, room, fmt.Sprintf("org%d", i), time.Minute, 0)
				if err != nil {
					t.Error(err)
				}
				owners[i] = o
			}()
		}
		wg.Wait()
		winners := 0
		for i, o := range owners {
			if o != owners[0] {
				t.Fatalf("claim %d saw owner %q, claim 0 saw %q", i, o, owners[0])
			}
			if o == fmt.Sprintf("org%d", i) {
				winners++
			}
		}
		if winners != 1 {
			t.Fatalf("%d winners, want 1", winners)
		}
	})

	t.Run("RateLimitBurstThenRefuse", func(t *testing.T) {
		s := newStore(t)
		key := "test:" + nonce(t)
		limit := store.PerMinute(5)
		for i := range 5 {
			r, err := s.Allow(ctx, key, limit)
			if err != nil {
				t.Fatal(err)
			}
			if !r.Allowed {
				t.Fatalf("event %d refused", i)
			}
			if r.Remaining != 4-i {
				t.Fatalf("event %d: remaining %d, want %d", i, r.Remaining, 4-i)
			}
			if r.RetryAfter != 0 {
				t.Fatalf("event %d: RetryAfter %v on an allowed event", i, r.RetryAfter)
			}
		}
		r, err := s.Allow(ctx, key, limit)
		if err != nil {
			t.Fatal(err)
		}
		if r.Allowed || r.Remaining != 0 {
			t.Fatalf("6th event: %+v, want refused", r)
		}
		// One event every 12s refills; allow for the clock moving during the test.
		if r.RetryAfter <= 0 || r.RetryAfter > 12*time.Second {
			t.Fatalf("RetryAfter %v, want (0, 12s]", r.RetryAfter)
		}
		if r.ResetAfter <= 50*time.Second || r.ResetAfter > time.Minute {
			t.Fatalf("ResetAfter %v, want about 60s", r.ResetAfter)
		}
		// Another key is independent.
		if r, err := s.Allow(ctx, key+"x", limit); err != nil || !r.Allowed {
			t.Fatalf("other key: %+v %v", r, err)
		}
	})

	runLimited(t, newStore)
	runRecords(t, newStore)
	runProofs(t, newStore)
	runRoomClaimTimes(t, newStore)
	runWebhookEvents(t, newStore)

	t.Run("Ping", func(t *testing.T) {
		if err := newStore(t).Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func put(s store.Store, ctx context.Context, id string, ttl time.Duration) error {
	_, err := s.PutNonce(ctx, store.Nonce{Org: "acme", ID: id}, ttl, nil)
	return err
}

func consume(s store.Store, ctx context.Context, id string) error {
	_, err := s.ConsumeNonce(ctx, store.Nonce{Org: "acme", ID: id}, nil)
	return err
}

// runLimited is the part of the suite for the nonce operations that count
// against an org's limit in the same step.
func runLimited(t *testing.T, newStore func(t *testing.T) store.Store) {
	ctx := context.Background()
	t.Run("LimitedPutAndConsume", func(t *testing.T) {
		s := newStore(t)
		org, _ := token.NewNonce() // a fresh org: a fresh bucket
		org = "o" + strings.ToLower(org[:10])
		limit := store.PerMinute(3)
		var ids []string
		for i := range 3 {
			id, _ := token.NewNonce()
			res, err := s.PutNonce(ctx, store.Nonce{Org: org, ID: id}, time.Minute, &limit)
			if err != nil || !res.Allowed || res.Remaining != 2-i {
				t.Fatalf("put %d: %+v %v", i, res, err)
			}
			ids = append(ids, id)
		}
		// Over the limit: refused, and nothing stored.
		extra, _ := token.NewNonce()
		res, err := s.PutNonce(ctx, store.Nonce{Org: org, ID: extra}, time.Minute, &limit)
		if err != nil || res.Allowed || res.RetryAfter <= 0 {
			t.Fatalf("4th put: %+v %v, want refused", res, err)
		}
		if _, err := s.ConsumeNonce(ctx, store.Nonce{Org: org, ID: extra}, nil); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a refused put stored its nonce: %v", err)
		}
		// The same bucket limits consumption, and a refused consume keeps the nonce.
		res, err = s.ConsumeNonce(ctx, store.Nonce{Org: org, ID: ids[0]}, &limit)
		if err != nil || res.Allowed {
			t.Fatalf("consume over the limit: %+v %v, want refused", res, err)
		}
		if _, err := s.ConsumeNonce(ctx, store.Nonce{Org: org, ID: ids[0]}, nil); err != nil {
			t.Fatalf("a refused consume removed the nonce: %v", err)
		}
		// Allow on OrgKey shares the bucket.
		if r, err := s.Allow(ctx, store.OrgKey(org), limit); err != nil || r.Allowed {
			t.Fatalf("Allow on the org key: %+v %v, want refused (shared bucket)", r, err)
		}
		// Under the limit (a fresh org's bucket), a limited consume of a
		// missing nonce is ErrNotFound, of a present one success.
		roomy := store.PerMinute(1000)
		org2 := org + "-2"
		for _, id := range ids[1:] {
			if _, err := s.PutNonce(ctx, store.Nonce{Org: org2, ID: id}, time.Minute, nil); err != nil {
				t.Fatal(err)
			}
		}
		org = org2
		if res, err := s.ConsumeNonce(ctx, store.Nonce{Org: org, ID: extra}, &roomy); !errors.Is(err, store.ErrNotFound) || !res.Allowed {
			t.Fatalf("limited consume of a missing nonce: %+v %v", res, err)
		}
		if res, err := s.ConsumeNonce(ctx, store.Nonce{Org: org, ID: ids[1]}, &roomy); err != nil || !res.Allowed {
			t.Fatalf("limited consume: %+v %v", res, err)
		}
		if _, err := s.PutNonce(ctx, store.Nonce{Org: org, ID: ids[2]}, time.Minute, &roomy); !errors.Is(err, store.ErrExists) {
			t.Fatalf("limited put of an existing nonce: %v", err)
		}
	})
	t.Run("PublicBudgetIsNotTheOrgs", func(t *testing.T) {
		s := newStore(t)
		org, _ := token.NewNonce()
		org = "o" + strings.ToLower(org[:10])
		limit := store.PerMinute(2)
		for i := range 2 {
			id, _ := token.NewNonce()
			res, err := s.PutNonce(ctx, store.Nonce{Org: org, ID: id, PublicAgent: "bot"}, time.Minute, &limit)
			if err != nil || !res.Allowed {
				t.Fatalf("public put %d: %+v %v", i, res, err)
			}
		}
		id, _ := token.NewNonce()
		if res, err := s.PutNonce(ctx, store.Nonce{Org: org, ID: id, PublicAgent: "bot"}, time.Minute, &limit); err != nil || res.Allowed {
			t.Fatalf("3rd public put: %+v %v, want refused", res, err)
		}
		// The agent's public bucket is Allow's PublicKey bucket ...
		if r, err := s.Allow(ctx, store.PublicKey(org, "bot"), limit); err != nil || r.Allowed {
			t.Fatalf("Allow on the public key: %+v %v, want refused (shared bucket)", r, err)
		}
		// ... and neither the org's nor another agent's.
		if res, err := s.PutNonce(ctx, store.Nonce{Org: org, ID: id}, time.Minute, &limit); err != nil || !res.Allowed || res.Remaining != 1 {
			t.Fatalf("org put after the public budget ran out: %+v %v", res, err)
		}
		id2, _ := token.NewNonce()
		if res, err := s.PutNonce(ctx, store.Nonce{Org: org, ID: id2, PublicAgent: "other"}, time.Minute, &limit); err != nil || !res.Allowed {
			t.Fatalf("another agent's public put: %+v %v", res, err)
		}
		// PublicAgent does not name the nonce.
		if _, err := s.ConsumeNonce(ctx, store.Nonce{Org: org, ID: id2}, nil); err != nil {
			t.Fatalf("consume without PublicAgent: %v", err)
		}
	})
	t.Run("Gate", func(t *testing.T) {
		s := newStore(t)
		org, _ := token.NewNonce()
		org = "o" + strings.ToLower(org[:10])
		gateKey := "ip:public:" + org // a key of its own, on no org's slot
		gate := store.Gate{Key: gateKey, Limit: store.PerMinute(2)}
		budget := store.PerMinute(3)
		var ids []string
		for i := range 2 {
			id, _ := token.NewNonce()
			res, err := s.PutNonce(ctx, store.Nonce{Org: org, ID: id, PublicAgent: "bot", Gate: gate}, time.Minute, &budget)
			if err != nil || !res.Allowed || res.Gated || res.Limit != budget {
				t.Fatalf("gated put %d: %+v %v (the result is the budget's)", i, res, err)
			}
			ids = append(ids, id)
		}
		// The gate refuses the 3rd: nothing stored, the budget not counted.
		extra, _ := token.NewNonce()
		res, err := s.PutNonce(ctx, store.Nonce{Org: org, ID: extra, PublicAgent: "bot", Gate: gate}, time.Minute, &budget)
		if err != nil || res.Allowed || !res.Gated || res.Limit != gate.Limit || res.RetryAfter <= 0 {
			t.Fatalf("3rd gated put: %+v %v, want refused by the gate", res, err)
		}
		if _, err := s.ConsumeNonce(ctx, store.Nonce{Org: org, ID: extra}, nil); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a put refused by its gate stored its nonce: %v", err)
		}
		if r, err := s.Allow(ctx, gateKey, gate.Limit); err != nil || r.Allowed {
			t.Fatalf("Allow on the gate key: %+v %v, want refused (shared bucket)", r, err)
		}
		// The budget counted 2 of 3: one left.
		if r, err := s.Allow(ctx, store.PublicKey(org, "bot"), budget); err != nil || !r.Allowed {
			t.Fatalf("the budget after a gated refusal: %+v %v, want one left (the refusal not counted)", r, err)
		}
		if r, err := s.Allow(ctx, store.PublicKey(org, "bot"), budget); err != nil || r.Allowed {
			t.Fatalf("the budget: %+v %v, want spent", r, err)
		}
		// A gate on a consume, with a limit and without.
		if res, err := s.ConsumeNonce(ctx, store.Nonce{Org: org, ID: ids[0], Gate: gate}, &budget); err != nil || !res.Gated {
			t.Fatalf("gated consume: %+v %v, want refused by the gate", res, err)
		}
		if res, err := s.ConsumeNonce(ctx, store.Nonce{Org: org, ID: ids[0], Gate: gate}, nil); err != nil || !res.Gated {
			t.Fatalf("gated consume without a limit: %+v %v, want refused by the gate", res, err)
		}
		if _, err := s.ConsumeNonce(ctx, store.Nonce{Org: org, ID: ids[0]}, nil); err != nil {
			t.Fatalf("a consume refused by its gate removed the nonce: %v", err)
		}
		// A roomy gate: the call goes on to the budget and the nonce.
		roomy := store.Gate{Key: gateKey + "-2", Limit: store.PerMinute(1000)}
		if _, err := s.ConsumeNonce(ctx, store.Nonce{Org: org, ID: ids[1], Gate: roomy}, nil); err != nil {
			t.Fatalf("consume through a roomy gate: %v", err)
		}
		if _, err := s.ConsumeNonce(ctx, store.Nonce{Org: org, ID: ids[1], Gate: roomy}, nil); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second consume through a roomy gate: %v, want ErrNotFound", err)
		}
		// The budget refuses behind a gate that passed: the gate counted,
		// nothing stored.
		gate2 := store.Gate{Key: gateKey + "-3", Limit: store.PerMinute(2)}
		tight := store.PerMinute(1)
		org2 := org + "-t"
		id, _ := token.NewNonce()
		if _, err := s.PutNonce(ctx, store.Nonce{Org: org2, ID: id, Gate: gate2}, time.Minute, &tight); err != nil {
			t.Fatal(err)
		}
		id2, _ := token.NewNonce()
		res, err = s.PutNonce(ctx, store.Nonce{Org: org2, ID: id2, Gate: gate2}, time.Minute, &tight)
		if err != nil || res.Allowed || res.Gated || res.Limit != tight {
			t.Fatalf("put over the budget behind a gate that passed: %+v %v", res, err)
		}
		if _, err := s.ConsumeNonce(ctx, store.Nonce{Org: org2, ID: id2}, nil); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a put refused by its budget stored its nonce: %v", err)
		}
		if r, err := s.Allow(ctx, gate2.Key, gate2.Limit); err != nil || r.Allowed {
			t.Fatalf("the gate after two puts: %+v %v, want spent (both counted)", r, err)
		}
	})
	t.Run("NoncesAreOrgScoped", func(t *testing.T) {
		s := newStore(t)
		id, _ := token.NewNonce()
		if _, err := s.PutNonce(ctx, store.Nonce{Org: "acme", ID: id}, time.Minute, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ConsumeNonce(ctx, store.Nonce{Org: "globex", ID: id}, nil); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("another org consumed the nonce: %v", err)
		}
		if _, err := s.ConsumeNonce(ctx, store.Nonce{Org: "acme", ID: id}, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("LimitedConcurrentConsume", func(t *testing.T) {
		s := newStore(t)
		id, _ := token.NewNonce()
		n := store.Nonce{Org: "acme", ID: id}
		if _, err := s.PutNonce(ctx, n, time.Minute, nil); err != nil {
			t.Fatal(err)
		}
		limit := store.PerMinute(1_000_000)
		var ok, gone atomic.Int32
		var wg sync.WaitGroup
		for range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.ConsumeNonce(ctx, n, &limit); err == nil {
					ok.Add(1)
				} else if errors.Is(err, store.ErrNotFound) {
					gone.Add(1)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 1 || gone.Load() != 99 {
			t.Fatalf("ok=%d notfound=%d, want 1/99", ok.Load(), gone.Load())
		}
	})
}

// runRecords is the part of the suite for nonces kept with a record: a
// consume with the record consumes once, one with another record consumes
// nothing and says so (ErrMismatch), with or without a limit.
func runRecords(t *testing.T, newStore func(t *testing.T) store.Store) {
	ctx := context.Background()
	// Records are MACs: binary, any byte, 32 of them.
	right := "\x00\xff1" + strings.Repeat("r", 29)
	wrong := "\x00\xff1" + strings.Repeat("r", 28) + "s"
	fresh := func(t *testing.T) store.Nonce {
		org, _ := token.NewNonce() // a fresh org: a fresh bucket
		id, _ := token.NewNonce()
		return store.Nonce{Org: "o" + strings.ToLower(org[:10]), ID: id}
	}
	roomy := store.PerMinute(1000)
	for _, limited := range []bool{false, true} {
		var limit *store.Limit
		name := "Unlimited"
		if limited {
			limit, name = &roomy, "Limited"
		}
		t.Run(name+"RecordConsumedOnce", func(t *testing.T) {
			s := newStore(t)
			n := fresh(t)
			n.Record = right
			if _, err := s.PutNonce(ctx, n, time.Minute, limit); err != nil {
				t.Fatal(err)
			}
			w := n
			w.Record = wrong
			res, err := s.ConsumeNonce(ctx, w, limit)
			if !errors.Is(err, store.ErrMismatch) || !res.Allowed {
				t.Fatalf("consume with another record: %+v %v, want ErrMismatch", res, err)
			}
			if limited && res.Remaining != roomy.Burst-2 {
				t.Fatalf("a mismatch was not counted: remaining %d", res.Remaining)
			}
			short := n
			short.Record = right[:31]
			if _, err := s.ConsumeNonce(ctx, short, limit); !errors.Is(err, store.ErrMismatch) {
				t.Fatalf("consume with a prefix of the record: %v, want ErrMismatch", err)
			}
			if _, err := s.ConsumeNonce(ctx, n, limit); err != nil {
				t.Fatalf("consume with the record after a mismatch: %v", err)
			}
			if _, err := s.ConsumeNonce(ctx, n, limit); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("second consume: %v, want ErrNotFound", err)
			}
			if _, err := s.ConsumeNonce(ctx, w, limit); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("consume of a consumed nonce with another record: %v, want ErrNotFound", err)
			}
		})
		t.Run(name+"RecordLegacy", func(t *testing.T) {
			// A nonce stored without a record (by a broker before records)
			// matches no record, and is consumed by a consume without one.
			s := newStore(t)
			n := fresh(t)
			if _, err := s.PutNonce(ctx, n, time.Minute, limit); err != nil {
				t.Fatal(err)
			}
			r := n
			r.Record = right
			if _, err := s.ConsumeNonce(ctx, r, limit); !errors.Is(err, store.ErrMismatch) {
				t.Fatalf("a record on a legacy nonce: %v, want ErrMismatch", err)
			}
			if _, err := s.ConsumeNonce(ctx, n, limit); err != nil {
				t.Fatalf("consume without a record: %v", err)
			}
		})
		t.Run(name+"RecordIgnoredWithoutOne", func(t *testing.T) {
			// /connect consumes without a record, as before records.
			s := newStore(t)
			n := fresh(t)
			n.Record = right
			if _, err := s.PutNonce(ctx, n, time.Minute, limit); err != nil {
				t.Fatal(err)
			}
			bare := n
			bare.Record = ""
			if _, err := s.ConsumeNonce(ctx, bare, limit); err != nil {
				t.Fatal(err)
			}
			if _, err := s.ConsumeNonce(ctx, n, limit); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("consume after: %v, want ErrNotFound", err)
			}
		})
	}
	t.Run("RecordAndProof", func(t *testing.T) {
		s := newStore(t)
		n := fresh(t)
		n.Record = right
		if _, err := s.PutNonce(ctx, n, time.Minute, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.ConsumeNonceWithProof(ctx, n, store.Proof{Key: "k", TTL: time.Minute}); err != nil {
			t.Fatalf("ConsumeNonceWithProof of a recorded nonce: %v", err)
		}
		if _, err := s.ConsumeNonce(ctx, n, nil); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("consume after the proof: %v", err)
		}
	})
	t.Run("RecordConcurrent", func(t *testing.T) {
		s := newStore(t)
		n := fresh(t)
		n.Record = right
		if _, err := s.PutNonce(ctx, n, time.Minute, nil); err != nil {
			t.Fatal(err)
		}
		var ok, mismatch, gone, other atomic.Int32
		var wg sync.WaitGroup
		for i := range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m := n
				if i%2 == 1 {
					m.Record = wrong
				}
				_, err := s.ConsumeNonce(ctx, m, &roomy)
				switch {
				case err == nil && m.Record == right:
					ok.Add(1)
				case errors.Is(err, store.ErrMismatch) && m.Record == wrong:
					mismatch.Add(1)
				case errors.Is(err, store.ErrNotFound):
					gone.Add(1)
				default:
					other.Add(1)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 1 || other.Load() != 0 || ok.Load()+mismatch.Load()+gone.Load() != 100 {
			t.Fatalf("ok=%d mismatch=%d notfound=%d other=%d", ok.Load(), mismatch.Load(), gone.Load(), other.Load())
		}
	})
	t.Run("RecordTooLong", func(t *testing.T) {
		s := newStore(t)
		n := fresh(t)
		n.Record = strings.Repeat("r", store.MaxRecord+1)
		if _, err := s.PutNonce(ctx, n, time.Minute, nil); err == nil || errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("PutNonce: %v, want a caller's error", err)
		}
		if _, err := s.ConsumeNonce(ctx, n, &roomy); err == nil || errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("ConsumeNonce: %v, want a caller's error", err)
		}
	})
}

// runProofs is the part of the suite for ConsumeNonceWithProof: a DPoP
// proof is accepted once, and a replayed proof consumes nothing.
func runProofs(t *testing.T, newStore func(t *testing.T) store.Store) {
	ctx := context.Background()
	fresh := func(t *testing.T, s store.Store) store.Nonce {
		t.Helper()
		id, err := token.NewNonce()
		if err != nil {
			t.Fatal(err)
		}
		n := store.Nonce{Org: "acme", ID: id}
		if _, err := s.PutNonce(ctx, n, time.Minute, nil); err != nil {
			t.Fatal(err)
		}
		return n
	}
	proof := func(ttl time.Duration) store.Proof {
		jti, _ := token.NewNonce()
		return store.Proof{Key: "dpop:0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I:" + jti, TTL: ttl}
	}
	present := func(t *testing.T, s store.Store, n store.Nonce) bool {
		t.Helper()
		_, err := s.ConsumeNonce(ctx, n, nil)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}

	t.Run("ProofConsumesTheNonce", func(t *testing.T) {
		s := newStore(t)
		n, p := fresh(t, s), proof(time.Minute)
		if err := s.ConsumeNonceWithProof(ctx, n, p); err != nil {
			t.Fatalf("ConsumeNonceWithProof: %v", err)
		}
		if present(t, s, n) {
			t.Fatal("the nonce is still there")
		}
		// The nonce is gone for every kind of consume, a new proof included.
		if err := s.ConsumeNonceWithProof(ctx, n, proof(time.Minute)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second consume with a new proof = %v, want ErrNotFound", err)
		}
	})

	t.Run("ProofReplayConsumesNothing", func(t *testing.T) {
		s := newStore(t)
		n1, n2, p := fresh(t, s), fresh(t, s), proof(time.Minute)
		if err := s.ConsumeNonceWithProof(ctx, n1, p); err != nil {
			t.Fatal(err)
		}
		if err := s.ConsumeNonceWithProof(ctx, n2, p); !errors.Is(err, store.ErrReplayed) {
			t.Fatalf("replayed proof = %v, want ErrReplayed", err)
		}
		// The replayed proof left n2 in place: a fresh proof consumes it.
		if err := s.ConsumeNonceWithProof(ctx, n2, proof(time.Minute)); err != nil {
			t.Fatalf("after a replay, a fresh proof: %v", err)
		}
		// A replay of a used nonce with a used proof is still a replay.
		if err := s.ConsumeNonceWithProof(ctx, n1, p); !errors.Is(err, store.ErrReplayed) {
			t.Fatalf("replay of both = %v, want ErrReplayed", err)
		}
	})

	t.Run("ProofAcceptedOnceAcrossOrgs", func(t *testing.T) {
		// A proof is accepted once, whatever org's ticket it comes with: a
		// proof captured at acme's /connect does not open a ticket of
		// globex's bound to the same client key.
		s := newStore(t)
		p := proof(time.Minute)
		if err := s.ConsumeNonceWithProof(ctx, fresh(t, s), p); err != nil {
			t.Fatal(err)
		}
		other := fresh(t, s)
		other.Org = "globex"
		if _, err := s.PutNonce(ctx, other, time.Minute, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.ConsumeNonceWithProof(ctx, other, p); !errors.Is(err, store.ErrReplayed) {
			t.Fatalf("acme's proof replayed with globex's ticket = %v, want ErrReplayed", err)
		}
		if !present(t, s, other) {
			t.Fatal("the replay consumed globex's nonce")
		}
	})

	t.Run("ProofNotRecordedForAMissingNonce", func(t *testing.T) {
		s := newStore(t)
		missing, _ := token.NewNonce()
		p := proof(time.Minute)
		if err := s.ConsumeNonceWithProof(ctx, store.Nonce{Org: "acme", ID: missing}, p); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("missing nonce = %v, want ErrNotFound", err)
		}
		if err := s.ConsumeNonceWithProof(ctx, fresh(t, s), p); err != nil {
			t.Fatalf("a proof refused with its nonce was recorded: %v", err)
		}
	})

	t.Run("ProofExpires", func(t *testing.T) {
		s := newStore(t)
		p := proof(20 * time.Millisecond)
		if err := s.ConsumeNonceWithProof(ctx, fresh(t, s), p); err != nil {
			t.Fatal(err)
		}
		n := fresh(t, s)
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := s.ConsumeNonceWithProof(ctx, n, p)
			if err == nil {
				return
			}
			if !errors.Is(err, store.ErrReplayed) {
				t.Fatalf("while the proof expires: %v", err)
			}
			if time.Now().After(deadline) {
				t.Fatal("the proof was never forgotten")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	t.Run("ProofConcurrent", func(t *testing.T) {
		s := newStore(t)
		p := proof(time.Minute)
		nonces := make([]store.Nonce, 50)
		for i := range nonces {
			nonces[i] = fresh(t, s)
		}
		errs := make([]error, len(nonces))
		var wg sync.WaitGroup
		for i, n := range nonces {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.ConsumeNonceWithProof(ctx, n, p)
			}()
		}
		wg.Wait()
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
				if present(t, s, nonces[i]) {
					t.Fatalf("call %d won but left its nonce", i)
				}
			case errors.Is(err, store.ErrReplayed):
				if !present(t, s, nonces[i]) {
					t.Fatalf("call %d was refused as a replay but consumed its nonce", i)
				}
			default:
				t.Fatalf("call %d: %v", i, err)
			}
		}
		if won != 1 {
			t.Fatalf("%d calls accepted one proof, want 1", won)
		}
	})

	t.Run("ProofOnCanceledContextFailsClosed", func(t *testing.T) {
		s := newStore(t)
		n, p := fresh(t, s), proof(time.Minute)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := s.ConsumeNonceWithProof(cctx, n, p); !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("on a canceled ctx = %v, want ErrUnavailable", err)
		}
		if err := s.ConsumeNonceWithProof(ctx, n, p); err != nil {
			t.Fatalf("after a failed call, nonce and proof must be untouched: %v", err)
		}
	})

	t.Run("ProofBadArguments", func(t *testing.T) {
		s := newStore(t)
		n := fresh(t, s)
		for _, p := range []store.Proof{{Key: "", TTL: time.Minute}, {Key: "k", TTL: 0}, {Key: "k", TTL: -time.Second},
			{Key: strings.Repeat("k", store.MaxProofKey+1), TTL: time.Minute}} {
			if err := s.ConsumeNonceWithProof(ctx, n, p); err == nil || errors.Is(err, store.ErrUnavailable) ||
				errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrReplayed) {
				t.Fatalf("proof key %d bytes, ttl %v: %v, want a plain error", len(p.Key), p.TTL, err)
			}
		}
		if !present(t, s, n) {
			t.Fatal("a refused call consumed the nonce")
		}
	})
}

// runRoomClaimTimes is the part of the suite for ReleaseRoomClaimedBy: a
// release for something that happened at t removes a claim made at or
// before t, and never one made after it.
func runRoomClaimTimes(t *testing.T, newStore func(t *testing.T) store.Store) {
	ctx := context.Background()
	room := func(t *testing.T) string {
		n, err := token.NewNonce()
		if err != nil {
			t.Fatal(err)
		}
		return "agent_bot_1700000000_" + strings.NewReplacer("-", "a", "_", "b").Replace(n)
	}
	owner := func(t *testing.T, s store.Store, room string) string {
		t.Helper()
		o, err := s.RoomOwner(ctx, room)
		if errors.Is(err, store.ErrNotFound) {
			return ""
		}
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	// waitOwner polls until room's owner is want: expiry is the store's,
	// by its own clock.
	waitOwner := func(t *testing.T, s store.Store, room, want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for o := owner(t, s, room); o != want; o = owner(t, s, room) {
			if time.Now().After(deadline) {
				t.Fatalf("owner of %s still %q, want %q", room, o, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// The store's clock (Redis's TIME) may differ a little from this
	// process's: an hour either way is before or after any claim.
	t.Run("RoomReleaseClaimedBy", func(t *testing.T) {
		s := newStore(t)
		r := room(t)
		if _, err := s.ClaimRoom(ctx, r, "acme", time.Minute, 0); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			org  string
			at   time.Time
		}{
			{"an event before the claim", "acme", time.Now().Add(-time.Hour)},
			{"another org", "globex", time.Now().Add(time.Hour)},
		} {
			if released, err := s.ReleaseRoomClaimedBy(ctx, r, tc.org, tc.at, 0); err != nil || released {
				t.Fatalf("%s: released %v, %v", tc.name, released, err)
			}
			if o := owner(t, s, r); o != "acme" {
				t.Fatalf("%s: owner %q after a refused release", tc.name, o)
			}
		}
		if released, err := s.ReleaseRoomClaimedBy(ctx, r, "acme", time.Now(), 0); err != nil || !released {
			t.Fatalf("an event after the claim: released %v, %v", released, err)
		}
		if o := owner(t, s, r); o != "" {
			t.Fatalf("owner %q after the release", o)
		}
		if released, err := s.ReleaseRoomClaimedBy(ctx, r, "acme", time.Now().Add(time.Hour), 0); err != nil || released {
			t.Fatalf("released a room nobody owns: %v, %v", released, err)
		}
		// Released: another org may claim it.
		if o, err := s.ClaimRoom(ctx, r, "globex", time.Minute, 0); err != nil || o != "globex" {
			t.Fatalf("claim after the release = %q, %v", o, err)
		}
	})
	t.Run("RoomReclaimMovesTheClaimTime", func(t *testing.T) {
		s := newStore(t)
		r := room(t)
		if _, err := s.ClaimRoom(ctx, r, "acme", time.Minute, 0); err != nil {
			t.Fatal(err)
		}
		// finished is a moment after the first claim and before the second
		// (the clocks are read in whole milliseconds).
		finished := time.Now().Add(5 * time.Millisecond)
		for !time.Now().After(finished.Add(5 * time.Millisecond)) {
			time.Sleep(time.Millisecond)
		}
		if o, err := s.ClaimRoom(ctx, r, "acme", time.Minute, 0); err != nil || o != "acme" {
			t.Fatalf("re-claim = %q, %v", o, err)
		}
		if released, err := s.ReleaseRoomClaimedBy(ctx, r, "acme", finished, 0); err != nil || released {
			t.Fatalf("an event between the claims released the second: %v, %v", released, err)
		}
		if o := owner(t, s, r); o != "acme" {
			t.Fatalf("owner %q", o)
		}
		// ReleaseRoom, unconditional, still releases, claim time and all.
		if err := s.ReleaseRoom(ctx, r, "acme"); err != nil {
			t.Fatal(err)
		}
		if o := owner(t, s, r); o != "" {
			t.Fatalf("owner %q after ReleaseRoom", o)
		}
		if released, err := s.ReleaseRoomClaimedBy(ctx, r, "acme", time.Now().Add(time.Hour), 0); err != nil || released {
			t.Fatalf("released after ReleaseRoom: %v, %v", released, err)
		}
	})
	t.Run("RoomReleaseClaimedByConcurrentWithClaim", func(t *testing.T) {
		// A release for an earlier event racing a new claim: either the
		// claim comes first and is kept, or the release comes first and the
		// claim then holds; the room is never left unowned.
		s := newStore(t)
		for range 20 {
			r := room(t)
			if _, err := s.ClaimRoom(ctx, r, "acme", time.Minute, 0); err != nil {
				t.Fatal(err)
			}
			finished := time.Now().Add(-time.Hour)
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); s.ReleaseRoomClaimedBy(ctx, r, "acme", finished, 0) }()
			go func() { defer wg.Done(); s.ClaimRoom(ctx, r, "acme", time.Minute, 0) }()
			wg.Wait()
			if o := owner(t, s, r); o != "acme" {
				t.Fatalf("owner %q", o)
			}
		}
	})
	t.Run("RoomReleaseKeepsTheNameWhileItsTokensLive", func(t *testing.T) {
		// Released with keep, a record stays the org's until keep after
		// the later of its latest claim and the event: another org cannot
		// take the name while tokens issued for the room still open it.
		s := newStore(t)
		r := room(t)
		if _, err := s.ClaimRoom(ctx, r, "acme", time.Minute, 0); err != nil {
			t.Fatal(err)
		}
		if released, err := s.ReleaseRoomClaimedBy(ctx, r, "acme", time.Now().Add(time.Hour), time.Hour); err != nil || !released {
			t.Fatalf("release with keep: released %v, %v", released, err)
		}
		if o := owner(t, s, r); o != "acme" {
			t.Fatalf("owner %q while tokens issued with the claim live, want acme", o)
		}
		if o, err := s.ClaimRoom(ctx, r, "globex", time.Minute, 0); err != nil || o != "acme" {
			t.Fatalf("another org's claim while tokens live = %q, %v; want acme", o, err)
		}
		if o, err := s.ClaimRoom(ctx, r, "acme", time.Minute, 0); err != nil || o != "acme" {
			t.Fatalf("the owner's own claim = %q, %v", o, err)
		}
		// keep shortens the record's life: it ends keep after the later of
		// the claim and the event. Of two records claimed alike and
		// released with the same short keep, the one whose event is an
		// hour ahead outlives the other, which ends keep after now.
		short, ahead := room(t), room(t)
		for _, r := range []string{short, ahead} {
			if _, err := s.ClaimRoom(ctx, r, "acme", time.Hour, 0); err != nil {
				t.Fatal(err)
			}
		}
		if released, err := s.ReleaseRoomClaimedBy(ctx, ahead, "acme", time.Now().Add(time.Hour), 200*time.Millisecond); err != nil || !released {
			t.Fatalf("release for an event ahead: released %v, %v", released, err)
		}
		if released, err := s.ReleaseRoomClaimedBy(ctx, short, "acme", time.Now(), 200*time.Millisecond); err != nil || !released {
			t.Fatalf("release with a short keep: released %v, %v", released, err)
		}
		waitOwner(t, s, short, "")
		if o := owner(t, s, ahead); o != "acme" {
			t.Fatalf("owner %q of a record whose event is ahead, want acme: keep counts from the later of claim and event", o)
		}
		if o, err := s.ClaimRoom(ctx, short, "globex", time.Minute, 0); err != nil || o != "globex" {
			t.Fatalf("claim once the tokens are dead = %q, %v", o, err)
		}
		// ... and never lengthens it: a record that expires before keep
		// expires as it would have.
		brief := room(t)
		if _, err := s.ClaimRoom(ctx, brief, "acme", 200*time.Millisecond, 0); err != nil {
			t.Fatal(err)
		}
		if released, err := s.ReleaseRoomClaimedBy(ctx, brief, "acme", time.Now().Add(time.Hour), time.Hour); err != nil || !released {
			t.Fatalf("release of a brief claim: released %v, %v", released, err)
		}
		waitOwner(t, s, brief, "")
	})
	t.Run("RoomReleaseKeepsTheTokensOfEveryClaim", func(t *testing.T) {
		// A release never ends a record before the last token issued with
		// one of its owner's claims is dead, whatever keep it is given: a
		// broker whose token lifetime was lowered since (or a claim of a
		// longer-lived token followed by claims of shorter ones) must not
		// free the name while the older tokens still open the room.
		s := newStore(t)
		long, bare := room(t), room(t)
		if _, err := s.ClaimRoom(ctx, long, "acme", time.Hour, time.Hour); err != nil {
			t.Fatal(err)
		}
		for _, r := range []string{long, bare} {
			// A later claim that issues a token of a minute (or none,
			// as a renewal) leaves the hour-long token's time as it is.
			if _, err := s.ClaimRoom(ctx, r, "acme", time.Hour, 0); err != nil {
				t.Fatal(err)
			}
		}
		for _, r := range []string{long, bare} {
			if released, err := s.ReleaseRoomClaimedBy(ctx, r, "acme", time.Now(), 0); err != nil || !released {
				t.Fatalf("release: released %v, %v", released, err)
			}
		}
		if o, err := s.ClaimRoom(ctx, long, "globex", time.Minute, 0); err != nil || o != "acme" {
			t.Fatalf("another org's claim while a token of an earlier claim lives = %q, %v; want acme", o, err)
		}
		// The control: a record whose claims issued no token ends with
		// keep.
		waitOwner(t, s, bare, "")
		// The time is the latest one, and ends: a token of 300 ms, after
		// one of 0, leaves the record 300 ms after the release.
		brief := room(t)
		if _, err := s.ClaimRoom(ctx, brief, "acme", time.Hour, 300*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if released, err := s.ReleaseRoomClaimedBy(ctx, brief, "acme", time.Now(), 0); err != nil || !released {
			t.Fatalf("release: released %v, %v", released, err)
		}
		waitOwner(t, s, brief, "")
		if o, err := s.ClaimRoom(ctx, brief, "globex", time.Minute, 0); err != nil || o != "globex" {
			t.Fatalf("claim once the token is dead = %q, %v", o, err)
		}
		// A new owner starts afresh: globex's record of brief, claimed
		// with no token, ends with its keep, whatever acme's tokens were.
		if released, err := s.ReleaseRoomClaimedBy(ctx, brief, "globex", time.Now(), 0); err != nil || !released {
			t.Fatalf("release by the new owner: released %v, %v", released, err)
		}
		if o := owner(t, s, brief); o != "" {
			t.Fatalf("owner %q after the new owner's release, want none", o)
		}
	})
	t.Run("RoomReleaseClaimedByCanceledFailsClosed", func(t *testing.T) {
		s := newStore(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.ReleaseRoomClaimedBy(cctx, room(t), "acme", time.Now(), 0); !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("ReleaseRoomClaimedBy on canceled ctx = %v, want ErrUnavailable", err)
		}
	})
}

// runWebhookEvents is the part of the suite for the webhook event ids.
func runWebhookEvents(t *testing.T, newStore func(t *testing.T) store.Store) {
	ctx := context.Background()
	id := func(t *testing.T) string {
		n, err := token.NewNonce()
		if err != nil {
			t.Fatal(err)
		}
		return "EV_" + n
	}
	t.Run("WebhookEventOnce", func(t *testing.T) {
		s := newStore(t)
		ev := id(t)
		if err := s.RecordWebhookEvent(ctx, ev, time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordWebhookEvent(ctx, ev, time.Minute); !errors.Is(err, store.ErrExists) {
			t.Fatalf("second record = %v, want ErrExists", err)
		}
		if err := s.RecordWebhookEvent(ctx, id(t), time.Minute); err != nil {
			t.Fatalf("another event: %v", err)
		}
		if err := s.ForgetWebhookEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordWebhookEvent(ctx, ev, time.Minute); err != nil {
			t.Fatalf("record after forget = %v", err)
		}
	})
	t.Run("WebhookEventConcurrent", func(t *testing.T) {
		s := newStore(t)
		ev := id(t)
		var ok, dup, other atomic.Int32
		var wg sync.WaitGroup
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				switch err := s.RecordWebhookEvent(ctx, ev, time.Minute); {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, store.ErrExists):
					dup.Add(1)
				default:
					other.Add(1)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 1 || dup.Load() != 49 || other.Load() != 0 {
			t.Fatalf("ok=%d exists=%d other=%d, want 1/49/0", ok.Load(), dup.Load(), other.Load())
		}
	})
	t.Run("WebhookEventExpires", func(t *testing.T) {
		s := newStore(t)
		ev := id(t)
		if err := s.RecordWebhookEvent(ctx, ev, 20*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			time.Sleep(25 * time.Millisecond)
			err := s.RecordWebhookEvent(ctx, ev, 20*time.Millisecond)
			if err == nil {
				return
			}
			if !errors.Is(err, store.ErrExists) {
				t.Fatal(err)
			}
			if time.Now().After(deadline) {
				t.Fatal("event record never expired")
			}
		}
	})
	t.Run("WebhookEventBadArguments", func(t *testing.T) {
		s := newStore(t)
		for _, bad := range []string{"", strings.Repeat("e", store.MaxEventID+1)} {
			if err := s.RecordWebhookEvent(ctx, bad, time.Minute); err == nil || errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("RecordWebhookEvent(%d bytes) = %v, want a caller's error", len(bad), err)
			}
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := s.RecordWebhookEvent(cctx, id(t), time.Minute); !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("RecordWebhookEvent on canceled ctx = %v, want ErrUnavailable", err)
		}
	})
}
