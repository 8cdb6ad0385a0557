package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/internal/testenv"
	"github.com/voicebroker/voicebroker/pkg/token"
)

// Benchmarks of mint and redeem through the whole HTTP stack on loopback
// (client, net/http, Echo, auth, limiter, signing, store), with each store.
// They report ns/op and allocs/op; the allocations include the client's.

var benchClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

func benchBroker(b *testing.B, store string) *broker {
	vars := map[string]string{}
	if store == "redis" {
		vars["BROKER_REDIS_URL"] = nextRedisURL(b)
	}
	return benchBrokerVars(b, vars)
}

// benchBrokerVars starts a broker whose globex org has the livekit:token
// scope and a limit high enough that the benchmark measures the broker,
// not the limiter's refusals.
func benchBrokerVars(b *testing.B, vars map[string]string) *broker {
	br := startBroker(b, newKeys(b), vars)
	br.rewriteTenants(b, tenantsYAML(br.keys, func(y string) string {
		y = strings.Replace(y, "rate_per_minute: 100000", "rate_per_minute: 1000000", 1)
		return strings.Replace(y, "scopes: [tokens:create, tokens:redeem]\n    agents:\n      - id: hank",
			"scopes: [tokens:create, tokens:redeem, livekit:token]\n    agents:\n      - id: hank", 1)
	}), "ok")
	return br
}

// post sends one request with optional extra header pairs and returns the
// answer's body; unless the status is want it marks the benchmark failed
// with b.Error and returns nil. It runs in RunParallel's goroutines, where
// b.Fatal must not be called: their loops stop on nil.
func post(b *testing.B, url, cred string, body []byte, want int, hdr ...string) []byte {
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := benchClient.Do(req)
	if err != nil {
		b.Error(err)
		return nil
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != want {
		b.Errorf("%d %s %v", resp.StatusCode, data, err)
		return nil
	}
	return data
}

// mustPost is post for the benchmark's own goroutine: it stops the
// benchmark on a failure.
func mustPost(b *testing.B, url, cred string, body []byte, want int, hdr ...string) []byte {
	data := post(b, url, cred, body, want, hdr...)
	if data == nil {
		b.FailNow()
	}
	return data
}

var hankBody = []byte(`{"agent":"hank","channel":"webrtc"}`)

func BenchmarkMint(b *testing.B) {
	for _, store := range []string{"memory", "redis"} {
		b.Run(store, func(b *testing.B) {
			br := benchBroker(b, store)
			mustPost(b, br.URL+"/token", br.keys.globex, hankBody, 201) // warm up
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if post(b, br.URL+"/token", br.keys.globex, hankBody, 201) == nil {
						return
					}
				}
			})
		})
	}
}

func BenchmarkRedeem(b *testing.B) {
	for _, store := range []string{"memory", "redis"} {
		b.Run(store, func(b *testing.B) {
			br := benchBroker(b, store)
			bodies := make([][]byte, b.N)
			for i := range bodies {
				var m struct{ Token string }
				json.Unmarshal(mustPost(b, br.URL+"/token", br.keys.globex, hankBody, 201), &m)
				bodies[i], _ = json.Marshal(map[string]string{"token": m.Token})
			}
			next := make(chan []byte, len(bodies))
			for _, body := range bodies {
				next <- body
			}
			close(next)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if post(b, br.URL+"/token/redeem", br.keys.globex, <-next, 200) == nil {
						return
					}
				}
			})
		})
	}
}

// BenchmarkConnect: ticket to LiveKit token, room creation in a real
// livekit-server included.
func BenchmarkConnect(b *testing.B) {
	port := testenv.FreePort(b)
	lk := testenv.StartLiveKit(b, "")
	br := benchBrokerVars(b, map[string]string{
		"BROKER_ADDR": fmt.Sprintf("127.0.0.1:%d", port), "LIVEKIT_URL": lk.URL,
		"LIVEKIT_API_KEY": lk.APIKey, "LIVEKIT_API_SECRET": lk.APISecret,
		"BROKER_CONNECT_RATE_PER_MINUTE": "1000000",
	})
	tickets := make(chan string, b.N)
	for range b.N {
		var m struct{ Token string }
		json.Unmarshal(mustPost(b, br.URL+"/token", br.keys.globex, hankBody, 201), &m)
		tickets <- m.Token
	}
	close(tickets)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if post(b, br.URL+"/connect", <-tickets, nil, 201) == nil {
				return
			}
		}
	})
}

