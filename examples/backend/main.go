// Command backend is the tokenProvider side of seed 002: your web backend,
// behind its own session check, asks the broker for a single-use ticket
// with its secret key and hands the ticket to the signed-in browser. The
// secret key never leaves this process.
//
//	VB_BROKER_URL=http://localhost:8080 VB_SECRET_KEY=sk_... VB_AGENT=demo-bot \
//	VB_USERS=alice:correct-horse go run ./examples/backend
//
//	POST /login      {"user","password"} -> session cookie (HttpOnly, SameSite=Strict)
//	GET  /api/token?channel=webrtc|chat  -> the broker's {"token","server","expiresIn"}
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
	users := map[string]string{}
	for _, pair := range strings.Split(os.Getenv("VB_USERS"), ",") {
		if u, p, ok := strings.Cut(pair, ":"); ok && u != "" && len(p) >= 8 {
			users[u] = p
		}
	}
	key := os.Getenv("VB_SECRET_KEY")
	if !strings.HasPrefix(key, "sk_") || len(users) == 0 {
		fmt.Fprintln(os.Stderr, "set VB_SECRET_KEY=sk_... and VB_USERS=user:password(8+ chars),...")
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
