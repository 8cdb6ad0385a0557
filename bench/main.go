// Command broker-bench is the load harness: it starts a real redis-server,
// a real livekit-server, the broker as separate processes (one on the
// memory store, one on Redis), the floor (a minimal Echo server that only
// signs the same ticket with the same key) and the peer (Node.js with
// livekit-server-sdk), and drives each over HTTP with vegeta, closed loop
// (max throughput) and open loop (half the peak). It prints a Markdown
// table and writes JSON.
//
// It is its own module, so that vegeta and the harness's other needs stay
// out of the broker's go.mod. From the repository root:
//
//	make bench
//	go -C bench run . [-runs 3] [-duration 5s] [-workers 32] [-out bench.json]
//
// It finds the repository root (the broker's module) by walking up from
// the working directory, builds ./cmd/broker there, and runs the peer from
// bench/peer.
package main

import (
	"bufio"
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
	"sort"
	"strconv"
	"strings"
	"sync"
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
	runs := flag.Int("runs", 3, "runs per scenario (medians are reported)")
	duration := flag.Duration("duration", 5*time.Second, "length of each closed-loop run")
	workers := flag.Uint64("workers", 32, "concurrent connections in closed loop")
	out := flag.String("out", "", "JSON report path (default bench.json at the repository root)")
	skipAllocs := flag.Bool("skip-allocs", false, "do not run the Go benchmarks for allocations")
	flag.Parse()
	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "broker-bench:", err)
		os.Exit(1)
	}
	if *out == "" {
		*out = filepath.Join(root, "bench.json")
	}
	h := &harness{root: root, runs: *runs, duration: *duration, workers: *workers}
	err = h.run(*out, *skipAllocs)
	h.stopAll()
	if err != nil {
		fmt.Fprintln(os.Stderr, "broker-bench:", err)
		os.Exit(1)
	}
}

type harness struct {
	root     string // the broker's module: the repository root
	runs     int
	duration time.Duration
	workers  uint64
	dir      string
	procs    []*exec.Cmd
	sk, pk   string
	redis    string
	lkURL    string
}

const (
	lkKey    = "benchkey"
	lkSecret = "bench-secret-0123456789abcdef0123456789"
	origin   = "http://bench.example"
)

