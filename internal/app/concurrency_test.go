package app_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/internal/testenv"
)

// brokerBinary compiles cmd/broker once per test binary, with the race
// detector when the tests have it (scripts/test.sh), without under a plain
// `go test`, which then reuses the packages it has just built.
var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

func brokerBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vb-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "broker")
		args := []string{"build", "-o", buildPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/broker")...)
		cmd.Dir = testenv.RepoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// process is a broker running as its own OS process.
type process struct {
	URL    string
	cmd    *exec.Cmd
	stderr *syncBuffer
	exited chan struct{} // closed when the process has exited
	err    error         // its exit status, once exited is closed
}

// startProcess runs the broker binary with env and waits until /healthz answers.
func startProcess(t testing.TB, env map[string]string) *process {
	t.Helper()
	port := testenv.FreePort(t)
	cmd := exec.Command(brokerBinary(t))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), fmt.Sprintf("BROKER_ADDR=127.0.0.1:%d", port)}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &process{URL: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd, stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	cmd.Stdout = p.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(25 * time.Second):
			cmd.Process.Kill()
		}
	})
	if err := testenv.WaitTCP(fmt.Sprintf("127.0.0.1:%d", port), 30*time.Second); err != nil {
		t.Fatalf("broker process did not start: %v\n%s", err, p.stderr.String())
	}
	return p
}

// TestConcurrentRedemptionAcrossProcesses: one ticket, 200 concurrent
// redemptions spread over 3 broker processes sharing one Redis: exactly one
// succeeds, every other is token_used.
func TestConcurrentRedemptionAcrossProcesses(t *testing.T) {
	k := newKeys(t)
	seed := startBroker(t, k, nil) // writes the tenants file and signing key
	env := map[string]string{
		"BROKER_CONFIG":           seed.Dir + "/tenants.yaml",
		"BROKER_SIGNING_KEY_FILE": seed.KeyFile,
		"BROKER_PUBLIC_URL":       "http://broker.test",
		"BROKER_REDIS_URL":        nextRedisURL(t),
	}
	procs := []*process{startProcess(t, env), startProcess(t, env), startProcess(t, env)}

	for round := range 3 {
		tok := func() string {
			r := do(t, "POST", procs[round].URL+"/token", k.globex, map[string]any{"agent": "hank", "channel": "webrtc"})
			expect(t, r, 201, "")
			return r.Body["token"].(string)
		}()
		var ok, used, other atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 200 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				r, err := tryDo("POST", procs[i%3].URL+"/token/redeem", k.globex, map[string]string{"token": tok})
				switch {
				case err != nil:
					other.Add(1)
					t.Errorf("redeem: %v", err)
				case r.Status == 200:
					ok.Add(1)
				case r.Status == 401 && r.code() == "token_used":
					used.Add(1)
				default:
					other.Add(1)
					t.Errorf("unexpected %d %s", r.Status, r.Raw)
				}
			}()
		}
		close(start)
		wg.Wait()
		if ok.Load() != 1 || used.Load() != 199 || other.Load() != 0 {
			t.Fatalf("round %d: %d succeeded, %d token_used, %d other; want 1/199/0", round, ok.Load(), used.Load(), other.Load())
		}
	}
}

// TestConcurrentRedemptionInProcess: the same with the memory store.
func TestConcurrentRedemptionInProcess(t *testing.T) {
	b := startBroker(t, newKeys(t), map[string]string{})
	tok := b.mint(t, b.keys.globex, map[string]any{"agent": "hank", "channel": "webrtc"})
	var ok, used atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, err := tryDo("POST", b.URL+"/token/redeem", b.keys.globex, map[string]string{"token": tok})
			switch {
			case err != nil:
				t.Errorf("redeem: %v", err)
			case r.Status == 200:
				ok.Add(1)
			case r.Status == 401 && r.code() == "token_used":
				used.Add(1)
			default:
				t.Errorf("unexpected %d %s", r.Status, r.Raw)
			}
		}()
	}
	close(start)
	wg.Wait()
	if ok.Load() != 1 || used.Load() != 199 {
		t.Fatalf("%d succeeded, %d token_used; want 1/199", ok.Load(), used.Load())
	}
}

