package app_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

// TestLogsCarryNoSecrets runs every flow of the foundation, successes and
// failures, credentials in the header and in the query, then searches the
// whole log output for any key, token or nonce it saw.
func TestLogsCarryNoSecrets(t *testing.T) {
	k := newKeys(t)
	b := startBroker(t, k, map[string]string{"BROKER_REDIS_URL": nextRedisURL(t)})
	secrets := []string{k.acme, k.acmeRedeemOnly, k.acmeRevoked, k.acmeExpired, k.acmeIPOnly, k.acmeTest, k.globex, k.pk}
	var tokens []string

	for range 3 {
		tok := b.mint(t, k.acme, map[string]any{"agent": "florencia", "channel": "webrtc", "metadata": map[string]any{"email": "x@y.z"}})
		tokens = append(tokens, tok)
		do(t, "POST", b.URL+"/token/redeem", k.acme, map[string]string{"token": tok})
		do(t, "POST", b.URL+"/token/redeem", k.acme, map[string]string{"token": tok})   // replay
		do(t, "POST", b.URL+"/token/redeem", k.globex, map[string]string{"token": tok}) // wrong org
		do(t, "POST", b.URL+"/token/redeem", k.acme, map[string]string{"token": tok[:len(tok)-4] + "AAAA"})
	}
	r := do(t, "POST", b.URL+"/token?api_key="+k.acme, "", map[string]any{"agent": "florencia", "channel": "chat"})
	expect(t, r, 201, "")
	tokens = append(tokens, r.Body["token"].(string))
	for _, s := range secrets {
		do(t, "POST", b.URL+"/token", s, flo)
		do(t, "POST", b.URL+"/token?api_key="+s, "", flo)
		do(t, "POST", b.URL+"/token", "", flo, "Authorization", "Basic "+s)
		do(t, "POST", b.URL+"/token", s+"x", flo)
	}
	do(t, "POST", b.URL+"/token", "sk_live_this-is-not-base62-but-secret-looking", flo)
	b.stop()

	logs := b.Logs.String()
	if !strings.Contains(logs, `"event":"token.mint"`) || !strings.Contains(logs, `"event":"auth.failure"`) ||
		!strings.Contains(logs, `"event":"token.replay"`) || !strings.Contains(logs, `"event":"token.redeem"`) {
		t.Fatalf("the audit events are missing; the test would prove nothing:\n%s", logs)
	}
	needles := append([]string{}, secrets...)
	needles = append(needles, "this-is-not-base62-but-secret-looking")
	for _, tok := range tokens {
		needles = append(needles, tok, strings.Split(tok, ".")[2], jtiOf(t, tok))
	}
	for _, n := range needles {
		if strings.Contains(logs, n) {
			t.Fatalf("the log contains a credential, token or nonce (%d chars)", len(n))
		}
		// Also the body part of a key without its prefix.
		if len(n) > 20 && strings.Contains(logs, n[8:]) {
			t.Fatal("the log contains the body of a key")
		}
	}
}

func jtiOf(t *testing.T, tok string) string {
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		JTI string `json:"jti"`
	}
	json.Unmarshal(raw, &c)
	if len(c.JTI) < 16 {
		t.Fatal("no jti")
	}
	return c.JTI
}
