package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/app"
	"github.com/voicebroker/voicebroker/internal/jsonlog"
	"github.com/voicebroker/voicebroker/pkg/token"
)

// Benchmarks of the broker's handlers in process, without a network: what
// the broker itself costs per request (CPU and allocations), next to the
// floor's handler (Echo, the same signature, nothing else). The harness
// (bench/) measures the whole system over loopback.

// inProcess builds an App on the memory store whose log lines are
// discarded (the broker buffers its own) after being formatted by the
// broker's own logger (jsonlog), and returns its handler and keys.
func inProcess(b *testing.B, vars map[string]string) (http.Handler, keys) {
	b.Helper()
	k := newKeys(b)
	dir := b.TempDir()
	cfg := filepath.Join(dir, "tenants.yaml")
	writeFile(b, cfg, tenantsYAML(k, func(y string) string {
		y = strings.Replace(y, "rate_per_minute: 100000", "rate_per_minute: 1000000", 1)
		return strings.Replace(y, "  - id: acme\n    tier: free\n", "  - id: acme\n    tier: enterprise\n    rate_per_minute: 1000000\n", 1)
	}))
	keyFile := filepath.Join(dir, "signing.pem")
	sk, _ := token.GenerateKey(token.EdDSA)
	pemData, _ := sk.MarshalPEM()
	writeFile(b, keyFile, string(pemData))
	env := map[string]string{
		"BROKER_CONFIG": cfg, "BROKER_SIGNING_KEY_FILE": keyFile, "BROKER_PUBLIC_URL": "http://broker.test",
		"BROKER_PUBLIC_RATE_PER_MINUTE": "1000000",
	}
	for n, v := range vars {
		env[n] = v
	}
	e, err := config.LoadEnv(func(name string) string { return env[name] })
	if err != nil {
		b.Fatal(err)
	}
	a, err := app.New(e, jsonlog.New(io.Discard))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Close() })
	return a.Handler(), k
}

func serve(b *testing.B, h http.Handler, path, cred string, body []byte, want int, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", path, bytes.NewReader(body))
	req.RemoteAddr = "192.0.2.1:1234"
	req.Header.Set("Content-Type", "application/json")
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != want {
		b.Fatalf("%s: %d %s", path, w.Code, w.Body)
	}
	return w
}

func BenchmarkHandlerMint(b *testing.B) {
	h, k := inProcess(b, nil)
	b.ReportAllocs()
	for b.Loop() {
		serve(b, h, "/token", k.globex, hankBody, 201)
	}
}

// BenchmarkHandlerMintMetadata is BenchmarkHandlerMint with 16 string
// members of metadata, of about 500 B and 2 KiB (the harness's metadata
// dimension).
func BenchmarkHandlerMintMetadata(b *testing.B) {
	h, k := inProcess(b, nil)
	for _, size := range []int{500, 2000} {
		var md []string
		for i := range 16 {
			md = append(md, fmt.Sprintf(`"k%02d":"%s"`, i, strings.Repeat("x", size/16-8)))
		}
		body := []byte(`{"agent":"hank","channel":"webrtc","metadata":{` + strings.Join(md, ",") + `}}`)
		b.Run(fmt.Sprintf("%d B", size), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				serve(b, h, "/token", k.globex, body, 201)
			}
		})
	}
}

func BenchmarkHandlerPublicToken(b *testing.B) {
	h, k := inProcess(b, nil)
	body := []byte(`{"agent":"florencia","channel":"chat"}`)
	b.ReportAllocs()
	for b.Loop() {
		serve(b, h, "/public/token", k.pk, body, 201, "Origin", "https://demo.acme.example")
	}
}

func BenchmarkHandlerRedeem(b *testing.B) {
	h, k := inProcess(b, nil)
	bodies := make([][]byte, 0, 1<<16)
	mint := func() {
		var m struct{ Token string }
		json.Unmarshal(serve(b, h, "/token", k.globex, hankBody, 201).Body.Bytes(), &m)
		body, _ := json.Marshal(map[string]string{"token": m.Token})
		bodies = append(bodies, body)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == len(bodies) {
			b.StopTimer()
			bodies, i = bodies[:0], 0
			for range 1000 {
				mint()
			}
			b.StartTimer()
		}
		serve(b, h, "/token/redeem", k.globex, bodies[i], 200)
		i++
	}
}

// BenchmarkHandlerFloor is the floor's handler (bench/floor.go) in process.
func BenchmarkHandlerFloor(b *testing.B) {
	key, _ := token.GenerateKey(token.EdDSA)
	issuer, _ := token.NewIssuer(key, "http://broker.test", time.Minute)
	e := echo.New()
	e.POST("/token", func(c echo.Context) error {
		var req struct{ Agent, Channel string }
		if err := c.Bind(&req); err != nil {
			return err
		}
		s, _, err := issuer.Mint(token.Ticket{Org: "bench", Agent: req.Agent, Channel: req.Channel, Identity: "user"})
		if err != nil {
			return err
		}
		return c.JSON(http.StatusCreated, map[string]any{"token": s, "server": "http://localhost:8080", "expiresIn": 60})
	})
	b.ReportAllocs()
	for b.Loop() {
		serve(b, e, "/token", "", hankBody, 201)
	}
}
