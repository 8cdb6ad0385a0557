package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync/atomic"
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
	if resp.StatusCode != 401 || errorCode(t, resp) != "login_required" {
		t.Fatalf("no session: %d", resp.StatusCode)
	}
	if resp, _ := browser.Get(srv.URL + "/api/me"); resp.StatusCode != 401 {
		t.Fatalf("/api/me with no session: %d", resp.StatusCode)
	}
	resp, _ = browser.Post(srv.URL+"/login", "application/json", strings.NewReader(`{"user":"alice","password":"wrong-pass"}`))
	if resp.StatusCode != 401 || errorCode(t, resp) != "login_failed" {
		t.Fatalf("bad password: %d", resp.StatusCode)
	}
	resp, _ = browser.Post(srv.URL+"/login", "application/json", strings.NewReader(`{"user":"alice","password":"correct-horse"}`))
	if resp.StatusCode != 204 {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	resp, _ = browser.Get(srv.URL + "/api/me")
	var me struct{ User string }
	json.NewDecoder(resp.Body).Decode(&me)
	if resp.StatusCode != 200 || me.User != "alice" {
		t.Fatalf("/api/me: %d %+v", resp.StatusCode, me)
	}
	// The page's way: POST {"channel"}.
	resp, err := browser.Post(srv.URL+"/api/token", "application/json", strings.NewReader(`{"channel":"webrtc"}`))
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("POST token: %v %d", err, resp.StatusCode)
	}
	resp.Body.Close()
	resp, err = browser.Get(srv.URL + "/api/token?channel=chat")
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

// TestTokenProviderBindsTheBrowsersKey: the thumbprint the page sends as
// dpop_jkt reaches the real broker in POST /token, so the ticket is bound
// to the browser's key (the broker's redeem answer shows its cnf.jkt).
func TestTokenProviderBindsTheBrowsersKey(t *testing.T) {
	a, broker := testenv.StartDemoBroker(t)
	srv := httptest.NewServer(NewBackend(broker, a.DevKeys.Secret, "demo-bot", map[string]string{"alice": "correct-horse"}).Handler())
	defer srv.Close()
	c := signedIn(t, srv)
	// RFC 9449's example key's thumbprint, as a browser would send it.
	const jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	resp, err := c.Post(srv.URL+"/api/token", "application/json", strings.NewReader(`{"channel":"webrtc","dpop_jkt":"`+jkt+`"}`))
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("token: %v %v", err, resp.StatusCode)
	}
	var tok struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&tok)
	req, _ := http.NewRequest("POST", broker+"/token/redeem", strings.NewReader(`{"token":"`+tok.Token+`"}`))
	req.Header.Set("Authorization", "Bearer "+a.DevKeys.Secret)
	req.Header.Set("Content-Type", "application/json")
	resp, _ = http.DefaultClient.Do(req)
	var claims struct {
		Identity string
		Cnf      struct{ JKT string }
	}
	json.NewDecoder(resp.Body).Decode(&claims)
	if resp.StatusCode != 200 || claims.Identity != "alice" || claims.Cnf.JKT != jkt {
		t.Fatalf("redeem: %d %+v", resp.StatusCode, claims)
	}
}

func errorCode(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	var e struct{ Error, Message string }
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Message == "" {
		t.Fatalf("not the contract's error shape: %v %+v", err, e)
	}
	return e.Error
}

// signedIn returns a client with alice's session on srv.
func signedIn(t *testing.T, srv *httptest.Server) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.Post(srv.URL+"/login", "application/json", strings.NewReader(`{"user":"alice","password":"correct-horse"}`))
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("login: %v", err)
	}
	return c
}

