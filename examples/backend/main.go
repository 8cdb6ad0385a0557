// Command backend is the tokenProvider side of the flow in Pinecall's token
// security docs: your web backend, behind its own session check, asks the
// broker for a single-use ticket with its secret key and hands the ticket
// to the signed-in browser. The secret key never leaves this process.
//
//	VB_SECRET_KEY=sk_test_... VB_USERS=alice:correct-horse go run ./examples/backend
//
// Environment:
//
//	VB_SECRET_KEY  the org's sk_ key with scope tokens:create (required)
//	VB_USERS       user:password pairs, comma-separated, passwords of 8+ characters (required)
//	VB_AGENT       the agent tickets are for (default demo-bot, the development tenant's)
//	VB_BROKER_URL  the broker (default http://localhost:8080)
//	ADDR           where this backend listens (default 127.0.0.1:3000)
//
// Routes:
//
//	POST /login      {"user","password"} -> 204 and a session cookie (HttpOnly, SameSite=Strict)
//	GET  /api/token?channel=webrtc|chat  -> the broker's answer: 201 {"token","server","expiresIn"}
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Backend is the example web backend.
type Backend struct {
	BrokerURL string
	SecretKey string // sk_live_... or sk_test_...; never sent to browsers
	Agent     string
	Users     map[string]string // user -> password (a real app has a user store)
	Client    *http.Client

	sessionKey []byte
	now        func() time.Time
}

const sessionTTL = time.Hour

// NewBackend returns a Backend with a fresh session-signing key.
func NewBackend(brokerURL, secretKey, agent string, users map[string]string) *Backend {
	k := make([]byte, 32)
	rand.Read(k)
	return &Backend{BrokerURL: strings.TrimRight(brokerURL, "/"), SecretKey: secretKey, Agent: agent, Users: users,
		Client: &http.Client{Timeout: 5 * time.Second}, sessionKey: k, now: time.Now}
}

// Handler routes /login and /api/token.
func (b *Backend) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", b.login)
	mux.HandleFunc("GET /api/token", b.token)
	return mux
}

func (b *Backend) login(w http.ResponseWriter, r *http.Request) {
	var req struct{ User, Password string }
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil {
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	want, ok := b.Users[req.User]
	if !ok || subtle.ConstantTimeCompare([]byte(want), []byte(req.Password)) != 1 {
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: "session", Value: b.sign(req.User), Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: int(sessionTTL.Seconds())})
	w.WriteHeader(http.StatusNoContent)
}

// sign makes "user|expiry|mac".
func (b *Backend) sign(user string) string {
	payload := user + "|" + strconv.FormatInt(b.now().Add(sessionTTL).Unix(), 10)
	m := hmac.New(sha256.New, b.sessionKey)
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// user returns the signed-in user, or "".
func (b *Backend) user(r *http.Request) string {
	c, err := r.Cookie("session")
	if err != nil {
		return ""
	}
	p64, mac64, ok := strings.Cut(c.Value, ".")
	payload, err1 := base64.RawURLEncoding.DecodeString(p64)
	mac, err2 := base64.RawURLEncoding.DecodeString(mac64)
	if !ok || err1 != nil || err2 != nil {
		return ""
	}
	m := hmac.New(sha256.New, b.sessionKey)
	m.Write(payload)
	if !hmac.Equal(mac, m.Sum(nil)) {
		return ""
	}
	user, exp, _ := strings.Cut(string(payload), "|")
	until, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || b.now().Unix() >= until {
		return ""
	}
	return user
}

// token is the tokenProvider endpoint: the session decides, the broker mints.
func (b *Backend) token(w http.ResponseWriter, r *http.Request) {
	user := b.user(r)
	if user == "" {
		http.Error(w, `{"error":"unauthorized","message":"sign in first"}`, http.StatusUnauthorized)
		return
	}
	channel := r.URL.Query().Get("channel")
	if channel == "" {
		channel = "webrtc"
	}
	body, _ := json.Marshal(map[string]any{"agent": b.Agent, "channel": channel, "identity": user,
		"metadata": map[string]string{"signed_in_as": user}})
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", b.BrokerURL+"/token", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+b.SecretKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.Client.Do(req)
	if err != nil {
		log.Printf("broker unreachable: %v", errors.Unwrap(err))
		http.Error(w, `{"error":"broker_unreachable"}`, http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, io.LimitReader(resp.Body, 64<<10))
}

func main() {
	users, err := parseUsers(os.Getenv("VB_USERS"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "VB_USERS:", err)
		os.Exit(2)
	}
	key := os.Getenv("VB_SECRET_KEY")
	if !strings.HasPrefix(key, "sk_") {
		fmt.Fprintln(os.Stderr, "VB_SECRET_KEY: set it to the org's secret key (sk_live_... or sk_test_...; the development broker prints one)")
		os.Exit(2)
	}
	broker := os.Getenv("VB_BROKER_URL")
	if broker == "" {
		broker = "http://localhost:8080"
	}
	agent := os.Getenv("VB_AGENT")
	if agent == "" {
		agent = "demo-bot"
	}
	addr := os.Getenv("ADDR")
	if addr == "" {
		addr = "127.0.0.1:3000"
	}
	b := NewBackend(broker, key, agent, users)
	srv := &http.Server{Addr: addr, Handler: b.Handler(), ReadHeaderTimeout: 5 * time.Second}
	log.Printf("backend on http://%s (broker %s, agent %s)", addr, broker, agent)
	log.Fatal(srv.ListenAndServe())
}

// parseUsers reads VB_USERS: user:password pairs, comma-separated.
func parseUsers(v string) (map[string]string, error) {
	if strings.TrimSpace(v) == "" {
		return nil, errors.New("set it to user:password pairs, comma-separated, e.g. alice:correct-horse")
	}
	users := map[string]string{}
	for i, pair := range strings.Split(v, ",") {
		u, p, ok := strings.Cut(pair, ":")
		switch {
		case !ok || u == "":
			return nil, fmt.Errorf("entry %d is not user:password", i+1)
		case len(p) < 8:
			return nil, fmt.Errorf("the password of %q is shorter than 8 characters", u)
		case users[u] != "":
			return nil, fmt.Errorf("user %q is listed twice", u)
		}
		users[u] = p
	}
	return users, nil
}
