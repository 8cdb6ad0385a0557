package app_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestRedeemRecordsOnRedis: the nonce of a minted ticket is kept in Redis
// with the ticket's record (a 32-byte MAC, not the "1" of brokers before
// records). Someone who can write to Redis but holds no signing key cannot
// make a forged ticket redeem by planting a record, and a ticket whose
// nonce holds "1" (minted by an older broker during a rolling upgrade)
// still redeems, once.
func TestRedeemRecordsOnRedis(t *testing.T) {
	redisURL := nextRedisURL(t)
	b := startBroker(t, newKeys(t), map[string]string{"BROKER_REDIS_URL": redisURL})
	opt, _ := redis.ParseURL(redisURL)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	body := map[string]any{"agent": "florencia", "channel": "webrtc"}
	redeem := func(tok string) response {
		return do(t, "POST", b.URL+"/token/redeem", b.keys.acme, map[string]any{"token": tok})
	}
	nonceKey := func(tok string) string {
		raw, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
		if err != nil {
			t.Fatal(err)
		}
		var c struct{ Org, Jti string }
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatal(err)
		}
		return "vb:n:{" + c.Org + "}:" + c.Jti
	}
	// plant writes v as the nonce's record, as a Redis writer would.
	plant := func(tok, v string) {
		if err := rdb.Set(ctx, nonceKey(tok), v, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("the record is kept, not a marker", func(t *testing.T) {
		tok := b.mint(t, b.keys.acme, body)
		v, err := rdb.Get(ctx, nonceKey(tok)).Result()
		if err != nil || len(v) != 32 || v == "1" {
			t.Fatalf("nonce value %q (%d bytes), %v", v, len(v), err)
		}
		expect(t, redeem(tok), http.StatusOK, "")
		expect(t, redeem(tok), http.StatusUnauthorized, "token_used")
	})

	t.Run("a Redis writer cannot make a forgery redeem", func(t *testing.T) {
		tok := b.mint(t, b.keys.acme, body)
		parts := strings.Split(tok, ".")
		raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
		forgedClaims := strings.Replace(string(raw), `"agent":"florencia"`, `"agent":"texter"`, 1)
		forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forgedClaims)) + "." + parts[2]
		sum := sha256.Sum256([]byte(forged))
		pub := hmac.New(sha256.New, []byte(b.signingKey().Public().ID()))
		pub.Write([]byte(forged))
		for _, guess := range []string{"1", string(sum[:]), string(pub.Sum(nil)), ""} {
			plant(forged, guess)
			expect(t, redeem(forged), http.StatusUnauthorized, "token_invalid")
		}
		// The genuine ticket's record was overwritten: it still redeems
		// (its signature holds), once.
		expect(t, redeem(tok), http.StatusOK, "")
		expect(t, redeem(tok), http.StatusUnauthorized, "token_used")
	})

	t.Run("a ticket kept with the marker of an older broker", func(t *testing.T) {
		tok := b.mint(t, b.keys.acme, body)
		if err := rdb.SetArgs(ctx, nonceKey(tok), "1", redis.SetArgs{KeepTTL: true}).Err(); err != nil {
			t.Fatal(err)
		}
		expect(t, redeem(strings.TrimSuffix(tok, tok[len(tok)-4:])+"AAAA"), http.StatusUnauthorized, "token_invalid")
		r := redeem(tok)
		expect(t, r, http.StatusOK, "")
		if r.Body["agent"] != "florencia" {
			t.Fatalf("redeemed %s", r.Raw)
		}
		expect(t, redeem(tok), http.StatusUnauthorized, "token_used")
		if n, err := rdb.Exists(ctx, nonceKey(tok)).Result(); err != nil || n != 0 {
			t.Fatalf("the nonce is still there: %d %v", n, err)
		}
	})
}
