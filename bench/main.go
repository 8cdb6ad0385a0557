// Command broker-bench is the load harness: it starts a real redis-server,
// the broker as separate processes (one on the memory store, one on
// Redis), the floor (a minimal Echo server that only signs the same ticket
// with the same key) and the peer (Node.js with livekit-server-sdk), and
// drives each over HTTP with vegeta: closed loop (maximum throughput) and
// open loop (half the Redis broker's peak, the floor at the same rate). It
// then measures how the cost of a mint grows with the tenants file (orgs,
// keys per org, allowed-origin patterns, metadata size), each value on a
// broker of its own. It prints Markdown tables and writes JSON.
//
// The machine is shared, so scenarios are interleaved: every round runs
// each scenario once, ratios are taken within a round, and the tables show
// medians over the rounds.
//
// It is its own module, so that vegeta and the harness's other needs stay
// out of the broker's go.mod. From the repository root:
//
//	make bench
//	go -C bench run . [-runs 3] [-duration 5s] [-workers 32] [-growth=false] [-profile dir] [-out bench.json]
//
// It finds the repository root (the broker's module) by walking up from
// the working directory, builds ./cmd/broker there, and runs the peer from
// bench/peer. /connect signs the LiveKit token locally (the room is
// created when the participant joins), so no livekit-server is needed.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/voicebroker/voicebroker/internal/apikey"
	"github.com/voicebroker/voicebroker/pkg/token"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "floor" {
		floor(os.Args[2:])
		return
	}
	runs := flag.Int("runs", 5, "rounds (medians are reported)")
	duration := flag.Duration("duration", 5*time.Second, "length of each run's measured part")
	warmup := flag.Duration("warmup", time.Second, "length of each run's unmeasured start")
	workers := flag.Uint64("workers", 32, "concurrent connections in closed loop")
	out := flag.String("out", "", "JSON report path (default bench.json at the repository root)")
	growth := flag.Bool("growth", true, "measure how the cost grows with orgs, keys, origins and metadata")
	only := flag.String("only", "", "run only the scenarios whose name contains this (a quick look), besides the floor, the two Redis floors, the peer and the Redis mint, which the ratios and comparisons need")
	before := flag.String("before", "", "a git revision whose broker runs beside this one (memory and Redis), for a before/after in one run")
	profile := flag.String("profile", "", "directory for CPU profiles of the broker (and the floor) in the first round of each scenario")
	flag.Parse()
	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "broker-bench:", err)
		os.Exit(1)
	}
	if *out == "" {
		*out = filepath.Join(root, "bench.json")
	}
	h := &harness{root: root, runs: *runs, duration: *duration, warmup: *warmup, workers: *workers, profileDir: *profile, only: *only, before: *before}
	err = h.run(*out, *growth)
	h.stopAll()
	if err != nil {
		fmt.Fprintln(os.Stderr, "broker-bench:", err)
		os.Exit(1)
	}
}

type harness struct {
	root       string // the broker's module: the repository root
	runs       int
	duration   time.Duration
	warmup     time.Duration
	workers    uint64
	profileDir string
	only       string
	before     string // git revision of the "before" broker, or ""
	dir        string
	bin        string // the broker binary
	keyFile    string // the signing key, shared by the brokers and the floor
	procs      []*exec.Cmd
	sk, pk     string
	redis      string
	nextID     atomic.Int64
	redisCmd   *exec.Cmd
}

const (
	lkKey    = "benchkey"
	lkSecret = "bench-secret-0123456789abcdef0123456789"
	origin   = "http://bench.example"
	// publicURL is every broker's BROKER_PUBLIC_URL and the floor's iss.
	publicURL = "http://localhost:8080"
)

func (h *harness) stopAll() {
	for _, p := range h.procs {
		p.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range h.procs {
		stopWait(p)
	}
	if h.dir != "" {
		os.RemoveAll(h.dir)
	}
}

func stopWait(p *exec.Cmd) {
	p.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.Process.Kill()
		<-done
	}
}

// brokerModule is the module path of the repository root.
const brokerModule = "github.com/voicebroker/voicebroker"

// repoRoot walks up from the working directory to the directory whose
// go.mod declares the broker's module.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil {
			if m := regexp.MustCompile(`(?m)^module\s+(\S+)`).FindSubmatch(data); m != nil && string(m[1]) == brokerModule {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run it inside the voicebroker repository: no go.mod declaring " + brokerModule + " above the working directory")
		}
		dir = parent
	}
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitHTTP(url string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer 200", url)
}

