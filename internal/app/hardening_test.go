package app_test

import (
	"bufio"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/voicebroker/voicebroker/internal/apikey"
	"github.com/voicebroker/voicebroker/internal/metrics"
	"github.com/voicebroker/voicebroker/internal/registry/file"
	"github.com/voicebroker/voicebroker/pkg/token"
)

// reconfigure writes the tenants file and reloads it at once; the reload
// must succeed.
func reconfigure(t *testing.T, b *broker, yaml string) {
	t.Helper()
	writeFile(t, b.Dir+"/tenants.yaml", yaml)
	if _, err := b.app.Tenants.(*file.Registry).File().Reload(true); err != nil {
		t.Fatalf("reload: %v", err)
	}
}

// series returns the sample lines of /metrics, and its size.
func series(t *testing.T, b *broker) ([]string, int) {
	t.Helper()
	r := do(t, "GET", b.URL+"/metrics", "", nil)
	if r.Status != 200 {
		t.Fatalf("/metrics: %d", r.Status)
	}
	var out []string
	for _, line := range strings.Split(r.Raw, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out, len(r.Raw)
}

func randomWord(t *testing.T) string {
	t.Helper()
	n, err := token.NewNonce()
	if err != nil {
		t.Fatal(err)
	}
	return strings.NewReplacer("-", "x", "_", "y").Replace(n[:12])
}

// TestMetricsLabelsBounded: /metrics is unauthenticated, so nothing a
// client sends may add a series. Batches of invented methods, paths,
// headers, request ids, credentials and origins; after the first batch the
// number of series stays put, every label value is from its closed set,
// and the page stays small.
func TestMetricsLabelsBounded(t *testing.T) {
	k := newKeys(t)
	b := startBroker(t, k, map[string]string{"BROKER_PUBLIC_RATE_PER_MINUTE": "100000"})
	batch := func() {
		for range 25 {
			w := randomWord(t)
			for _, m := range []string{"X" + strings.ToUpper(w), "get" + w, "PROPFIND", "M-" + w} {
				do(t, m, b.URL+"/token", k.globex, flo)
				do(t, m, b.URL+"/"+w, "", nil)
			}
			for _, p := range []string{"/" + w, "/token/" + w, "/livekit/rooms/" + w, "/demo/" + w, "/%2e%2e/" + w, "/metrics/" + w, "//" + w, "/token?api_key=" + w} {
				do(t, "GET", b.URL+p, "", nil)
				do(t, "HEAD", b.URL+p, "", nil)
			}
			do(t, "POST", b.URL+"/token", "sk_live_"+w+strings.Repeat("Q", 31), flo, "X-"+w, w, "X-Request-Id", w, "Origin", "https://"+w+".example")
			do(t, "POST", b.URL+"/token?api_key="+w, "", flo)
			do(t, "POST", b.URL+"/token", w, flo, "Content-Type", "text/"+w)
			do(t, "POST", b.URL+"/public/token", "pk_live_"+w, flo, "Origin", "https://"+w+".example")
			do(t, "OPTIONS", b.URL+"/public/token", "", nil, "Origin", "https://"+w+".example", "Access-Control-Request-Method", w)
			do(t, "OPTIONS", b.URL+"/"+w, "", nil, "Origin", "https://"+w+".example")
			do(t, "POST", b.URL+"/token/redeem", k.globex, map[string]string{"token": w + ".a.b"})
			do(t, "POST", b.URL+"/token", k.globex, map[string]any{"agent": w, "channel": w})
		}
	}
	series(t, b) // the scrape itself is a series
	batch()
	first, size1 := series(t, b)
	batch()
	batch()
	after, size2 := series(t, b)
	if len(after) != len(first) {
		var added []string
		for _, s := range after {
			name, _, _ := strings.Cut(s, " ")
			if !slices.ContainsFunc(first, func(f string) bool { return strings.HasPrefix(f, name+" ") }) {
				added = append(added, name)
			}
		}
		t.Fatalf("%d series after one batch, %d after three (%d -> %d bytes); new: %v", len(first), len(after), size1, size2, added[:min(len(added), 10)])
	}
	if size2 > 64<<10 {
		t.Fatalf("/metrics is %d bytes", size2)
	}
	routes := map[string]bool{"unmatched": true}
	for _, r := range b.app.API().(*echo.Echo).Routes() {
		routes[r.Path] = true
	}
	for _, s := range after {
		for _, lv := range labels(s) {
			switch lv[0] {
			case "method":
				if !slices.Contains(metrics.Methods, lv[1]) && lv[1] != "OTHER" {
					t.Errorf("method label %q in %s", lv[1], s)
				}
			case "route":
				if !routes[lv[1]] {
					t.Errorf("route label %q in %s", lv[1], s)
				}
			case "reason", "org", "status", "scope":
				if len(lv[1]) > 48 || strings.ContainsAny(lv[1], " /\"") {
					t.Errorf("label %s=%q in %s", lv[0], lv[1], s)
				}
			}
		}
	}
}

// labels returns the name/value pairs of a sample line's labels.
func labels(sample string) [][2]string {
	open, end := strings.IndexByte(sample, '{'), strings.LastIndexByte(sample, '}')
	if open < 0 || end < open {
		return nil
	}
	var out [][2]string
	for _, part := range strings.Split(sample[open+1:end], `",`) {
		name, value, _ := strings.Cut(part, "=")
		out = append(out, [2]string{name, strings.Trim(value, `"`)})
	}
	return out
}

// TestPublicBudgetDoesNotStarveTheOrg: a page's publishable key is public;
// mints with it from many addresses count against the agent's public
// budget (the org tier's rate by default, or public.rate_per_minute),
// never against the org's own budget, so the org's backend keeps minting.
func TestPublicBudgetDoesNotStarveTheOrg(t *testing.T) {
	const origin = "https://demo.acme.example"
	body := map[string]any{"agent": "florencia", "channel": "chat"}
	publicMints := func(t *testing.T, b *broker, n int) (ok, limited int, last response) {
		for i := range n {
			// Rotating addresses: each one its own per-IP bucket.
			xff := fmt.Sprintf("198.51.%d.%d", 100+i/200, i%200+1)
			if i%2 == 1 {
				xff = fmt.Sprintf("2001:db8:%x::1", i)
			}
			r := do(t, "POST", b.URL+"/public/token", b.keys.pk, body, "Origin", origin, "X-Forwarded-For", xff)
			switch r.Status {
			case 201:
				ok++
			case 429:
				expect(t, r, 429, "rate_limited")
				limited++
				last = r
			default:
				t.Fatalf("public mint %d: %d %s", i, r.Status, r.Raw)
			}
		}
		return ok, limited, last
	}
	vars := map[string]string{"BROKER_TRUSTED_PROXIES": "127.0.0.1/32", "BROKER_PUBLIC_RATE_PER_MINUTE": "1"}

	t.Run("default budget: the org tier's rate", func(t *testing.T) {
		b := startBroker(t, newKeys(t), vars)
		ok, limited, last := publicMints(t, b, 70)
		if ok != 60 || limited != 10 || last.Header.Get("RateLimit-Limit") != "60" || last.Header.Get("Retry-After") == "" {
			t.Fatalf("%d minted, %d limited (RateLimit-Limit %q), want 60 and 10", ok, limited, last.Header.Get("RateLimit-Limit"))
		}
		r := do(t, "POST", b.URL+"/token", b.keys.acme, flo)
		expect(t, r, 201, "")
		if r.Header.Get("RateLimit-Remaining") != "59" {
			t.Fatalf("the org's budget was touched: RateLimit-Remaining %q", r.Header.Get("RateLimit-Remaining"))
		}
		expect(t, do(t, "POST", b.URL+"/token/redeem", b.keys.acme, map[string]string{"token": r.Body["token"].(string)}), 200, "")
		if got := metric(t, b, `voicebroker_rate_limited_total{scope="public"}`); got != "10" {
			t.Fatalf("rate_limited{scope=public} = %q", got)
		}
	})
	t.Run("public.rate_per_minute", func(t *testing.T) {
		k := newKeys(t)
		b := startBroker(t, k, vars)
		reconfigure(t, b, tenantsYAML(k, func(y string) string {
			return strings.Replace(y, `          allowed_origins: ["https://demo.acme.example"]`,
				"          allowed_origins: [\"https://demo.acme.example\"]\n          rate_per_minute: 3", 1)
		}))
		ok, limited, last := publicMints(t, b, 8)
		if ok != 3 || limited != 5 || last.Header.Get("RateLimit-Limit") != "3" {
			t.Fatalf("%d minted, %d limited (RateLimit-Limit %q), want 3 and 5", ok, limited, last.Header.Get("RateLimit-Limit"))
		}
		for range 5 {
			expect(t, do(t, "POST", b.URL+"/token", k.acme, flo), 201, "")
		}
	})
	t.Run("a busy org does not block public mints either", func(t *testing.T) {
		k := newKeys(t)
		b := startBroker(t, k, vars)
		for range 60 {
			expect(t, do(t, "POST", b.URL+"/token", k.acme, flo), 201, "")
		}
		expect(t, do(t, "POST", b.URL+"/token", k.acme, flo), 429, "rate_limited")
		if ok, _, _ := publicMints(t, b, 3); ok != 3 {
			t.Fatalf("%d of 3 public mints while the org's budget is spent", ok)
		}
	})
}

// TestPerIPLimitIPv6By64: a per-client limit keys an IPv6 client by its
// /64 (one subscriber's allocation; zones dropped) and an IPv4-mapped
// IPv6 address as the IPv4 address.
func TestPerIPLimitIPv6By64(t *testing.T) {
	b := startBroker(t, newKeys(t), map[string]string{"BROKER_TRUSTED_PROXIES": "127.0.0.1/32", "BROKER_PUBLIC_RATE_PER_MINUTE": "1"})
	body := map[string]any{"agent": "florencia", "channel": "chat"}
	for _, tc := range []struct {
		xff    string
		status int
	}{
		{"2001:db8:aa:1::1", 201},
		{"2001:db8:aa:1:ffff:ffff:ffff:fffe", 429}, // same /64
		{"2001:db8:aa:1::1%eth0", 429},             // a zone is not another client
		{"2001:db8:aa:2::1", 201},                  // next /64
		{"2001:DB8:AA:2:0:0:0:7", 429},
		{"198.51.100.9", 201},
		{"::ffff:198.51.100.9", 429}, // IPv4-mapped: the IPv4 client
		{"198.51.100.10", 201},
		{"fe80::1%eth0", 201},
		{"fe80::2%eth1", 429},
	} {
		r := do(t, "POST", b.URL+"/public/token", b.keys.pk, body, "Origin", "https://demo.acme.example", "X-Forwarded-For", tc.xff)
		if r.Status != tc.status {
			t.Errorf("X-Forwarded-For %s: %d %s, want %d", tc.xff, r.Status, r.Raw, tc.status)
		}
	}
}

// TestRefusedRequestsCount: every request that authenticated counts against
// its budget, also when it is then refused; refusals before authentication
// count against nothing.
func TestRefusedRequestsCount(t *testing.T) {
	redeemer, _ := apikey.New(apikey.Secret, apikey.Live)
	// globex's budget is 3 a minute, and so is florencia's public budget.
	slow := func(k keys, public bool) string {
		return tenantsYAML(k, func(y string) string {
			y = strings.Replace(y, "rate_per_minute: 100000", "rate_per_minute: 3", 1)
			y = strings.Replace(y, "    agents:\n      - id: hank", fmt.Sprintf("      - id: redeemer\n        hash: %q\n        scopes: [tokens:redeem]\n    agents:\n      - id: hank", apikey.Hash(redeemer)), 1)
			if !public {
				return y
			}
			return strings.Replace(y, `          allowed_origins: ["https://demo.acme.example"]`,
				"          allowed_origins: [\"https://demo.acme.example\"]\n          rate_per_minute: 3", 1)
		})
	}
	hank := map[string]any{"agent": "hank", "channel": "webrtc"}
	pub := map[string]any{"agent": "florencia", "channel": "chat"}
	const origin = "https://demo.acme.example"
	for _, tc := range []struct {
		name   string
		public bool
		send   func(t *testing.T, b *broker) response
		status int
		code   string
	}{
		{"unknown agent", false, func(t *testing.T, b *broker) response {
			return do(t, "POST", b.URL+"/token", b.keys.globex, map[string]any{"agent": "florencia", "channel": "webrtc"})
		}, 404, "unknown_agent"},
		{"malformed body", false, func(t *testing.T, b *broker) response {
			return do(t, "POST", b.URL+"/token", b.keys.globex, `{"agent":`)
		}, 400, "invalid_request"},
		{"duplicate key", false, func(t *testing.T, b *broker) response {
			return do(t, "POST", b.URL+"/token", b.keys.globex, `{"agent":"hank","agent":"hank","channel":"webrtc"}`)
		}, 400, "invalid_request"},
		{"channel the agent lacks", false, func(t *testing.T, b *broker) response {
			return do(t, "POST", b.URL+"/token", b.keys.globex, map[string]any{"agent": "hank", "channel": "chat"})
		}, 400, "invalid_request"},
		{"bad identity", false, func(t *testing.T, b *broker) response {
			return do(t, "POST", b.URL+"/token", b.keys.globex, map[string]any{"agent": "hank", "channel": "webrtc", "identity": "a\u202eb"})
		}, 400, "invalid_request"},
		{"bad token at redeem", false, func(t *testing.T, b *broker) response {
			return do(t, "POST", b.URL+"/token/redeem", b.keys.globex, map[string]string{"token": "a.b.c"})
		}, 401, "token_invalid"},
		{"another org's token at redeem", false, func(t *testing.T, b *broker) response {
			return do(t, "POST", b.URL+"/token/redeem", b.keys.globex, map[string]string{"token": b.mint(t, b.keys.acme, flo)})
		}, 401, "token_invalid"},
		{"wrong scope", false, func(t *testing.T, b *broker) response {
			return do(t, "POST", b.URL+"/token", redeemer, hank)
		}, 403, "insufficient_scope"},
		{"public: origin not allowed", true, func(t *testing.T, b *broker) response {
			return do(t, "POST", b.URL+"/public/token", b.keys.pk, pub, "Origin", "https://evil.example")
		}, 403, "origin_not_allowed"},
		{"public: another agent named", true, func(t *testing.T, b *broker) response {
			return do(t, "POST", b.URL+"/public/token", b.keys.pk, map[string]any{"agent": "texter", "channel": "chat"}, "Origin", origin)
		}, 401, "unauthorized"},
		{"public: bad body", true, func(t *testing.T, b *broker) response {
			return do(t, "POST", b.URL+"/public/token", b.keys.pk, `{"agent":"florencia","Agent":"x","channel":"chat"}`, "Origin", origin)
		}, 400, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newKeys(t)
			b := startBroker(t, k, map[string]string{"BROKER_PUBLIC_RATE_PER_MINUTE": "100000"})
			reconfigure(t, b, slow(k, tc.public))
			for i := range 3 {
				r := tc.send(t, b)
				if r.Status != tc.status || r.code() != tc.code {
					t.Fatalf("refusal %d: %d %s, want %d %s", i, r.Status, r.Raw, tc.status, tc.code)
				}
			}
			// Three refused requests spent the budget of three.
			var r response
			if tc.public {
				r = do(t, "POST", b.URL+"/public/token", k.pk, pub, "Origin", origin)
			} else {
				r = do(t, "POST", b.URL+"/token", k.globex, hank)
			}
			expect(t, r, 429, "rate_limited")
			if r.Header.Get("Retry-After") == "" || r.Header.Get("RateLimit-Limit") != "3" {
				t.Fatalf("429 headers %v", r.Header)
			}
			// Another org's budget is untouched.
			expect(t, do(t, "POST", b.URL+"/token", k.acme, flo), 201, "")
		})
	}
	t.Run("unauthenticated refusals count against nothing", func(t *testing.T) {
		k := newKeys(t)
		b := startBroker(t, k, nil)
		reconfigure(t, b, slow(k, false))
		for range 5 {
			expect(t, do(t, "POST", b.URL+"/token", "sk_live_"+strings.Repeat("N", 43), hank), 401, "unauthorized")
			expect(t, do(t, "POST", b.URL+"/token", "", hank), 401, "missing_auth_header")
		}
		expect(t, do(t, "POST", b.URL+"/token", k.globex, hank), 201, "")
	})
}

