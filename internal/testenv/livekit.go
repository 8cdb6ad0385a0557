package testenv

import (
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// LiveKit is a real livekit-server (v1.13.5) running on loopback for one
// test, with its own key, ports and webhook target.
type LiveKit struct {
	URL       string // ws://127.0.0.1:port
	APIKey    string
	APISecret string
	t         testing.TB
	args      []string
	port      int
	mu        sync.Mutex
	cmd       *exec.Cmd
}

// LiveKitBinary finds livekit-server: VB_LIVEKIT_BIN (set by scripts/test.sh),
// then livekit-server on PATH, then the go install location. Missing, the
// test fails: it is never skipped.
func LiveKitBinary(t testing.TB) string {
	t.Helper()
	Needs(t, "livekit-server")
	candidates := []string{os.Getenv("VB_LIVEKIT_BIN")}
	if p, err := exec.LookPath("livekit-server"); err == nil {
		candidates = append(candidates, p)
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		candidates = append(candidates, filepath.Join(strings.TrimSpace(string(out)), "bin", "server"))
	}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if out, err := exec.Command(c, "--version").Output(); err == nil && strings.Contains(string(out), "livekit-server") {
			return c
		}
	}
	t.Fatal("livekit-server not found: run scripts/test.sh, which builds it (go install github.com/livekit/livekit-server/cmd/server@v1.13.5)")
	return ""
}

// StartLiveKit starts a livekit-server in dev mode on free loopback ports,
// sending webhooks to webhookURL (may be empty), and stops it at cleanup.
func StartLiveKit(t testing.TB, webhookURL string) *LiveKit {
	t.Helper()
	return StartLiveKitWithKey(t, webhookURL, "testkey", "vb-test-secret-0123456789abcdef0123456789")
}

// StartLiveKitWithKey is StartLiveKit with its own API key and secret (at
// least 32 characters), for tests that run several LiveKit projects.
func StartLiveKitWithKey(t testing.TB, webhookURL, apiKey, apiSecret string) *LiveKit {
	t.Helper()
	return StartLiveKitWithKeys(t, webhookURL, apiKey, apiSecret, nil)
}

// StartLiveKitWithKeys is StartLiveKitWithKey with more API keys (key to
// secret) on the same server, as a self-hosted deployment serving several
// projects has: every key sees and makes rooms in one namespace. The
// LiveKit's APIKey signs the webhooks.
func StartLiveKitWithKeys(t testing.TB, webhookURL, apiKey, apiSecret string, more map[string]string) *LiveKit {
	t.Helper()
	bin := LiveKitBinary(t)
	port, tcp, udp := FreePort(t), FreePort(t), FreeUDPPort(t)
	lk := &LiveKit{
		URL:       fmt.Sprintf("ws://127.0.0.1:%d", port),
		APIKey:    apiKey,
		APISecret: apiSecret,
		t:         t,
		port:      port,
	}
	body := fmt.Sprintf("port: %d\nrtc: {tcp_port: %d, udp_port: %d, use_external_ip: false}\nlogging: {level: warn}\n", port, tcp, udp)
	if webhookURL != "" {
		body += fmt.Sprintf("webhook: {api_key: %s, urls: ['%s']}\n", lk.APIKey, webhookURL)
	}
	keys := lk.APIKey + ": " + lk.APISecret
	for _, k := range slices.Sorted(maps.Keys(more)) {
		keys += "\n" + k + ": " + more[k]
	}
	lk.args = []string{bin, "--dev", "--bind", "127.0.0.1", "--node-ip", "127.0.0.1",
		"--keys", keys, "--config-body", body}
	lk.Start()
	t.Cleanup(lk.Stop)
	return lk
}

// Start (re)starts the server on the same ports and waits until it answers.
func (lk *LiveKit) Start() {
	lk.t.Helper()
	lk.mu.Lock()
	defer lk.mu.Unlock()
	if lk.cmd != nil {
		return
	}
	cmd := exec.Command(lk.args[0], lk.args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lk.t.Fatal(err)
	}
	lk.cmd = cmd
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", lk.port))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			lk.t.Fatalf("livekit-server did not answer on port %d", lk.port)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills the server and waits for it to exit.
func (lk *LiveKit) Stop() {
	lk.mu.Lock()
	defer lk.mu.Unlock()
	if lk.cmd == nil {
		return
	}
	lk.cmd.Process.Signal(syscall.SIGKILL)
	lk.cmd.Wait()
	lk.cmd = nil
	WaitClosed(lk.t, fmt.Sprintf("127.0.0.1:%d", lk.port))
}

// HTTPURL is the server's API base.
func (lk *LiveKit) HTTPURL() string { return fmt.Sprintf("http://127.0.0.1:%d", lk.port) }