func (h *harness) start(name string, env []string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	logf, _ := os.Create(filepath.Join(h.dir, name+".log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	h.procs = append(h.procs, cmd)
	return cmd, nil
}

// stop ends one process started by start.
func (h *harness) stop(cmd *exec.Cmd) {
	stopWait(cmd)
	for i, p := range h.procs {
		if p == cmd {
			h.procs = append(h.procs[:i], h.procs[i+1:]...)
			break
		}
	}
}

// server is one process under load.
type server struct {
	name  string
	url   string
	pprof string // base URL of net/http/pprof, if any
	redis bool   // a broker on Redis: count store round trips and Redis commands
	cmd   *exec.Cmd
}

// startBroker runs the broker on a tenants file; redis selects the store.
func (h *harness) startBroker(name, tenants string, redis bool, env ...string) (*server, error) {
	return h.startBrokerBin(h.bin, name, tenants, redis, env...)
}

// startBrokerBin is startBroker with another broker binary.
func (h *harness) startBrokerBin(bin, name, tenants string, redis bool, env ...string) (*server, error) {
	cfg := filepath.Join(h.dir, name+".tenants.yaml")
	if err := os.WriteFile(cfg, []byte(tenants), 0o600); err != nil {
		return nil, err
	}
	p, pp := freePort(), freePort()
	env = append([]string{
		fmt.Sprintf("BROKER_ADDR=127.0.0.1:%d", p), fmt.Sprintf("BROKER_PPROF_ADDR=127.0.0.1:%d", pp),
		"BROKER_CONFIG=" + cfg, "BROKER_SIGNING_KEY_FILE=" + h.keyFile, "BROKER_PUBLIC_URL=" + publicURL,
		"BROKER_PUBLIC_RATE_PER_MINUTE=1000000", "BROKER_CONNECT_RATE_PER_MINUTE=1000000",
		// /connect signs the LiveKit token itself and calls no LiveKit API.
		"LIVEKIT_URL=ws://127.0.0.1:1", "LIVEKIT_API_KEY=" + lkKey, "LIVEKIT_API_SECRET=" + lkSecret,
	}, env...)
	if redis {
		env = append(env, "BROKER_REDIS_URL=redis://"+h.redis+"/0")
	}
	cmd, err := h.start(name, env, bin)
	if err != nil {
		return nil, err
	}
	s := &server{name: name, url: fmt.Sprintf("http://127.0.0.1:%d", p), pprof: fmt.Sprintf("http://127.0.0.1:%d", pp), redis: redis, cmd: cmd}
	if err := waitHTTP(s.url + "/readyz"); err != nil {
		log, _ := os.ReadFile(filepath.Join(h.dir, name+".log"))
		return nil, fmt.Errorf("broker %s: %w\n%s", name, err, tail(log, 2000))
	}
	return s, nil
}

// buildAt builds cmd/broker as it was at a git revision.
func (h *harness) buildAt(rev string) (string, error) {
	src := filepath.Join(h.dir, "before-src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	fmt.Fprintln(os.Stderr, "building the broker at", rev)
	archive := exec.Command("sh", "-c", "git archive --format=tar \"$0\" | tar -x -C \"$1\"", rev, src)
	archive.Dir = h.root
	if out, err := archive.CombinedOutput(); err != nil {
		return "", fmt.Errorf("git archive %s: %v\n%s", rev, err, out)
	}
	bin := filepath.Join(h.dir, "broker-before")
	build := exec.Command("go", "build", "-o", bin, "./cmd/broker")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build at %s: %v\n%s", rev, err, out)
	}
	return bin, nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// setup starts redis-server, the two brokers, the floor and the peer.
func (h *harness) setup() (map[string]*server, error) {
	var err error
	if h.dir, err = os.MkdirTemp("", "vb-bench-"); err != nil {
		return nil, err
	}
	servers := map[string]*server{}

	rport := freePort()
	h.redis = "127.0.0.1:" + strconv.Itoa(rport)
	if h.redisCmd, err = h.start("redis", nil, "redis-server", "--port", strconv.Itoa(rport), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", h.dir); err != nil {
		return nil, err
	}

	fmt.Fprintln(os.Stderr, "building the broker")
	h.bin = filepath.Join(h.dir, "broker")
	build := exec.Command("go", "build", "-o", h.bin, "./cmd/broker")
	build.Dir = h.root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %v\n%s", err, out)
	}
	if h.sk, err = apikey.New(apikey.Secret, apikey.Live); err != nil {
		return nil, err
	}
	if h.pk, err = apikey.New(apikey.Publishable, apikey.Live); err != nil {
		return nil, err
	}
	key, _ := token.GenerateKey(token.EdDSA)
	pemData, _ := key.MarshalPEM()
	h.keyFile = filepath.Join(h.dir, "signing.pem")
	os.WriteFile(h.keyFile, pemData, 0o600)

	tenants := fmt.Sprintf(`orgs:
  - id: bench
    tier: enterprise
    rate_per_minute: 1000000
    keys:
      - id: bench
        hash: "%s"
        scopes: [tokens:create, tokens:redeem, livekit:token, rooms:read, rooms:write]
    agents:
      - id: bot
        channels: [webrtc, chat]
        public:
          key_hash: "%s"
          allowed_origins: ["%s"]
`, apikey.Hash(h.sk), apikey.Hash(h.pk), origin)
	for _, store := range []string{"memory", "redis"} {
		if servers[store], err = h.startBroker("broker-"+store, tenants, store == "redis"); err != nil {
			return nil, err
		}
	}
	if h.before != "" {
		bin, err := h.buildAt(h.before)
		if err != nil {
			return nil, err
		}
		for _, store := range []string{"memory", "redis"} {
			if servers["before-"+store], err = h.startBrokerBin(bin, "before-"+store, tenants, store == "redis"); err != nil {
				return nil, err
			}
		}
	}

	fp, fpp := freePort(), freePort()
	self, _ := os.Executable()
	floorCmd, err := h.start("floor", nil, self, "floor", "-addr", fmt.Sprintf("127.0.0.1:%d", fp),
		"-pprof", fmt.Sprintf("127.0.0.1:%d", fpp), "-key", h.keyFile, "-iss", publicURL)
	if err != nil {
		return nil, err
	}
	servers["floor"] = &server{name: "floor", url: fmt.Sprintf("http://127.0.0.1:%d", fp), pprof: fmt.Sprintf("http://127.0.0.1:%d", fpp), cmd: floorCmd}
	fhp := freePort()
	floorHCmd, err := h.start("floor-headers", nil, self, "floor", "-headers", "-addr", fmt.Sprintf("127.0.0.1:%d", fhp), "-key", h.keyFile, "-iss", publicURL)
	if err != nil {
		return nil, err
	}
	servers["floor-headers"] = &server{name: "floor", url: fmt.Sprintf("http://127.0.0.1:%d", fhp), cmd: floorHCmd}
	// The floor with one Redis round trip a ticket, on the broker's own
	// store client: the least a single-use ticket needs (a SET NX of its
	// nonce), and exactly the broker's store step. What they cost the floor
	// is what Redis costs apart from the rest of the broker's work.
	for _, step := range []string{"set", "store"} {
		port, pport := freePort(), freePort()
		cmd, err := h.start("floor-"+step, nil, self, "floor", "-headers", "-redis", "redis://"+h.redis, "-step", step,
			"-addr", fmt.Sprintf("127.0.0.1:%d", port), "-pprof", fmt.Sprintf("127.0.0.1:%d", pport), "-key", h.keyFile, "-iss", publicURL)
		if err != nil {
			return nil, err
		}
		servers["floor-"+step] = &server{name: "floor", url: fmt.Sprintf("http://127.0.0.1:%d", port), pprof: fmt.Sprintf("http://127.0.0.1:%d", pport), redis: true, cmd: cmd}
	}

	peerDir := filepath.Join(h.root, "bench", "peer")
	if _, err := os.Stat(filepath.Join(peerDir, "node_modules", "livekit-server-sdk")); err != nil {
		fmt.Fprintln(os.Stderr, "npm ci (bench/peer)")
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir = peerDir
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("npm ci: %v\n%s", err, out)
		}
	}
	pp := freePort()
	peerCmd, err := h.start("peer", nil, "node", filepath.Join(peerDir, "server.mjs"), strconv.Itoa(pp), lkKey, lkSecret)
	if err != nil {
		return nil, err
	}
	servers["peer"] = &server{name: "peer", url: fmt.Sprintf("http://127.0.0.1:%d", pp), cmd: peerCmd}

	for _, name := range []string{"floor", "floor-headers", "floor-set", "floor-store"} {
		if err := waitHTTP(servers[name].url + "/healthz"); err != nil {
			return nil, err
		}
	}
	if err := waitTCP(servers["peer"].url); err != nil {
		return nil, err
	}
	return servers, nil
}

func waitTCP(url string) error {
	addr := strings.TrimPrefix(url, "http://")
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer", url)
}

// rotated returns 0..n-1 starting at r mod n: the order of round r.
func rotated(n, r int) []int {
	order := make([]int, n)
	for k := range order {
		order[k] = (k + r) % n
	}
	return order
}

// The scenarios the ratios are taken against, found by name.
const (
	floorName  = "floor: sign only (Echo, no auth, no store)"
	peerName   = "peer: Node.js livekit-server-sdk token endpoint"
	mintRedis  = "POST /token (Redis)"
	floorSet   = "floor with the headers and one Redis SET (the store's client)"
	floorStore = "floor with the headers and the broker's store step (Redis)"
)

// ratioScenarios are what the targets' ratios and the Redis floors' lines
// are taken from: -only keeps them whatever it names.
var ratioScenarios = []string{floorName, peerName, mintRedis, floorSet, floorStore}

// scenario is one load shape against one server.
type scenario struct {
	name     string
	srv      *server
	prepare  func(rps float64) (vegeta.Targeter, error) // rps: the last Redis mint rate, to size pre-minted tickets
	wantCode int
}

type result struct {
	Scenario string  `json:"scenario"`
	Mode     string  `json:"mode"`
	Runs     int     `json:"runs"`
	RPS      float64 `json:"rps"`
	P50ms    float64 `json:"p50_ms"`
	P90ms    float64 `json:"p90_ms"`
	P99ms    float64 `json:"p99_ms"`
	P999ms   float64 `json:"p999_ms"`
	Errors   int     `json:"errors"`
	Requests int     `json:"requests"`
	// RatioToFloor and RatioToPeer are medians of the ratios within each round.
	RatioToFloor float64 `json:"ratio_to_floor,omitempty"`
	// RatioToFloorMin and Max are the lowest and highest of those ratios:
	// how far one round is from another on a shared machine.
	RatioToFloorMin float64 `json:"ratio_to_floor_min,omitempty"`
	RatioToFloorMax float64 `json:"ratio_to_floor_max,omitempty"`
	RatioToPeer     float64 `json:"ratio_to_peer,omitempty"`
	// P99ToFloor (open loop) is the median of p99 / the floor's p99 at the same rate.
	P99ToFloor float64 `json:"p99_to_floor,omitempty"`
	RedisCmds  float64 `json:"redis_commands_per_request,omitempty"`
	// RedisReads is redis-server's reads of a client connection per
	// request (total_reads_processed): under 1 when the broker sends the
	// commands of several requests together.
	RedisReads float64 `json:"redis_reads_per_request,omitempty"`
	StoreRTTs  float64 `json:"store_round_trips_per_request,omitempty"`
	// Allocations and bytes allocated per request in the server process,
	// from its own counters (go_memstats_*), so the load generator's are
	// not included.
	AllocsPerReq float64 `json:"server_allocs_per_request,omitempty"`
	BytesPerReq  float64 `json:"server_bytes_per_request,omitempty"`
	// CPU time (user and system) per request of the server process and of
	// redis-server, from /proc: what a request costs, whatever else the
	// machine was running.
	CPUus      float64 `json:"server_cpu_us_per_request,omitempty"`
	RedisCPUus float64 `json:"redis_cpu_us_per_request,omitempty"`
	// GenCPUus is the load generator's (this process's) CPU per request.
	GenCPUus float64 `json:"generator_cpu_us_per_request,omitempty"`
}

func (h *harness) run(outPath string, growth bool) error {
	servers, err := h.setup()
	if err != nil {
		return err
	}
	floorS, peerS, mem, red := servers["floor"], servers["peer"], servers["memory"], servers["redis"]
	mintBody := []byte(`{"agent":"bot","channel":"webrtc"}`)
	var lastMintRPS float64 = 5000
	scenarios := []scenario{
		{name: floorName, srv: floorS, prepare: static(post(floorS.url+"/token", "", mintBody)), wantCode: 201},
		{name: "floor with the broker's six response headers", srv: servers["floor-headers"], prepare: static(post(servers["floor-headers"].url+"/token", "", mintBody)), wantCode: 201},
		{name: floorSet, srv: servers["floor-set"], prepare: static(post(servers["floor-set"].url+"/token", "", mintBody)), wantCode: 201},
		{name: floorStore, srv: servers["floor-store"], prepare: static(post(servers["floor-store"].url+"/token", "", mintBody)), wantCode: 201},
		{name: peerName, srv: peerS, prepare: static(post(peerS.url+"/token", "", []byte(`{"room":"r","identity":"u"}`))), wantCode: 201},
		{name: "POST /token (memory store)", srv: mem, prepare: static(post(mem.url+"/token", h.sk, mintBody)), wantCode: 201},
		{name: mintRedis, srv: red, prepare: static(post(red.url+"/token", h.sk, mintBody)), wantCode: 201},
		{name: "POST /public/token (Redis)", srv: red, prepare: static(post(red.url+"/public/token", h.pk, mintBody, "Origin", origin)), wantCode: 201},
		{name: "POST /token/redeem (Redis)", srv: red, prepare: h.premint(red, "/token/redeem", true), wantCode: 200},
		{name: "POST /connect (Redis)", srv: red, prepare: h.premint(red, "/connect", false), wantCode: 201},
	}
	if bm, br := servers["before-memory"], servers["before-redis"]; bm != nil {
		scenarios = append(scenarios,
			scenario{name: "before: POST /token (memory store)", srv: bm, prepare: static(post(bm.url+"/token", h.sk, mintBody)), wantCode: 201},
			scenario{name: "before: POST /token (Redis)", srv: br, prepare: static(post(br.url+"/token", h.sk, mintBody)), wantCode: 201},
			scenario{name: "before: POST /public/token (Redis)", srv: br, prepare: static(post(br.url+"/public/token", h.pk, mintBody, "Origin", origin)), wantCode: 201},
			scenario{name: "before: POST /token/redeem (Redis)", srv: br, prepare: h.premint(br, "/token/redeem", true), wantCode: 200},
		)
	}
	if h.only != "" {
		var keep []scenario
		for _, sc := range scenarios {
			if slices.Contains(ratioScenarios, sc.name) || strings.Contains(sc.name, h.only) {
				keep = append(keep, sc)
			}
		}
		scenarios = keep
	}

	// Closed loop, interleaved: round r runs every scenario once, starting
	// r places further down the list, so that no scenario always runs in
	// the same place (after the same neighbour, at the same point of a
	// round). The first round keeps the list's order: the Redis mint runs
	// before the scenarios that pre-mint tickets at its rate.
	perRound := make([][]result, h.runs) // [round][scenario]
	for r := range h.runs {
		perRound[r] = make([]result, len(scenarios))
		for _, i := range rotated(len(scenarios), r) {
			sc := scenarios[i]
			res, err := h.attack(sc, 0, r == 0, lastMintRPS)
			if err != nil {
				return fmt.Errorf("%s: %w", sc.name, err)
			}
			if sc.name == mintRedis {
				lastMintRPS = res.RPS
			}
			fmt.Fprintf(os.Stderr, "round %d  %-48s %8.0f req/s  p99 %7.2f ms  errors %d\n", r+1, sc.name, res.RPS, res.P99ms, res.Errors)
			perRound[r][i] = res
		}
	}
	floorAt := slices.IndexFunc(scenarios, func(sc scenario) bool { return sc.name == floorName })
	peerAt := slices.IndexFunc(scenarios, func(sc scenario) bool { return sc.name == peerName })
	var results []result
	for i := range scenarios {
		var runs []result
		var toFloor, toPeer []float64
		for r := range h.runs {
			runs = append(runs, perRound[r][i])
			toFloor = append(toFloor, perRound[r][i].RPS/perRound[r][floorAt].RPS)
			toPeer = append(toPeer, perRound[r][i].RPS/perRound[r][peerAt].RPS)
		}
		m := median(runs)
		m.Mode = "closed"
		m.RatioToFloor, m.RatioToPeer = medianOf(toFloor), medianOf(toPeer)
		m.RatioToFloorMin, m.RatioToFloorMax = slices.Min(toFloor), slices.Max(toFloor)
		results = append(results, m)
	}

	// Open loop at half the Redis mint's median peak, the floor at the same
	// rate in the same round.
	var peak float64
	for _, r := range results {
		if r.Scenario == mintRedis {
			peak = r.RPS
		}
	}
	rate := int(peak / 2)
	// The floor at index 0: every other p99 is taken over its p99 in the same round.
	var open []scenario
	for _, name := range []string{floorName, floorSet, floorStore, mintRedis, "before: " + mintRedis} {
		for _, sc := range scenarios {
			if sc.name == name {
				open = append(open, sc)
			}
		}
	}
	openRuns := make([][]result, len(open)) // [scenario][round]
	for i := range open {
		openRuns[i] = make([]result, h.runs)
	}
	for r := range h.runs {
		for _, i := range rotated(len(open), r) {
			sc := open[i]
			res, err := h.attack(sc, rate, r == 0 && sc.name == mintRedis, lastMintRPS)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "round %d  open %d req/s: %-40s p99 %7.2f ms (errors %d)\n", r+1, rate, sc.name, res.P99ms, res.Errors)
			openRuns[i][r] = res
		}
	}
	p99Ratio := make([][]float64, len(open))
	for i := 1; i < len(open); i++ {
		for r := range h.runs {
			if f := openRuns[0][r].P99ms; f > 0 {
				p99Ratio[i] = append(p99Ratio[i], openRuns[i][r].P99ms/f)
			}
		}
	}
	for i := range open {
		m := median(openRuns[i])
		m.Mode = fmt.Sprintf("open %d req/s", rate)
		m.P99ToFloor = medianOf(p99Ratio[i])
		results = append(results, m)
	}

	var grown []growthRow
	if growth {
		if grown, err = h.growth(red); err != nil {
			return err
		}
	}

	printTable(results)
	printBudgets(results, rate)
	printGrowth(grown)
	up, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\nLoad average at the end (1, 5, 15 min): %s\n", strings.Join(strings.Fields(string(up))[:3], ", "))
	data, _ := json.MarshalIndent(map[string]any{"generated": time.Now().UTC().Format(time.RFC3339), "runs": h.runs,
		"duration": h.duration.String(), "warmup": h.warmup.String(), "workers": h.workers, "results": results, "growth": grown,
		"loadavg": strings.TrimSpace(string(up))}, "", "  ")
	return os.WriteFile(outPath, data, 0o644)
}

