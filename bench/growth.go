package main

import (
	"fmt"
	"os"
	"strings"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/voicebroker/voicebroker/internal/apikey"
)

// growthRow is one value of one dimension of the tenants file.
type growthRow struct {
	Dimension string  `json:"dimension"`
	Value     string  `json:"value"`
	Endpoint  string  `json:"endpoint"`
	RPS       float64 `json:"rps"`
	// Ratio is the median, over the rounds, of this value's rate over the
	// dimension's first value's rate in the same round.
	Ratio        float64 `json:"ratio_to_first"`
	P50ms        float64 `json:"p50_ms"`
	P99ms        float64 `json:"p99_ms"`
	Errors       int     `json:"errors"`
	CPUus        float64 `json:"server_cpu_us_per_request,omitempty"`
	RedisCPUus   float64 `json:"redis_cpu_us_per_request,omitempty"`
	AllocsPerReq float64 `json:"server_allocs_per_request,omitempty"`
}

// growthCase is one value of a dimension: a broker (nil: the main Redis
// broker) and, per endpoint, the requests to cycle through.
type growthCase struct {
	value   string
	tenants string // empty: use the main Redis broker
	targets map[string][]vegeta.Target
	srv     *server
}

type dimension struct {
	name      string
	endpoints []string // in the order they are printed
	cases     []growthCase
}

const (
	epMint   = mintRedis
	epPublic = "POST /public/token (Redis)"
)

// maxTargets bounds the distinct credentials a run cycles through.
const maxTargets = 1000

// growth measures mint throughput and p99 as the tenants file grows: the
// number of orgs (each with a secret key and a public agent), keys per
// org, allowed-origin patterns of the public agent, and metadata size.
// Each value runs on a broker of its own (on the shared redis-server); the
// values of one dimension are interleaved in every round.
func (h *harness) growth(main *server) ([]growthRow, error) {
	body := func(agent string) []byte { return []byte(`{"agent":"` + agent + `","channel":"webrtc"}`) }
	var dims []dimension

	// Orgs: N orgs, each with one secret key and one public agent.
	orgs := dimension{name: "orgs (1 key and 1 public agent each)", endpoints: []string{epMint, epPublic}}
	for _, n := range []int{1, 100, 10000} {
		var y strings.Builder
		y.WriteString("orgs:\n")
		c := growthCase{value: fmt.Sprint(n), targets: map[string][]vegeta.Target{}}
		every := max(1, n/maxTargets)
		for i := range n {
			sk, pk := mustKey(apikey.Secret), mustKey(apikey.Publishable)
			agent := fmt.Sprintf("a%d", i)
			fmt.Fprintf(&y, "  - {id: o%d, tier: enterprise, rate_per_minute: 1000000, keys: [{id: k, hash: %q, scopes: [tokens:create]}], "+
				"agents: [{id: %s, channels: [webrtc], public: {key_hash: %q, allowed_origins: [%q]}}]}\n",
				i, apikey.Hash(sk), agent, apikey.Hash(pk), origin)
			if i%every == 0 {
				c.targets[epMint] = append(c.targets[epMint], post("/token", sk, body(agent)))
				c.targets[epPublic] = append(c.targets[epPublic], post("/public/token", pk, body(agent), "Origin", origin))
			}
		}
		c.tenants = y.String()
		orgs.cases = append(orgs.cases, c)
	}
	dims = append(dims, orgs)

	// Keys per org: one org with K secret keys.
	keys := dimension{name: "keys in one org", endpoints: []string{epMint}}
	for _, n := range []int{1, 100, 10000} {
		var y strings.Builder
		y.WriteString("orgs:\n  - id: bench\n    tier: enterprise\n    rate_per_minute: 1000000\n    agents: [{id: bot, channels: [webrtc]}]\n    keys:\n")
		c := growthCase{value: fmt.Sprint(n), targets: map[string][]vegeta.Target{}}
		every := max(1, n/maxTargets)
		for i := range n {
			sk := mustKey(apikey.Secret)
			fmt.Fprintf(&y, "      - {id: k%d, hash: %q, scopes: [tokens:create]}\n", i, apikey.Hash(sk))
			if i%every == 0 {
				c.targets[epMint] = append(c.targets[epMint], post("/token", sk, body("bot")))
			}
		}
		c.tenants = y.String()
		keys.cases = append(keys.cases, c)
	}
	dims = append(dims, keys)

	// Allowed-origin patterns of the public agent: n wildcard patterns, the
	// request's origin matched by the last one (the worst case; exact
	// origins are a map lookup whatever their number).
	pats := dimension{name: "allowed-origin patterns (wildcards; the last one matches)", endpoints: []string{epPublic}}
	for _, n := range []int{1, 10, 100} {
		pk := mustKey(apikey.Publishable)
		var ps []string
		for i := range n {
			ps = append(ps, fmt.Sprintf("%q", fmt.Sprintf("https://*.site%d.example", i)))
		}
		o := fmt.Sprintf("https://app.site%d.example", n-1)
		y := fmt.Sprintf("orgs:\n  - id: bench\n    tier: enterprise\n    rate_per_minute: 1000000\n"+
			"    agents: [{id: bot, channels: [webrtc], public: {key_hash: %q, allowed_origins: [%s]}}]\n",
			apikey.Hash(pk), strings.Join(ps, ", "))
		pats.cases = append(pats.cases, growthCase{value: fmt.Sprint(n), tenants: y,
			targets: map[string][]vegeta.Target{epPublic: {post("/public/token", pk, body("bot"), "Origin", o)}}})
	}
	dims = append(dims, pats)

	// Metadata: a flat object of 16 string members, compacted to about the
	// given size; on the main Redis broker.
	md := dimension{name: "metadata size", endpoints: []string{epMint}}
	for _, size := range []int{0, 512, 2000} {
		b := body("bot")
		value := "none"
		if size > 0 {
			b = []byte(`{"agent":"bot","channel":"webrtc","metadata":` + metadataOf(size) + `}`)
			value = fmt.Sprintf("%d B", len(metadataOf(size)))
		}
		md.cases = append(md.cases, growthCase{value: value,
			targets: map[string][]vegeta.Target{epMint: {post("/token", h.sk, b)}}})
	}
	dims = append(dims, md)

	var rows []growthRow
	for _, d := range dims {
		if h.only != "" && !strings.Contains(d.name, h.only) {
			continue
		}
		r, err := h.runDimension(d, main)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d.name, err)
		}
		rows = append(rows, r...)
	}
	return rows, nil
}

