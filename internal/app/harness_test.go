package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/apikey"
	"github.com/voicebroker/voicebroker/internal/app"
	"github.com/voicebroker/voicebroker/internal/testenv"
	"github.com/voicebroker/voicebroker/pkg/token"
)

// keys are the credentials of the test tenants; only their hashes are in
// the tenants file.
type keys struct {
	acme, acmeRedeemOnly, acmeRevoked, acmeExpired, acmeIPOnly, acmeTest, globex string
	pk                                                                           string
}

func newKeys(t testing.TB) keys {
	t.Helper()
	k := func(kind apikey.Kind, env apikey.Env) string {
		s, err := apikey.New(kind, env)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	return keys{
		acme: k(apikey.Secret, apikey.Live), acmeRedeemOnly: k(apikey.Secret, apikey.Live),
		acmeRevoked: k(apikey.Secret, apikey.Live), acmeExpired: k(apikey.Secret, apikey.Live),
		acmeIPOnly: k(apikey.Secret, apikey.Live), acmeTest: k(apikey.Secret, apikey.Test),
		globex: k(apikey.Secret, apikey.Live), pk: k(apikey.Publishable, apikey.Live),
	}
}

// tenantsYAML is the tenants file of the tests: acme (free tier, 60/min)
// with keys of every kind, and globex.
func tenantsYAML(k keys, mutate ...func(string) string) string {
	y := fmt.Sprintf(`orgs:
  - id: acme
    tier: free
    keys:
      - id: main
        hash: "%s"
        scopes: [tokens:create, tokens:redeem, livekit:token, rooms:read, rooms:write]
      - id: redeem-only
        hash: "%s"
        scopes: [tokens:redeem]
      - id: old
        hash: "%s"
        scopes: [tokens:create]
        revoked: true
      - id: expired
        hash: "%s"
        scopes: [tokens:create]
        expires_at: 2020-01-01T00:00:00Z
      - id: office
        hash: "%s"
        scopes: [tokens:create]
        allowed_ips: ["10.0.0.0/8"]
      - id: sandbox
        hash: "%s"
        scopes: [tokens:create, tokens:redeem]
    agents:
      - id: florencia
        channels: [webrtc, chat]
        public:
          key_hash: "%s"
          allowed_origins: ["https://demo.acme.example"]
      - id: texter
        channels: [chat]
        server: wss://voice.acme.example
  - id: globex
    tier: enterprise
    rate_per_minute: 100000
    keys:
      - id: main
        hash: "%s"
        scopes: [tokens:create, tokens:redeem]
    agents:
      - id: hank
        channels: [webrtc]
`, apikey.Hash(k.acme), apikey.Hash(k.acmeRedeemOnly), apikey.Hash(k.acmeRevoked), apikey.Hash(k.acmeExpired),
		apikey.Hash(k.acmeIPOnly), apikey.Hash(k.acmeTest), apikey.Hash(k.pk), apikey.Hash(k.globex))
	for _, m := range mutate {
		y = m(y)
	}
	return y
}

// broker is one running App on loopback.
type broker struct {
	t       testing.TB
	app     *app.App
	URL     string
	keys    keys
	Dir     string
	KeyFile string
	Logs    *syncBuffer
	cancel  context.CancelFunc
	done    chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// writeFile writes atomically (temp file and rename), as operators' tools do.
func writeFile(t testing.TB, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

var redisDB atomic.Int32

// nextRedisURL returns a URL for a Redis database no other test uses. The
// tests' redis-server has 64 (scripts/test.sh and testenv.StartRedis say
// --databases 64); 0 is left to the tests that flush nothing.
func nextRedisURL(t testing.TB) string {
	n := redisDB.Add(1)
	if n > 63 {
		t.Fatal("out of Redis databases: the tests' redis-server has 64")
	}
	return fmt.Sprintf("redis://%s/%d", testenv.RedisAddr(t), n)
}

// roomRenewInterval is how often the brokers of the tests sweep live
// rooms: in effect never (a sweep in the middle of a test would renew
// records it checks), unless a test sets it.
var roomRenewInterval = 1000 * time.Hour

// startBroker runs an App with the test tenants; vars override the
// environment. The signing key is written to a file so tests can forge
// with it or share it across processes.
func startBroker(t testing.TB, k keys, vars map[string]string) *broker {
	t.Helper()
	dir := t.TempDir()
	b := &broker{t: t, keys: k, Dir: dir, Logs: &syncBuffer{}}
	cfg := filepath.Join(dir, "tenants.yaml")
	writeFile(t, cfg, tenantsYAML(k))
	b.KeyFile = filepath.Join(dir, "signing.pem")
	sk, err := token.GenerateKey(token.EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	pemData, _ := sk.MarshalPEM()
	writeFile(t, b.KeyFile, string(pemData))

	env := map[string]string{
		"BROKER_ADDR":             "127.0.0.1:0",
		"BROKER_CONFIG":           cfg,
		"BROKER_SIGNING_KEY_FILE": b.KeyFile,
		"BROKER_PUBLIC_URL":       "http://broker.test",
		"BROKER_RELOAD_INTERVAL":  "100ms",
	}
	for name, v := range vars {
		env[name] = v
	}
	e, err := config.LoadEnv(func(name string) string { return env[name] })
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(b.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := app.New(e, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	a.RoomRenewInterval = roomRenewInterval
	b.app = a
	b.URL = "http://" + a.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	b.done = make(chan error, 1)
	go func() { b.done <- a.Run(ctx) }()
	t.Cleanup(b.stop)
	return b
}

func (b *broker) stop() {
	if b.cancel == nil {
		return
	}
	client.CloseIdleConnections() // else Shutdown waits out connections the client dialed but never used
	b.cancel()
	if err := <-b.done; err != nil {
		b.t.Errorf("broker Run: %v", err)
	}
	b.app.Close()
	b.cancel = nil
}

// reloads returns how many tenants-file reloads the broker has counted with
// result ("ok" or "error"), from its own metrics.
func (b *broker) reloads(t testing.TB, result string) float64 {
	t.Helper()
	families, err := b.app.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0.0
	for _, f := range families {
		if f.GetName() != "voicebroker_config_reloads_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

// rewriteTenants replaces the broker's tenants file with content and waits
// until the broker has reloaded it, then checks the reload's result: want
// is "ok" (content now in force) or "error" (refused, previous tenants
// kept). A broker that polls the file often (BROKER_RELOAD_INTERVAL up to
// 2s; startBroker's default is 100ms) is left to its poller, which reloads
// a changed file once; one whose poller is effectively off (the tests use
// 1h) is sent SIGHUP, which forces one reload. Either way the first reload
// counted after the write read the new content, because nothing else
// reloads: the app tests never run in parallel, and SIGHUP reaches every
// broker of the test process.
func (b *broker) rewriteTenants(t testing.TB, content, want string) {
	t.Helper()
	path := b.app.Env.ConfigFile
	if old, err := os.ReadFile(path); err == nil && string(old) == content {
		t.Fatal("rewriteTenants: the content is unchanged, so nothing would reload")
	}
	okBefore, errBefore := b.reloads(t, "ok"), b.reloads(t, "error")
	writeFile(t, path, content)
	if b.app.Env.ReloadInterval > 2*time.Second {
		sighup(t)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, failed := b.reloads(t, "ok") > okBefore, b.reloads(t, "error") > errBefore
		switch {
		case ok && want == "ok", failed && want == "error":
			return
		case ok || failed:
			t.Fatalf("the tenants file reload did not end %q\n%s", want, b.Logs.String())
		case time.Now().After(deadline):
			t.Fatalf("the broker did not reload %s within 10s", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// signingKey reads back the broker's signing key, to forge tokens in tests.
func (b *broker) signingKey() *token.Key {
	data, err := os.ReadFile(b.KeyFile)
	if err != nil {
		b.t.Fatal(err)
	}
	k, err := token.ParsePEM(data)
	if err != nil {
		b.t.Fatal(err)
	}
	return k
}

// response is a decoded answer.
type response struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    string
}

func (r response) code() string { s, _ := r.Body["error"].(string); return s }

var client = &http.Client{Timeout: 20 * time.Second}

// do sends a request; cred goes in the Authorization header when set.
func do(t testing.TB, method, url, cred string, body any, hdr ...string) response {
	t.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(v)
	case []byte:
		rd = bytes.NewReader(v)
	default:
		data, _ := json.Marshal(v)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	json.Unmarshal(raw, &r.Body)
	return r
}

// mint asks for a ticket and fails the test unless it gets one.
func (b *broker) mint(t testing.TB, cred string, body any) string {
	t.Helper()
	r := do(t, "POST", b.URL+"/token", cred, body)
	if r.Status != http.StatusCreated {
		t.Fatalf("mint: %d %s", r.Status, r.Raw)
	}
	return r.Body["token"].(string)
}

// expect checks status and error code (code "" for a success).
func expect(t testing.TB, r response, status int, code string) {
	t.Helper()
	if r.Status != status || r.code() != code {
		t.Fatalf("got %d %q (%s), want %d %q", r.Status, r.code(), r.Raw, status, code)
	}
	if code != "" {
		if msg, _ := r.Body["message"].(string); msg == "" || len(r.Body) != 2 {
			t.Fatalf("error body %s is not {error, message}", r.Raw)
		}
	}
}

// tryDo is do without failing the test on a transport error, for
// goroutines other than the test's (which must not call t.Fatal).
func tryDo(method, url, cred string, body any, hdr ...string) (response, error) {
	var data []byte // a nil body is no body, as in do
	if body != nil {
		data, _ = json.Marshal(body)
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(data))
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	r := response{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	json.Unmarshal(raw, &r.Body)
	return r, nil
}

// eventually polls cond until it holds, failing the test with what after
// 20 seconds: the tests wait for conditions, never for a fixed time.
// roomFinishedEnded waits until b has handled LiveKit's room_finished for
// room, and checks that it ended the owner record (which then stays its
// org's while the tokens issued with it live: see TestWebhookReleasesOwnership)
// rather than keeping it for a later claim.
func roomFinishedEnded(t testing.TB, b *broker, room string) {
	t.Helper()
	handled := func(result string) bool {
		for _, line := range strings.Split(b.Logs.String(), "\n") {
			if strings.Contains(line, `"event":"livekit.webhook"`) && strings.Contains(line, `"type":"room_finished"`) &&
				strings.Contains(line, `"room":"`+room+`"`) && strings.Contains(line, `"result":"`+result+`"`) {
				return true
			}
		}
		return false
	}
	eventually(t, "room_finished for "+room+" handled", func() bool { return handled("released") || handled("kept") })
	if !handled("released") {
		t.Fatalf("room_finished for %s ended nothing\n%s", room, b.Logs.String())
	}
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after 20s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