// BenchmarkConnectDPoP: /connect with a sender-constrained ticket and its
// DPoP proof against /connect with a bearer ticket, side by side on one
// broker per store. Tickets and proofs are made before the timer starts
// (a proof is the client's cost, not the broker's), so the difference is
// what the broker adds: the proof's verification (ES256) and the proof's
// jti recorded in the nonce's store step. LiveKit is configured but
// /connect never calls it.
func BenchmarkConnectDPoP(b *testing.B) {
	key, err := token.GenerateKey(token.ES256)
	if err != nil {
		b.Fatal(err)
	}
	for _, store := range []string{"memory", "redis"} {
		vars := map[string]string{
			"LIVEKIT_URL": hangingLiveKit(b), "LIVEKIT_API_KEY": "testkey",
			"LIVEKIT_API_SECRET": "vb-test-secret-0123456789abcdef0123456789", "BROKER_CONNECT_RATE_PER_MINUTE": "1000000",
		}
		if store == "redis" {
			vars["BROKER_REDIS_URL"] = nextRedisURL(b)
		}
		br := benchBrokerVars(b, vars)
		for _, mode := range []string{"bearer", "dpop"} {
			mintBody := hankBody
			if mode == "dpop" {
				mintBody = []byte(`{"agent":"hank","channel":"webrtc","dpop_jkt":"` + key.ID() + `"}`)
			}
			b.Run(store+"/"+mode, func(b *testing.B) {
				type request struct{ ticket, proof string }
				reqs := make(chan request, b.N+1)
				for range b.N + 1 {
					var m struct{ Token string }
					json.Unmarshal(mustPost(b, br.URL+"/token", br.keys.globex, mintBody, 201), &m)
					r := request{ticket: m.Token}
					if mode == "dpop" {
						if r.proof, err = token.NewDPoPProof(key, "POST", "http://broker.test/connect", time.Now()); err != nil {
							b.Fatal(err)
						}
					}
					reqs <- r
				}
				close(reqs)
				send := func(r request) []byte {
					if r.proof == "" {
						return post(b, br.URL+"/connect", r.ticket, nil, 201)
					}
					return post(b, br.URL+"/connect", r.ticket, nil, 201, "DPoP", r.proof)
				}
				if send(<-reqs) == nil { // warm up
					b.FailNow()
				}
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if send(<-reqs) == nil {
							return
						}
					}
				})
			})
		}
	}
}

// BenchmarkLiveKitToken: /livekit/token for a fresh generated room each time.
func BenchmarkLiveKitToken(b *testing.B) {
	lk := testenv.StartLiveKit(b, "")
	br := benchBrokerVars(b, map[string]string{
		"LIVEKIT_URL": lk.URL, "LIVEKIT_API_KEY": lk.APIKey, "LIVEKIT_API_SECRET": lk.APISecret,
	})
	body := []byte(`{"agent":"hank"}`)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if post(b, br.URL+"/livekit/token", br.keys.globex, body, 201) == nil {
				return
			}
		}
	})
}

// BenchmarkPublicToken: a publishable key from an allowed origin, Redis store.
func BenchmarkPublicToken(b *testing.B) {
	br := benchBrokerVars(b, map[string]string{"BROKER_REDIS_URL": nextRedisURL(b), "BROKER_PUBLIC_RATE_PER_MINUTE": "1000000"})
	br.rewriteTenants(b, tenantsYAML(br.keys, func(y string) string {
		y = strings.Replace(y, "rate_per_minute: 100000", "rate_per_minute: 1000000", 1)
		y = strings.Replace(y, "scopes: [tokens:create, tokens:redeem]\n    agents:\n      - id: hank",
			"scopes: [tokens:create, tokens:redeem, livekit:token]\n    agents:\n      - id: hank", 1)
		return strings.Replace(y, "  - id: acme\n    tier: free\n", "  - id: acme\n    tier: enterprise\n    rate_per_minute: 1000000\n", 1)
	}), "ok")
	body := []byte(`{"agent":"florencia","channel":"chat"}`)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if post(b, br.URL+"/public/token", br.keys.pk, body, 201, "Origin", "https://demo.acme.example") == nil {
				return
			}
		}
	})
}
