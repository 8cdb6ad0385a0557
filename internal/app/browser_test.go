package app_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/examples/widget"
	"github.com/voicebroker/voicebroker/internal/testenv"
)

// The browser tests drive the widget (examples/widget, built into dist/
// and embedded in the broker) in Debian's headless Chromium through
// examples/widget/e2e.mjs (playwright-core), against real brokers, a real
// livekit-server, a real agent worker (examples/agent) and the real
// tokenProvider backend (examples/backend). Screenshots of every state go
// to artifacts/ (VB_ARTIFACTS_DIR to change it).

// Levels (RMS, full scale 1.0) from which audio counts as heard: speech
// from the fake microphone measures 0.05 to 0.35, the agent's greeting
// 0.21, silence 0 to 0.0005.
const (
	heardRMS  = 0.01
	heardPeak = 0.02
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

func chromium() string {
	if c := os.Getenv("CHROMIUM"); c != "" {
		return c
	}
	return "/usr/bin/chromium"
}

func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("VB_ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join(testenv.RepoRoot(t), "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser is one headless Chromium driven through e2e.mjs: one JSON
// command a line in, one JSON answer a line out.
type browser struct {
	t       *testing.T
	cmd     *exec.Cmd
	in      io.WriteCloser
	answers chan string
	stderr  *syncBuffer
	shots   []string
}

// widgetState is what the widget shows (e2e.mjs's snapshot).
type widgetState struct {
	State, Code, Status, Step, Sentence, ErrorLine, PageText string
	Buttons                                                  []string
	Participants                                             []struct {
		Identity, Kind, Mic string
		Speaking            bool
	}
	Levels struct {
		Mic, Agent struct {
			RMS       float64 `json:"rms"`
			Peak      float64 `json:"peak"`
			AudibleMs int     `json:"audibleMs"`
		}
	}
	LevelsShown   bool
	Facts         map[string]string
	AudioElements int
	Console       []string
}

// kinds returns the participants' kinds by identity.
func (s widgetState) kinds() map[string]string {
	m := map[string]string{}
	for _, p := range s.Participants {
		m[p.Identity] = p.Kind
	}
	return m
}

// startBrowser starts Chromium with a fake microphone playing fakeMic (a
// WAV file; "" for Chromium's beep); env adds e2e.mjs's settings
// (MIC_PERMISSION=deny).
func startBrowser(t *testing.T, fakeMic string, env ...string) *browser {
	t.Helper()
	testenv.Needs(t, "Node.js and Chromium")
	dir := filepath.Join(testenv.RepoRoot(t), "examples", "widget")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		t.Fatal("examples/widget/node_modules is missing: run scripts/test.sh (it runs npm ci there)")
	}
	if _, err := os.Stat(chromium()); err != nil {
		t.Fatalf("%s is missing: run scripts/test.sh (it installs Debian's chromium)", chromium())
	}
	cmd := exec.Command("node", "e2e.mjs")
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "CHROMIUM="+chromium(), "FAKE_MIC="+fakeMic), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	b := &browser{t: t, cmd: cmd, answers: make(chan string, 1), stderr: &syncBuffer{}}
	cmd.Stderr = b.stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	b.in = in
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			b.answers <- sc.Text()
		}
		close(b.answers)
	}()
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() {
			io.WriteString(in, `{"op":"close"}`+"\n")
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-done
			}
			if t.Failed() {
				t.Logf("e2e.mjs stderr:\n%s", b.stderr.String())
			}
		})
	})
	return b
}

