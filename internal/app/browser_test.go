package app_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/examples/widget"
	"github.com/voicebroker/voicebroker/internal/testenv"
)

// serveWidget serves the built widget page on its own loopback origin.
func serveWidget(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.FS(widget.FS())), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "http://" + l.Addr().String()
}

type pageResult struct {
	State, Detail, Room string
	Console             []string
}

// runPage loads url in headless Chromium through examples/widget/e2e.mjs
// and keeps a screenshot in the artifacts directory.
func runPage(t *testing.T, pageURL, shot string) pageResult {
	t.Helper()
	testenv.Needs(t, "Node.js and Chromium")
	dir := filepath.Join(testenv.RepoRoot(t), "examples", "widget")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		t.Fatal("examples/widget/node_modules is missing: run scripts/test.sh (it runs npm ci there)")
	}
	if _, err := os.Stat(chromium()); err != nil {
		t.Fatalf("%s is missing: run scripts/test.sh (it installs Debian's chromium)", chromium())
	}
	artifacts := os.Getenv("VB_ARTIFACTS_DIR")
	if artifacts == "" {
		artifacts = filepath.Join(testenv.RepoRoot(t), "artifacts")
	}
	os.MkdirAll(artifacts, 0o755)
	shotPath := filepath.Join(artifacts, shot)
	cmd := exec.Command("node", "e2e.mjs", pageURL, shotPath)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium())
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("e2e.mjs: %v\n%s\n%s", err, out, stderr)
	}
	var r pageResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("e2e.mjs output %q: %v", out, err)
	}
	if _, err := os.Stat(shotPath); err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	t.Logf("screenshot: %s", shotPath)
	return r
}

func chromium() string {
	if c := os.Getenv("CHROMIUM"); c != "" {
		return c
	}
	return "/usr/bin/chromium"
}

// TestWidgetInRealBrowser: served from an allowed origin, the widget gets a
// ticket, trades it and reaches "connected" in a real LiveKit room; served
// from another loopback origin it shows origin_not_allowed and nothing is
// minted.
func TestWidgetInRealBrowser(t *testing.T) {
	testenv.Needs(t, "Node.js, Chromium and livekit-server")
	allowedPage, otherPage := serveWidget(t), serveWidget(t)
	k := newKeys(t)
	b, _ := startWithLiveKit(t, k, map[string]string{"BROKER_PUBLIC_RATE_PER_MINUTE": "100"})
	b.rewriteTenants(t, tenantsYAML(k, func(y string) string {
		return strings.Replace(y, `allowed_origins: ["https://demo.acme.example"]`,
			fmt.Sprintf(`allowed_origins: ["https://demo.acme.example", "%s"]`, allowedPage), 1)
	}), "ok")
	q := url.Values{"broker": {b.URL}, "key": {k.pk}, "agent": {"florencia"}, "channel": {"webrtc"}}

	ok := runPage(t, allowedPage+"/index.html?"+q.Encode(), "widget-allowed-origin.png")
	if ok.State != "connected" || !strings.HasPrefix(ok.Room, "agent_florencia_") {
		t.Fatalf("allowed origin: %+v", ok)
	}
	waitParticipantPrefix(t, b, k.acme, ok.Room, "user-")

	mintedBefore := metric(t, b, `voicebroker_tokens_minted_total{mode="public",org="acme"}`)
	bad := runPage(t, otherPage+"/index.html?"+q.Encode(), "widget-disallowed-origin.png")
	if bad.State != "origin_not_allowed" {
		t.Fatalf("disallowed origin: %+v", bad)
	}
	if after := metric(t, b, `voicebroker_tokens_minted_total{mode="public",org="acme"}`); after != mintedBefore {
		t.Fatalf("a ticket was minted for a disallowed origin: %s -> %s", mintedBefore, after)
	}
}

func waitParticipantPrefix(t *testing.T, b *broker, cred, room, prefix string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := do(t, "GET", b.URL+"/livekit/rooms/"+room, cred, nil)
		if strings.Contains(r.Raw, `"identity":"`+prefix) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("browser participant never listed in %s: %s", room, r.Raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
