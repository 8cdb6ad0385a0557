package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/voicebroker/voicebroker/internal/testenv"
)

// The /connect protocol (contract §4; README "LiveKit"): the LiveKit token
// is signed and a fresh room claimed before the ticket's nonce is
// consumed, and consuming it is the last step that can fail. So nothing is
// ever restored, a failure leaves the ticket usable, and token_used always
// means another redemption succeeded.

// hangingLiveKit is a LiveKit URL whose server accepts connections and
// never answers, the worst way for LiveKit to be down: a broker that
// called it would wait out BROKER_LIVEKIT_TIMEOUT.
func hangingLiveKit(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
			close(done)
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return "ws://" + l.Addr().String()
}

// postAsync is do for goroutines other than the test's: it reports errors
// instead of failing the test.
func postAsync(url, cred string, body any) (response, error) {
	var data []byte // a nil body is no body, as in do
	if body != nil {
		data, _ = json.Marshal(body)
	}
	req, err := http.NewRequest("POST", url, bytes.NewReader(data))
	if err != nil {
		return response{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	resp, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	json.Unmarshal(raw, &r.Body)
	return r, nil
}

// events counts the log lines of one audit event.
func events(b *broker, event string) int {
	return strings.Count(b.Logs.String(), `"event":"`+event+`"`)
}

// TestConnectRacesRedeem: /connect on one replica and /token/redeem on
// another race for the same tickets over one Redis, with LiveKit hanging.
// Each time exactly one wins, the loser gets token_used (a true replay:
// the winner did redeem), and no ticket is ever restored. Half the rounds
// redeem only once /connect has consumed the nonce (seen in its store
// metric), which is where a consume-then-call-LiveKit order would answer
// 502 after the redeem was told token_used.
func TestConnectRacesRedeem(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	k := newKeys(t)
	env := map[string]string{
		"BROKER_REDIS_URL": nextRedisURL(t), "LIVEKIT_URL": hangingLiveKit(t), "LIVEKIT_API_KEY": "testkey",
		"LIVEKIT_API_SECRET": "vb-test-secret-0123456789abcdef0123456789", "BROKER_LIVEKIT_TIMEOUT": "2s",
	}
	b1 := startBroker(t, k, env)
	env["BROKER_SIGNING_KEY_FILE"] = b1.KeyFile // the replicas share the signing key and the store
	b2 := startBroker(t, k, env)

	const rounds = 10
	consumed := 0
	for i := range rounds {
		ticket := b1.mint(t, k.acme, flo)
		type result struct {
			r   response
			err error
		}
		connected := make(chan result, 1)
		go func() {
			r, err := postAsync(b1.URL+"/connect", ticket, nil)
			connected <- result{r, err}
		}()
		if i%2 == 0 {
			waitFor(t, "the /connect's consume", func() bool {
				n, _ := strconv.Atoi(metric(t, b1, `voicebroker_store_duration_seconds_count{op="consume_nonce",result="ok"}`))
				m, _ := strconv.Atoi(metric(t, b1, `voicebroker_store_duration_seconds_count{op="consume_nonce",result="miss"}`))
				return n+m > consumed
			})
		}
		redeem := do(t, "POST", b2.URL+"/token/redeem", k.acme, map[string]string{"token": ticket})
		c := <-connected
		if c.err != nil {
			t.Fatal(c.err)
		}
		consumed++
		switch {
		case c.r.Status == 201 && redeem.Status == 401 && redeem.code() == "token_used":
		case redeem.Status == 200 && c.r.Status == 401 && c.r.code() == "token_used":
		default:
			t.Fatalf("round %d: /connect %d %s, /token/redeem %d %s: want exactly one success and one token_used",
				i, c.r.Status, c.r.Raw, redeem.Status, redeem.Raw)
		}
	}
	if n := events(b1, "token.restored") + events(b1, "token.restore_failed"); n != 0 {
		t.Fatalf("%d tickets restored or lost after a consume", n)
	}
	if n := events(b1, "token.replay") + events(b2, "token.replay"); n != rounds {
		t.Fatalf("%d replays logged, want %d (one per round, each a true one)", n, rounds)
	}
}

// TestConnectStoreFailsHalfway: the store refuses, in turn, the room claim
// and then the nonce (Redis ACLs on a real server: one key family fails,
// the other works). Each time /connect answers 503, restores nothing,
// leaves no room claim behind, and the same ticket works once the store is
// whole; a replay after that is the only token_used.
func TestConnectStoreFailsHalfway(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	addr, admin, acl := aclRedis(t)
	ctx := context.Background()

	k := newKeys(t)
	b := startBroker(t, k, map[string]string{
		"BROKER_REDIS_URL": "redis://" + addr + "/0", "LIVEKIT_URL": hangingLiveKit(t), "LIVEKIT_API_KEY": "testkey",
		"LIVEKIT_API_SECRET": "vb-test-secret-0123456789abcdef0123456789",
	})
	ticket := b.mint(t, k.acme, flo)
	rooms := func() []string {
		ks, err := admin.Keys(ctx, "vb:room:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		return ks
	}
	for _, tc := range []struct {
		name string
		keys []string // what the broker's Redis user may still touch
	}{
		{"the room claim fails", []string{"~rate:*", "~vb:n:*"}},
		{"the nonce fails after the claim", []string{"~rate:*", "~vb:room:*"}},
	} {
		acl(tc.keys...)
		r := do(t, "POST", b.URL+"/connect", ticket, nil)
		acl("~*")
		if r.Status != 503 || r.code() != "store_unavailable" {
			t.Fatalf("%s: /connect %d %s, want 503 store_unavailable", tc.name, r.Status, r.Raw)
		}
		if ks := rooms(); len(ks) != 0 {
			t.Fatalf("%s: room claims left behind: %v", tc.name, ks)
		}
	}
	if n := events(b, "token.restored") + events(b, "token.restore_failed") + events(b, "token.replay"); n != 0 {
		t.Fatalf("a failed /connect restored, lost or refused a ticket as replayed (%d events):\n%s", n, b.Logs.String())
	}
	ok := do(t, "POST", b.URL+"/connect", ticket, nil)
	expect(t, ok, 201, "")
	if owner, err := admin.Get(ctx, "vb:room:"+ok.Body["room_name"].(string)).Result(); err != nil || owner != "acme" {
		t.Fatalf("room owner %q %v", owner, err)
	}
	expect(t, do(t, "POST", b.URL+"/connect", ticket, nil), 401, "token_used")
	if n := events(b, "token.replay"); n != 1 {
		t.Fatalf("%d replays logged, want 1", n)
	}
}

// aclRedis starts a redis-server whose default user, the broker's, can be
// narrowed to some key patterns: acl("~vb:n:*") lets the broker reach only
// those keys, acl() none, acl("~*") all again. admin is a client of an
// admin user that keeps every right. The server stops with the test.
func aclRedis(t *testing.T) (addr string, admin *redis.Client, acl func(keys ...string)) {
	t.Helper()
	addr, err := testenv.StartRedis(testenv.FreePort(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	setup := redis.NewClient(&redis.Options{Addr: addr})
	defer setup.Close()
	if err := setup.Do(ctx, "ACL", "SETUSER", "vbadmin", "on", ">vbadmin-pass", "~*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	admin = redis.NewClient(&redis.Options{Addr: addr, Username: "vbadmin", Password: "vbadmin-pass"})
	t.Cleanup(func() {
		admin.Do(context.Background(), "SHUTDOWN", "NOSAVE")
		admin.Close()
	})
	acl = func(keys ...string) {
		t.Helper()
		args := []any{"ACL", "SETUSER", "default", "resetkeys"}
		for _, k := range keys {
			args = append(args, k)
		}
		if err := admin.Do(ctx, args...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	return addr, admin, acl
}