// TestMetadataOfEscapedCharactersRedeems: metadata at its 2 KiB of
// characters that json.Marshal escapes in six bytes (<, >, &, U+2028) makes
// a ticket that redeems; escaped in the ticket, it made one over the 8 KiB a
// ticket may be, minted (and counted) but never redeemable.
func TestMetadataOfEscapedCharactersRedeems(t *testing.T) {
	b := startBroker(t, newKeys(t), nil)
	for _, fill := range []string{"&", "<", ">", "\u2028", "<\u2029&"} {
		// As sent (a raw body: json.Marshal would escape it on the way),
		// exactly 2 KiB compacted.
		n := (2048 - len(`{"q":""}`)) / len(fill)
		value := strings.Repeat(fill, n) + strings.Repeat("&", 2048-len(`{"q":""}`)-n*len(fill))
		md := `{"q":"` + value + `"}`
		var want map[string]string
		if err := json.Unmarshal([]byte(md), &want); err != nil || len(md) != 2048 {
			t.Fatalf("%d bytes: %v", len(md), err)
		}
		ticket := b.mint(t, b.keys.acme, `{"agent":"florencia","channel":"chat","metadata":`+md+`}`)
		if len(ticket) > 8<<10 {
			t.Fatalf("%q: a ticket of %d bytes", fill, len(ticket))
		}
		r := do(t, "POST", b.URL+"/token/redeem", b.keys.acme, map[string]string{"token": ticket})
		expect(t, r, 200, "")
		var got struct{ Metadata map[string]string }
		if err := json.Unmarshal([]byte(r.Raw), &got); err != nil || got.Metadata["q"] != want["q"] {
			t.Fatalf("%q: metadata came back as %s (%v)", fill, r.Raw, err)
		}
	}
}

