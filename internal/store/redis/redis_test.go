package redis_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

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
	if _, err := s.ClaimRoom(ctx, "x", "o", time.Minute, 0); !errors.Is(err, store.ErrUnavailable) {
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

// TestRoomRecordsOfEarlierBrokers: the owner record stays the plain string
// brokers before claim times read and write, so replicas of both versions
// agree on owners during a rolling update; a record one of them wrote
// (no claim time) is never released by ReleaseRoomClaimedBy and expires
// with its ttl, and ReleaseRoom still releases it. A tokens key one of
// them left behind holds nothing for the next owner.
func TestRoomRecordsOfEarlierBrokers(t *testing.T) {
	addr := testenv.RedisAddr(t)
	s, err := vbredis.NewURL("redis://"+addr+"/0", &vbredis.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rdb := goredis.NewClient(&goredis.Options{Addr: addr})
	defer rdb.Close()
	ctx := context.Background()
	room := "demo_earlier-" + strconv.FormatInt(time.Now().UnixNano(), 10)

	if _, err := s.ClaimRoom(ctx, room, "acme", time.Minute, 0); err != nil {
		t.Fatal(err)
	}
	if v, err := rdb.Get(ctx, "vb:room:"+room).Result(); err != nil || v != "acme" {
		t.Fatalf("owner record %q, %v: an earlier broker could not read it", v, err)
	}
	if err := s.ReleaseRoom(ctx, room, "acme"); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.Exists(ctx, "vb:room:"+room, "{vb:room:"+room+"}:claimed", "{vb:room:"+room+"}:tokens").Result(); n != 0 {
		t.Fatalf("%d keys left after ReleaseRoom", n)
	}

	// A tokens key an earlier broker left behind (its release deleted the
	// owner and the claim time only): the next owner's claim starts it
	// afresh, so another org's tokens never hold a record.
	if err := rdb.Set(ctx, "{vb:room:"+room+"}:tokens", time.Now().Add(time.Hour).UnixMilli(), time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if o, err := s.ClaimRoom(ctx, room, "globex", time.Minute, 0); err != nil || o != "globex" {
		t.Fatalf("claim %q, %v", o, err)
	}
	if released, err := s.ReleaseRoomClaimedBy(ctx, room, "globex", time.Now(), 0); err != nil || !released {
		t.Fatalf("release: %v, %v", released, err)
	}
	if _, err := s.RoomOwner(ctx, room); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the record outlived its release, held by another owner's tokens: %v", err)
	}
	// An earlier broker's claim of a record this broker claimed (the
	// tokens key unchanged) and its release (owner and claim time only)
	// leave nothing that holds the name.
	if _, err := s.ClaimRoom(ctx, room, "acme", time.Minute, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Del(ctx, "vb:room:"+room, "{vb:room:"+room+"}:claimed").Err(); err != nil {
		t.Fatal(err)
	}
	if o, err := s.ClaimRoom(ctx, room, "globex", time.Minute, 0); err != nil || o != "globex" {
		t.Fatalf("claim after an earlier broker's release: %q, %v", o, err)
	}
	if err := s.ReleaseRoom(ctx, room, "globex"); err != nil {
		t.Fatal(err)
	}

	// An earlier broker's claim: the owner alone.
	if err := rdb.Set(ctx, "vb:room:"+room, "acme", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if released, err := s.ReleaseRoomClaimedBy(ctx, room, "acme", time.Now().Add(time.Hour), 0); err != nil || released {
		t.Fatalf("a record without a claim time was released: %v, %v", released, err)
	}
	if o, err := s.RoomOwner(ctx, room); err != nil || o != "acme" {
		t.Fatalf("owner %q, %v", o, err)
	}
	// A room name with a brace has no claim time either (its keys would
	// be on two cluster slots); it is claimed and released all the same.
	braced := "room{x}" + room
	if o, err := s.ClaimRoom(ctx, braced, "acme", time.Minute, 0); err != nil || o != "acme" {
		t.Fatalf("claim %q, %v", o, err)
	}
	if released, err := s.ReleaseRoomClaimedBy(ctx, braced, "acme", time.Now().Add(time.Hour), 0); err != nil || released {
		t.Fatalf("released %v, %v", released, err)
	}
	if err := s.ReleaseRoom(ctx, braced, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RoomOwner(ctx, braced); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RoomOwner after release = %v", err)
	}
}

// TestLimitedAfterScriptFlush: a node that lost its script cache (a
// restart, a failover, SCRIPT FLUSH) still counts and stores: the limited
// calls send the script's source when EVALSHA finds none, batched or not.
func TestLimitedAfterScriptFlush(t *testing.T) {
	addr := testenv.RedisAddr(t)
	rdb := goredis.NewClient(&goredis.Options{Addr: addr})
	defer rdb.Close()
	ctx := context.Background()
	for _, unbatched := range []bool{false, true} {
		s, err := vbredis.NewURL("redis://"+addr+"/0", &vbredis.Options{Timeout: time.Second, Unbatched: unbatched})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		org := "flush-" + strconv.FormatInt(time.Now().UnixNano(), 10)
		limit := store.PerMinute(10)
		for i, id := range []string{"a", "b"} {
			if err := rdb.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			res, err := s.PutNonce(ctx, store.Nonce{Org: org, ID: id}, time.Minute, &limit)
			if err != nil || !res.Allowed || res.Remaining != 9-i {
				t.Fatalf("unbatched %v: PutNonce %s after SCRIPT FLUSH = %+v, %v", unbatched, id, res, err)
			}
		}
		if err := rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if res, err := s.ConsumeNonce(ctx, store.Nonce{Org: org, ID: "a"}, &limit); err != nil || !res.Allowed {
			t.Fatalf("unbatched %v: ConsumeNonce after SCRIPT FLUSH = %+v, %v", unbatched, res, err)
		}
	}
}