// do runs one command and returns its result; an error fails the test.
func (b *browser) do(op string, args map[string]any) json.RawMessage {
	b.t.Helper()
	cmd := map[string]any{"op": op}
	for k, v := range args {
		cmd[k] = v
	}
	line, _ := json.Marshal(cmd)
	if _, err := b.in.Write(append(line, '\n')); err != nil {
		b.t.Fatalf("e2e.mjs %s: %v\n%s", op, err, b.stderr.String())
	}
	var answer struct {
		OK     bool
		Result json.RawMessage
		Error  string
	}
	select {
	case raw, ok := <-b.answers:
		if !ok {
			b.t.Fatalf("e2e.mjs exited during %s\n%s", op, b.stderr.String())
		}
		if err := json.Unmarshal([]byte(raw), &answer); err != nil {
			b.t.Fatalf("e2e.mjs answer %q: %v", raw, err)
		}
	case <-time.After(120 * time.Second):
		b.t.Fatalf("e2e.mjs: no answer to %s within 120s\n%s", op, b.stderr.String())
	}
	if !answer.OK {
		b.t.Fatalf("e2e.mjs %s %s: %s", op, line, answer.Error)
	}
	return answer.Result
}

func (b *browser) open(url string) { b.do("goto", map[string]any{"url": url}) }

func (b *browser) click(selector string) { b.do("click", map[string]any{"selector": selector}) }

func (b *browser) fill(selector, value string) {
	b.do("fill", map[string]any{"selector": selector, "value": value})
}

func (b *browser) snapshot() widgetState {
	b.t.Helper()
	var s widgetState
	if err := json.Unmarshal(b.do("snapshot", nil), &s); err != nil {
		b.t.Fatal(err)
	}
	return s
}

// wait waits until the widget's state is one of states and returns what
// it shows; another state after the wait's 60 s fails the test.
func (b *browser) wait(states ...string) widgetState {
	b.t.Helper()
	var s widgetState
	if err := json.Unmarshal(b.do("wait", map[string]any{"states": states, "timeoutMs": 60000}), &s); err != nil {
		b.t.Fatal(err)
	}
	return s
}

// restingStates are the widget's states that wait for the user.
var restingStates = []string{"error", "ended", "signed-out", "idle", "connected", "muted"}

// expectState waits for one of the widget's resting states other than
// the ones in from, and fails unless it is want.
func (b *browser) expectState(want string, from ...string) widgetState {
	b.t.Helper()
	var states []string
	for _, st := range restingStates {
		if !contains(from, st) {
			states = append(states, st)
		}
	}
	s := b.wait(states...)
	if s.State != want {
		b.t.Fatalf("widget state %q (code %q: %s), want %q\nconsole: %v", s.State, s.Code, s.Sentence, want, s.Console)
	}
	return s
}

// clickTo clicks selector and waits until the widget has left the state
// it was in for another resting state, which must be want. (A click's
// work may end after the click returns: mute, hang-up, sign-in.)
func (b *browser) clickTo(selector, want string) widgetState {
	b.t.Helper()
	from := b.snapshot().State
	if from == want {
		b.t.Fatalf("clickTo %s: the widget is already %s", selector, want)
	}
	b.click(selector)
	return b.expectState(want, from)
}

// poll snapshots the widget until cond holds, for up to within.
func (b *browser) poll(within time.Duration, what string, cond func(widgetState) bool) widgetState {
	b.t.Helper()
	deadline := time.Now().Add(within)
	for {
		s := b.snapshot()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("the page never showed %s: %+v", what, s)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// shot saves a screenshot under the artifacts directory.
func (b *browser) shot(name string) {
	b.t.Helper()
	path := filepath.Join(artifactsDir(b.t), name)
	os.Remove(path)
	b.do("shot", map[string]any{"path": path})
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		b.t.Fatalf("no screenshot at %s: %v", path, err)
	}
	b.shots = append(b.shots, path)
	b.t.Logf("screenshot: %s", path)
}

// startConnecting clicks Start call with /connect held, and checks and
// screenshots the connecting state; /connect stays held until release.
func (b *browser) startConnecting(shot string) {
	b.t.Helper()
	b.do("hold", map[string]any{"suffix": "/connect"})
	b.click(".vb-start")
	deadline := time.Now().Add(60 * time.Second)
	for {
		var n int
		json.Unmarshal(b.do("held", nil), &n)
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("the widget never called /connect: %+v", b.snapshot())
		}
		time.Sleep(100 * time.Millisecond)
	}
	s := b.snapshot()
	if s.State != "connecting" || !contains(s.Buttons, "Cancel") || !strings.Contains(s.Step, "ticket") {
		b.t.Fatalf("while /connect is pending the widget shows %+v", s)
	}
	b.shot(shot)
}

