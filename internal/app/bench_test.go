package app_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
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
	br := startBroker(b, newKeys(b), vars)
	// Lift globex's limit so the benchmark measures the broker, not the limiter's refusals.
	writeFile(b, br.Dir+"/tenants.yaml", tenantsYAML(br.keys, func(y string) string {
		return strings.Replace(y, "rate_per_minute: 100000", "rate_per_minute: 1000000", 1)
	}))
	sighup(b)
	return br
}

func post(b *testing.B, url, cred string, body []byte, want int) []byte {
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+cred)
	req.Header.Set("Content-Type", "application/json")
	resp, err := benchClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		b.Fatalf("%d %s", resp.StatusCode, data)
	}
	return data
}

var hankBody = []byte(`{"agent":"hank","channel":"webrtc"}`)

func BenchmarkMint(b *testing.B) {
	for _, store := range []string{"memory", "redis"} {
		b.Run(store, func(b *testing.B) {
			br := benchBroker(b, store)
			post(b, br.URL+"/token", br.keys.globex, hankBody, 201) // warm up, and wait for the reload
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					post(b, br.URL+"/token", br.keys.globex, hankBody, 201)
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
				json.Unmarshal(post(b, br.URL+"/token", br.keys.globex, hankBody, 201), &m)
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
					post(b, br.URL+"/token/redeem", br.keys.globex, <-next, 200)
				}
			})
		})
	}
}
