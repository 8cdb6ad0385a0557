package testenv

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// AgentWorker is a real LiveKit agent worker, examples/agent run with
// `node worker.mjs dev` in its own process group, registered under one
// LiveKit agent name. Its JSON-line events (examples/agent/log.mjs) are read
// from the file it appends them to.
type AgentWorker struct {
	Name    string // the LiveKit agent name it registered under
	events  string // AGENT_LOG_FILE
	output  string // the worker's stdout and stderr
	t       testing.TB
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the worker process has exited
	stopped bool
}

// AgentDir returns examples/agent with its npm packages installed, or
// fails the test saying how to install them (scripts/test.sh does, from the
// lock file, cached under ~/.cache/voicebroker). It is never skipped.
func AgentDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(RepoRoot(t), "examples", "agent")
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not on PATH: the agent worker tests need Node.js 20 or later")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@livekit", "agents", "package.json")); err != nil {
		t.Fatalf("examples/agent has no node_modules: run scripts/test.sh, or `npm ci` in %s", dir)
	}
	return dir
}

// StartAgentWorker starts the example agent worker against lk under the
// LiveKit agent name name and waits until LiveKit has registered it (its
// agent.registered event). It is stopped at cleanup.
func StartAgentWorker(t testing.TB, lk *LiveKit, name string) *AgentWorker {
	t.Helper()
	dir := AgentDir(t)
	tmp := t.TempDir()
	w := &AgentWorker{Name: name, events: filepath.Join(tmp, "events.jsonl"), output: filepath.Join(tmp, "worker.log"), t: t}
	out, err := os.Create(w.output)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command("node", "worker.mjs", "dev", "--log-level", "info")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"LIVEKIT_URL="+lk.URL, "LIVEKIT_API_KEY="+lk.APIKey, "LIVEKIT_API_SECRET="+lk.APISecret,
		"LIVEKIT_AGENT_NAME="+name, "AGENT_LOG_FILE="+w.events, "NO_COLOR=1")
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so the job processes it forks go with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.cmd = cmd
	w.exited = make(chan struct{})
	go func() { cmd.Wait(); close(w.exited) }()
	t.Cleanup(w.Stop)
	w.WaitEvent(60*time.Second, "registration", func(e map[string]any) bool { return e["event"] == "agent.registered" })
	return w
}

// Stop ends the worker and its job processes (SIGTERM, then SIGKILL).
func (w *AgentWorker) Stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	w.stopped = true
	pgid := w.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-w.exited:
	case <-time.After(10 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-w.exited
	}
	// Job processes that outlived the worker.
	syscall.Kill(-pgid, syscall.SIGKILL)
	if w.t.Failed() {
		data, _ := os.ReadFile(w.output)
		if len(data) > 8<<10 {
			data = data[len(data)-8<<10:]
		}
		w.t.Logf("agent worker %q output (tail):\n%s", w.Name, data)
	}
}

// Events returns the events the worker and its jobs logged so far.
func (w *AgentWorker) Events() []map[string]any {
	data, err := os.ReadFile(w.events)
	if err != nil {
		return nil
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e map[string]any
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

// Jobs returns the worker's agent.job events (one per job a job process
// started), optionally only those for room.
func (w *AgentWorker) Jobs(room string) []map[string]any {
	var out []map[string]any
	for _, e := range w.Events() {
		if e["event"] == "agent.job" && (room == "" || e["room"] == room) {
			out = append(out, e)
		}
	}
	return out
}

// WaitEvent polls the events until one satisfies match, and returns it;
// the test fails after within, naming what.
func (w *AgentWorker) WaitEvent(within time.Duration, what string, match func(map[string]any) bool) map[string]any {
	w.t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, e := range w.Events() {
			if match(e) {
				return e
			}
		}
		select {
		case <-w.exited:
			w.t.Fatalf("agent worker %q exited before its %s", w.Name, what)
		default:
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("agent worker %q: no %s within %s; events: %v", w.Name, what, within, w.Events())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WaitJob waits for the agent.job event of room.
func (w *AgentWorker) WaitJob(room string) map[string]any {
	w.t.Helper()
	return w.WaitEvent(60*time.Second, fmt.Sprintf("job for room %s", room), func(e map[string]any) bool {
		return e["event"] == "agent.job" && e["room"] == room
	})
}
