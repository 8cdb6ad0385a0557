package app_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/internal/testenv"
)

// TestRedisClusterEndToEnd: the broker on a 3-master cluster mints, redeems
// once, refuses the replay, and rate-limits.
func TestRedisClusterEndToEnd(t *testing.T) {
	b := startBroker(t, newKeys(t), map[string]string{"BROKER_REDIS_CLUSTER_ADDRS": strings.Join(testenv.RedisClusterAddrs(t), ",")})
	for range 20 { // spread nonces over the slots
		tok := b.mint(t, b.keys.globex, map[string]any{"agent": "hank", "channel": "webrtc"})
		expect(t, do(t, "POST", b.URL+"/token/redeem", b.keys.globex, map[string]string{"token": tok}), 200, "")
		expect(t, do(t, "POST", b.URL+"/token/redeem", b.keys.globex, map[string]string{"token": tok}), 401, "token_used")
	}
	expect(t, do(t, "GET", b.URL+"/readyz", "", nil), 200, "")
}

// durableRedis starts a redis-server that fsyncs every write, so that what
// it acknowledged survives a SIGKILL.
func durableRedis(t *testing.T, port int, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "yes", "--appendfsync", "always", "--dir", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := testenv.WaitTCP(fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// TestRedisKilledUnderLoad: Redis is SIGKILLed while mint and redeem run
// steadily. Every answer is a success or a 503; no ticket handed out lacks
// its nonce (after recovery every untouched ticket redeems); no ticket
// redeems twice; the broker recovers by itself.
func TestRedisKilledUnderLoad(t *testing.T) {
	testenv.Needs(t, "redis-server")
	port, dir := testenv.FreePort(t), t.TempDir()
	redis := durableRedis(t, port, dir)
	b := startBroker(t, newKeys(t), map[string]string{"BROKER_REDIS_URL": fmt.Sprintf("redis://127.0.0.1:%d", port)})
	k := b.keys
	body := map[string]any{"agent": "hank", "channel": "webrtc"}

	var (
		mu        sync.Mutex
		tickets   []string
		redeemed  = map[string]int{}  // 200s per ticket
		ambiguous = map[string]bool{} // redeem answered 503: the nonce may or may not be gone
		bad       atomic.Int32
		minted    atomic.Int32
		mint503   atomic.Int32
		stop      = make(chan struct{})
		wg        sync.WaitGroup
	)
	worker := func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			r, err := tryDo("POST", b.URL+"/token", k.globex, body)
			switch {
			case err != nil:
				bad.Add(1)
				t.Errorf("mint during the run: %v", err)
			case r.Status == 201:
				tok := r.Body["token"].(string)
				mu.Lock()
				tickets = append(tickets, tok)
				mu.Unlock()
				minted.Add(1)
				if i%2 == 0 { // redeem half of them during the run
					rr, err := tryDo("POST", b.URL+"/token/redeem", k.globex, map[string]string{"token": tok})
					mu.Lock()
					switch {
					case err != nil:
						bad.Add(1)
						t.Errorf("redeem during the run: %v", err)
					case rr.Status == 200:
						redeemed[tok]++
					case rr.Status == 503 && rr.code() == "store_unavailable":
						ambiguous[tok] = true
					default:
						bad.Add(1)
						t.Errorf("redeem during the run: %d %s", rr.Status, rr.Raw)
					}
					mu.Unlock()
				}
			case r.Status == 503 && r.code() == "store_unavailable":
				mint503.Add(1)
				if _, ok := r.Body["token"]; ok {
					t.Error("a 503 carried a token")
				}
			default:
				bad.Add(1)
				t.Errorf("mint during the run: %d %s", r.Status, r.Raw)
			}
		}
	}
	for range 4 {
		wg.Add(1)
		go worker()
	}
	eventually(t, "tickets minted before the kill", func() bool { return minted.Load() >= 20 })
	redis.Process.Signal(syscall.SIGKILL)
	redis.Wait()
	eventually(t, "a mint answered 503 while Redis is down", func() bool { return mint503.Load() > 0 })
	durableRedis(t, port, dir) // restarts from its append-only file
	after := minted.Load()
	eventually(t, "mints succeeding after the restart", func() bool { return minted.Load() >= after+20 })
	close(stop)
	wg.Wait()

	if mint503.Load() == 0 {
		t.Fatal("no request saw the outage: the test proved nothing")
	}
	// Recovery: every ticket that was never redeemed must redeem now, exactly once.
	lost := 0
	for _, tok := range tickets {
		r := do(t, "POST", b.URL+"/token/redeem", k.globex, map[string]string{"token": tok})
		switch {
		case redeemed[tok] == 1:
			if r.code() != "token_used" {
				t.Errorf("a redeemed ticket redeemed again: %d %s", r.Status, r.Raw)
			}
		case ambiguous[tok]:
			// GETDEL may have run before the crash; either answer is fail-closed.
			if r.Status != 200 && r.code() != "token_used" {
				t.Errorf("ambiguous ticket: %d %s", r.Status, r.Raw)
			}
		case r.Status != 200:
			lost++
			t.Errorf("a ticket handed out without a durable nonce: %d %s", r.Status, r.Raw)
		}
	}
	t.Logf("tickets minted %d, redeemed during the run %d, mint 503s %d, ambiguous redeems %d, lost %d",
		len(tickets), len(redeemed), mint503.Load(), len(ambiguous), lost)
}

