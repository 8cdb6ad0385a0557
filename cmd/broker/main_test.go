package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/apikey"
)

func runCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb, func(string) string { return "" })
	return code, out.String(), errb.String()
}

// TestKeysNew: the printed key is well formed, its hash is in the stanza,
// and the stanza pasted into a tenants file authenticates that key.
func TestKeysNew(t *testing.T) {
	code, out, errOut := runCmd("keys", "new", "--org", "acme", "--id", "prod-v2", "--scopes", "tokens:create,tokens:redeem")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	key := regexp.MustCompile(`(?m)^sk_live_[0-9A-Za-z]{43}$`).FindString(out)
	if key == "" {
		t.Fatalf("no key in output:\n%s", out)
	}
	if !strings.Contains(out, apikey.Hash(key)) || !strings.Contains(out, "scopes: [tokens:create, tokens:redeem]") {
		t.Fatalf("stanza does not carry the hash and scopes:\n%s", out)
	}
	stanza := out[strings.Index(out, "      - id: prod-v2"):]
	file := "orgs:\n  - id: acme\n    tier: free\n    keys:\n" + stanza
	ten, err := config.Parse([]byte(file))
	if err != nil {
		t.Fatalf("printed stanza does not parse: %v\n%s", err, file)
	}
	if k := ten.KeyByHash(apikey.Hash(key)); k == nil || k.ID != "prod-v2" {
		t.Fatal("printed stanza does not hold the key")
	}

	code, out, _ = runCmd("keys", "new", "--publishable", "--org", "acme", "--agent", "florencia", "--env", "test")
	pk := regexp.MustCompile(`(?m)^pk_test_[0-9A-Za-z]{43}$`).FindString(out)
	if code != 0 || pk == "" || !strings.Contains(out, apikey.Hash(pk)) {
		t.Fatalf("publishable: exit %d\n%s", code, out)
	}

	for _, bad := range [][]string{
		{"keys", "new", "--org", "acme", "--id", "x"},                              // no scopes
		{"keys", "new", "--org", "acme", "--id", "x", "--scopes", "tokens:delete"}, // unknown scope
		{"keys", "new", "--org", "Acme", "--id", "x", "--scopes", "tokens:create"}, // bad org
		{"keys", "new", "--org", "acme", "--id", "x", "--scopes", "rooms:read", "--env", "prod"},
		{"keys", "new", "--publishable", "--org", "acme"},                   // no agent
		{"keys", "new", "--publishable", "--org", "acme", "--agent", "a_b"}, // underscore
	} {
		if code, out, errOut := runCmd(bad...); code == 0 || out != "" || errOut == "" {
			t.Errorf("%v: exit %d, stdout %q", bad, code, out)
		}
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("orgs:\n  - id: acme\n    tier: free\n"), 0o600)
	if code, out, _ := runCmd("config", "check", good); code != 0 || !strings.Contains(out, "ok (1 orgs: acme)") {
		t.Fatalf("good file: %d %s", code, out)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("orgs:\n  - id: acme\n    tier: gold\n    keys:\n      - id: k\n        hash: nope\n        scopes: [x]\n"), 0o600)
	code, _, errOut := runCmd("config", "check", bad)
	if code == 0 || !strings.Contains(errOut, "3 problem(s)") || !strings.Contains(errOut, "orgs[0].tier") ||
		!strings.Contains(errOut, "orgs[0].keys[0].hash") || !strings.Contains(errOut, "orgs[0].keys[0].scopes[0]") {
		t.Fatalf("bad file: %d %s", code, errOut)
	}
	// Mistakes of every kind at once: one run lists them all, in the
	// order of the file's lines.
	many := filepath.Join(dir, "many.yaml")
	os.WriteFile(many, []byte("orgs:\n  - id: acme\n    tier: gold\n    colour: red\n    keys:\n      - id: k\n        hash: nope\n        scopes: [x]\n        revoked: yes\n        expires_at: soon\n    agents:\n      - {id: bot, channels: webrtc}\n"), 0o600)
	code, _, errOut = runCmd("config", "check", many)
	want := []string{"orgs[0].tier", "orgs[0].colour", "orgs[0].keys[0].hash", "orgs[0].keys[0].scopes[0]", "orgs[0].keys[0].revoked", "orgs[0].keys[0].expires_at", "orgs[0].agents[0].channels"}
	at := 0
	for _, w := range want {
		i := strings.Index(errOut[at:], "\n  "+w+": ")
		if i < 0 {
			t.Fatalf("many mistakes: %q missing or out of line order:\n%s", w, errOut)
		}
		at += i + 1
	}
	if code != 1 || !strings.Contains(errOut, "7 problem(s)") {
		t.Fatalf("many mistakes: exit %d:\n%s", code, errOut)
	}
	if code, _, _ := runCmd("config", "check", filepath.Join(dir, "missing.yaml")); code == 0 {
		t.Fatal("missing file passed")
	}
}

