package redis_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/internal/store"
	vbredis "github.com/voicebroker/voicebroker/internal/store/redis"
	"github.com/voicebroker/voicebroker/internal/store/storetest"
	"github.com/voicebroker/voicebroker/internal/testenv"
)

func TestConformance(t *testing.T) {
	addr := testenv.RedisAddr(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := vbredis.NewURL("redis://"+addr+"/0", &vbredis.Options{Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestUnreachableFailsClosed points the store at a port nobody listens on:
// every call is ErrUnavailable, promptly.
func TestUnreachableFailsClosed(t *testing.T) {
	port := testenv.FreePort(t)
	s, err := vbredis.NewURL("redis://127.0.0.1:"+strconv.Itoa(port), &vbredis.Options{Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	n := store.Nonce{Org: "acme", ID: "x"}
	limit := store.PerMinute(10)
	if _, err := s.PutNonce(ctx, n, time.Minute, nil); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("PutNonce = %v", err)
	}
	if _, err := s.ConsumeNonce(ctx, n, nil); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("ConsumeNonce = %v", err)
	}
	if _, err := s.PutNonce(ctx, n, time.Minute, &limit); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("limited PutNonce = %v", err)
	}
	if _, err := s.ConsumeNonce(ctx, n, &limit); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("limited ConsumeNonce = %v", err)
	}
	if _, err := s.Allow(ctx, "x", store.PerMinute(1)); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Allow = %v", err)
	}
	if _, err := s.ClaimRoom(ctx, "x", "o", time.Minute); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("ClaimRoom = %v", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Ping = %v", err)
	}
}

func TestBadURL(t *testing.T) {
	_, err := vbredis.NewURL("redis://user:hunter2-secret@[::1", nil)
	if err == nil {
		t.Fatal("bad URL accepted")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error echoes the password: %v", err)
	}
}

// TestClusterConformance runs the whole suite, redis_rate included, on a
// real 3-master Redis Cluster: every command touches one key, so one slot.
func TestClusterConformance(t *testing.T) {
	addrs := testenv.RedisClusterAddrs(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		s := vbredis.NewCluster(addrs, &vbredis.Options{Timeout: time.Second})
		t.Cleanup(func() { s.Close() })
		return s
	})
}
