// Command backend is the tokenProvider side of the flow in Pinecall's token
// security docs: your web backend, behind its own session check, asks the
// broker for a single-use ticket with its secret key and hands the ticket
// to the signed-in browser. The secret key never leaves this process. It
// also serves the demo widget in tokenProvider mode at /: sign in, press
// Start call, talk to the agent.
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
//	GET  /            the widget page (tokenProvider mode), with widget.js, widget.css and THIRD_PARTY_LICENSES.txt
//	POST /login      {"user","password"} -> 204 and a session cookie (HttpOnly, SameSite=Strict)
//	GET  /api/me     -> 200 {"user"} when signed in
//	POST /api/token  {"channel"?, "dpop_jkt"?} -> the broker's answer: 201 {"token","server","expiresIn"};
//	                 dpop_jkt (the browser key's thumbprint) binds the ticket to the browser
//	GET  /api/token?channel=webrtc|chat  -> the same, unbound (for providers that send nothing)
//
// Errors are the broker's JSON shape, {"error","message"}: the broker's own
// answers are passed through (status, body, Retry-After, X-Request-Id);
// this backend adds login_required (401, no session), login_failed (401),
// invalid_request (400), cross_site_request (403) and broker_unreachable (502).
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/voicebroker/voicebroker/examples/widget"
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

const (
	sessionTTL = time.Hour
	// maxBody bounds what /login and /api/token read.
	maxBody = 4 << 10
)

// pageCSP lets the page run only its own script and style. The ticket is
// traded at the broker and the room joined at LiveKit, whose addresses the
// page learns at run time, so connect-src cannot name them in advance.
const pageCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self' https: wss: http: ws:; media-src 'self' blob: mediastream:; object-src 'none'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

//go:embed page.html
var pageHTML string

var page = template.Must(template.New("page").Parse(pageHTML))

// jktPattern is an RFC 7638 SHA-256 thumbprint, base64url without padding.
var jktPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// NewBackend returns a Backend with a fresh session-signing key.
func NewBackend(brokerURL, secretKey, agent string, users map[string]string) *Backend {
	k := make([]byte, 32)
	rand.Read(k)
	return &Backend{BrokerURL: strings.TrimRight(brokerURL, "/"), SecretKey: secretKey, Agent: agent, Users: users,
		Client: &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // the secret key is never sent anywhere but the broker
		}}, sessionKey: k, now: time.Now}
}

// Handler routes the page, /login, /api/me and /api/token.
func (b *Backend) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", b.page)
	files := http.FileServerFS(widget.FS())
	for _, f := range []string{"/widget.js", "/widget.css", "/THIRD_PARTY_LICENSES.txt"} {
		mux.Handle("GET "+f, files)
	}
	mux.HandleFunc("POST /login", b.login)
	mux.HandleFunc("GET /api/me", b.me)
	mux.HandleFunc("POST /api/token", b.token)
	mux.HandleFunc("GET /api/token", b.token)
	return securityHeaders(mux)
}

// securityHeaders applies to every answer: nothing is cached, sniffed,
// framed or sent on as a referrer.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}

func (b *Backend) page(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", pageCSP)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	page.Execute(w, struct{ Agent string }{b.Agent})
}

// apiError writes the broker's error shape.
func apiError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "message": message})
}

// crossSite reports a request a browser sent from another site: the
// session cookie is SameSite=Strict already, and this refuses the rest.
func crossSite(r *http.Request) bool {
	site := r.Header.Get("Sec-Fetch-Site")
	return site != "" && site != "same-origin" && site != "none"
}

func (b *Backend) login(w http.ResponseWriter, r *http.Request) {
	if crossSite(r) {
		apiError(w, http.StatusForbidden, "cross_site_request", "sign in from this site's own page")
		return
	}
	var req struct{ User, Password string }
	if err := json.NewDecoder(io.LimitReader(r.Body, maxBody)).Decode(&req); err != nil {
		apiError(w, http.StatusBadRequest, "invalid_request", "the body must be {\"user\",\"password\"}")
		return
	}
	want, ok := b.Users[req.User]
	if !ok || subtle.ConstantTimeCompare([]byte(want), []byte(req.Password)) != 1 {
		apiError(w, http.StatusUnauthorized, "login_failed", "wrong user or password")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: "session", Value: b.sign(req.User), Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: int(sessionTTL.Seconds())})
	w.WriteHeader(http.StatusNoContent)
}

func (b *Backend) me(w http.ResponseWriter, r *http.Request) {
	user := b.user(r)
	if user == "" {
		apiError(w, http.StatusUnauthorized, "login_required", "sign in first")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"user": user})
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

// ticketRequest is what the page may ask for; the agent and the identity
// are this backend's to choose.
type ticketRequest struct {
	Channel string `json:"channel"`
	DPoPJKT string `json:"dpop_jkt"`
}

// token is the tokenProvider endpoint: the session decides, the broker
// mints. POST takes {"channel","dpop_jkt"}; GET takes ?channel= and mints
// an unbound ticket.
func (b *Backend) token(w http.ResponseWriter, r *http.Request) {
	if crossSite(r) {
		apiError(w, http.StatusForbidden, "cross_site_request", "ask for tickets from this site's own page")
		return
	}
	user := b.user(r)
	if user == "" {
		apiError(w, http.StatusUnauthorized, "login_required", "sign in first")
		return
	}
	req := ticketRequest{Channel: r.URL.Query().Get("channel")}
	if r.Method == http.MethodPost {
		dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			apiError(w, http.StatusBadRequest, "invalid_request", "the body must be {\"channel\"?, \"dpop_jkt\"?}")
			return
		}
	}
	if req.Channel == "" {
		req.Channel = "webrtc"
	}
	if req.Channel != "webrtc" && req.Channel != "chat" {
		apiError(w, http.StatusBadRequest, "invalid_request", "channel must be webrtc or chat")
		return
	}
	mint := map[string]any{"agent": b.Agent, "channel": req.Channel, "identity": user,
		"metadata": map[string]string{"signed_in_as": user}}
	if req.DPoPJKT != "" {
		if !jktPattern.MatchString(req.DPoPJKT) {
			apiError(w, http.StatusBadRequest, "invalid_request", "dpop_jkt must be a base64url SHA-256 thumbprint (43 characters)")
			return
		}
		mint["dpop_jkt"] = req.DPoPJKT
	}
	body, _ := json.Marshal(mint)
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	breq, _ := http.NewRequestWithContext(ctx, "POST", b.BrokerURL+"/token", bytes.NewReader(body))
	breq.Header.Set("Authorization", "Bearer "+b.SecretKey)
	breq.Header.Set("Content-Type", "application/json")
	resp, err := b.Client.Do(breq)
	if err != nil {
		log.Printf("broker unreachable: %v", errors.Unwrap(err))
		apiError(w, http.StatusBadGateway, "broker_unreachable", "the broker did not answer")
		return
	}
	defer resp.Body.Close()
	h := w.Header()
	h.Set("Content-Type", "application/json")
	for _, name := range []string{"Retry-After", "X-Request-Id"} {
		if v := resp.Header.Get(name); v != "" {
			h.Set(name, v)
		}
	}
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
	srv := &http.Server{Addr: addr, Handler: b.Handler(), ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: 15 * time.Second, IdleTimeout: time.Minute}
	log.Printf("backend on http://%s (broker %s, agent %s): open it, sign in, press Start call", addr, broker, agent)
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