// TestUsage: a command line the broker does not take is exit 2 with one
// line saying what is wrong, then the usage; help is the usage alone.
func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, `broker: unknown command "frobnicate"`},
		{[]string{"servee"}, `broker: unknown command "servee"`},
		{[]string{"config", "chek", "x"}, `broker: unknown command "config chek"`},
		{[]string{"keys", "old"}, `broker: unknown command "keys old"`},
		{[]string{"config"}, "broker: config needs a subcommand: config check"},
		{[]string{"config", "check"}, "broker: config check takes one FILE, got 0 arguments"},
		{[]string{"config", "check", "a", "b"}, "broker: config check takes one FILE, got 2 arguments"},
		{[]string{"serve", "now"}, `broker: serve takes no arguments, got "now"`},
		{[]string{"migrate", "up"}, `broker: migrate takes no arguments, got "up"`},
		{[]string{"tenants", "imprt", "x"}, `broker: unknown command "tenants imprt"`},
		{[]string{"tenants"}, "broker: tenants needs a subcommand: tenants import FILE, or tenants export"},
		{[]string{"tenants", "import"}, "broker: tenants import takes one FILE, got 0 arguments"},
	} {
		code, out, errOut := runCmd(tc.args...)
		first, rest, _ := strings.Cut(errOut, "\n")
		if code != 2 || first != tc.want || !strings.HasPrefix(rest, "usage:") || out != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %q then the usage", tc.args, code, out, errOut, tc.want)
		}
	}
	if code, out, errOut := runCmd("help"); code != 0 || !strings.HasPrefix(out, "usage:") || errOut != "" {
		t.Fatalf("help: exit %d, %q, %q", code, out, errOut)
	}
	if code, out, _ := runCmd("version"); code != 0 || strings.TrimSpace(out) == "" {
		t.Fatal("version")
	}
}