func (h *harness) stopAll() {
	for _, p := range h.procs {
		p.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range h.procs {
		done := make(chan struct{})
		go func() { p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			p.Process.Kill()
		}
	}
	if h.dir != "" {
		os.RemoveAll(h.dir)
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
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer", url)
}

func (h *harness) start(name string, env []string, args ...string) error {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	logf, _ := os.Create(filepath.Join(h.dir, name+".log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	h.procs = append(h.procs, cmd)
	return nil
}

func livekitBinary() (string, error) {
	cands := []string{os.Getenv("VB_LIVEKIT_BIN")}
	if home, err := os.UserHomeDir(); err == nil {
		cands = append(cands, filepath.Join(home, ".cache", "voicebroker", "livekit-server-v1.13.5"))
	}
	if p, err := exec.LookPath("livekit-server"); err == nil {
		cands = append(cands, p)
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		cands = append(cands, filepath.Join(strings.TrimSpace(string(out)), "bin", "server"))
	}
	for _, c := range cands {
		if c == "" {
			continue
		}
		if out, err := exec.Command(c, "--version").Output(); err == nil && strings.Contains(string(out), "livekit-server") {
			return c, nil
		}
	}
	return "", errors.New("livekit-server not found: run scripts/test.sh once (it builds and caches it)")
}

// setup starts every process and returns the base URLs.
func (h *harness) setup() (map[string]string, error) {
	var err error
	if h.dir, err = os.MkdirTemp("", "vb-bench-"); err != nil {
		return nil, err
	}
	urls := map[string]string{}

	rport := freePort()
	h.redis = "127.0.0.1:" + strconv.Itoa(rport)
	if err := h.start("redis", nil, "redis-server", "--port", strconv.Itoa(rport), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", h.dir); err != nil {
		return nil, err
	}

	lkBin, err := livekitBinary()
	if err != nil {
		return nil, err
	}
	lp := freePort()
	h.lkURL = "ws://127.0.0.1:" + strconv.Itoa(lp)
	if err := h.start("livekit", nil, lkBin, "--dev", "--bind", "127.0.0.1", "--node-ip", "127.0.0.1",
		"--keys", lkKey+": "+lkSecret, "--config-body",
		fmt.Sprintf("port: %d\nrtc: {tcp_port: %d, udp_port: %d}\nlogging: {level: warn}\n", lp, freePort(), freePort())); err != nil {
		return nil, err
	}

	fmt.Fprintln(os.Stderr, "building the broker")
	bin := filepath.Join(h.dir, "broker")
	build := exec.Command("go", "build", "-o", bin, "./cmd/broker")
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
	cfg := filepath.Join(h.dir, "tenants.yaml")
	os.WriteFile(cfg, []byte(tenants), 0o600)
	key, _ := token.GenerateKey(token.EdDSA)
	pemData, _ := key.MarshalPEM()
	keyFile := filepath.Join(h.dir, "signing.pem")
	os.WriteFile(keyFile, pemData, 0o600)

	common := []string{"BROKER_CONFIG=" + cfg, "BROKER_SIGNING_KEY_FILE=" + keyFile,
		"BROKER_PUBLIC_RATE_PER_MINUTE=1000000", "BROKER_CONNECT_RATE_PER_MINUTE=1000000",
		"LIVEKIT_URL=" + h.lkURL, "LIVEKIT_API_KEY=" + lkKey, "LIVEKIT_API_SECRET=" + lkSecret}
	for _, store := range []string{"memory", "redis"} {
		p := freePort()
		env := append([]string{fmt.Sprintf("BROKER_ADDR=127.0.0.1:%d", p)}, common...)
		if store == "redis" {
			env = append(env, "BROKER_REDIS_URL=redis://"+h.redis+"/0")
		}
		if err := h.start("broker-"+store, env, bin); err != nil {
			return nil, err
		}
		urls[store] = fmt.Sprintf("http://127.0.0.1:%d", p)
	}

	fp := freePort()
	self, _ := os.Executable()
	if err := h.start("floor", nil, self, "floor", "-addr", fmt.Sprintf("127.0.0.1:%d", fp), "-key", keyFile); err != nil {
		return nil, err
	}
	urls["floor"] = fmt.Sprintf("http://127.0.0.1:%d", fp)

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
	if err := h.start("peer", nil, "node", filepath.Join(peerDir, "server.mjs"), strconv.Itoa(pp), lkKey, lkSecret); err != nil {
		return nil, err
	}
	urls["peer"] = fmt.Sprintf("http://127.0.0.1:%d", pp)

	for _, u := range []string{urls["memory"] + "/healthz", urls["redis"] + "/readyz", urls["floor"] + "/healthz",
		"http://127.0.0.1:" + strconv.Itoa(lp) + "/"} {
		if err := waitHTTP(u); err != nil {
			return nil, err
		}
	}
	if err := waitTCP(urls["peer"]); err != nil {
		return nil, err
	}
	return urls, nil
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

// scenario is one load shape.
type scenario struct {
	name     string
	base     string // which server
	redis    bool   // count Redis commands
	prepare  func() (vegeta.Targeter, error)
	wantCode int
}

type result struct {
	Scenario     string  `json:"scenario"`
	Mode         string  `json:"mode"`
	Runs         int     `json:"runs"`
	RPS          float64 `json:"rps"`
	P50ms        float64 `json:"p50_ms"`
	P90ms        float64 `json:"p90_ms"`
	P99ms        float64 `json:"p99_ms"`
	P999ms       float64 `json:"p999_ms"`
	Errors       int     `json:"errors"`
	Requests     int     `json:"requests"`
	RedisCmds    float64 `json:"redis_commands_per_request,omitempty"`
	StoreRTTs    float64 `json:"store_round_trips_per_request,omitempty"`
	RatioToFloor float64 `json:"ratio_to_floor,omitempty"`
	RatioToPeer  float64 `json:"ratio_to_peer,omitempty"`
	BytesPerOp   float64 `json:"bytes_per_op,omitempty"`
	AllocsPerOp  float64 `json:"allocs_per_op,omitempty"`
}

func (h *harness) run(outPath string, skipAllocs bool) error {
	urls, err := h.setup()
	if err != nil {
		return err
	}
	post := func(url, cred string, body []byte, hdr ...string) vegeta.Target {
		t := vegeta.Target{Method: "POST", URL: url, Body: body, Header: http.Header{"Content-Type": {"application/json"}}}
		if cred != "" {
			t.Header.Set("Authorization", "Bearer "+cred)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			t.Header.Set(hdr[i], hdr[i+1])
		}
		return t
	}
	static := func(t vegeta.Target) func() (vegeta.Targeter, error) {
		return func() (vegeta.Targeter, error) { return vegeta.NewStaticTargeter(t), nil }
	}
	mintBody := []byte(`{"agent":"bot","channel":"webrtc"}`)
	// premint makes n tickets on the Redis broker and returns a targeter
	// that uses each once, then stops the attack.
	premint := func(n int, path string, asBody bool) func() (vegeta.Targeter, error) {
		return func() (vegeta.Targeter, error) {
			toks, err := mintMany(urls["redis"], h.sk, n)
			if err != nil {
				return nil, err
			}
			var mu sync.Mutex // vegeta's workers call the targeter concurrently
			i := 0
			return func(t *vegeta.Target) error {
				mu.Lock()
				if i >= len(toks) {
					mu.Unlock()
					return vegeta.ErrNoTargets
				}
				tok := toks[i]
				i++
				mu.Unlock()
				if asBody {
					*t = post(urls["redis"]+path, h.sk, []byte(`{"token":"`+tok+`"}`))
				} else {
					*t = post(urls["redis"]+path, tok, nil)
				}
				return nil
			}, nil
		}
	}
	scenarios := []scenario{
		{name: "floor: sign only (Echo, no auth, no store)", base: "floor", prepare: static(post(urls["floor"]+"/token", "", mintBody)), wantCode: 201},
		{name: "peer: Node.js livekit-server-sdk token endpoint", base: "peer", prepare: static(post(urls["peer"]+"/token", "", []byte(`{"room":"r","identity":"u"}`))), wantCode: 201},
		{name: "POST /token (memory store)", base: "memory", prepare: static(post(urls["memory"]+"/token", h.sk, mintBody)), wantCode: 201},
		{name: "POST /token (Redis)", base: "redis", redis: true, prepare: static(post(urls["redis"]+"/token", h.sk, mintBody)), wantCode: 201},
		{name: "POST /public/token (Redis)", base: "redis", redis: true, prepare: static(post(urls["redis"]+"/public/token", h.pk, mintBody, "Origin", origin)), wantCode: 201},
		{name: "POST /token/redeem (Redis)", base: "redis", redis: true, prepare: premint(6000, "/token/redeem", true), wantCode: 200},
		{name: "POST /connect (Redis + LiveKit room)", base: "redis", redis: true, prepare: premint(1500, "/connect", false), wantCode: 201},
	}

	var results []result
	byName := map[string]*result{}
	for _, sc := range scenarios {
		var runs []result
		for r := range h.runs {
			res, err := h.attack(sc, urls, 0)
			if err != nil {
				return fmt.Errorf("%s: %w", sc.name, err)
			}
			fmt.Fprintf(os.Stderr, "%-48s run %d: %8.0f req/s  p99 %6.2f ms  errors %d\n", sc.name, r+1, res.RPS, res.P99ms, res.Errors)
			runs = append(runs, res)
		}
		m := median(runs)
		m.Mode = "closed"
		results = append(results, m)
		byName[sc.name] = &results[len(results)-1]
	}
	floorRPS, peerRPS := results[0].RPS, results[1].RPS
	for i := range results {
		results[i].RatioToFloor = results[i].RPS / floorRPS
		results[i].RatioToPeer = results[i].RPS / peerRPS
	}

	// Open loop at half the peak of the Redis mint.
	mintRedis := scenarios[3]
	rate := int(byName[mintRedis.name].RPS / 2)
	var open []result
	for range h.runs {
		res, err := h.attack(mintRedis, urls, rate)
		if err != nil {
			return err
		}
		open = append(open, res)
	}
	om := median(open)
	om.Mode = fmt.Sprintf("open %d req/s", rate)
	results = append(results, om)

	if !skipAllocs {
		allocs, err := h.allocs()
		if err != nil {
			fmt.Fprintln(os.Stderr, "allocations:", err)
		}
		for i := range results {
			if a, ok := allocs[results[i].Scenario]; ok {
				results[i].BytesPerOp, results[i].AllocsPerOp = a[0], a[1]
			}
		}
	}

	printTable(results, floorRPS, peerRPS, rate)
	data, _ := json.MarshalIndent(map[string]any{"generated": time.Now().UTC().Format(time.RFC3339), "runs": h.runs,
		"duration": h.duration.String(), "workers": h.workers, "results": results}, "", "  ")
	return os.WriteFile(outPath, data, 0o644)
}

func mintMany(base, sk string, n int) ([]string, error) {
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	toks := make([]string, n)
	errc := make(chan error, 16)
	next := make(chan int)
	go func() {
		for i := range n {
			next <- i
		}
		close(next)
	}()
	for range 16 {
		go func() {
			for i := range next {
				req, _ := http.NewRequest("POST", base+"/token", strings.NewReader(`{"agent":"bot","channel":"webrtc"}`))
				req.Header.Set("Authorization", "Bearer "+sk)
				req.Header.Set("Content-Type", "application/json")
				resp, err := c.Do(req)
				if err != nil {
					errc <- err
					return
				}
				var m struct{ Token string }
				json.NewDecoder(resp.Body).Decode(&m)
				resp.Body.Close()
				toks[i] = m.Token
			}
			errc <- nil
		}()
	}
	for range 16 {
		if err := <-errc; err != nil {
			return nil, err
		}
	}
	return toks, nil
}

// attack runs one scenario: closed loop (rate 0) or open loop at rate.
func (h *harness) attack(sc scenario, urls map[string]string, rate int) (result, error) {
	tr, err := sc.prepare()
	if err != nil {
		return result{}, err
	}
	before, storeBefore := h.redisCalls(), storeCalls(urls[sc.base])
	var pacer vegeta.Pacer = vegeta.Rate{Freq: rate, Per: time.Second}
	opts := []func(*vegeta.Attacker){vegeta.KeepAlive(true), vegeta.Connections(int(h.workers)), vegeta.Timeout(10 * time.Second)}
	if rate == 0 {
		opts = append(opts, vegeta.Workers(h.workers), vegeta.MaxWorkers(h.workers))
	}
	a := vegeta.NewAttacker(opts...)
	var m vegeta.Metrics
	errs := 0
	codes := map[string]int{}
	for res := range a.Attack(tr, pacer, h.duration, sc.name) {
		if res.Error == vegeta.ErrNoTargets.Error() {
			continue // the pre-minted tickets ran out: the end of the run, not a request
		}
		m.Add(res)
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
	}
	if len(codes) > 0 {
		fmt.Fprintf(os.Stderr, "  %s: unexpected answers %v\n", sc.name, codes)
	}
	m.Close()
	r := result{
		Scenario: sc.name, Runs: 1, RPS: m.Throughput, Requests: int(m.Requests), Errors: errs,
		P50ms: ms(m.Latencies.P50), P90ms: ms(m.Latencies.P90), P99ms: ms(m.Latencies.P99), P999ms: ms(m.Latencies.Quantile(0.999)),
	}
	if sc.redis && m.Requests > 0 {
		r.RedisCmds = float64(h.redisCalls()-before) / float64(m.Requests)
		r.StoreRTTs = float64(storeCalls(urls[sc.base])-storeBefore) / float64(m.Requests)
	}
	return r, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// redisCalls sums INFO commandstats calls (commands run inside scripts are
// counted too; store round trips come from the broker's own metrics).
func (h *harness) redisCalls() int64 {
	host, port, _ := strings.Cut(h.redis, ":")
	out, err := exec.Command("redis-cli", "-h", host, "-p", port, "info", "commandstats").Output()
	if err != nil {
		return 0
	}
	var total int64
	re := regexp.MustCompile(`^cmdstat_(\w+):calls=(\d+)`)
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil && m[1] != "info" {
			n, _ := strconv.ParseInt(m[2], 10, 64)
			total += n
		}
	}
	return total
}

// storeCalls sums voicebroker_store_duration_seconds_count: one per round trip.
func storeCalls(base string) int64 {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var total int64
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "voicebroker_store_duration_seconds_count") {
			f, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			total += int64(f)
		}
	}
	return total
}

func median(rs []result) result {
	med := func(get func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = get(r)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	out := rs[0]
	out.Runs = len(rs)
	out.RPS = med(func(r result) float64 { return r.RPS })
	out.P50ms = med(func(r result) float64 { return r.P50ms })
	out.P90ms = med(func(r result) float64 { return r.P90ms })
	out.P99ms = med(func(r result) float64 { return r.P99ms })
	out.P999ms = med(func(r result) float64 { return r.P999ms })
	out.RedisCmds = med(func(r result) float64 { return r.RedisCmds })
	out.StoreRTTs = med(func(r result) float64 { return r.StoreRTTs })
	out.Errors, out.Requests = 0, 0
	for _, r := range rs {
		out.Errors += r.Errors
		out.Requests += r.Requests
	}
	return out
}

// allocs runs the Go benchmarks through the HTTP stack for B/op and allocs/op.
func (h *harness) allocs() (map[string][2]float64, error) {
	cmd := exec.Command("go", "test", "./internal/app", "-run", "^$", "-bench", "^Benchmark(Mint|Redeem|Connect|PublicToken)$",
		"-benchtime", "2000x", "-benchmem")
	cmd.Dir = h.root
	cmd.Env = append(os.Environ(), "VB_TEST_REDIS_ADDR="+h.redis)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%v\n%s", err, out)
	}
	names := map[string]string{
		"BenchmarkMint/memory": "POST /token (memory store)", "BenchmarkMint/redis": "POST /token (Redis)",
		"BenchmarkRedeem/redis": "POST /token/redeem (Redis)", "BenchmarkConnect": "POST /connect (Redis + LiveKit room)",
		"BenchmarkPublicToken": "POST /public/token (Redis)",
	}
	res := map[string][2]float64{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := f[0][:strings.LastIndexByte(f[0], '-')]
		if s, ok := names[name]; ok {
			b, _ := strconv.ParseFloat(f[4], 64)
			a, _ := strconv.ParseFloat(f[6], 64)
			res[s] = [2]float64{b, a}
		}
	}
	return res, nil
}

func printTable(rs []result, floorRPS, peerRPS float64, rate int) {
	fmt.Printf("\n| scenario | mode | req/s | vs floor | vs peer | p50 ms | p90 ms | p99 ms | p99.9 ms | errors | store RTT/req | Redis cmds/req | B/op | allocs/op |\n")
	fmt.Printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rs {
		opt := func(v float64, f string) string {
			if v == 0 {
				return ""
			}
			return fmt.Sprintf(f, v)
		}
		fmt.Printf("| %s | %s | %.0f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %d | %s | %s | %s | %s |\n",
			r.Scenario, r.Mode, r.RPS, r.RatioToFloor, r.RatioToPeer, r.P50ms, r.P90ms, r.P99ms, r.P999ms, r.Errors,
			opt(r.StoreRTTs, "%.2f"), opt(r.RedisCmds, "%.2f"), opt(r.BytesPerOp, "%.0f"), opt(r.AllocsPerOp, "%.0f"))
	}
	get := func(name string) result {
		for _, r := range rs {
			if r.Scenario == name && r.Mode == "closed" {
				return r
			}
		}
		return result{}
	}
	memory, redis, redeem := get("POST /token (memory store)"), get("POST /token (Redis)"), get("POST /token/redeem (Redis)")
	open := rs[len(rs)-1]
	check := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	errors := 0
	for _, r := range rs {
		errors += r.Errors
	}
	fmt.Printf("\nBudgets (medians of %d runs, generator on the same 2 cores):\n", rs[0].Runs)
	fmt.Printf("- mint with Redis >= 60%% of the floor: %.0f%% %s\n", 100*redis.RPS/floorRPS, check(redis.RPS >= 0.6*floorRPS))
	fmt.Printf("- mint with the memory store >= 85%% of the floor: %.0f%% %s\n", 100*memory.RPS/floorRPS, check(memory.RPS >= 0.85*floorRPS))
	fmt.Printf("- <= 2 store round trips per mint: %.2f %s\n", redis.StoreRTTs, check(redis.StoreRTTs <= 2.01))
	fmt.Printf("- exactly 1 store round trip per redeem: %.2f %s\n", redeem.StoreRTTs, check(redeem.StoreRTTs > 0.99 && redeem.StoreRTTs < 1.01))
	fmt.Printf("- p99 < 5 ms at half the peak (%d req/s): %.2f ms %s\n", rate, open.P99ms, check(open.P99ms < 5))
	fmt.Printf("- zero errors: %d %s\n", errors, check(errors == 0))
}