func (h *harness) runDimension(d dimension, main *server) ([]growthRow, error) {
	// Start this dimension's brokers, and stop them when it is measured.
	for i := range d.cases {
		c := &d.cases[i]
		if c.tenants == "" {
			c.srv = main
			continue
		}
		fmt.Fprintf(os.Stderr, "starting a broker: %s = %s (tenants file %d KiB)\n", d.name, c.value, len(c.tenants)>>10)
		srv, err := h.startBroker(fmt.Sprintf("growth-%d", h.nextID.Add(1)), c.tenants, true)
		if err != nil {
			return nil, err
		}
		c.srv = srv
	}
	defer func() {
		for _, c := range d.cases {
			if c.srv != main {
				h.stop(c.srv.cmd)
			}
		}
	}()
	type key struct{ ep, value string }
	runs := map[key][]result{}
	ratios := map[key][]float64{}
	for r := range h.runs {
		for _, ep := range d.endpoints {
			var first float64
			for i, c := range d.cases {
				ts := append([]vegeta.Target(nil), c.targets[ep]...)
				for j := range ts {
					ts[j].URL = c.srv.url + ts[j].URL
				}
				sc := scenario{name: fmt.Sprintf("%s, %s = %s", ep, d.name, c.value), srv: c.srv, prepare: cycle(ts), wantCode: 201}
				res, err := h.attack(sc, 0, false, 0)
				if err != nil {
					return nil, err
				}
				fmt.Fprintf(os.Stderr, "round %d  %-80s %8.0f req/s  p99 %7.2f ms  errors %d\n", r+1, sc.name, res.RPS, res.P99ms, res.Errors)
				if i == 0 {
					first = res.RPS
				}
				k := key{ep, c.value}
				runs[k] = append(runs[k], res)
				if first > 0 {
					ratios[k] = append(ratios[k], res.RPS/first)
				}
			}
		}
	}
	var rows []growthRow
	for _, ep := range d.endpoints {
		for _, c := range d.cases {
			k := key{ep, c.value}
			m := median(runs[k])
			rows = append(rows, growthRow{Dimension: d.name, Value: c.value, Endpoint: ep, RPS: m.RPS, Ratio: medianOf(ratios[k]),
				P50ms: m.P50ms, P99ms: m.P99ms, Errors: m.Errors, CPUus: m.CPUus, RedisCPUus: m.RedisCPUus, AllocsPerReq: m.AllocsPerReq})
		}
	}
	return rows, nil
}

func mustKey(kind apikey.Kind) string {
	k, err := apikey.New(kind, apikey.Live)
	if err != nil {
		panic(err)
	}
	return k
}

// metadataOf returns a JSON object of 16 string members of about size bytes.
func metadataOf(size int) string {
	per := max(1, (size-2)/16-len(`"k00":"",`))
	var b strings.Builder
	b.WriteByte('{')
	for i := range 16 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%02d":"%s"`, i, strings.Repeat("x", per))
	}
	b.WriteByte('}')
	return b.String()
}

func printGrowth(rows []growthRow) {
	if len(rows) == 0 {
		return
	}
	fmt.Printf("\nHow the cost grows (closed loop, one broker per value, medians; \"vs first\" is the rate over the dimension's first value in the same round):\n\n")
	fmt.Printf("| dimension | value | endpoint | req/s | vs first | p50 ms | p99 ms | errors | server CPU µs/req | Redis CPU µs/req | server allocs/req |\n")
	fmt.Printf("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		fmt.Printf("| %s | %s | %s | %.0f | %.2f | %.2f | %.2f | %d | %s | %s | %s |\n",
			r.Dimension, r.Value, r.Endpoint, r.RPS, r.Ratio, r.P50ms, r.P99ms, r.Errors,
			opt(r.CPUus, "%.1f"), opt(r.RedisCPUus, "%.1f"), opt(r.AllocsPerReq, "%.0f"))
	}
}
