package main

import (
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/voicebroker/voicebroker/internal/testenv"
)

// TestTokenProvider runs the example against a real broker (embedded demo
// tenant): no session, no ticket; after login, a ticket whose identity is
// the user and which redeems once.
func TestTokenProvider(t *testing.T) {
	a, broker := testenv.StartDemoBroker(t)

	srv := httptest.NewServer(NewBackend(broker, a.DevKeys.Secret, "demo-bot", map[string]string{"alice": "correct-horse"}).Handler())
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}

	resp, _ := browser.Get(srv.URL + "/api/token")
	if resp.StatusCode != 401 {
		t.Fatalf("no session: %d", resp.StatusCode)
	}
	resp, _ = browser.Post(srv.URL+"/login", "application/json", strings.NewReader(`{"user":"alice","password":"wrong-pass"}`))
	if resp.StatusCode != 401 {
		t.Fatalf("bad password: %d", resp.StatusCode)
	}
	resp, _ = browser.Post(srv.URL+"/login", "application/json", strings.NewReader(`{"user":"alice","password":"correct-horse"}`))
	if resp.StatusCode != 204 {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	resp, err := browser.Get(srv.URL + "/api/token?channel=chat")
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("token: %v %d", err, resp.StatusCode)
	}
	var tok struct {
		Token     string
		Server    string
		ExpiresIn int
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	raw, _ := json.Marshal(tok)
	if strings.Contains(string(raw), a.DevKeys.Secret) || tok.ExpiresIn != 60 {
		t.Fatalf("response %s", raw)
	}
	req, _ := http.NewRequest("POST", broker+"/token/redeem", strings.NewReader(`{"token":"`+tok.Token+`"}`))
	req.Header.Set("Authorization", "Bearer "+a.DevKeys.Secret)
	resp, _ = http.DefaultClient.Do(req)
	var claims map[string]any
	json.NewDecoder(resp.Body).Decode(&claims)
	if resp.StatusCode != 200 || claims["identity"] != "alice" || claims["channel"] != "chat" {
		t.Fatalf("redeem: %d %v", resp.StatusCode, claims)
	}
}