// speechWAV makes the fake microphone's WAV file with espeak-ng.
func speechWAV(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("espeak-ng")
	if err != nil {
		t.Fatal("espeak-ng is missing: run scripts/test.sh (it installs it with apt-get)")
	}
	path := filepath.Join(t.TempDir(), "speech.wav")
	if out, err := exec.Command(bin, "-w", path, "Hello agent. This is the voice broker test speaking. One, two, three, four, five.").CombinedOutput(); err != nil {
		t.Fatalf("espeak-ng: %v\n%s", err, out)
	}
	return path
}

var (
	backendOnce sync.Once
	backendBin  string
	backendErr  error
)

// startBackend builds and runs examples/backend (the tokenProvider backend)
// as its own process on a loopback port, for agent with key, and returns its URL.
func startBackend(t *testing.T, brokerURL, key, agent, users string) string {
	t.Helper()
	backendOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vb-backend-")
		if err != nil {
			backendErr = err
			return
		}
		backendBin = filepath.Join(dir, "backend")
		cmd := exec.Command("go", "build", "-o", backendBin, "./examples/backend")
		cmd.Dir = testenv.RepoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			backendErr = fmt.Errorf("go build ./examples/backend: %v\n%s", err, out)
		}
	})
	if backendErr != nil {
		t.Fatal(backendErr)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cmd := exec.Command(backendBin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "ADDR=" + addr, "VB_BROKER_URL=" + brokerURL,
		"VB_SECRET_KEY=" + key, "VB_AGENT=" + agent, "VB_USERS=" + users}
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if strings.Contains(logs.String(), key) {
			t.Errorf("the backend logged its secret key")
		}
	})
	if err := testenv.WaitTCP(addr, 30*time.Second); err != nil {
		t.Fatalf("backend did not start: %v\n%s", err, logs.String())
	}
	return "http://" + addr
}

// startVoiceBroker runs a broker with a real LiveKit whose public URL is
// its own loopback address (the address the browser trades tickets at).
func startVoiceBroker(t *testing.T, k keys, vars map[string]string) (*broker, *testenv.LiveKit) {
	t.Helper()
	testenv.Needs(t, "livekit-server")
	// The webhooks go through a forwarder bound before LiveKit starts, and
	// the broker's port (its public URL) is picked only once LiveKit is up,
	// which could otherwise take it in between.
	hook := testenv.NewForwarder(t)
	lk := testenv.StartLiveKit(t, hook.URL+"/livekit/webhook")
	port := testenv.FreePort(t)
	env := map[string]string{
		"BROKER_ADDR":                   fmt.Sprintf("127.0.0.1:%d", port),
		"BROKER_PUBLIC_URL":             fmt.Sprintf("http://127.0.0.1:%d", port),
		"LIVEKIT_URL":                   lk.URL,
		"LIVEKIT_API_KEY":               lk.APIKey,
		"LIVEKIT_API_SECRET":            lk.APISecret,
		"BROKER_PUBLIC_RATE_PER_MINUTE": "1000",
	}
	for name, v := range vars {
		env[name] = v
	}
	b := startBroker(t, k, env)
	hook.To(t, b.URL)
	return b, lk
}

// allowOrigins rewrites the tenants so florencia's public mode accepts
// origins; requireDPoP makes florencia take sender-constrained tickets only.
func allowOrigins(t *testing.T, b *broker, k keys, requireDPoP bool, origins ...string) {
	t.Helper()
	list := `"https://demo.acme.example"`
	for _, o := range origins {
		list += fmt.Sprintf(", %q", o)
	}
	b.rewriteTenants(t, tenantsYAML(k, func(y string) string {
		if requireDPoP {
			y = strings.Replace(y, "      - id: florencia\n", "      - id: florencia\n        require_dpop: true\n", 1)
		}
		return strings.Replace(y, `allowed_origins: ["https://demo.acme.example"]`, "allowed_origins: ["+list+"]", 1)
	}), "ok")
}