// TestServeRefusesBadEnvironment: production without its requirements does
// not start, and says which variables are missing.
func TestServeRefusesBadEnvironment(t *testing.T) {
	var out, errb bytes.Buffer
	env := map[string]string{"BROKER_ENV": "production"}
	code := run(nil, &out, &errb, func(k string) string { return env[k] })
	if code == 0 || !strings.Contains(errb.String(), "BROKER_SIGNING_KEY_FILE") || !strings.Contains(errb.String(), "BROKER_REDIS_URL") {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}

// TestLogWriter: lines reach the output after the flush interval and on
// Close, and none is lost or torn.
func TestLogWriter(t *testing.T) {
	var out safeBuffer
	w := newLogWriter(&out)
	for i := range 1000 {
		fmt.Fprintf(w, "line %d\n", i)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "line 999\n") {
		if time.Now().After(deadline) {
			t.Fatal("not flushed by the interval")
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Fprintf(w, "last\n")
	w.Close()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 1001 || lines[1000] != "last" || lines[500] != "line 500" {
		t.Fatalf("%d lines", len(lines))
	}
}

type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *safeBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestPublishableStanzaPastes: the public: block that keys new
// --publishable prints, pasted as is under the agent of a tenants file
// written as the README shows it, loads and holds the key, with or without
// --origins.
func TestPublishableStanzaPastes(t *testing.T) {
	const head = "orgs:\n  - id: acme\n    tier: free\n    agents:\n      - id: florencia\n        channels: [webrtc]\n"
	const tail = "      - id: texter\n        channels: [chat]\n"
	for _, args := range [][]string{
		{"keys", "new", "--publishable", "--org", "acme", "--agent", "florencia"},
		{"keys", "new", "--publishable", "--org", "acme", "--agent", "florencia", "--origins", "https://www.acme.example, https://*.acme.example,http://localhost:*"},
	} {
		code, out, errOut := runCmd(args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		pk := regexp.MustCompile(`(?m)^pk_live_[0-9A-Za-z]{43}$`).FindString(out)
		i := strings.Index(out, "        public:")
		if pk == "" || i < 0 {
			t.Fatalf("no key or no public: block at agent-field indentation:\n%s", out)
		}
		file := head + out[i:] + tail
		ten, err := config.Parse([]byte(file))
		if err != nil {
			t.Fatalf("pasted stanza does not load: %v\n%s", err, file)
		}
		a := ten.PublishableByHash(apikey.Hash(pk))
		if a == nil || a.ID != "florencia" || ten.Org("acme").Agent("texter") == nil {
			t.Fatalf("pasted stanza does not hold the key for the agent:\n%s", file)
		}
		if len(args) > 7 {
			for o, want := range map[string]bool{"https://www.acme.example": true, "https://a.acme.example": true, "http://localhost:3000": true, "https://acme.example": false} {
				if _, ok := a.Origins().Allow(o); ok != want {
					t.Errorf("pasted origins: Allow(%s) = %v", o, ok)
				}
			}
		}
	}
	if code, _, errOut := runCmd("keys", "new", "--publishable", "--org", "acme", "--agent", "a", "--origins", "https://*.github.io"); code == 0 || !strings.Contains(errOut, "--origins") {
		t.Fatalf("a public-suffix wildcard was accepted: %d %s", code, errOut)
	}
	if code, _, _ := runCmd("keys", "new", "--org", "acme", "--id", "k", "--scopes", "tokens:create", "--origins", "https://a.example"); code == 0 {
		t.Fatal("--origins accepted for a secret key")
	}
}

// TestSetGC: with neither GOGC nor GOMEMLIMIT set, the broker runs at
// gcPercent; either one set leaves the runtime's setting alone.
func TestSetGC(t *testing.T) {
	prev, prevLimit := debug.SetGCPercent(100), debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetGCPercent(prev); debug.SetMemoryLimit(prevLimit) })
	const cgroup = 1 << 30
	for _, tc := range []struct {
		name      string
		env       map[string]string
		inCgroup  bool
		want      int
		wantLimit int64
	}{
		{"neither set", nil, false, gcPercent, math.MaxInt64},
		{"neither set, in a cgroup with a memory limit", nil, true, gcPercent, cgroup / 10 * 9},
		{"GOGC set", map[string]string{"GOGC": "100"}, true, 100, math.MaxInt64},
		{"GOGC off", map[string]string{"GOGC": "off"}, true, 100, math.MaxInt64},
		{"GOGC negative (off, as the runtime reads it)", map[string]string{"GOGC": "-1"}, true, 100, math.MaxInt64},
		{"GOMEMLIMIT set", map[string]string{"GOMEMLIMIT": "512MiB"}, true, 100, math.MaxInt64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetGCPercent(100) // what the runtime would have applied
			debug.SetMemoryLimit(math.MaxInt64)
			if err := setGC(func(name string) string { return tc.env[name] }, func() (int64, bool) { return cgroup, tc.inCgroup }); err != nil {
				t.Fatal(err)
			}
			if got := debug.SetGCPercent(100); got != tc.want {
				t.Fatalf("GC percent %d, want %d", got, tc.want)
			}
			if got := debug.SetMemoryLimit(-1); got != tc.wantLimit {
				t.Fatalf("memory limit %d, want %d", got, tc.wantLimit)
			}
		})
	}
}

// TestServeRefusesBadGOGC: a GOGC the runtime cannot read (which it would
// replace with 100 without a word) stops broker serve before anything
// else, with a message naming GOGC and what it accepts.
func TestServeRefusesBadGOGC(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	for _, v := range []string{"abc", "400%", "+400", " 400", "1.5", "99999999999", "-", "OFF"} {
		t.Run(v, func(t *testing.T) {
			var out, errb bytes.Buffer
			env := map[string]string{"GOGC": v, "BROKER_ADDR": "127.0.0.1:0"}
			code := run([]string{"serve"}, &out, &errb, func(k string) string { return env[k] })
			msg := errb.String()
			if code != 1 || !strings.HasPrefix(msg, "broker: GOGC: ") || !strings.Contains(msg, "or off") || strings.Count(msg, "\n") != 1 {
				t.Fatalf("exit %d, stderr %q", code, msg)
			}
			if out.Len() != 0 {
				t.Fatalf("stdout %q: the broker started", out.String())
			}
		})
	}
}

// TestCgroupMemoryMax reads a cgroup v2 memory.max where /proc/self/cgroup
// says the process is, in a tree of files made for each case.
func TestCgroupMemoryMax(t *testing.T) {
	for _, tc := range []struct {
		name, cgroup, path, max string
		want                    int64
		ok                      bool
	}{
		{"a container's limit", "0::/\n", "", "1073741824\n", 1 << 30, true},
		{"a nested cgroup", "0::/system.slice/broker.service\n", "system.slice/broker.service", "536870912\n", 1 << 29, true},
		{"no limit", "0::/\n", "", "max\n", 0, false},
		{"cgroup v1 only", "12:memory:/docker/abc\n", "", "1073741824\n", 0, false},
		{"no memory.max", "0::/elsewhere\n", "", "1073741824\n", 0, false},
		{"a path that climbs stays under the root", "0::/../../\n", "", "1073741824\n", 1 << 30, true},
		{"garbage", "0::/\n", "", "lots\n", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for name, content := range map[string]string{
				"proc/self/cgroup": tc.cgroup, filepath.Join("sys/fs/cgroup", tc.path, "memory.max"): tc.max,
			} {
				if err := os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, ok := cgroupMemoryMaxAt(root)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("got %d %v, want %d %v", got, ok, tc.want, tc.ok)
			}
		})
	}
	if _, ok := cgroupMemoryMaxAt(t.TempDir()); ok {
		t.Fatal("a limit without /proc/self/cgroup")
	}
}
