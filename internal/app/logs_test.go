package app_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestLogsCarryNoSecrets runs every flow of the foundation, successes and
// failures, credentials in the header and in the query, then searches the
// whole log output for any key, token or nonce it saw.
func TestLogsCarryNoSecrets(t *testing.T) {
	k := newKeys(t)
	b := startBroker(t, k, map[string]string{"BROKER_REDIS_URL": nextRedisURL(t), "LIVEKIT_URL": hangingLiveKit(t),
		"LIVEKIT_API_KEY": "testkey", "LIVEKIT_API_SECRET": "vb-test-secret-0123456789abcdef0123456789"})
	secrets := []string{k.acme, k.acmeRedeemOnly, k.acmeRevoked, k.acmeExpired, k.acmeIPOnly, k.acmeTest, k.globex, k.pk}
	var tokens []string

	// Sender-constrained tickets: the proofs, their parts and jti, the
	// client's public key and its thumbprint stay out of the log, whether
	// a proof is accepted, missing, wrong, replayed or malformed.
	key, other := newDPoPKey(t), newDPoPKey(t)
	var proofs []string
	for range 2 {
		tok := b.mintBound(t, key)
		tokens = append(tokens, tok)
		p, wrong, stale := key.proof(t), other.proof(t), key.proofAt(t, "POST", connectHTU, time.Now().Add(-time.Hour))
		proofs = append(proofs, p, wrong, stale)
		expect(t, b.connectWith(t, tok), 401, "dpop_required")
		expect(t, b.connectWith(t, tok, wrong), 401, "dpop_invalid")
		expect(t, b.connectWith(t, tok, stale), 401, "dpop_invalid")
		expect(t, b.connectWith(t, tok, p, p), 401, "dpop_invalid")
		expect(t, b.connectWith(t, tok, p[:len(p)-6]), 401, "dpop_invalid")
		expect(t, b.connectWith(t, tok, p), 201, "")
		again := b.mintBound(t, key)
		tokens = append(tokens, again)
		expect(t, b.connectWith(t, again, p), 401, "dpop_invalid") // replayed
		red := do(t, "POST", b.URL+"/token/redeem", k.acme, map[string]string{"token": again})
		expect(t, red, 200, "")
	}

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
	if !strings.Contains(logs, `"reason":"dpop_invalid"`) || !strings.Contains(logs, `"reason":"dpop_required"`) ||
		!strings.Contains(logs, `"reason":"dpop_replay"`) {
		t.Fatalf("the DPoP refusals are not logged; the test would prove nothing:\n%s", logs)
	}
	needles := append([]string{}, secrets...)
	for _, p := range proofs {
		parts := strings.Split(p, ".")
		needles = append(needles, p, parts[0], jtiOf(t, p))
		// No piece of a proof's payload or signature either.
		for _, part := range parts[1:] {
			for i := 0; i+24 <= len(part); i++ {
				needles = append(needles, part[i:i+24])
			}
		}
	}
	for _, dk := range []*dpopKey{key, other} {
		jwk := dk.key.JWK()
		needles = append(needles, dk.jkt, jwk.X, jwk.Y)
	}
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