func post(url, cred string, body []byte, hdr ...string) vegeta.Target {
	t := vegeta.Target{Method: "POST", URL: url, Body: body, Header: http.Header{"Content-Type": {"application/json"}}}
	if cred != "" {
		t.Header.Set("Authorization", "Bearer "+cred)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		t.Header.Set(hdr[i], hdr[i+1])
	}
	return t
}

func static(t vegeta.Target) func(float64) (vegeta.Targeter, error) {
	return func(float64) (vegeta.Targeter, error) { return vegeta.NewStaticTargeter(t), nil }
}

// cycle is a targeter that goes round ts (for many keys or orgs).
func cycle(ts []vegeta.Target) func(float64) (vegeta.Targeter, error) {
	return func(float64) (vegeta.Targeter, error) {
		var i atomic.Uint64
		return func(t *vegeta.Target) error {
			*t = ts[(i.Add(1)-1)%uint64(len(ts))]
			return nil
		}, nil
	}
}

// premint makes enough tickets on the Redis broker for one run at about
// the last measured mint rate and returns a targeter that uses each once,
// then stops the attack.
func (h *harness) premint(srv *server, path string, asBody bool) func(float64) (vegeta.Targeter, error) {
	return func(rps float64) (vegeta.Targeter, error) {
		n := max(5000, int(rps*(h.warmup+h.duration).Seconds()*1.5))
		toks, err := mintMany(srv.url, h.sk, n)
		if err != nil {
			return nil, err
		}
		var i atomic.Int64
		return func(t *vegeta.Target) error {
			k := i.Add(1) - 1
			if k >= int64(len(toks)) {
				return vegeta.ErrNoTargets
			}
			if asBody {
				*t = post(srv.url+path, h.sk, []byte(`{"token":"`+toks[k]+`"}`))
			} else {
				*t = post(srv.url+path, toks[k], nil)
			}
			return nil
		}, nil
	}
}