// TestStrictInput: the real server refuses every body some reader could
// read two ways, and an identity or metadata that would display or log as
// something else; what it accepts comes back from /token/redeem intact.
func TestStrictInput(t *testing.T) {
	k := newKeys(t)
	b := startBroker(t, k, map[string]string{"BROKER_PUBLIC_RATE_PER_MINUTE": "100000"})
	for _, tc := range []struct{ name, path, body string }{
		{"case-variant agent", "/token", `{"agent":"florencia","Agent":"texter","channel":"chat"}`},
		{"duplicate agent", "/token", `{"agent":"florencia","agent":"texter","channel":"chat"}`},
		{"escaped duplicate", "/token", `{"agent":"florencia","\u0061gent":"texter","channel":"chat"}`},
		{"upper-case field alone", "/token", `{"AGENT":"florencia","channel":"chat"}`},
		{"metadata duplicate", "/token", `{"agent":"florencia","channel":"chat","metadata":{"plan":"gold","plan":"free"}}`},
		{"metadata nested case variant", "/token", `{"agent":"florencia","channel":"chat","metadata":{"a":[{"Role":"x","role":"admin"}]}}`},
		{"metadata invalid UTF-8", "/token", "{\"agent\":\"florencia\",\"channel\":\"chat\",\"metadata\":{\"n\":\"\xc3\x28\"}}"},
		{"metadata lone surrogate", "/token", `{"agent":"florencia","channel":"chat","metadata":{"n":"\udead"}}`},
		{"metadata number beyond a double", "/token", `{"agent":"florencia","channel":"chat","metadata":{"n":1e999}}`},
		{"metadata escaped duplicate", "/token", `{"agent":"florencia","channel":"chat","metadata":{"plan":"gold","\u0070lan":"free"}}`},
		{"metadata tenth key a case variant of the second", "/token", `{"agent":"florencia","channel":"chat","metadata":{"a":1,"role":"x","c":1,"d":1,"e":1,"f":1,"g":1,"h":1,"i":1,"ROLE":"admin"}}`},
		{"metadata late Kelvin-sign variant", "/token", `{"agent":"florencia","channel":"chat","metadata":{"a":1,"b":1,"c":1,"d":1,"e":1,"f":1,"g":1,"h":1,"kind":"x","\u212aind":"y"}}`},
		{"metadata nested too deep", "/token", `{"agent":"florencia","channel":"chat","metadata":{"a":` + strings.Repeat("[", 32) + strings.Repeat("]", 32) + `}}`},
		{"metadata over 2 KiB", "/token", `{"agent":"florencia","channel":"chat","metadata":{"n":"` + strings.Repeat("x", 2100) + `"}}`},
		{"invalid UTF-8 outside the fields", "/token", "{\"agent\":\"florencia\",\"channel\":\"chat\"}\n\xff"},
		{"identity C1 control", "/token", `{"agent":"florencia","channel":"chat","identity":"a\u0085b"}`},
		{"identity bidi override", "/token", `{"agent":"florencia","channel":"chat","identity":"admin\u202etxt.exe"}`},
		{"identity bidi isolate", "/token", `{"agent":"florencia","channel":"chat","identity":"a\u2067b"}`},
		{"identity line separator", "/token", `{"agent":"florencia","channel":"chat","identity":"a\u2028b"}`},
		{"identity paragraph separator", "/token", `{"agent":"florencia","channel":"chat","identity":"a\u2029b"}`},
		{"identity 129 bytes", "/token", `{"agent":"florencia","channel":"chat","identity":"` + strings.Repeat("é", 64) + `x"}`},
		{"redeem: Kelvin-sign token key", "/token/redeem", `{"token":"a.b.c","to\u212aen":"x"}`},
		{"redeem: case variant", "/token/redeem", `{"Token":"a.b.c"}`},
		{"public: duplicate channel", "/public/token", `{"agent":"florencia","channel":"chat","channel":"webrtc"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cred, hdr := k.acme, []string(nil)
			if tc.path == "/public/token" {
				cred, hdr = k.pk, []string{"Origin", "https://demo.acme.example"}
			}
			r := do(t, "POST", b.URL+tc.path, cred, tc.body, hdr...)
			expect(t, r, 400, "invalid_request")
			if !utf8Valid(r.Raw) {
				t.Fatalf("the error body is not valid UTF-8: %q", r.Raw)
			}
		})
	}
	// Accepted input is kept exactly and redeemed as valid JSON.
	md := `{"name":"Zoë 用户 😀","nested":{"list":[1,2.5,"x",null,true]},"Case":"kept","case2":"apart"}`
	for _, id := range []string{"Zoë", "用户-42", strings.Repeat("é", 64), "a b.c@d"} {
		r := do(t, "POST", b.URL+"/token", k.acme, `{"agent":"florencia","channel":"chat","identity":`+jsonString(id)+`,"metadata":`+md+`}`)
		expect(t, r, 201, "")
		red := do(t, "POST", b.URL+"/token/redeem", k.acme, map[string]string{"token": r.Body["token"].(string)})
		expect(t, red, 200, "")
		var got struct {
			Identity string          `json:"identity"`
			Metadata json.RawMessage `json:"metadata"`
		}
		if err := json.Unmarshal([]byte(red.Raw), &got); err != nil || got.Identity != id {
			t.Fatalf("redeemed %s: %v", red.Raw, err)
		}
		var a, c any
		json.Unmarshal(got.Metadata, &a)
		json.Unmarshal([]byte(md), &c)
		if fmt.Sprint(a) != fmt.Sprint(c) {
			t.Fatalf("metadata %s, sent %s", got.Metadata, md)
		}
	}
}

func jsonString(s string) string { b, _ := json.Marshal(s); return string(b) }

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// rawHTTP sends one request exactly as written and returns the answer.
func rawHTTP(t *testing.T, addr, req string) (*http.Response, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// TestRequestHeadersOver16KiB: the real server answers 431 in the
// contract's shape as soon as the header fields (each "Name: value\r\n",
// Host included) pass 16 KiB, whether in one header or many, and never
// serves such a request; net/http alone let about 20 KiB through. Past
// that, net/http answers before any handler, and its plain-text 431 is
// rewritten (jsonErrorConn).
func TestRequestHeadersOver16KiB(t *testing.T) {
	k := newKeys(t)
	b := startBroker(t, k, nil)
	addr := b.app.Addr()
	// "Host: b\r\n" and "Connection: close\r\n" are 28 bytes; "X-Pad: \r\n" 9 more.
	padded := func(total int) string {
		return "GET /healthz HTTP/1.1\r\nHost: b\r\nConnection: close\r\nX-Pad: " + strings.Repeat("p", total-37) + "\r\n\r\n"
	}
	many := func(n, each int) string {
		var sb strings.Builder
		sb.WriteString("POST /token HTTP/1.1\r\nHost: b\r\nConnection: close\r\nAuthorization: Bearer " + k.acme + "\r\nContent-Length: 2\r\n")
		for i := range n {
			fmt.Fprintf(&sb, "X-H%03d: %s\r\n", i, strings.Repeat("v", each))
		}
		sb.WriteString("\r\n{}")
		return sb.String()
	}
	for _, tc := range []struct {
		name   string
		req    string
		status int
	}{
		{"exactly 16 KiB", padded(16 << 10), 200},
		{"16 KiB and one byte", padded(16<<10 + 1), 431},
		{"17 KiB", padded(17 << 10), 431},
		{"19.5 KiB", padded(19<<10 + 512), 431},
		{"many headers, 18 KiB", many(180, 92), 431},
		{"far over: net/http's own 431", padded(64 << 10), 431},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := rawHTTP(t, addr, tc.req)
			if resp.StatusCode != tc.status {
				t.Fatalf("%d %s, want %d", resp.StatusCode, body, tc.status)
			}
			if tc.status == 431 {
				var e map[string]string
				if json.Unmarshal([]byte(body), &e) != nil || e["error"] != "payload_too_large" || e["message"] == "" || len(e) != 2 {
					t.Fatalf("431 body %q", body)
				}
				if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
					t.Fatalf("431 Content-Type %q", ct)
				}
			}
		})
	}
	if got := metric(t, b, `voicebroker_tokens_minted_total{mode="backend",org="acme"}`); got != "" {
		t.Fatalf("a request with oversized headers minted: %s", got)
	}
	if strings.Contains(b.Logs.String(), k.acme) {
		t.Fatal("the key reached the log")
	}
}

// TestUnreadableRequestsGetJSON: requests net/http refuses before any
// handler runs (a bad request line, Host, header name or value, version or
// transfer coding) get their status in the contract's error shape, with no
// byte of the request echoed, on the API listener and on /metrics' own.
func TestUnreadableRequestsGetJSON(t *testing.T) {
	k := newKeys(t)
	b := startBroker(t, k, map[string]string{"BROKER_METRICS_ADDR": "127.0.0.1:0"})
	for _, tc := range []struct {
		name, req string
		status    int
		message   string
	}{
		{"no Host", "GET /healthz HTTP/1.1\r\n\r\n", 400, "missing required Host header"},
		{"bad Host", "GET /healthz HTTP/1.1\r\nHost: a<script>b\r\n\r\n", 400, "malformed Host header"},
		{"bad header name", "GET /healthz HTTP/1.1\r\nHost: b\r\nX<script>: 1\r\n\r\n", 400, ""},
		{"NUL in a value", "GET /healthz HTTP/1.1\r\nHost: b\r\nX-A: <script>\x00\r\n\r\n", 400, ""},
		{"garbage line", "<script>alert(1)</script>\r\n\r\n", 400, ""},
		{"HTTP/2.0 over HTTP/1", "GET /healthz HTTP/2.0\r\nHost: b\r\n\r\n", 505, ""},
		{"unknown transfer coding", "POST /token HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: <script>\r\n\r\n", 501, ""},
	} {
		for _, addr := range []string{b.app.Addr(), b.app.MetricsAddr()} {
			resp, body := rawHTTP(t, addr, tc.req)
			if resp.StatusCode != tc.status {
				t.Fatalf("%s at %s: %d %q, want %d", tc.name, addr, resp.StatusCode, body, tc.status)
			}
			var e map[string]string
			if err := json.Unmarshal([]byte(body), &e); err != nil || e["error"] != "invalid_request" || len(e) != 2 {
				t.Fatalf("%s: body %q (%v)", tc.name, body, err)
			}
			if !strings.Contains(e["message"], tc.message) {
				t.Fatalf("%s: message %q, want it to name %q", tc.name, e["message"], tc.message)
			}
			if strings.Contains(body, "script") {
				t.Fatalf("%s: the request's bytes were echoed: %q", tc.name, body)
			}
			for h, want := range map[string]string{"Content-Type": "application/json", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"} {
				if got := resp.Header.Get(h); got != want {
					t.Fatalf("%s: %s %q, want %q", tc.name, h, got, want)
				}
			}
		}
	}
}

// TestDelegatedModeForwardsExactHeaders: the exact set of headers the real
// example auth service receives, from a request carrying every kind of
// credential-bearing, proxy and hop-by-hop header, written byte for byte.
func TestDelegatedModeForwardsExactHeaders(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	peer := startAuthPeer(t, &rsaKey.PublicKey)
	b := startBroker(t, newKeys(t), map[string]string{"AUTH_SERVICE_URL": peer.URL, "AUTH_SIGNING_KEY_PATH": writeKeyPair(t, rsaKey)})
	withheld := []string{
		"Proxy-Authorization: Basic dXNlcjpwYXNz", "Proxy-Connection: keep-alive", "Proxy-Foo: x",
		"Forwarded: for=198.51.100.1;proto=https", "Via: 1.1 proxy", "X-Forwarded-For: 198.51.100.1",
		"X-Forwarded-Host: evil.example", "X-Real-IP: 198.51.100.2", "X-Client-IP: 198.51.100.3",
		"True-Client-IP: 198.51.100.4", "CF-Connecting-IP: 198.51.100.5",
		"Cookie: session=abc", "Cookie2: $Version=1", "X-Api-Key: k1", "Api-Key: k2", "Apikey: k3",
		"X-Auth-Token: t1", "X-Amz-Security-Token: t2", "X-Csrf-Token: t3", "X-XSRF-TOKEN: t4",
		"Ocp-Apim-Subscription-Key: k4", "X-Session-Id: s1", "X-Client-Cert: c1", "X-Hub-Signature-256: sha256=00",
		"X-Password: p", "X-Secret: s", "X-Credentials: c", "DPoP: a.b.c", "X-Sayna-Trace: t",
		"Keep-Alive: timeout=5", "TE: trailers", "Trailer: X-Checksum", "Upgrade: websocket",
		"Connection: keep-alive, Upgrade, X-Hop-Custom", "X-Hop-Custom: hop",
	}
	kept := map[string]string{
		"content-type": "application/json", "user-agent": "vb-test/1", "accept": "application/json",
		"accept-language": "en", "origin": "https://app.acme.example", "referer": "https://app.acme.example/page",
		"x-request-id": "req-12345", "x-custom": "a, b", "x-tenant": "acme-eu",
	}
	body := `{"agent":"florencia","channel":"webrtc"}`
	req := "POST /token HTTP/1.1\r\nHost: broker.test\r\nAuthorization: Bearer user-acme\r\n" +
		"Content-Type: application/json\r\nUser-Agent: vb-test/1\r\nAccept: application/json\r\nAccept-Language: en\r\n" +
		"Origin: https://app.acme.example\r\nReferer: https://app.acme.example/page\r\nX-Request-Id: req-12345\r\n" +
		"X-Custom: a\r\nX-Custom: b\r\nX-Tenant: acme-eu\r\n" +
		strings.Join(withheld, "\r\n") + "\r\n" +
		"Transfer-Encoding: chunked\r\n\r\n" + fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body)
	resp, answer := rawHTTP(t, b.app.Addr(), req)
	if resp.StatusCode != 201 {
		t.Fatalf("%d %s", resp.StatusCode, answer)
	}
	got := peer.last(t).AuthData.RequestHeaders
	for name, v := range kept {
		if got[name] != v {
			t.Errorf("header %s: %q, want %q", name, got[name], v)
		}
	}
	for name := range got {
		if _, ok := kept[name]; !ok {
			t.Errorf("header %s reached the auth service", name)
		}
	}
	if p := peer.last(t); string(p.AuthData.RequestBody) != body || p.AuthData.Token != "user-acme" {
		t.Fatalf("payload %+v", p.AuthData)
	}
}

// TestDelegatedModeOneReading: the auth service and the broker read the
// same agent from the same body. A body the broker refuses reaches the
// auth service as null, never as something it could read another way.
func TestDelegatedModeOneReading(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	peer := startAuthPeer(t, &rsaKey.PublicKey)
	b := startBroker(t, newKeys(t), map[string]string{"AUTH_SERVICE_URL": peer.URL, "AUTH_SIGNING_KEY_PATH": writeKeyPair(t, rsaKey)})
	for _, tc := range []struct {
		body      string
		ambiguous bool // some reader could take another agent from it
	}{
		{`{"agent":"florencia","Agent":"texter","channel":"chat"}`, true},
		{`{"agent":"texter","agent":"florencia","channel":"chat"}`, true},
		{`{"agent":"texter","\u0061gent":"florencia","channel":"chat"}`, true},
		{"{\"agent\":\"florencia\",\"channel\":\"chat\",\"metadata\":{\"x\":\"\xff\"}}", true},
		{`{"agent":"florencia","channel":"chat","metadata":{"x":"\ud800"}}`, true},
		{`{"Agent":"florencia","channel":"chat"}`, false}, // one reading; the broker refuses the name
	} {
		n := peer.count()
		r := do(t, "POST", b.URL+"/token", "user-acme", tc.body)
		expect(t, r, 400, "invalid_request")
		if peer.count() != n+1 {
			t.Fatalf("%s: the auth service was not asked", tc.body)
		}
		if got := string(peer.last(t).AuthData.RequestBody); tc.ambiguous && got != "null" {
			t.Fatalf("%s: the auth service got %s, want null", tc.body, got)
		}
	}
	r := do(t, "POST", b.URL+"/token", "user-acme", `{"agent":"texter","channel":"chat"}`)
	expect(t, r, 201, "")
	var seen struct {
		Agent string `json:"agent"`
	}
	json.Unmarshal(peer.last(t).AuthData.RequestBody, &seen)
	red := do(t, "POST", b.URL+"/token/redeem", "user-acme", map[string]string{"token": r.Body["token"].(string)})
	if seen.Agent != "texter" || red.Body["agent"] != "texter" {
		t.Fatalf("auth service read %q, ticket for %v", seen.Agent, red.Body["agent"])
	}
}

// TestConfigStale: a reload that fails (a typo next to revoked: true)
// keeps the old tenants, sets voicebroker_config_stale to 1 and says so in
// /readyz (still 200: the old tenants are loaded and in force); the next
// good reload clears both.
func TestConfigStale(t *testing.T) {
	k := newKeys(t)
	b := startBroker(t, k, map[string]string{"BROKER_RELOAD_INTERVAL": "1h"})
	ready := func() response {
		r := do(t, "GET", b.URL+"/readyz", "", nil)
		expect(t, r, 200, "")
		return r
	}
	if got := metric(t, b, "voicebroker_config_stale"); got != "0" {
		t.Fatalf("stale = %q at start", got)
	}
	if r := ready(); r.Body["status"] != "ready" || r.Body["config"] != "current" {
		t.Fatalf("readyz %s", r.Raw)
	}
	typo := tenantsYAML(k, func(y string) string {
		return strings.Replace(y, "      - id: office", "      - id: office\n        revokd: true", 1)
	})
	writeFile(t, b.Dir+"/tenants.yaml", typo)
	if _, err := b.app.Tenants.(*file.Registry).File().Reload(true); err == nil {
		t.Fatal("the typo reloaded")
	}
	if got := metric(t, b, "voicebroker_config_stale"); got != "1" {
		t.Fatalf("stale = %q after a failed reload", got)
	}
	if r := ready(); r.Body["status"] != "ready" || r.Body["config"] != "stale" || !strings.Contains(fmt.Sprint(r.Body["message"]), "reload failed") {
		t.Fatalf("readyz %s", r.Raw)
	}
	expect(t, do(t, "POST", b.URL+"/token", k.acme, flo), 201, "") // the old tenants serve
	reconfigure(t, b, tenantsYAML(k))
	if got := metric(t, b, "voicebroker_config_stale"); got != "0" {
		t.Fatalf("stale = %q after a good reload", got)
	}
	if r := ready(); r.Body["config"] != "current" {
		t.Fatalf("readyz %s", r.Raw)
	}
}

// TestNewRefusalsLogNoSecrets: the refusals added by the hardening (strict
// input, oversized headers, counted refusals, the budgets) never put a
// credential or ticket in the log or in an answer.
func TestNewRefusalsLogNoSecrets(t *testing.T) {
	k := newKeys(t)
	b := startBroker(t, k, map[string]string{"BROKER_PUBLIC_RATE_PER_MINUTE": "2"})
	tok := b.mint(t, k.acme, flo)
	var answers []string
	keep := func(r response) { answers = append(answers, r.Raw) }
	for _, body := range []string{
		`{"` + k.acme + `":1,"` + k.acme + `":2}`,
		`{"agent":"florencia","channel":"chat","metadata":{"` + tok + `":1,"` + tok + `":1}}`,
		`{"agent":"florencia","channel":"chat","identity":"` + tok + "\u202e" + `"}`,
		`{"agent":"florencia","channel":"chat","` + k.pk + `":1}`,
		`{"token":"` + tok + `","Token":"x"}`,
	} {
		keep(do(t, "POST", b.URL+"/token", k.acme, body))
		keep(do(t, "POST", b.URL+"/token/redeem", k.acme, body))
		keep(do(t, "POST", b.URL+"/public/token", k.pk, body, "Origin", "https://demo.acme.example"))
	}
	for range 3 {
		keep(do(t, "POST", b.URL+"/public/token?api_key="+url.QueryEscape(k.pk), "", map[string]any{"agent": "florencia", "channel": "chat"}, "Origin", "https://demo.acme.example"))
	}
	resp, body := rawHTTP(t, b.app.Addr(), "GET /token?api_key="+k.acme+" HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer "+k.acme+"\r\nX-Pad: "+strings.Repeat("x", 17<<10)+"\r\n\r\n")
	if resp.StatusCode != 431 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	answers = append(answers, body)
	b.stop()
	logs := b.Logs.String()
	for _, secret := range []string{k.acme, k.pk, tok, strings.Split(tok, ".")[2]} {
		if strings.Contains(logs, secret) {
			t.Errorf("a credential or ticket reached the log")
		}
		for _, a := range answers {
			if strings.Contains(a, secret) {
				t.Errorf("an answer repeats a credential or ticket: %s", a)
			}
		}
	}
}
