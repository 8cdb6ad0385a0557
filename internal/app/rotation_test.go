package app_test

import (
	"strings"
	"testing"
)

// TestKeyRotation: a broker signing with a new key still redeems tickets
// signed with the old key listed in BROKER_VERIFY_KEY_FILES, publishes both
// in its JWKS, and refuses old tickets once the old key is dropped. The new
// key is ES256, so both algorithms cross the HTTP stack.
func TestKeyRotation(t *testing.T) {
	k := newKeys(t)
	redisURL := nextRedisURL(t)
	old := startBroker(t, k, map[string]string{"BROKER_REDIS_URL": redisURL})
	oldTicket := old.mint(t, k.globex, map[string]any{"agent": "hank", "channel": "webrtc"})
	oldTicket2 := old.mint(t, k.globex, map[string]any{"agent": "hank", "channel": "webrtc"})

	newKeyFile := t.TempDir() + "/es256.pem"
	writeFile(t, newKeyFile, es256PEM(t))
	rotated := startBroker(t, k, map[string]string{
		"BROKER_REDIS_URL":        redisURL,
		"BROKER_SIGNING_KEY_FILE": newKeyFile,
		"BROKER_VERIFY_KEY_FILES": old.KeyFile,
	})
	expect(t, do(t, "POST", rotated.URL+"/token/redeem", k.globex, map[string]string{"token": oldTicket}), 200, "")
	newTicket := rotated.mint(t, k.globex, map[string]any{"agent": "hank", "channel": "webrtc"})
	if !strings.HasPrefix(newTicket, "eyJhbGciOiJFUzI1NiIs") {
		t.Fatalf("new ticket is not ES256: %.30s", newTicket)
	}
	expect(t, do(t, "POST", rotated.URL+"/token/redeem", k.globex, map[string]string{"token": newTicket}), 200, "")
	jwks := do(t, "GET", rotated.URL+"/.well-known/jwks.json", "", nil)
	if keys, _ := jwks.Body["keys"].([]any); len(keys) != 2 || !strings.Contains(jwks.Raw, old.signingKey().ID()) || !strings.Contains(jwks.Raw, `"crv":"P-256"`) {
		t.Fatalf("JWKS %s", jwks.Raw)
	}

	dropped := startBroker(t, k, map[string]string{"BROKER_REDIS_URL": redisURL, "BROKER_SIGNING_KEY_FILE": newKeyFile})
	expect(t, do(t, "POST", dropped.URL+"/token/redeem", k.globex, map[string]string{"token": oldTicket2}), 401, "token_invalid")
}