func mintMany(base, sk string, n int) ([]string, error) {
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	toks := make([]string, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr error
	var once sync.Once
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				var resp *http.Response
				var err error
				for try := 0; ; try++ {
					req, _ := http.NewRequest("POST", base+"/token", strings.NewReader(`{"agent":"bot","channel":"webrtc"}`))
					req.Header.Set("Authorization", "Bearer "+sk)
					req.Header.Set("Content-Type", "application/json")
					resp, err = c.Do(req)
					if err != nil || resp.StatusCode != http.StatusServiceUnavailable || try == 10 {
						break
					}
					resp.Body.Close() // a store timeout under load: not part of any measurement; again
				}
				if err == nil && resp.StatusCode != http.StatusCreated {
					err = fmt.Errorf("pre-mint: status %d", resp.StatusCode)
				}
				if err != nil {
					once.Do(func() { firstErr = err })
					if resp != nil {
						resp.Body.Close()
					}
					return
				}
				var m struct{ Token string }
				json.NewDecoder(resp.Body).Decode(&m)
				resp.Body.Close()
				toks[i] = m.Token
			}
		}()
	}
	wg.Wait()
	return toks, firstErr
}

// attack runs one scenario: closed loop (rate 0) or open loop at rate,
// for h.warmup and then h.duration. Only the second part is measured: the
// requests sent in it (latency, throughput), and the CPU, allocations and
// Redis counters between its two ends. The warm-up is what any first
// second pays (connections opened, goroutines and buffers grown) and, on
// a shared machine, what it happens to hit; errors count in both parts.
// With profile set and a profile directory given, it records CPU profiles
// of the server and of the generator during the measured part.
func (h *harness) attack(sc scenario, rate int, profile bool, lastRPS float64) (result, error) {
	tr, err := sc.prepare(lastRPS)
	if err != nil {
		return result{}, err
	}
	var pacer vegeta.Pacer = vegeta.Rate{Freq: rate, Per: time.Second}
	opts := []func(*vegeta.Attacker){vegeta.KeepAlive(true), vegeta.Connections(int(h.workers)), vegeta.Timeout(10 * time.Second)}
	if rate == 0 {
		opts = append(opts, vegeta.Workers(h.workers), vegeta.MaxWorkers(h.workers))
	} else {
		// Open loop: requests wait for a connection past this many (the
		// wait counts in their latency) rather than opening thousands.
		opts = append(opts, vegeta.MaxConnections(8*int(h.workers)))
	}
	mode := "closed"
	if rate > 0 {
		mode = "open"
	}
	var (
		base     counters
		measured = make(chan struct{})
		prof     chan error
	)
	a := vegeta.NewAttacker(opts...)
	began := time.Now()
	results := a.Attack(tr, pacer, h.warmup+h.duration, sc.name)
	from := began.Add(h.warmup)
	stopGen := func() {}
	time.AfterFunc(h.warmup, func() {
		defer close(measured)
		base = h.counters(sc.srv)
		if !profile || h.profileDir == "" || sc.srv.pprof == "" {
			return
		}
		prof = make(chan error, 1)
		file := filepath.Join(h.profileDir, slug(sc.name)+"-"+mode+".pprof")
		go func() { prof <- fetchProfile(sc.srv.pprof, file, h.duration-time.Second) }()
		stopGen = startSelfProfile(filepath.Join(h.profileDir, "generator-"+slug(sc.name)+"-"+mode+".pprof"))
	})
	var m vegeta.Metrics
	errs := 0
	codes := map[string]int{}
	for res := range results {
		if res.Error == vegeta.ErrNoTargets.Error() {
			continue // the pre-minted tickets ran out: the end of the run, not a request
		}
		if int(res.Code) != sc.wantCode {
			errs++
			key := strconv.Itoa(int(res.Code))
			if res.Code == 0 {
				key = res.Error
			} else if v := struct{ Error string }{}; json.Unmarshal(res.Body, &v) == nil && v.Error != "" {
				key += " " + v.Error
			}
			codes[key]++
		}
		if !res.Timestamp.Before(from) {
			m.Add(res)
		}
	}
	<-measured
	stopGen()
	end := h.counters(sc.srv)
	if len(codes) > 0 {
		fmt.Fprintf(os.Stderr, "  %s: unexpected answers %v\n", sc.name, codes)
	}
	m.Close()
	if prof != nil {
		if err := <-prof; err != nil {
			fmt.Fprintln(os.Stderr, "  profile:", err)
		}
	}
	r := result{
		Scenario: sc.name, Runs: 1, RPS: m.Throughput, Requests: int(m.Requests), Errors: errs,
		P50ms: ms(m.Latencies.P50), P90ms: ms(m.Latencies.P90), P99ms: ms(m.Latencies.P99), P999ms: ms(m.Latencies.Quantile(0.999)),
	}
	if n := float64(m.Requests); n > 0 {
		if sc.srv.redis {
			r.RedisCmds = float64(end.redisCalls-base.redisCalls) / n
			r.RedisReads = float64(end.redisReads-base.redisReads) / n
			if sc.srv.name != "floor" {
				r.StoreRTTs = float64(end.storeCalls-base.storeCalls) / n
			}
			if base.redisCPU >= 0 {
				r.RedisCPUus = float64(end.redisCPU-base.redisCPU) / float64(time.Microsecond) / n
			}
		}
		if base.cpu >= 0 {
			r.CPUus = float64(end.cpu-base.cpu) / float64(time.Microsecond) / n
		}
		r.GenCPUus = float64(end.gen-base.gen) / float64(time.Microsecond) / n
		if base.mallocs >= 0 {
			r.AllocsPerReq = float64(end.mallocs-base.mallocs) / n
			r.BytesPerReq = float64(end.bytes-base.bytes) / n
		}
	}
	return r, nil
}

