package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/apikey"
	"github.com/voicebroker/voicebroker/internal/auth"
	"github.com/voicebroker/voicebroker/internal/metrics"
	"github.com/voicebroker/voicebroker/internal/store/memory"
	"github.com/voicebroker/voicebroker/pkg/token"
)

func TestIdentityCharacters(t *testing.T) {
	for _, ok := range []string{"user-1", "José", "用户", "😀", "a b", strings.Repeat("é", 64), "\u00a0nbsp", "zero\u200bwidth"} {
		if _, err := identityOf(&ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{
		"", strings.Repeat("a", 129), strings.Repeat("é", 65), "a\x00b", "a\nb", "a\x1fb", "a\x7fb",
		"a\u0085b", "a\u009bb", // C1: NEL, CSI
		"admin\u202etxt.exe", "a\u202ab", "a\u202db", "a\u2066b", "a\u2067b", "a\u2068b", "a\u2069b",
		"a\u200eb", "a\u200fb", "a\u061cb", // LRM, RLM, ALM: Bidi_Control too
		"line\u2028sep", "para\u2029sep", "bad\xffutf8",
	} {
		if _, err := identityOf(&bad); err == nil {
			t.Errorf("%q accepted", bad)
		} else if e := classify(err); e.Code != CodeInvalidRequest || strings.Contains(e.Message, bad) && bad != "" {
			t.Errorf("%q: %s %q", bad, e.Code, e.Message)
		}
	}
}

func TestIPKey(t *testing.T) {
	same := [][]string{
		{"198.51.100.7", "::ffff:198.51.100.7"},
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::1%eth0", "2001:db8:1:2::9%25x"},
		{"fe80::1%eth0", "fe80::2%eth1", "fe80::1"},
	}
	seen := map[string]int{}
	for i, group := range same {
		for _, s := range group {
			k := ipKey("public", netip.MustParseAddr(s))
			if strings.Contains(k, "%") {
				t.Errorf("%s: key %s keeps the zone", s, k)
			}
			if j, ok := seen[k]; ok && j != i {
				t.Errorf("%s: key %s shared with another group", s, k)
			}
			seen[k] = i
		}
		if k0, k1 := ipKey("public", netip.MustParseAddr(group[0])), ipKey("public", netip.MustParseAddr(group[1])); k0 != k1 {
			t.Errorf("%s and %s: %s != %s", group[0], group[1], k0, k1)
		}
	}
	if ipKey("public", netip.MustParseAddr("2001:db8:1:2::1")) == ipKey("public", netip.MustParseAddr("2001:db8:1:3::1")) {
		t.Error("two /64s share a key")
	}
	if ipKey("public", netip.MustParseAddr("198.51.100.7")) == ipKey("connect", netip.MustParseAddr("198.51.100.7")) {
		t.Error("two routes share a key")
	}
	if ipKey("public", netip.MustParseAddr("198.51.100.7")) == ipKey("public", netip.MustParseAddr("198.51.100.8")) {
		t.Error("two IPv4 addresses share a key")
	}
}

// TestClientIPDropsZones: a zone is an interface name of one host, not
// part of the client; from the peer or a trusted proxy's X-Forwarded-For.
func TestClientIPDropsZones(t *testing.T) {
	ci := ClientIP{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	for _, tc := range []struct{ remote, xff, want string }{
		{"[fe80::1%eth0]:1234", "", "fe80::1"},
		{"127.0.0.1:1234", "fe80::9%25eth1", "fe80::9"},
		{"127.0.0.1:1234", "2001:db8::1%x, 127.0.0.1", "2001:db8::1"},
		{"127.0.0.1:1234", "::ffff:198.51.100.7", "198.51.100.7"},
		{"[::ffff:203.0.113.5]:80", "198.51.100.7", "203.0.113.5"},
	} {
		r := &http.Request{RemoteAddr: tc.remote, Header: http.Header{}}
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := ci.Of(r).String(); got != tc.want {
			t.Errorf("%s, X-Forwarded-For %q: %s, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
}

// flipping serves a different tenants snapshot on every read: any request
// that reads the holder twice sees two files.
type flipping struct {
	n    atomic.Int64
	a, b *config.Tenants
}

func (f *flipping) Current() *config.Tenants {
	if f.n.Add(1)%2 == 0 {
		return f.b
	}
	return f.a
}

type testServer struct {
	URL  string
	e    *echo.Echo
	logs *bytes.Buffer
	mu   *sync.Mutex
}

func (ts testServer) log() string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.logs.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// String is what was written so far.
func (w lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// newTestServer runs the real handler stack (New) with a memory store on
// loopback. tenants is the only seam.
func newTestServer(t *testing.T, tenants auth.Tenants) testServer {
	t.Helper()
	key, iss, ver := ticketKeys(t)
	st := memory.New(time.Minute)
	t.Cleanup(func() { st.Close() })
	ts := testServer{logs: &bytes.Buffer{}, mu: &sync.Mutex{}}
	log := slog.New(slog.NewJSONHandler(lockedWriter{ts.mu, ts.logs}, nil))
	ts.e = New(Deps{
		Tenants: tenants, Auth: auth.New(tenants, auth.Options{}), Store: st, Issuer: iss, Verifier: ver,
		JWKS: token.NewJWKS(key), Log: log, Metrics: metrics.New("test"), PublicURL: "http://broker.test",
		Leeway: token.DefaultLeeway, ConnectRate: 1000, PublicRate: 1000, AuthRequired: true,
	})
	srv := httptest.NewServer(ts.e)
	t.Cleanup(srv.Close)
	ts.URL = srv.URL
	return ts
}

// ticketKeys returns a fresh signing key with an issuer and a verifier of
// tickets for http://broker.test.
func ticketKeys(t *testing.T) (*token.Key, *token.Issuer, *token.Verifier) {
	t.Helper()
	key, err := token.GenerateKey(token.EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := token.NewIssuer(key, "http://broker.test", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ver, err := token.NewVerifier("http://broker.test", []*token.Key{key}, nil, token.DefaultLeeway)
	if err != nil {
		t.Fatal(err)
	}
	return key, iss, ver
}

func post(t *testing.T, url, cred, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// TestOneSnapshotPerRequest: a reload between two reads of the tenants
// must not mix two files in one request. The holder here changes on every
// read: file A has org acme with its key and agent, file B has only globex.
// Each request must be answered as A or as B would answer it, never with
// a 500 or a dropped connection.
func TestOneSnapshotPerRequest(t *testing.T) {
	sk, _ := apikey.New(apikey.Secret, apikey.Live)
	parse := func(y string) *config.Tenants {
		ten, err := config.Parse([]byte(y))
		if err != nil {
			t.Fatal(err)
		}
		return ten
	}
	a := parse(`orgs:
  - id: acme
    tier: enterprise
    rate_per_minute: 100000
    keys: [{id: main, hash: "` + apikey.Hash(sk) + `", scopes: [tokens:create, tokens:redeem]}]
    agents: [{id: bot, channels: [chat]}]
`)
	b := parse(`orgs:
  - id: globex
    tier: free
    agents: [{id: hank, channels: [chat]}]
`)
	ts := newTestServer(t, &flipping{a: a, b: b})
	for i := range 40 {
		status, body := post(t, ts.URL+"/token", sk, `{"agent":"bot","channel":"chat"}`)
		switch {
		case status == 201:
			tok, _ := body["token"].(string)
			st, rb := post(t, ts.URL+"/token/redeem", sk, `{"token":"`+tok+`"}`)
			if st != 200 && !(st == 401 && rb["error"] == "unauthorized") {
				t.Fatalf("redeem %d: %d %v", i, st, rb)
			}
		case status == 401 && body["error"] == "unauthorized":
		default:
			t.Fatalf("request %d: %d %v: the request saw two tenants files", i, status, body)
		}
	}
}

// TestRecoverAnswersInContractShape: a panicking handler is a 500 with
// {"error","message"} (config_error: the contract's generic 500), the stack
// is logged, the request's credential is not, and the server goes on.
func TestRecoverAnswersInContractShape(t *testing.T) {
	ten, err := config.Parse([]byte("orgs:\n  - id: acme\n    tier: free\n"))
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, config.StaticHolder(ten))
	var nilMap map[string]*int
	ts.e.POST("/test/panic/nil", func(c echo.Context) error { return c.JSON(200, *nilMap["x"]) })
	ts.e.POST("/test/panic/value", func(c echo.Context) error {
		panic(c.Request().Header.Get("Authorization")) // a panic value carrying request data
	})
	secret := "sk_live_" + strings.Repeat("P", 43)
	for _, path := range []string{"/test/panic/nil", "/test/panic/value"} {
		status, body := post(t, ts.URL+path, secret, `{}`)
		if status != 500 || body["error"] != string(CodeConfigError) || body["message"] == "" || len(body) != 2 {
			t.Fatalf("%s: %d %v", path, status, body)
		}
	}
	logs := ts.log()
	if strings.Count(logs, `"event":"http.panic"`) != 2 || !strings.Contains(logs, "hardening_test.go") ||
		!strings.Contains(logs, "nil pointer dereference") {
		t.Fatalf("panics not logged with their stacks:\n%s", logs)
	}
	if strings.Contains(logs, secret) || strings.Contains(logs, "PPPP") {
		t.Fatal("the credential reached the log")
	}
	if status, _ := post(t, ts.URL+"/token", "", `{}`); status != 401 {
		t.Fatalf("after the panics: %d", status)
	}
}

// TestReadBodyLengths: a body is read whole whether its length is declared
// or not (chunked, or a request built in process, where http.NewRequest
// gives a reader of unknown length a ContentLength of 0), and a body
// shorter than its declared length is refused, not cut or padded.
func TestReadBodyLengths(t *testing.T) {
	const body = `{"agent":"bot"}`
	read := func(r *http.Request) ([]byte, error) {
		r.Header.Set("Content-Type", "application/json")
		return readBody(echo.New().NewContext(r, httptest.NewRecorder()))
	}
	declared := httptest.NewRequest("POST", "/token", strings.NewReader(body))
	unknown, _ := http.NewRequest("POST", "/token", struct{ io.Reader }{strings.NewReader(body)})
	chunked := httptest.NewRequest("POST", "/token", strings.NewReader(body))
	chunked.ContentLength = -1
	for name, r := range map[string]*http.Request{"declared": declared, "unknown": unknown, "chunked": chunked} {
		if got, err := read(r); err != nil || string(got) != body {
			t.Errorf("%s length (ContentLength %d): %q, %v", name, r.ContentLength, got, err)
		}
	}
	empty := httptest.NewRequest("POST", "/token", nil)
	if got, err := read(empty); err != nil || got == nil || len(got) != 0 {
		t.Errorf("empty body: %q (nil %v), %v", got, got == nil, err)
	}
	short := httptest.NewRequest("POST", "/token", io.LimitReader(strings.NewReader(body), 5))
	short.ContentLength = int64(len(body))
	if got, err := read(short); err == nil {
		t.Errorf("a body shorter than its Content-Length was read: %q", got)
	} else if e, ok := err.(*Error); !ok || e.Code != CodeInvalidRequest {
		t.Errorf("short body: %v, want %s", err, CodeInvalidRequest)
	}
	long := httptest.NewRequest("POST", "/token", strings.NewReader(strings.Repeat(" ", MaxBodyBytes+1)))
	if _, err := read(long); err == nil {
		t.Error("a body over MaxBodyBytes was read")
	}
}