// TestRedisDownFailsClosed: with Redis stopped, mint and redeem answer 503
// store_unavailable within 2 s and /readyz turns 503; when Redis is back the
// broker recovers by itself. Tickets minted before the outage still redeem
// afterwards only if Redis kept them (here it restarts empty: token_used).
func TestRedisDownFailsClosed(t *testing.T) {
	testenv.Needs(t, "redis-server")
	port := testenv.FreePort(t)
	dir := t.TempDir()
	addr, err := testenv.StartRedis(port, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("redis-cli", "-p", fmt.Sprint(port), "shutdown", "nosave").Run() })
	b := startBroker(t, newKeys(t), map[string]string{"BROKER_REDIS_URL": "redis://" + addr})
	k := b.keys
	tok := b.mint(t, k.globex, map[string]any{"agent": "hank", "channel": "webrtc"})
	expect(t, do(t, "GET", b.URL+"/readyz", "", nil), 200, "")

	if out, err := exec.Command("redis-cli", "-p", fmt.Sprint(port), "shutdown", "nosave").CombinedOutput(); err != nil {
		t.Fatalf("redis shutdown: %v %s", err, out)
	}
	testenv.WaitClosed(t, addr)

	for _, tc := range []struct {
		path, cred string
		body       any
	}{
		{"/token", k.globex, map[string]any{"agent": "hank", "channel": "webrtc"}},
		{"/token/redeem", k.globex, map[string]string{"token": tok}},
	} {
		start := time.Now()
		r := do(t, "POST", b.URL+tc.path, tc.cred, tc.body)
		if elapsed := time.Since(start); elapsed > 2*time.Second {
			t.Fatalf("%s took %v with Redis down, want under 2s", tc.path, elapsed)
		}
		expect(t, r, 503, "store_unavailable")
		if _, leaked := r.Body["token"]; leaked {
			t.Fatal("a token was handed out without its nonce")
		}
	}
	expect(t, do(t, "GET", b.URL+"/readyz", "", nil), 503, "store_unavailable")
	expect(t, do(t, "GET", b.URL+"/healthz", "", nil), 200, "")

	if _, err := testenv.StartRedis(port, dir); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := do(t, "POST", b.URL+"/token", k.globex, map[string]any{"agent": "hank", "channel": "webrtc"})
		if r.Status == 201 {
			fresh := r.Body["token"].(string)
			expect(t, do(t, "POST", b.URL+"/token/redeem", k.globex, map[string]string{"token": fresh}), 200, "")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after Redis came back: %d %s", r.Status, r.Raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
	expect(t, do(t, "GET", b.URL+"/readyz", "", nil), 200, "")
}

// TestGracefulShutdown: SIGTERM lets an in-flight request finish and the
// process exits 0. The request announces its body with Expect:
// 100-continue, so the server's "100 Continue" shows it reached a handler;
// the body is sent only once the listener is closed, that is once the
// shutdown is under way.
func TestGracefulShutdown(t *testing.T) {
	k := newKeys(t)
	seed := startBroker(t, k, nil)
	p := startProcess(t, map[string]string{
		"BROKER_CONFIG": seed.Dir + "/tenants.yaml", "BROKER_SIGNING_KEY_FILE": seed.KeyFile,
	})
	addr := strings.TrimPrefix(p.URL, "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	body := `{"agent":"hank","channel":"webrtc"}`
	fmt.Fprintf(conn, "POST /token HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"+
		"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n", addr, k.globex, len(body))
	br := bufio.NewReader(conn)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
		t.Fatalf("no 100 Continue: %q %v", line, err)
	}
	if line, err := br.ReadString('\n'); err != nil || line != "\r\n" {
		t.Fatalf("after 100 Continue: %q %v", line, err)
	}

	p.cmd.Process.Signal(syscall.SIGTERM)
	testenv.WaitClosed(t, addr) // new connections are refused: the shutdown has begun
	if _, err := io.WriteString(conn, body); err != nil {
		t.Fatalf("writing the body after SIGTERM: %v", err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("in-flight request: %v", err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 || !strings.Contains(string(answer), `"token"`) {
		t.Fatalf("in-flight request got %d %s, want 201 with a ticket", resp.StatusCode, answer)
	}
	select {
	case <-p.exited:
		if p.err != nil {
			t.Fatalf("exit: %v\n%s", p.err, p.stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("broker did not exit after SIGTERM")
	}
	if !strings.Contains(p.stderr.String(), `"event":"shutdown"`) {
		t.Fatal("shutdown not logged")
	}
	sc := bufio.NewScanner(strings.NewReader(p.stderr.String()))
	for sc.Scan() {
		if strings.Contains(sc.Text(), `"level":"ERROR"`) {
			t.Fatalf("error during shutdown: %s", sc.Text())
		}
	}
}