// counters are what attack reads at each end of its measured part.
type counters struct {
	redisCalls, redisReads, storeCalls int64
	mallocs, bytes                     int64
	cpu, redisCPU, gen                 time.Duration
}

func (h *harness) counters(srv *server) counters {
	var c counters
	if srv.redis {
		c.redisCalls, c.redisReads = h.redisCalls(), h.redisReads()
		if srv.name != "floor" {
			c.storeCalls = storeCalls(srv.url)
		}
	}
	c.mallocs, c.bytes = serverAllocs(srv)
	c.cpu, c.redisCPU, c.gen = cpuTime(srv.cmd), cpuTime(h.redisCmd), selfCPU()
	return c
}

// startSelfProfile records a CPU profile of the generator (this process)
// in file until the function it returns is called: what a scenario costs
// the client is part of every ratio on a shared machine.
func startSelfProfile(file string) (stop func()) {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return func() {}
	}
	f, err := os.Create(file)
	if err != nil {
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

func slug(s string) string {
	return strings.Trim(regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(s), "-"), "-")
}

func fetchProfile(base, file string, d time.Duration) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	resp, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, max(1, int(d.Seconds()))))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", base, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// redisCalls sums INFO commandstats calls (commands run inside scripts are
// counted too; store round trips come from the broker's own metrics).
func (h *harness) redisCalls() int64 {
	var total int64
	for line := range strings.Lines(h.redisInfo("commandstats")) {
		if m := cmdstatCalls.FindStringSubmatch(line); m != nil && m[1] != "info" {
			n, _ := strconv.ParseInt(m[2], 10, 64)
			total += n
		}
	}
	return total
}