// TestRedisPausedPastDeadline: with Redis paused (CLIENT PAUSE) longer than
// the store deadline, requests answer 503 at about the deadline, never
// hang, and no goroutines pile up.
func TestRedisPausedPastDeadline(t *testing.T) {
	testenv.Needs(t, "redis-server")
	port := testenv.FreePort(t)
	if _, err := testenv.StartRedis(port, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("redis-cli", "-p", strconv.Itoa(port), "shutdown", "nosave").Run() })
	b := startBroker(t, newKeys(t), map[string]string{
		"BROKER_REDIS_URL": fmt.Sprintf("redis://127.0.0.1:%d", port), "BROKER_STORE_TIMEOUT": "300ms",
	})
	body := map[string]any{"agent": "hank", "channel": "webrtc"}
	b.mint(t, b.keys.globex, body)
	client.CloseIdleConnections()
	before := runtime.NumGoroutine() // at most a few closing connections high: a lenient baseline

	if out, err := exec.Command("redis-cli", "-p", strconv.Itoa(port), "client", "pause", "4000", "ALL").CombinedOutput(); err != nil {
		t.Fatalf("client pause: %v %s", err, out)
	}
	var wg sync.WaitGroup
	var slowest atomic.Int64
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			r, err := tryDo("POST", b.URL+"/token", b.keys.globex, body)
			if d := time.Since(start); int64(d) > slowest.Load() {
				slowest.Store(int64(d))
			}
			switch {
			case err != nil:
				t.Errorf("paused Redis: %v", err)
			case r.Status != 503 || r.code() != "store_unavailable":
				t.Errorf("paused Redis: %d %s", r.Status, r.Raw)
			}
		}()
	}
	wg.Wait()
	if d := time.Duration(slowest.Load()); d > 2*time.Second {
		t.Fatalf("slowest answer %v with a 300ms store deadline", d)
	}
	t.Logf("slowest 503 with Redis paused: %v", time.Duration(slowest.Load()))
	// After the pause the broker serves again, and the goroutine count settles.
	deadline := time.Now().Add(15 * time.Second)
	for do(t, "POST", b.URL+"/token", b.keys.globex, body).Status != 201 {
		if time.Now().After(deadline) {
			t.Fatal("no recovery after the pause")
		}
		time.Sleep(100 * time.Millisecond)
	}
	client.CloseIdleConnections()
	deadline = time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before+5 {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines %d, were %d before the pause", runtime.NumGoroutine(), before)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSIGTERMUnderLoad: a broker process under steady load gets SIGTERM:
// requests in flight finish, later ones are refused at the socket (never a
// half answer), and the process exits 0.
func TestSIGTERMUnderLoad(t *testing.T) {
	k := newKeys(t)
	seed := startBroker(t, k, nil)
	p := startProcess(t, map[string]string{
		"BROKER_CONFIG": seed.Dir + "/tenants.yaml", "BROKER_SIGNING_KEY_FILE": seed.KeyFile,
		"BROKER_REDIS_URL": nextRedisURL(t),
	})
	body := []byte(`{"agent":"hank","channel":"webrtc"}`)
	var ok, refused atomic.Int32
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				switch outcome, detail := mintDuringShutdown(p.URL+"/token", k.globex, body); outcome {
				case "refused":
					refused.Add(1)
					time.Sleep(5 * time.Millisecond) // back off from a closed port
				case "ok":
					ok.Add(1)
				default:
					t.Errorf("during shutdown: %s", detail)
				}
			}
		}()
	}
	eventually(t, "mints served before SIGTERM", func() bool { return ok.Load() >= 20 })
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(25 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	eventually(t, "a request refused after the exit", func() bool { return refused.Load() > 0 })
	close(stop)
	wg.Wait()
	if p.err != nil {
		t.Fatalf("exit status %v\n%s", p.err, p.stderr.String())
	}
	t.Logf("served %d, refused at the socket %d", ok.Load(), refused.Load())
	if strings.Contains(p.stderr.String(), `"level":"ERROR"`) {
		t.Fatalf("errors during shutdown:\n%s", p.stderr.String())
	}
}