// TestTokenRequestRefusals: what the page may send is checked before the
// broker is asked: a malformed dpop_jkt, an unknown field, a bad channel,
// a body over 4 KiB, and any request a browser sent from another site.
// Nothing reaches the broker.
func TestTokenRequestRefusals(t *testing.T) {
	var calls atomic.Int32
	broker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(500)
	}))
	defer broker.Close()
	srv := httptest.NewServer(NewBackend(broker.URL, "sk_test_secret0123456789", "demo-bot", map[string]string{"alice": "correct-horse"}).Handler())
	defer srv.Close()
	c := signedIn(t, srv)
	jkt := strings.Repeat("A", 43)
	for name, body := range map[string]string{
		"dpop_jkt too short":     `{"dpop_jkt":"` + jkt[:42] + `"}`,
		"dpop_jkt too long":      `{"dpop_jkt":"` + jkt + `A"}`,
		"dpop_jkt padded":        `{"dpop_jkt":"` + jkt[:42] + `="}`,
		"dpop_jkt base64 std":    `{"dpop_jkt":"` + jkt[:42] + `+"}`,
		"dpop_jkt not a string":  `{"dpop_jkt":43}`,
		"unknown field":          `{"channel":"webrtc","agent":"other-agent"}`,
		"identity from the page": `{"identity":"bob"}`,
		"bad channel":            `{"channel":"video"}`,
		"not JSON":               `channel=webrtc`,
		"body over 4 KiB":        `{"channel":"webrtc","dpop_jkt":"` + strings.Repeat("A", 5000) + `"}`,
	} {
		resp, err := c.Post(srv.URL+"/api/token", "application/json", strings.NewReader(body))
		if err != nil || resp.StatusCode != 400 || errorCode(t, resp) != "invalid_request" {
			t.Errorf("%s: %v %v", name, err, resp.StatusCode)
		}
	}
	for _, path := range []string{"/api/token", "/login"} {
		for _, site := range []string{"cross-site", "same-site"} {
			req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(`{"user":"alice","password":"correct-horse"}`))
			req.Header.Set("Sec-Fetch-Site", site)
			resp, err := c.Do(req)
			if err != nil || resp.StatusCode != 403 || errorCode(t, resp) != "cross_site_request" {
				t.Errorf("%s from %s: %v %v", path, site, err, resp.StatusCode)
			}
		}
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("refused requests reached the broker %d times", n)
	}
	// A well-formed one reaches it, with dpop_jkt.
	resp, _ := c.Post(srv.URL+"/api/token", "application/json", strings.NewReader(`{"dpop_jkt":"`+jkt[:42]+`_"}`))
	if resp.StatusCode != 500 || calls.Load() != 1 {
		t.Fatalf("a good request: %d, %d calls", resp.StatusCode, calls.Load())
	}
}

// TestSecretKeyNeverFollowsARedirect: a broker URL that redirects (a
// misconfigured proxy, a hijacked name) gets no second request carrying
// the secret key, not even to another path of the same host.
func TestSecretKeyNeverFollowsARedirect(t *testing.T) {
	const key = "sk_test_secret0123456789"
	var leaked atomic.Int32
	broker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/steal" {
			if strings.Contains(r.Header.Get("Authorization"), key) {
				leaked.Add(1)
			}
			w.WriteHeader(201)
			return
		}
		http.Redirect(w, r, "/steal", http.StatusTemporaryRedirect)
	}))
	defer broker.Close()
	srv := httptest.NewServer(NewBackend(broker.URL, key, "demo-bot", map[string]string{"alice": "correct-horse"}).Handler())
	defer srv.Close()
	resp, _ := signedIn(t, srv).Post(srv.URL+"/api/token", "application/json", strings.NewReader(`{}`))
	resp.Body.Close()
	if leaked.Load() != 0 || resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("the redirect was followed with the key: %d, status %d", leaked.Load(), resp.StatusCode)
	}
}

// TestPageServed: the backend serves the widget in tokenProvider mode, its
// script, style and licences, under a CSP that allows no inline code; the
// agent id is escaped into the page.
func TestPageServed(t *testing.T) {
	srv := httptest.NewServer(NewBackend("http://127.0.0.1:1", "sk_test_x", `bot"><script>alert(1)</script>`, nil).Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != 200 || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") ||
		!strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(string(body), `data-mode="backend"`) {
		t.Fatalf("page: %d %q\n%s", resp.StatusCode, csp, body)
	}
	if strings.Contains(string(body), "<script>alert") || !strings.Contains(string(body), `data-agent="bot&#34;&gt;&lt;script&gt;`) {
		t.Fatalf("the agent id is not escaped:\n%s", body)
	}
	for path, want := range map[string]string{
		"/widget.js": "text/javascript", "/widget.css": "text/css", "/THIRD_PARTY_LICENSES.txt": "text/plain",
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), want) ||
			resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %v %d %q", path, err, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	for _, path := range []string{"/index.html", "/config.json", "/nothing", "/../main.go"} {
		if resp, _ := http.Get(srv.URL + path); resp.StatusCode != 404 {
			t.Errorf("%s: %d", path, resp.StatusCode)
		}
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