var cmdstatCalls = regexp.MustCompile(`^cmdstat_(\w+):calls=(\d+)`)

// redisInfo is redis-server's INFO section; "" when it cannot be read.
func (h *harness) redisInfo(section string) string {
	host, port, _ := strings.Cut(h.redis, ":")
	out, err := exec.Command("redis-cli", "-h", host, "-p", port, "info", section).Output()
	if err != nil {
		return ""
	}
	return string(out)
}

// redisReads is redis-server's count of reads from client connections
// (one per batch of commands a client sent together), less the one of the
// INFO command asking.
func (h *harness) redisReads() int64 {
	for line := range strings.Lines(h.redisInfo("stats")) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_reads_processed:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n - 1
		}
	}
	return 0
}

// metricSum sums the samples of the metric families named by prefix in a
// Prometheus text exposition.
func metricSum(base, prefix string) (float64, bool) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, false
	}
	data, _ := io.ReadAll(resp.Body)
	var total float64
	found := false
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, prefix+" ") || strings.HasPrefix(line, prefix+"{") {
			f, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			total += f
			found = true
		}
	}
	return total, found
}

// storeCalls sums voicebroker_store_duration_seconds_count: one per round trip.
func storeCalls(base string) int64 {
	v, _ := metricSum(base, "voicebroker_store_duration_seconds_count")
	return int64(v)
}