// mintDuringShutdown sends one mint and says how it ended: "ok" (201 with
// a whole answer), "refused" (not one byte of an answer: the connection was
// refused, reset or closed before the server took the request), or
// "failed" with what went wrong (another status, or an answer cut short).
func mintDuringShutdown(url, cred string, body []byte) (outcome, detail string) {
	var answered atomic.Bool
	trace := &httptrace.ClientTrace{GotFirstResponseByte: func() { answered.Store(true) }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "POST", url, bytes.NewReader(body))
	if err != nil {
		return "failed", err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+cred)
	resp, err := client.Do(req)
	if err != nil {
		if answered.Load() {
			return "failed", "an answer cut short: " + err.Error()
		}
		return "refused", err.Error()
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	switch {
	case err != nil:
		return "failed", fmt.Sprintf("%d with a body cut short: %v", resp.StatusCode, err)
	case resp.StatusCode != 201 || !bytes.Contains(data, []byte(`"token"`)):
		return "failed", fmt.Sprintf("%d %s", resp.StatusCode, data)
	}
	return "ok", ""
}

// TestMintDuringShutdownTellsRefusalsFromCutAnswers: the SIGTERM test's
// classifier counts as refused only what got no answer at all; an answer
// cut short, in its head or its body, is a failure.
func TestMintDuringShutdownTellsRefusalsFromCutAnswers(t *testing.T) {
	// serve answers every connection with reply, after reading the request.
	serve := func(reply string) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				http.ReadRequest(bufio.NewReader(c))
				io.WriteString(c, reply)
				c.Close()
			}
		}()
		return "http://" + l.Addr().String()
	}
	closedPort := fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t))
	for _, tc := range []struct {
		name, url, want string
	}{
		{"connection refused", closedPort, "refused"},
		{"closed without a byte", serve(""), "refused"},
		{"whole answer", serve("HTTP/1.1 201 Created\r\nContent-Length: 15\r\n\r\n{\"token\":\"t.t\"}"), "ok"},
		{"head cut short", serve("HTTP/1.1 201 Crea"), "failed"},
		{"body cut short", serve("HTTP/1.1 201 Created\r\nContent-Length: 100\r\n\r\n{\"token\":"), "failed"},
		{"another status", serve("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\n{}"), "failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, detail := mintDuringShutdown(tc.url+"/token", "sk", []byte(`{}`)); got != tc.want {
				t.Fatalf("%s (%s), want %s", got, detail, tc.want)
			}
		})
	}
}
