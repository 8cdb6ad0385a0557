package app_test

import (
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSoak: three broker processes share one Redis under a mixed load
// (backend mints, public mints, redemptions on any replica, replays) for
// VB_SOAK_DURATION (default 15s; run minutes by hand). Zero duplicate and
// zero lost redemptions; goroutines, open files and memory stay flat.
func TestSoak(t *testing.T) {
	d := 15 * time.Second
	if v := os.Getenv("VB_SOAK_DURATION"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatal(err)
		}
	}
	k := newKeys(t)
	seed := startBroker(t, k, nil)
	// Limits out of the way: the soak measures the broker, not its refusals.
	writeFile(t, seed.Dir+"/tenants.yaml", tenantsYAML(k, func(y string) string {
		y = strings.Replace(y, "rate_per_minute: 100000", "rate_per_minute: 1000000", 1)
		return strings.Replace(y, "  - id: acme\n    tier: free\n", "  - id: acme\n    tier: enterprise\n    rate_per_minute: 1000000\n", 1)
	}))
	env := map[string]string{
		"BROKER_CONFIG": seed.Dir + "/tenants.yaml", "BROKER_SIGNING_KEY_FILE": seed.KeyFile,
		"BROKER_PUBLIC_URL": "http://broker.test", "BROKER_REDIS_URL": nextRedisURL(t),
		"BROKER_PUBLIC_RATE_PER_MINUTE": "1000000",
	}
	procs := []*process{startProcess(t, env), startProcess(t, env), startProcess(t, env)}
	body := map[string]any{"agent": "hank", "channel": "webrtc"}

	// Warm up, then take the baseline.
	for _, p := range procs {
		for range 50 {
			r := do(t, "POST", p.URL+"/token", k.globex, body)
			expect(t, r, 201, "")
			expect(t, do(t, "POST", p.URL+"/token/redeem", k.globex, map[string]string{"token": r.Body["token"].(string)}), 200, "")
		}
	}
	base := make([]procStats, len(procs))
	for i, p := range procs {
		base[i] = scrape(t, p.URL)
	}

	var (
		requests, redeemedOK, replays, duplicates, lost, other atomic.Int64
		wg                                                     sync.WaitGroup
	)
	stop := time.Now().Add(d)
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for time.Now().Before(stop) {
				mintAt, redeemAt := procs[rng.IntN(3)], procs[rng.IntN(3)]
				var r response
				var err error
				if rng.IntN(4) == 0 {
					r, err = tryDo("POST", mintAt.URL+"/public/token", k.pk, map[string]any{"agent": "florencia", "channel": "chat"}, "Origin", "https://demo.acme.example")
				} else {
					r, err = tryDo("POST", mintAt.URL+"/token", k.globex, body)
				}
				requests.Add(1)
				if err != nil || r.Status != 201 {
					other.Add(1)
					t.Errorf("mint: %d %s %v", r.Status, r.Raw, err)
					continue
				}
				tok := r.Body["token"].(string)
				cred := k.globex
				if r.Header.Get("Access-Control-Allow-Origin") != "" { // a public ticket: acme's agent
					cred = k.acme
				}
				first, err := tryDo("POST", redeemAt.URL+"/token/redeem", cred, map[string]string{"token": tok})
				requests.Add(1)
				if err != nil || first.Status != 200 {
					lost.Add(1)
					t.Errorf("fresh ticket not redeemed: %d %s %v", first.Status, first.Raw, err)
					continue
				}
				redeemedOK.Add(1)
				replay, err := tryDo("POST", procs[rng.IntN(3)].URL+"/token/redeem", cred, map[string]string{"token": tok})
				requests.Add(1)
				replays.Add(1)
				switch {
				case err != nil:
					other.Add(1)
					t.Errorf("replay: %v", err)
				case replay.Status == 200:
					duplicates.Add(1)
				case replay.code() != "token_used":
					other.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	client.CloseIdleConnections()

	t.Logf("soak %v over 3 processes: %d requests (%.0f/s), %d redeemed, %d replays refused, duplicates %d, lost %d, other %d",
		d, requests.Load(), float64(requests.Load())/d.Seconds(), redeemedOK.Load(), replays.Load()-duplicates.Load(),
		duplicates.Load(), lost.Load(), other.Load())
	for i, p := range procs {
		// The load's connections close asynchronously: give each process
		// until its counts settle within bounds, then judge the last scrape.
		var end procStats
		deadline := time.Now().Add(10 * time.Second)
		for {
			end = scrape(t, p.URL)
			if end.goroutines <= base[i].goroutines+20 && end.fds <= base[i].fds+20 || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("process %d: goroutines %d -> %d, open fds %d -> %d, heap %.1f -> %.1f MiB, rss %.1f -> %.1f MiB", i,
			base[i].goroutines, end.goroutines, base[i].fds, end.fds,
			base[i].heap/(1<<20), end.heap/(1<<20), base[i].rss/(1<<20), end.rss/(1<<20))
		if end.goroutines > base[i].goroutines+20 {
			t.Errorf("process %d: goroutines grew %d -> %d", i, base[i].goroutines, end.goroutines)
		}
		if end.fds > base[i].fds+20 {
			t.Errorf("process %d: open fds grew %d -> %d", i, base[i].fds, end.fds)
		}
		if end.heap > 3*base[i].heap+64<<20 {
			t.Errorf("process %d: heap grew %.0f -> %.0f", i, base[i].heap, end.heap)
		}
	}
	if duplicates.Load() != 0 || lost.Load() != 0 || other.Load() != 0 {
		t.Fatalf("duplicates %d, lost %d, other %d: all must be 0", duplicates.Load(), lost.Load(), other.Load())
	}
	if redeemedOK.Load() == 0 {
		t.Fatal("no load ran")
	}
}

type procStats struct {
	goroutines, fds int
	heap, rss       float64
}

func scrape(t *testing.T, base string) procStats {
	t.Helper()
	r := do(t, "GET", base+"/metrics", "", nil)
	var s procStats
	for _, line := range strings.Split(r.Raw, "\n") {
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(val, 64)
		if err != nil {
			continue
		}
		switch name {
		case "go_goroutines":
			s.goroutines = int(f)
		case "process_open_fds":
			s.fds = int(f)
		case "go_memstats_heap_inuse_bytes":
			s.heap = f
		case "process_resident_memory_bytes":
			s.rss = f
		}
	}
	if s.goroutines == 0 || s.fds == 0 {
		t.Fatalf("metrics of %s lack go_goroutines or process_open_fds", base)
	}
	return s
}
