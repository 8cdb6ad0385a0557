package memory

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/internal/store"
)

// TestSweepLetsGo: a sweep lets go of the lock after every sweepChunk
// entries, so that a large nonce table does not stall every call for the
// whole sweep; and what calls do meanwhile (store nonces, consume them)
// survives it, while every entry expired when the sweep began is gone.
func TestSweepLetsGo(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := NewWithClock(func() time.Time { return now })
	ctx := context.Background()
	put := func(id string, ttl time.Duration) {
		t.Helper()
		if _, err := s.PutNonce(ctx, store.Nonce{Org: "acme", ID: id}, ttl, nil); err != nil {
			t.Fatal(err)
		}
	}
	const total = 10*sweepChunk + 7
	for i := range total {
		ttl := time.Hour
		if i%2 == 0 {
			ttl = time.Second // expired when the sweep runs
		}
		put(fmt.Sprintf("n%d", i), ttl)
	}
	now = now.Add(2 * time.Second)

	yields, added, consumed := 0, 0, 0
	s.yield = func() {
		yields++
		if !s.mu.TryLock() {
			t.Error("the lock is held between two chunks of a sweep")
			return
		}
		s.mu.Unlock()
		// Calls made meanwhile: a new nonce, and a live one consumed.
		put(fmt.Sprintf("new%d", yields), time.Hour)
		added++
		if err := s.ConsumeNonceWithProof(ctx, store.Nonce{Org: "acme", ID: fmt.Sprintf("n%d", 2*yields+1)},
			store.Proof{Key: fmt.Sprintf("p%d", yields), TTL: time.Hour}); err != nil {
			t.Errorf("consuming a live nonce during a sweep: %v", err)
		}
		consumed++
	}
	s.sweep()

	if want := total / sweepChunk; yields < want {
		t.Fatalf("the sweep let go of the lock %d times, want at least %d", yields, want)
	}
	if want := total/2 + added - consumed; len(s.nonces) != want {
		t.Errorf("%d nonces after the sweep, want %d", len(s.nonces), want)
	}
	for k, n := range s.nonces {
		if !now.Before(n.expires) {
			t.Errorf("expired nonce %s survived the sweep", k)
		}
	}
	for i := 1; i <= yields; i++ {
		if _, ok := s.nonces["acme/"+fmt.Sprintf("new%d", i)]; !ok {
			t.Errorf("nonce new%d, stored during the sweep, is gone", i)
		}
		if _, ok := s.nonces["acme/"+fmt.Sprintf("n%d", 2*i+1)]; ok {
			t.Errorf("nonce n%d, consumed during the sweep, is back", 2*i+1)
		}
	}
	if len(s.proofs) != consumed {
		t.Errorf("%d proofs kept, want %d", len(s.proofs), consumed)
	}
}