// serverAllocs reads the server's cumulative allocation count and bytes:
// the broker's Go collector, or the floor's /debug/allocs. -1 if neither.
func serverAllocs(s *server) (int64, int64) {
	if s.name == "floor" {
		resp, err := http.Get(s.url + "/debug/allocs")
		if err != nil {
			return -1, -1
		}
		defer resp.Body.Close()
		var m, b int64
		if _, err := fmt.Fscan(resp.Body, &m, &b); err != nil {
			return -1, -1
		}
		return m, b
	}
	m, ok1 := metricSum(s.url, "go_memstats_mallocs_total")
	b, ok2 := metricSum(s.url, "go_memstats_alloc_bytes_total")
	if !ok1 || !ok2 {
		return -1, -1
	}
	return int64(m), int64(b)
}

func medianOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = append([]float64(nil), v...)
	sort.Float64s(v)
	return v[len(v)/2]
}

func median(rs []result) result {
	med := func(get func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = get(r)
		}
		return medianOf(v)
	}
	out := rs[0]
	out.Runs = len(rs)
	out.RPS = med(func(r result) float64 { return r.RPS })
	out.P50ms = med(func(r result) float64 { return r.P50ms })
	out.P90ms = med(func(r result) float64 { return r.P90ms })
	out.P99ms = med(func(r result) float64 { return r.P99ms })
	out.P999ms = med(func(r result) float64 { return r.P999ms })
	out.RedisCmds = med(func(r result) float64 { return r.RedisCmds })
	out.RedisReads = med(func(r result) float64 { return r.RedisReads })
	out.StoreRTTs = med(func(r result) float64 { return r.StoreRTTs })
	out.AllocsPerReq = med(func(r result) float64 { return r.AllocsPerReq })
	out.BytesPerReq = med(func(r result) float64 { return r.BytesPerReq })
	out.CPUus = med(func(r result) float64 { return r.CPUus })
	out.RedisCPUus = med(func(r result) float64 { return r.RedisCPUus })
	out.GenCPUus = med(func(r result) float64 { return r.GenCPUus })
	out.Errors, out.Requests = 0, 0
	for _, r := range rs {
		out.Errors += r.Errors
		out.Requests += r.Requests
	}
	return out
}

func opt(v float64, f string) string {
	if v == 0 {
		return ""
	}
	return fmt.Sprintf(f, v)
}

