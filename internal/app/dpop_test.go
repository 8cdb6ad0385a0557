package app_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/apikey"
	"github.com/voicebroker/voicebroker/internal/app"
	"github.com/voicebroker/voicebroker/pkg/token"
)

// Sender-constrained tickets (contract §6): a ticket minted with dpop_jkt
// is traded at /connect only with a fresh DPoP proof made with that key.
// /connect makes no LiveKit call, so a LiveKit that never answers
// (hangingLiveKit) is all these tests need of it.

// connectHTU is the htu of the tests' brokers (BROKER_PUBLIC_URL
// http://broker.test, see startBroker).
const connectHTU = "http://broker.test/connect"

const demoOrigin = "https://demo.acme.example"

// dpopKey is a client's key pair, as the browser SDK makes one.
type dpopKey struct {
	priv *ecdsa.PrivateKey
	key  *token.Key
	jkt  string // the RFC 7638 thumbprint: what the client sends as dpop_jkt
}

func newDPoPKey(t testing.TB) *dpopKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := token.NewKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return &dpopKey{priv: priv, key: k, jkt: k.ID()}
}

// proofAt is a genuine proof made by the client library's maker.
func (k *dpopKey) proofAt(t testing.TB, htm, htu string, iat time.Time) string {
	t.Helper()
	p, err := token.NewDPoPProof(k.key, htm, htu, iat)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// proof is a fresh, correct proof for /connect.
func (k *dpopKey) proof(t testing.TB) string { return k.proofAt(t, "POST", connectHTU, time.Now()) }

// jwk is the key's public JWK as JSON members.
func (k *dpopKey) jwk() string {
	raw, _ := k.priv.PublicKey.Bytes()
	return `{"kty":"EC","crv":"P-256","x":"` + b64u(raw[1:33]) + `","y":"` + b64u(raw[33:]) + `"}`
}

// jws assembles a compact JWS from raw JSON texts, signed with ES256 by
// this key, independently of the package under test.
func (k *dpopKey) jws(t testing.TB, header, payload string) string {
	t.Helper()
	in := b64u([]byte(header)) + "." + b64u([]byte(payload))
	sig, err := jwt.SigningMethodES256.Sign(in, k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + b64u(sig)
}

// claims is a proof payload for /connect now, with extra raw members.
func proofClaims(t testing.TB, extra ...string) string {
	jti, err := token.NewNonce()
	if err != nil {
		t.Fatal(err)
	}
	members := []string{`"jti":"` + jti + `"`, `"htm":"POST"`, `"htu":"` + connectHTU + `"`, `"iat":` + jsonInt(time.Now().Unix())}
	return "{" + strings.Join(append(members, extra...), ",") + "}"
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func athOf(ticket string) string {
	sum := sha256.Sum256([]byte(ticket))
	return b64u(sum[:])
}

// dpopTenants is the test tenants with room for many requests a minute
// and one more acme agent, guarded, that requires sender-constrained
// tickets and has a public mode under its own publishable key.
func dpopTenants(k keys, guardedPK string) string {
	return tenantsYAML(k, func(y string) string {
		y = strings.Replace(y, "  - id: acme\n    tier: free\n", "  - id: acme\n    tier: enterprise\n    rate_per_minute: 1000000\n", 1)
		return strings.Replace(y, "        server: wss://voice.acme.example\n", "        server: wss://voice.acme.example\n"+
			"      - id: guarded\n        channels: [webrtc, chat]\n        require_dpop: true\n        public:\n"+
			"          key_hash: \""+hashOf(guardedPK)+"\"\n          allowed_origins: [\""+demoOrigin+"\"]\n", 1)
	})
}

// dpopBrokers starts n replicas on the store ("memory", or "redis": one
// Redis shared by all) with the DPoP tenants, LiveKit configured (never
// called), no per-IP limit in the way and a generous store timeout.
func dpopBrokers(t *testing.T, storeKind string, n int) ([]*broker, keys, string) {
	t.Helper()
	if storeKind == "redis" && testing.Short() {
		t.Skip("needs redis-server")
	}
	k := newKeys(t)
	guardedPK, err := apikey.New(apikey.Publishable, apikey.Live)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"LIVEKIT_URL": hangingLiveKit(t), "LIVEKIT_API_KEY": "testkey", "LIVEKIT_API_SECRET": "vb-test-secret-0123456789abcdef0123456789",
		"BROKER_CONNECT_RATE_PER_MINUTE": "1000000", "BROKER_PUBLIC_RATE_PER_MINUTE": "1000000",
		// A loaded machine must not turn a race into two 503s: these tests
		// are about proofs (TestDPoPStoreDown is about the store failing).
		"BROKER_STORE_TIMEOUT": "5s",
	}
	if storeKind == "redis" {
		env["BROKER_REDIS_URL"] = dpopRedisURL(t)
	}
	var bs []*broker
	for range n {
		b := startBroker(t, k, env)
		env["BROKER_SIGNING_KEY_FILE"] = b.KeyFile // the replicas share the signing key
		b.rewriteTenants(t, dpopTenants(k, guardedPK), "ok")
		bs = append(bs, b)
	}
	return bs, k, guardedPK
}

var (
	dpopRedisOnce sync.Once
	dpopRedis     string
)

// dpopRedisURL is one Redis database for all the DPoP tests (there are
// only 16 to share among the package's tests): they need no clean one,
// as every nonce and proof jti is random and their org's limit is high.
func dpopRedisURL(t testing.TB) string {
	t.Helper()
	dpopRedisOnce.Do(func() { dpopRedis = nextRedisURL(t) })
	if dpopRedis == "" {
		t.Fatal("no Redis database for the DPoP tests")
	}
	return dpopRedis
}

// mintBound mints a ticket for florencia bound to key.
func (b *broker) mintBound(t testing.TB, key *dpopKey) string {
	t.Helper()
	return b.mint(t, b.keys.acme, map[string]any{"agent": "florencia", "channel": "webrtc", "dpop_jkt": key.jkt})
}

// connectWith posts the ticket to /connect with one DPoP header per proof.
func (b *broker) connectWith(t testing.TB, ticket string, proofs ...string) response {
	t.Helper()
	var hdr []string
	for _, p := range proofs {
		hdr = append(hdr, "DPoP", p)
	}
	return do(t, "POST", b.URL+"/connect", ticket, nil, hdr...)
}

// expectDPoPRefusal checks a 401 with the DPoP code and its challenge.
func expectDPoPRefusal(t testing.TB, r response, code string) {
	t.Helper()
	expect(t, r, 401, code)
	ch := r.Header.Get("WWW-Authenticate")
	if !strings.HasPrefix(ch, "DPoP ") || !strings.Contains(ch, `algs="ES256 EdDSA"`) ||
		strings.Contains(ch, "invalid_dpop_proof") != (code == "dpop_invalid") {
		t.Fatalf("%s: WWW-Authenticate %q", code, ch)
	}
}

// claimsOf decodes a ticket's payload without verifying it.
func claimsOf(t testing.TB, ticket string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(ticket, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestDPoPProofRefusals: every way a proof can be wrong is refused, 401
// with dpop_required or dpop_invalid and a DPoP challenge, and leaves the
// ticket usable: right after, the same ticket works with a correct proof.
// With each store.
func TestDPoPProofRefusals(t *testing.T) {
	for _, storeKind := range []string{"memory", "redis"} {
		t.Run(storeKind, func(t *testing.T) {
			bs, _, _ := dpopBrokers(t, storeKind, 1)
			b := bs[0]
			key, other := newDPoPKey(t), newDPoPKey(t)
			now := time.Now()
			hdr := func(typ, alg, jwk string) string {
				return `{"typ":"` + typ + `","alg":"` + alg + `","jwk":` + jwk + `}`
			}
			good := hdr("dpop+jwt", "ES256", key.jwk())
			for _, tc := range []struct {
				name   string
				proofs func(ticket string) []string
				code   string
			}{
				{"missing", func(string) []string { return nil }, "dpop_required"},
				{"empty", func(string) []string { return []string{""} }, "dpop_invalid"},
				{"two headers, both correct", func(string) []string { return []string{key.proof(t), key.proof(t)} }, "dpop_invalid"},
				{"two proofs in one header", func(string) []string { return []string{key.proof(t) + ", " + key.proof(t)} }, "dpop_invalid"},
				{"another key", func(string) []string { return []string{other.proof(t)} }, "dpop_invalid"},
				{"this key's jwk, signed by another", func(string) []string { return []string{other.jws(t, good, proofClaims(t))} }, "dpop_invalid"},
				{"reused jti", func(string) []string {
					p := key.proof(t)
					expect(t, b.connectWith(t, b.mintBound(t, key), p), 201, "") // the proof's first use, with another ticket
					return []string{p}
				}, "dpop_invalid"},
				{"stale iat", func(string) []string { return []string{key.proofAt(t, "POST", connectHTU, now.Add(-2*time.Minute))} }, "dpop_invalid"},
				{"future iat", func(string) []string { return []string{key.proofAt(t, "POST", connectHTU, now.Add(2*time.Minute))} }, "dpop_invalid"},
				{"htu of another endpoint", func(string) []string { return []string{key.proofAt(t, "POST", "http://broker.test/token", now)} }, "dpop_invalid"},
				{"htu of another host", func(string) []string { return []string{key.proofAt(t, "POST", "http://evil.test/connect", now)} }, "dpop_invalid"},
				{"htu of the listener, not the public URL", func(string) []string { return []string{key.proofAt(t, "POST", b.URL+"/connect", now)} }, "dpop_invalid"},
				{"htu with a query", func(string) []string {
					return []string{key.jws(t, good, strings.Replace(proofClaims(t), connectHTU, connectHTU+"?a=1", 1))}
				}, "dpop_invalid"},
				{"htm GET", func(string) []string { return []string{key.proofAt(t, "GET", connectHTU, now)} }, "dpop_invalid"},
				{"htm post in lower case", func(string) []string { return []string{key.proofAt(t, "post", connectHTU, now)} }, "dpop_invalid"},
				{"alg none", func(string) []string {
					return []string{b64u([]byte(hdr("dpop+jwt", "none", key.jwk()))) + "." + b64u([]byte(proofClaims(t))) + "."}
				}, "dpop_invalid"},
				{"HS256 keyed with the public key", func(string) []string {
					in := b64u([]byte(hdr("dpop+jwt", "HS256", key.jwk()))) + "." + b64u([]byte(proofClaims(t)))
					mac := hmac.New(sha256.New, []byte(key.jwk()))
					mac.Write([]byte(in))
					return []string{in + "." + b64u(mac.Sum(nil))}
				}, "dpop_invalid"},
				{"typ JWT", func(string) []string { return []string{key.jws(t, hdr("JWT", "ES256", key.jwk()), proofClaims(t))} }, "dpop_invalid"},
				{"private member in the jwk", func(string) []string {
					jwk := strings.TrimSuffix(key.jwk(), "}") + `,"d":"` + b64u(key.priv.D.FillBytes(make([]byte, 32))) + `"}`
					return []string{key.jws(t, hdr("dpop+jwt", "ES256", jwk), proofClaims(t))}
				}, "dpop_invalid"},
				{"tampered payload", func(string) []string {
					parts := strings.Split(key.proof(t), ".")
					return []string{parts[0] + "." + b64u([]byte(proofClaims(t))) + "." + parts[2]}
				}, "dpop_invalid"},
				{"ath of another ticket", func(string) []string {
					return []string{key.jws(t, good, proofClaims(t, `"ath":"`+athOf("another ticket")+`"`))}
				}, "dpop_invalid"},
				{"over 4 KiB", func(string) []string {
					return []string{key.jws(t, good, proofClaims(t, `"pad":"`+strings.Repeat("x", 4<<10)+`"`))}
				}, "dpop_invalid"},
			} {
				ticket := b.mintBound(t, key)
				proofs := tc.proofs(ticket)
				expectDPoPRefusal(t, b.connectWith(t, ticket, proofs...), tc.code)
				if r := b.connectWith(t, ticket, key.proof(t)); r.Status != 201 {
					t.Fatalf("%s: the same ticket with a correct proof afterwards: %d %s", tc.name, r.Status, r.Raw)
				}
			}

			// Proofs that are right in less common ways are accepted: an ath
			// of the ticket itself, an EdDSA key, the htu spelled with the
			// default port and an upper-case host.
			ticket := b.mintBound(t, key)
			expect(t, b.connectWith(t, ticket, key.jws(t, good, proofClaims(t, `"ath":"`+athOf(ticket)+`"`))), 201, "")
			ed, err := token.GenerateKey(token.EdDSA)
			if err != nil {
				t.Fatal(err)
			}
			edTicket := b.mint(t, b.keys.acme, map[string]any{"agent": "florencia", "channel": "chat", "dpop_jkt": ed.ID()})
			edProof, err := token.NewDPoPProof(ed, "POST", connectHTU, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			expect(t, b.connectWith(t, edTicket, edProof), 201, "")
			expect(t, b.connectWith(t, b.mintBound(t, key), key.proofAt(t, "POST", "http://BROKER.test:80/connect", time.Now())), 201, "")

			// A ticket minted without dpop_jkt is a bearer ticket: a DPoP
			// header, even a malformed one or two, is ignored.
			for _, proofs := range [][]string{{"not-a-proof"}, {other.proof(t), other.proof(t)}, {""}} {
				expect(t, b.connectWith(t, b.mint(t, b.keys.acme, flo), proofs...), 201, "")
			}
			// A used ticket stays used whatever the proof: token_used, and
			// the proof of the refused attempt is not spent.
			used := b.mintBound(t, key)
			expect(t, b.connectWith(t, used, key.proof(t)), 201, "")
			p := key.proof(t)
			expect(t, b.connectWith(t, used, p), 401, "token_used")
			expect(t, b.connectWith(t, b.mintBound(t, key), p), 201, "")
		})
	}
}

// TestDPoPReplayAcrossReplicas: a proof accepted by one replica is refused
// by another sharing the Redis store, and the ticket it was replayed with
// stays usable.
func TestDPoPReplayAcrossReplicas(t *testing.T) {
	bs, _, _ := dpopBrokers(t, "redis", 2)
	key := newDPoPKey(t)
	p := key.proof(t)
	expect(t, bs[0].connectWith(t, bs[0].mintBound(t, key), p), 201, "")
	ticket := bs[1].mintBound(t, key)
	expectDPoPRefusal(t, bs[1].connectWith(t, ticket, p), "dpop_invalid")
	expectDPoPRefusal(t, bs[0].connectWith(t, ticket, p), "dpop_invalid")
	expect(t, bs[1].connectWith(t, ticket, key.proof(t)), 201, "")
}

// TestDPoPConcurrentSameProof: two /connect race with one proof (two
// tickets bound to the same key, or the same ticket twice), on two
// replicas over Redis or on one broker over the memory store: exactly one
// succeeds, and a ticket that lost keeps its nonce.
func TestDPoPConcurrentSameProof(t *testing.T) {
	for _, tc := range []struct {
		store    string
		replicas int
	}{{"memory", 1}, {"redis", 2}} {
		t.Run(tc.store, func(t *testing.T) {
			bs, _, _ := dpopBrokers(t, tc.store, tc.replicas)
			key := newDPoPKey(t)
			for round := range 10 {
				sameTicket := round%2 == 1
				t1 := bs[0].mintBound(t, key)
				t2 := t1
				if !sameTicket {
					t2 = bs[0].mintBound(t, key)
				}
				p := key.proof(t)
				tickets := []string{t1, t2}
				results := make([]response, 2)
				errs := make([]error, 2)
				var wg sync.WaitGroup
				for i := range 2 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						results[i], errs[i] = tryDo("POST", bs[i%len(bs)].URL+"/connect", tickets[i], nil, "DPoP", p)
					}()
				}
				wg.Wait()
				won := -1
				for i, r := range results {
					if errs[i] != nil {
						t.Fatal(errs[i])
					}
					switch {
					case r.Status == 201 && won < 0:
						won = i
					case r.Status == 401 && (r.code() == "dpop_invalid" || sameTicket && r.code() == "token_used"):
					default:
						t.Fatalf("round %d: answers %d %s and %d %s: want one 201 and one refusal", round,
							results[0].Status, results[0].Raw, results[1].Status, results[1].Raw)
					}
				}
				if won < 0 {
					t.Fatalf("round %d: neither /connect succeeded: %s / %s", round, results[0].Raw, results[1].Raw)
				}
				if !sameTicket {
					loser := tickets[1-won]
					expect(t, bs[0].connectWith(t, loser, key.proof(t)), 201, "")
				} else {
					expect(t, bs[0].connectWith(t, t1, key.proof(t)), 401, "token_used")
				}
			}
		})
	}
}

// TestDPoPMint: dpop_jkt at /token and /public/token, require_dpop, the
// cnf claim, /token/redeem's cnf, and a ticket of an agent that came to
// require DPoP after it was minted.
func TestDPoPMint(t *testing.T) {
	bs, k, guardedPK := dpopBrokers(t, "memory", 1)
	b := bs[0]
	key := newDPoPKey(t)
	public := func(pk string, body map[string]any) response {
		return do(t, "POST", b.URL+"/public/token", pk, body, "Origin", demoOrigin)
	}

	// A bad dpop_jkt is refused on both mint endpoints, and never echoed.
	var stray []byte
	stray = append(stray, key.jkt...)
	stray[42] = 'B' // 43 characters of the alphabet, but stray low bits
	for _, bad := range []any{"", "abc", key.jkt + "A", key.jkt[:42], key.jkt + "=", strings.Replace(key.jkt, key.jkt[:1], "+", 1),
		string(stray), " " + key.jkt[1:], 123, true, map[string]any{"jkt": key.jkt}, []string{key.jkt}} {
		for _, r := range []response{
			do(t, "POST", b.URL+"/token", k.acme, map[string]any{"agent": "florencia", "channel": "webrtc", "dpop_jkt": bad}),
			public(k.pk, map[string]any{"agent": "florencia", "channel": "chat", "dpop_jkt": bad}),
		} {
			expect(t, r, 400, "invalid_request")
			if s, ok := bad.(string); ok && len(s) > 8 && strings.Contains(r.Raw, s) {
				t.Fatalf("the refusal echoes dpop_jkt: %s", r.Raw)
			}
		}
	}
	expect(t, do(t, "POST", b.URL+"/token", k.acme, `{"agent":"florencia","channel":"webrtc","DPoP_JKT":"`+key.jkt+`"}`), 400, "invalid_request")
	expect(t, do(t, "POST", b.URL+"/token", k.acme, `{"agent":"florencia","channel":"webrtc","dpop_jkt":"`+key.jkt+`","dpop_jkt":"`+key.jkt+`"}`), 400, "invalid_request")

	// require_dpop: no dpop_jkt (absent or null) is refused on both endpoints.
	for _, body := range []map[string]any{{"agent": "guarded", "channel": "webrtc"}, {"agent": "guarded", "channel": "webrtc", "dpop_jkt": nil}} {
		r := do(t, "POST", b.URL+"/token", k.acme, body)
		expect(t, r, 400, "invalid_request")
		if !strings.Contains(r.Body["message"].(string), "dpop_jkt") {
			t.Fatalf("the refusal does not say what is missing: %s", r.Raw)
		}
		expect(t, public(guardedPK, body), 400, "invalid_request")
	}
	// ... and with it, the ticket is bound, from a backend or a page.
	bound := b.mint(t, k.acme, map[string]any{"agent": "guarded", "channel": "webrtc", "dpop_jkt": key.jkt})
	pub := public(guardedPK, map[string]any{"agent": "guarded", "channel": "chat", "dpop_jkt": key.jkt})
	expect(t, pub, 201, "")
	for _, tk := range []string{bound, pub.Body["token"].(string)} {
		cnf, _ := claimsOf(t, tk)["cnf"].(map[string]any)
		if cnf == nil || cnf["jkt"] != key.jkt || len(cnf) != 1 {
			t.Fatalf("cnf claim %v, want {jkt: %s}", claimsOf(t, tk)["cnf"], key.jkt)
		}
	}
	expectDPoPRefusal(t, b.connectWith(t, bound, newDPoPKey(t).proof(t)), "dpop_invalid")
	expect(t, b.connectWith(t, bound, key.proof(t)), 201, "")
	// The public ticket needs both its origin and its proof.
	pubTicket := pub.Body["token"].(string)
	expectDPoPRefusal(t, do(t, "POST", b.URL+"/connect", pubTicket, nil, "Origin", demoOrigin), "dpop_required")
	expect(t, do(t, "POST", b.URL+"/connect", pubTicket, nil, "Origin", "https://evil.example", "DPoP", key.proof(t)), 403, "origin_not_allowed")
	expect(t, do(t, "POST", b.URL+"/connect", pubTicket, nil, "Origin", demoOrigin, "DPoP", key.proof(t)), 201, "")

	// A public ticket of an agent without require_dpop is bound on request.
	flPub := public(k.pk, map[string]any{"agent": "florencia", "channel": "chat", "dpop_jkt": key.jkt})
	expect(t, flPub, 201, "")
	expectDPoPRefusal(t, do(t, "POST", b.URL+"/connect", flPub.Body["token"].(string), nil, "Origin", demoOrigin), "dpop_required")
	expect(t, do(t, "POST", b.URL+"/connect", flPub.Body["token"].(string), nil, "Origin", demoOrigin, "DPoP", key.proof(t)), 201, "")
	// Without dpop_jkt (absent or null) it is a bearer ticket, without cnf.
	for _, body := range []map[string]any{{"agent": "florencia", "channel": "chat"}, {"agent": "florencia", "channel": "chat", "dpop_jkt": nil}} {
		r := public(k.pk, body)
		expect(t, r, 201, "")
		if _, ok := claimsOf(t, r.Body["token"].(string))["cnf"]; ok {
			t.Fatal("a bearer ticket carries cnf")
		}
	}

	// /token/redeem hands the voice server cnf, to check a proof itself.
	red := do(t, "POST", b.URL+"/token/redeem", k.acme, map[string]string{"token": b.mintBound(t, key)})
	expect(t, red, 200, "")
	if cnf, _ := red.Body["cnf"].(map[string]any); cnf == nil || cnf["jkt"] != key.jkt || len(cnf) != 1 {
		t.Fatalf("redeem of a bound ticket: %s", red.Raw)
	}
	red = do(t, "POST", b.URL+"/token/redeem", k.acme, map[string]string{"token": b.mint(t, k.acme, flo)})
	expect(t, red, 200, "")
	if _, ok := red.Body["cnf"]; ok {
		t.Fatalf("redeem of a bearer ticket shows cnf: %s", red.Raw)
	}

	// The /connect preflight lets a page send the DPoP header.
	pre := do(t, "OPTIONS", b.URL+"/connect", "", nil, "Origin", demoOrigin, "Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "authorization,content-type,dpop")
	if pre.Status != 204 || !strings.Contains(strings.ToLower(pre.Header.Get("Access-Control-Allow-Headers")), "dpop") {
		t.Fatalf("preflight: %d %v", pre.Status, pre.Header)
	}

	// An agent that comes to require DPoP refuses at /connect the bearer
	// tickets minted before: no proof can confirm a ticket bound to no key.
	bearer := b.mint(t, k.acme, flo)
	b.rewriteTenants(t, strings.Replace(dpopTenants(k, guardedPK), "      - id: florencia\n", "      - id: florencia\n        require_dpop: true\n", 1), "ok")
	expectDPoPRefusal(t, b.connectWith(t, bearer), "dpop_required")
	expectDPoPRefusal(t, b.connectWith(t, bearer, key.proof(t)), "dpop_invalid")
	expect(t, do(t, "POST", b.URL+"/token", k.acme, flo), 400, "invalid_request")
}

// TestDPoPStoreDown: the store fails the step that records the proof and
// consumes the nonce (Redis ACLs on a real server refuse the nonce key,
// the proof key, or both). /connect answers 503 store_unavailable and
// changes nothing: afterwards the same ticket works with the same proof.
func TestDPoPStoreDown(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	addr, admin, acl := aclRedis(t)
	ctx := context.Background()
	k := newKeys(t)
	b := startBroker(t, k, map[string]string{
		"BROKER_REDIS_URL": "redis://" + addr + "/0", "LIVEKIT_URL": hangingLiveKit(t), "LIVEKIT_API_KEY": "testkey",
		"LIVEKIT_API_SECRET": "vb-test-secret-0123456789abcdef0123456789",
	})
	key := newDPoPKey(t)
	for _, allowed := range [][]string{
		{"~rate:*", "~vb:room:*"},            // neither the nonce nor the proof
		{"~rate:*", "~vb:room:*", "~vb:p:*"}, // the proof, not the nonce
		{"~rate:*", "~vb:room:*", "~vb:n:*"}, // the nonce, not the proof
	} {
		ticket := b.mintBound(t, key)
		p := key.proof(t)
		acl(allowed...)
		r := b.connectWith(t, ticket, p)
		acl("~*")
		expect(t, r, 503, "store_unavailable")
		if n, err := admin.Keys(ctx, "vb:p:*").Result(); err != nil || len(n) != 0 {
			t.Fatalf("allowed %v: proof records after a failed step: %v %v", allowed, n, err)
		}
		expect(t, b.connectWith(t, ticket, p), 201, "")
		if n, err := admin.Keys(ctx, "vb:p:*").Result(); err != nil || len(n) != 1 {
			t.Fatalf("allowed %v: want the one proof recorded: %v %v", allowed, n, err)
		}
		admin.Del(ctx, mustKeys(t, admin, "vb:p:*")...)
	}
	// And with the store not answering at all (paused past the broker's
	// store timeout).
	ticket, p := b.mintBound(t, key), key.proof(t)
	if err := admin.Do(ctx, "CLIENT", "PAUSE", "1500", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	expect(t, b.connectWith(t, ticket, p), 503, "store_unavailable")
	eventually(t, "the store to answer again", func() bool { return do(t, "GET", b.URL+"/readyz", "", nil).Status == 200 })
	expect(t, b.connectWith(t, ticket, p), 201, "")
}

func mustKeys(t *testing.T, c *redis.Client, pattern string) []string {
	t.Helper()
	ks, err := c.Keys(context.Background(), pattern).Result()
	if err != nil || len(ks) == 0 {
		t.Fatalf("keys %s: %v %v", pattern, ks, err)
	}
	return ks
}

// TestDPoPPublicURLRefused: a BROKER_PUBLIC_URL that makes no usable
// DPoP target URI stops the broker at start with a message naming the
// variable, and without echoing the value.
func TestDPoPPublicURLRefused(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "tenants.yaml")
	writeFile(t, cfg, tenantsYAML(newKeys(t)))
	for _, u := range []string{"http://broker.test/a/../b", "http://broker.test/./x", "http://broker.test:080"} {
		e, err := config.LoadEnv(func(k string) string {
			return map[string]string{"BROKER_CONFIG": cfg, "BROKER_PUBLIC_URL": u}[k]
		})
		if err != nil {
			t.Fatalf("%s: the environment check refused it already (%v); the test needs a URL only DPoP refuses", u, err)
		}
		_, err = app.New(e, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err == nil || !strings.HasPrefix(err.Error(), "BROKER_PUBLIC_URL: ") || strings.Contains(err.Error(), "broker.test") {
			t.Fatalf("%s: %v", u, err)
		}
	}
}

// TestDPoPAddsNoStoreCall: /connect with a bound ticket and its proof makes
// as many store calls as with a bearer ticket (the per-IP limit, the room
// claim, and one step that consumes the nonce, which also records the
// proof), on each store; a refused proof makes no call past the limit.
func TestDPoPAddsNoStoreCall(t *testing.T) {
	for _, storeKind := range []string{"memory", "redis"} {
		t.Run(storeKind, func(t *testing.T) {
			bs, k, _ := dpopBrokers(t, storeKind, 1)
			b := bs[0]
			key := newDPoPKey(t)
			calls := func() map[string]int {
				out := map[string]int{}
				for _, line := range strings.Split(do(t, "GET", b.URL+"/metrics", "", nil).Raw, "\n") {
					if name, rest, ok := strings.Cut(line, "voicebroker_store_duration_seconds_count{op=\""); ok && name == "" {
						op, _, _ := strings.Cut(rest, "\"")
						var n int
						fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &n)
						out[op] += n
					}
				}
				return out
			}
			delta := func(f func()) map[string]int {
				before := calls()
				f()
				after := calls()
				for op, n := range before {
					after[op] -= n
					if after[op] == 0 {
						delete(after, op)
					}
				}
				return after
			}
			bearer, bound := b.mint(t, k.acme, flo), b.mintBound(t, key)
			refused := b.mintBound(t, key)
			want := map[string]int{"rate_limit": 1, "claim_room": 1, "consume_nonce": 1}
			if got := delta(func() { expect(t, b.connectWith(t, bearer), 201, "") }); !maps.Equal(got, want) {
				t.Fatalf("bearer /connect store calls %v, want %v", got, want)
			}
			want = map[string]int{"rate_limit": 1, "claim_room": 1, "consume_nonce_dpop": 1}
			if got := delta(func() { expect(t, b.connectWith(t, bound, key.proof(t)), 201, "") }); !maps.Equal(got, want) {
				t.Fatalf("bound /connect store calls %v, want %v", got, want)
			}
			want = map[string]int{"rate_limit": 1}
			if got := delta(func() { expect(t, b.connectWith(t, refused, newDPoPKey(t).proof(t)), 401, "dpop_invalid") }); !maps.Equal(got, want) {
				t.Fatalf("refused proof: store calls %v, want %v", got, want)
			}
		})
	}
}
