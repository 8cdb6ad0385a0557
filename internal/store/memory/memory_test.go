package memory_test

import (
	"context"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/internal/store"
	"github.com/voicebroker/voicebroker/internal/store/memory"
	"github.com/voicebroker/voicebroker/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := memory.New(10 * time.Millisecond)
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestGCRARefill uses an injected clock: after one emission interval one
// more event is allowed, and no more.
func TestGCRARefill(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := memory.NewWithClock(func() time.Time { return now })
	ctx := context.Background()
	limit := store.PerMinute(60)
	for range 60 {
		if r, _ := s.Allow(ctx, "k", limit); !r.Allowed {
			t.Fatal("burst refused")
		}
	}
	if r, _ := s.Allow(ctx, "k", limit); r.Allowed || r.RetryAfter != time.Second {
		t.Fatalf("after burst: %+v, want refused with RetryAfter 1s", r)
	}
	now = now.Add(time.Second)
	if r, _ := s.Allow(ctx, "k", limit); !r.Allowed {
		t.Fatal("refused after one interval")
	}
	if r, _ := s.Allow(ctx, "k", limit); r.Allowed {
		t.Fatal("two events allowed after one interval")
	}
	now = now.Add(time.Hour)
	if r, _ := s.Allow(ctx, "k", limit); !r.Allowed || r.Remaining != 59 {
		t.Fatalf("after an hour: %+v, want full burst", r)
	}
}