func printTable(rs []result) {
	fmt.Printf("\n| scenario | mode | req/s | vs floor | vs peer | p50 ms | p90 ms | p99 ms | p99.9 ms | errors | store RTT/req | Redis cmds/req | Redis reads/req | server CPU µs/req | Redis CPU µs/req | generator CPU µs/req | server allocs/req | server B/req |\n")
	fmt.Printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rs {
		vsFloor, vsPeer := opt(r.RatioToFloor, "%.2f"), opt(r.RatioToPeer, "%.2f")
		if r.Mode != "closed" {
			vsFloor, vsPeer = "", ""
			if r.P99ToFloor != 0 {
				vsFloor = fmt.Sprintf("p99 %.2fx", r.P99ToFloor)
			}
		}
		fmt.Printf("| %s | %s | %.0f | %s | %s | %.2f | %.2f | %.2f | %.2f | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			r.Scenario, r.Mode, r.RPS, vsFloor, vsPeer, r.P50ms, r.P90ms, r.P99ms, r.P999ms, r.Errors,
			opt(r.StoreRTTs, "%.2f"), opt(r.RedisCmds, "%.2f"), opt(r.RedisReads, "%.2f"), opt(r.CPUus, "%.1f"), opt(r.RedisCPUus, "%.1f"), opt(r.GenCPUus, "%.1f"),
			opt(r.AllocsPerReq, "%.0f"), opt(r.BytesPerReq, "%.0f"))
	}
}

func printBudgets(rs []result, rate int) {
	get := func(name, mode string) (result, bool) {
		for _, r := range rs {
			if r.Scenario == name && (r.Mode == "closed") == (mode == "closed") {
				return r, true
			}
		}
		return result{}, false
	}
	check := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	fmt.Printf("\nTargets (ratios within each round, medians of %d rounds, generator on the same machine):\n", rs[0].Runs)
	// The same ratio in CPU per request (the floor's and its generator's,
	// over the scenario's, redis-server's and its generator's): on a shared
	// machine the rounds' rates wander, and what a request costs does not.
	floor, hasFloor := get(floorName, "closed")
	cpuRatio := func(r result) string {
		if !hasFloor || floor.CPUus <= 0 || r.CPUus <= 0 {
			return ""
		}
		return fmt.Sprintf("; in CPU per request %.2f", (floor.CPUus+floor.GenCPUus)/(r.CPUus+r.RedisCPUus+r.GenCPUus))
	}
	ratio := func(name, what string, min float64) {
		if r, ok := get(name, "closed"); ok {
			fmt.Printf("- %s >= %.2fx the floor: %.2f (rounds %.2f to %.2f%s) %s\n", what, min, r.RatioToFloor,
				r.RatioToFloorMin, r.RatioToFloorMax, cpuRatio(r), check(r.RatioToFloor >= min))
		}
	}
	ratio(mintRedis, "POST /token with Redis", 0.8)
	ratio("POST /token (memory store)", "POST /token with the memory store", 0.9)
	ratio("POST /token/redeem (Redis)", "POST /token/redeem with Redis", 0.75)
	ratio("POST /public/token (Redis)", "POST /public/token with Redis", 0.6)
	if r, ok := get(mintRedis, "closed"); ok {
		fmt.Printf("- POST /token with Redis >= 1.5x the Node.js peer: %.2f %s\n", r.RatioToPeer, check(r.RatioToPeer >= 1.5))
		fmt.Printf("- one store round trip per mint: %.2f %s\n", r.StoreRTTs, check(r.StoreRTTs > 0.99 && r.StoreRTTs < 1.01))
	}
	if r, ok := get("POST /token/redeem (Redis)", "closed"); ok {
		fmt.Printf("- one store round trip per redeem: %.2f %s\n", r.StoreRTTs, check(r.StoreRTTs > 0.99 && r.StoreRTTs < 1.01))
	}
	if r, ok := get(mintRedis, "open"); ok {
		fmt.Printf("- p99 at half the Redis peak (%d req/s) <= 1.5x the floor's p99 at that rate: %.2fx (%.2f ms) %s\n",
			rate, r.P99ToFloor, r.P99ms, check(r.P99ToFloor <= 1.5))
	}
	// What a Redis round trip costs the floor itself, in the same run (medians,
	// as every line here): what the Redis targets leave the rest of the broker.
	for _, name := range []string{floorSet, floorStore} {
		c, okc := get(name, "closed")
		o, oko := get(name, "open")
		if okc && oko {
			fmt.Printf("  for comparison, the %s: %.2fx the floor (rounds %.2f to %.2f%s), %.2fx the peer, p99 %.2fx the floor's in the open loop\n",
				name, c.RatioToFloor, c.RatioToFloorMin, c.RatioToFloorMax, cpuRatio(c), c.RatioToPeer, o.P99ToFloor)
		}
	}
	errs := 0
	for _, r := range rs {
		errs += r.Errors
	}
	fmt.Printf("- zero errors: %d %s\n", errs, check(errs == 0))
}

// cpuTime is the user and system CPU time a process has used so far, from
// /proc/<pid>/stat; -1 if unknown.
func cpuTime(cmd *exec.Cmd) time.Duration {
	if cmd == nil || cmd.Process == nil {
		return -1
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		return -1
	}
	// The command name (field 2) may hold spaces; fields count from after it.
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	if len(f) < 13 {
		return -1
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// selfCPU is the CPU time this process (the load generator) has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on Linux.
const clockTicks = 100