// jwtLike matches anything shaped like a JWT (tickets, LiveKit tokens).
var jwtLike = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}`)

// noSecretsShown fails if the page's text or console holds a key or a token.
func noSecretsShown(t *testing.T, s widgetState, secrets ...string) {
	t.Helper()
	all := s.PageText + "\n" + strings.Join(s.Console, "\n")
	for _, secret := range secrets {
		if secret != "" && strings.Contains(all, secret) {
			t.Fatalf("the page shows or logs a key")
		}
	}
	if jwtLike.MatchString(all) || regexp.MustCompile(`\b[sp]k_(live|test)_[A-Za-z0-9]{10,}`).MatchString(all) {
		t.Fatalf("the page shows or logs a token or key: %q", jwtLike.FindString(all))
	}
}

// TestWidgetInRealBrowser: served from an allowed origin, the widget gets a
// ticket, trades it and reaches "connected" in a real LiveKit room; served
// from another loopback origin it shows origin_not_allowed with its
// sentence, and nothing is minted.
func TestWidgetInRealBrowser(t *testing.T) {
	testenv.Needs(t, "Node.js, Chromium and livekit-server")
	allowedPage, otherPage := serveWidget(t), serveWidget(t)
	k := newKeys(t)
	b, _ := startVoiceBroker(t, k, nil)
	allowOrigins(t, b, k, false, allowedPage)
	q := url.Values{"broker": {b.URL}, "key": {k.pk}, "agent": {"florencia"}}
	br := startBrowser(t, "")

	br.open(allowedPage + "/index.html?" + q.Encode())
	br.expectState("idle")
	ok := br.clickTo(".vb-start", "connected")
	room := ok.Facts["room"]
	if !strings.HasPrefix(room, "agent_florencia_") {
		t.Fatalf("allowed origin: %+v", ok)
	}
	waitParticipantPrefix(t, b, k.acme, room, "user-")
	br.shot("widget-allowed-origin.png")
	noSecretsShown(t, ok, k.pk)

	mintedBefore := metric(t, b, `voicebroker_tokens_minted_total{mode="public",org="acme"}`)
	br.open(otherPage + "/index.html?" + q.Encode())
	br.expectState("idle")
	bad := br.clickTo(".vb-start", "error")
	if bad.Code != "origin_not_allowed" || !strings.Contains(bad.Sentence, otherPage) || !strings.Contains(bad.Sentence, "public.allowed_origins") {
		t.Fatalf("disallowed origin: %+v", bad)
	}
	br.shot("widget-error-origin-not-allowed.png")
	if after := metric(t, b, `voicebroker_tokens_minted_total{mode="public",org="acme"}`); after != mintedBefore {
		t.Fatalf("a ticket was minted for a disallowed origin: %s -> %s", mintedBefore, after)
	}
}

// TestVoiceSessionInRealBrowser: a whole voice call, in both modes, with
// everything real: headless Chromium whose fake microphone plays speech
// (espeak-ng), the broker, livekit-server, the example agent worker
// dispatched by the broker's room configuration and, in tokenProvider mode,
// the example backend. The agent has require_dpop, so each call also
// proves the ticket was bound to the browser's key and the key proved at
// /connect (the backend passing the page's dpop_jkt on). In each mode: the
// agent hears the browser's speech
// (its agent.heard levels), the page hears the agent's answer (an
// AnalyserNode on the agent's track, audible for longer than the agent's
// one-second greeting, so its echo of the speech arrived too), the
// participants are listed, mute reaches the agent, and hang-up ends the
// call for the agent. Each state is screenshotted.
func TestVoiceSessionInRealBrowser(t *testing.T) {
	testenv.Needs(t, "Node.js, Chromium, espeak-ng, livekit-server and the agent worker")
	wav := speechWAV(t)
	k := newKeys(t)
	b, lk := startVoiceBroker(t, k, nil)
	// florencia takes sender-constrained tickets only: a call proves that
	// both modes bound the ticket to the browser's key (DPoP) and proved it.
	allowOrigins(t, b, k, true, b.URL)
	worker := testenv.StartAgentWorker(t, lk, "florencia")
	backend := startBackend(t, b.URL, k.acme, "florencia", "alice:correct-horse-battery")
	br := startBrowser(t, wav)

	t.Run("publishable key", func(t *testing.T) {
		br.t = t
		q := url.Values{"broker": {b.URL}, "key": {k.pk}, "agent": {"florencia"}}
		// The page the development broker serves at /demo/.
		br.open(b.URL + "/demo/index.html?" + q.Encode())
		voiceCall(t, br, worker, b, k, "voice-public", "user-", k.pk)
	})
	t.Run("tokenProvider", func(t *testing.T) {
		br.t = t
		br.open(backend + "/")
		s := br.expectState("signed-out")
		if !strings.Contains(s.Sentence+s.Step, "Sign in") {
			t.Fatalf("signed out: %+v", s)
		}
		br.shot("voice-backend-0-signed-out.png")
		br.fill(`.vb-login input[name="user"]`, "alice")
		br.fill(`.vb-login input[name="password"]`, "wrong-password")
		br.click(`.vb-login button`)
		s = br.poll(30*time.Second, "the refused sign-in", func(s widgetState) bool {
			return s.Code == "login_failed"
		})
		if s.State != "signed-out" || !strings.Contains(s.Sentence, "do not match") {
			t.Fatalf("wrong password: %+v", s)
		}
		br.shot("voice-backend-0-login-failed.png")
		br.fill(`.vb-login input[name="password"]`, "correct-horse-battery")
		if s := br.clickTo(`.vb-login button`, "idle"); s.Facts["signed in as"] != "alice" {
			t.Fatalf("signed in: %+v", s)
		}
		voiceCall(t, br, worker, b, k, "voice-backend", "alice", k.acme)
	})
}

// voiceCall runs one call from the idle widget: start, connecting,
// connected, the agent hears the browser and the page hears the agent,
// mute and unmute, hang up. identity is the caller's identity, or its
// prefix when it ends in "-".
func voiceCall(t *testing.T, br *browser, w *testenv.AgentWorker, b *broker, k keys, shot, identity, secret string) {
	s := br.expectState("idle")
	if !contains(s.Buttons, "Start call") || s.Facts["ticket"] != "bound to this browser (DPoP)" {
		t.Fatalf("idle: %+v", s)
	}
	br.shot(shot + "-1-idle.png")

	br.startConnecting(shot + "-2-connecting.png")
	br.do("release", nil)
	s = br.expectState("connected")
	room, me := s.Facts["room"], s.Facts["you"]
	if !strings.HasPrefix(room, "agent_florencia_") || me == "" ||
		(strings.HasSuffix(identity, "-") && !strings.HasPrefix(me, identity)) || (!strings.HasSuffix(identity, "-") && me != identity) {
		t.Fatalf("connected: %+v", s)
	}

	// The broker's room configuration dispatched the agent to this room,
	// and it took this caller.
	job := w.WaitJob(room)
	if md := jobMetadata(t, job); md.Org != "acme" || md.Agent != "florencia" {
		t.Fatalf("job %v", job)
	}
	w.WaitEvent(90*time.Second, "the browser caller", func(e map[string]any) bool {
		return e["event"] == "agent.caller" && e["room"] == room && e["caller"] == me
	})

	// The agent hears the browser's speech.
	heard := w.WaitEvent(90*time.Second, "non-silent audio from the browser", func(e map[string]any) bool {
		rms, _ := e["rms"].(float64)
		peak, _ := e["peak"].(float64)
		return e["event"] == "agent.heard" && e["room"] == room && e["caller"] == me && rms >= heardRMS && peak >= heardPeak
	})
	t.Logf("the agent heard the browser: rms %v, peak %v over %v frames", heard["rms"], heard["peak"], heard["frames"])

	// The page hears the agent: its greeting (1 s) and then its echo of
	// the speech, so audible for well over a second.
	s = br.poll(90*time.Second, "the agent's audio", func(s widgetState) bool {
		return s.Levels.Agent.AudibleMs >= 3000 && s.Levels.Agent.Peak >= 0.05
	})
	t.Logf("the page heard the agent: peak rms %.4f, audible for %d ms; the microphone: peak rms %.4f, audible for %d ms",
		s.Levels.Agent.Peak, s.Levels.Agent.AudibleMs, s.Levels.Mic.Peak, s.Levels.Mic.AudibleMs)
	if s.AudioElements < 1 || !s.LevelsShown || s.Levels.Mic.Peak < heardPeak {
		t.Fatalf("connected page: %+v", s)
	}
	// Both participants are listed, each with its kind.
	s = br.poll(30*time.Second, "the caller and the agent in the participant list", func(s widgetState) bool {
		kinds := s.kinds()
		return kinds[me] == "you" && kinds["agent-"+job["jobId"].(string)] == "agent"
	})
	br.shot(shot + "-3-connected.png")
	noSecretsShown(t, s, secret)

	// Mute: the widget says so, and the agent sees the caller's track muted
	// and then hears silence.
	s = br.clickTo(".vb-mute", "muted")
	if !contains(s.Buttons, "Unmute") {
		t.Fatalf("muted: %+v", s)
	}
	w.WaitEvent(60*time.Second, "the caller's mute", func(e map[string]any) bool {
		return e["event"] == "agent.caller_muted" && e["room"] == room
	})
	waitSilence(t, w, room)
	br.poll(30*time.Second, "the muted caller", func(s widgetState) bool {
		for _, p := range s.Participants {
			if p.Identity == me {
				return p.Mic == "off"
			}
		}
		return false
	})
	br.shot(shot + "-4-muted.png")
	br.clickTo(".vb-mute", "connected")
	w.WaitEvent(60*time.Second, "the caller's unmute", func(e map[string]any) bool {
		return e["event"] == "agent.caller_unmuted" && e["room"] == room
	})

	// Hang up: the call ends, and the agent sees the caller leave.
	s = br.clickTo(".vb-hangup", "ended")
	if s.Step != "You hung up." || !contains(s.Buttons, "Call again") {
		t.Fatalf("ended: %+v", s)
	}
	w.WaitEvent(60*time.Second, "the caller leaving", func(e map[string]any) bool {
		return e["event"] == "agent.caller_left" && e["room"] == room && e["caller"] == me
	})
	br.shot(shot + "-5-ended.png")
	noSecretsShown(t, s, secret)
}

// waitSilence waits for an agent.heard window of silence in room after the
// caller's latest mute.
func waitSilence(t *testing.T, w *testenv.AgentWorker, room string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		muted := false
		for _, e := range w.Events() {
			if e["room"] != room {
				continue
			}
			switch e["event"] {
			case "agent.caller_muted":
				muted = true
			case "agent.caller_unmuted":
				muted = false
			case "agent.heard":
				if rms, _ := e["rms"].(float64); muted && rms < 0.001 {
					t.Logf("the agent hears silence once muted: rms %v", rms)
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent never heard silence after the caller muted")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestWidgetErrorStates: the widget's error states in a real browser each
// show their sentence: livekit_not_configured names the variables to set,
// a key of another agent names the agent, DPoP turned off for an agent
// with require_dpop says to turn it on, and a refused microphone says
// where to allow it (before any ticket is minted). A call cancelled while
// /connect is pending ends as cancelled. (The sentence of every other code
// is checked against the contract by examples/widget's
// TestEveryErrorCodeHasASentence.)
func TestWidgetErrorStates(t *testing.T) {
	testenv.Needs(t, "Node.js and Chromium")
	k := newKeys(t)
	port := testenv.FreePort(t)
	b := startBroker(t, k, map[string]string{
		"BROKER_ADDR": fmt.Sprintf("127.0.0.1:%d", port), "BROKER_PUBLIC_URL": fmt.Sprintf("http://127.0.0.1:%d", port),
	})
	allowOrigins(t, b, k, false, b.URL)
	br := startBrowser(t, "")
	q := url.Values{"broker": {b.URL}, "key": {k.pk}, "agent": {"florencia"}}
	br.open(b.URL + "/demo/index.html?" + q.Encode())
	br.expectState("idle")
	s := br.clickTo(".vb-start", "error")
	for _, want := range []string{"LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"} {
		if !strings.Contains(s.Sentence, want) {
			t.Fatalf("livekit_not_configured does not name %s: %+v", want, s)
		}
	}
	if s.Code != "livekit_not_configured" || !strings.Contains(s.ErrorLine, "livekit_not_configured") || !contains(s.Buttons, "Try again") {
		t.Fatalf("livekit_not_configured: %+v", s)
	}
	br.shot("widget-error-livekit-not-configured.png")
	noSecretsShown(t, s, k.pk)

	// An unknown agent: the sentence names it.
	q.Set("agent", "nobody")
	br.open(b.URL + "/demo/index.html?" + q.Encode())
	br.expectState("idle")
	s = br.clickTo(".vb-start", "error")
	if s.Code != "unauthorized" || !strings.Contains(s.Sentence, "publishable key for agent nobody") {
		t.Fatalf("another agent's key: %+v", s)
	}
	br.shot("widget-error-unauthorized.png")

	// An agent that takes sender-constrained tickets only, and a page with
	// DPoP turned off: the sentence says to turn it on.
	allowOrigins(t, b, k, true, b.URL)
	q.Set("agent", "florencia")
	q.Set("dpop", "off")
	br.open(b.URL + "/demo/index.html?" + q.Encode())
	if s := br.expectState("idle"); s.Facts["ticket"] != "not bound (DPoP off)" {
		t.Fatalf("dpop=off: %+v", s)
	}
	s = br.clickTo(".vb-start", "error")
	if s.Code != "invalid_request" || !strings.Contains(s.Sentence, "(DPoP)") || !strings.Contains(s.Sentence, "dpop=off") {
		t.Fatalf("require_dpop with DPoP off: %+v", s)
	}
	br.shot("widget-error-dpop-required.png")

	// Cancel while /connect is pending.
	q.Del("dpop")
	br.open(b.URL + "/demo/index.html?" + q.Encode())
	br.expectState("idle")
	br.startConnecting("widget-cancel-1-connecting.png")
	s = br.clickTo(".vb-hangup", "ended")
	if s.Step != "You cancelled the call." || !contains(s.Buttons, "Call again") {
		t.Fatalf("cancelled: %+v", s)
	}
	br.do("release", nil)
	br.shot("widget-cancel-2-ended.png")

	// A browser that refuses the microphone: nothing is minted.
	mintedBefore := metric(t, b, `voicebroker_tokens_minted_total{mode="public",org="acme"}`)
	denied := startBrowser(t, "", "MIC_PERMISSION=deny")
	denied.open(b.URL + "/demo/index.html?" + q.Encode())
	denied.expectState("idle")
	s = denied.clickTo(".vb-start", "error")
	if s.Code != "microphone_denied" || !strings.Contains(s.Sentence, b.URL) || !contains(s.Buttons, "Try again") {
		t.Fatalf("microphone refused: %+v", s)
	}
	denied.shot("widget-error-microphone-denied.png")
	if after := metric(t, b, `voicebroker_tokens_minted_total{mode="public",org="acme"}`); after != mintedBefore {
		t.Fatalf("a ticket was minted without a microphone: %s -> %s", mintedBefore, after)
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
