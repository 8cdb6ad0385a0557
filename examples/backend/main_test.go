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
	req.Header.Set("Content-Type", "application/json")
	resp, _ = http.DefaultClient.Do(req)
	var claims map[string]any
	json.NewDecoder(resp.Body).Decode(&claims)
	if resp.StatusCode != 200 || claims["identity"] != "alice" || claims["channel"] != "chat" {
		t.Fatalf("redeem: %d %v", resp.StatusCode, claims)
	}
}

// TestParseUsers: VB_USERS mistakes are named, not silently dropped.
func TestParseUsers(t *testing.T) {
	if u, err := parseUsers("alice:correct-horse,bob:battery-staple"); err != nil || len(u) != 2 || u["bob"] != "battery-staple" {
		t.Fatalf("%v %v", u, err)
	}
	for in, want := range map[string]string{
		"":                                     "user:password pairs",
		"alice":                                "entry 1 is not user:password",
		"alice:correct-horse,:whatever12":      "entry 2 is not user:password",
		"alice:short":                          `password of "alice" is shorter than 8`,
		"alice:correct-horse,alice:other-pass": `"alice" is listed twice`,
	} {
		if _, err := parseUsers(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseUsers(%q) = %v, want an error with %q", in, err, want)
		}
	}
}

// FuzzParseUsers: whatever VB_USERS holds, parseUsers either refuses it or
// returns users with non-empty names and passwords of 8+ characters.
func FuzzParseUsers(f *testing.F) {
	for _, s := range []string{"alice:correct-horse", "a:b", ",", "a:12345678,a:12345678", "x:y:z12345678"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		users, err := parseUsers(v)
		if err != nil {
			return
		}
		if len(users) == 0 {
			t.Fatal("no users and no error")
		}
		for u, p := range users {
			if u == "" || len(p) < 8 {
				t.Fatalf("accepted %q:%q", u, p)
			}
		}
	})
}
