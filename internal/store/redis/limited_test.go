package redis

import (
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/internal/store"
)

// readLimited is parseLimited written plainly: split on spaces, six
// fields, each read by strconv.
func readLimited(s string) (limitedReply, bool) {
	f := strings.Split(s, " ")
	if len(f) != 6 {
		return limitedReply{}, false
	}
	flag := func(v string) (bool, bool) { return v == "1", v == "0" || v == "1" }
	allowed, ok0 := flag(f[0])
	gated, ok5 := flag(f[5])
	remaining, err1 := strconv.Atoi(f[1])
	retry, err2 := strconv.ParseFloat(f[2], 64)
	reset, err3 := strconv.ParseFloat(f[3], 64)
	done, err4 := strconv.Atoi(f[4])
	if !ok0 || !ok5 || err1 != nil || err2 != nil || err3 != nil || err4 != nil ||
		done < 0 || done > 2 || len(f[4]) != 1 {
		return limitedReply{}, false
	}
	return limitedReply{allowed: allowed, gated: gated, remaining: remaining, retry: retry, reset: reset, done: done}, true
}

// FuzzParseLimited checks parseLimited against readLimited: the same
// replies are accepted, with the same values.
func FuzzParseLimited(f *testing.F) {
	for _, s := range []string{
		"1 59 -1 1.0000040531158 1 0", // replies of the script
		"0 0 0.99998331069946 59.999983310699 0 0",
		"0 0 3.5e-05 2.0000350475311 0 1",
		"1 7 -1 0.5 2 0",
		"1 7 -1 0.5 0 0",
		"", "1 2 3", "1 x -1 1 1 0", "1 1 1 1 1 1 1", "2 1 -1 1 1 0", "1 1 -1 1 1 2",
		"1 1 -1 1 01 0", "1 1 -1 1 +1 0", "1  1 -1 1 1 0", "1 1 NaN Inf 1 0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseLimited(s)
		want, wantOK := readLimited(s)
		if ok != wantOK {
			t.Fatalf("parseLimited(%q) ok = %v, want %v", s, ok, wantOK)
		}
		same := got.allowed == want.allowed && got.gated == want.gated && got.remaining == want.remaining &&
			got.done == want.done && math.Float64bits(got.retry) == math.Float64bits(want.retry) &&
			math.Float64bits(got.reset) == math.Float64bits(want.reset)
		if !same {
			t.Fatalf("parseLimited(%q) = %+v, want %+v", s, got, want)
		}
	})
}

// TestLimitedCallArgs: the command newLimitedCall builds, its pointers
// read, is the EVALSHA redis.Script.Run sent before it: the keys of
// rateKey and nonceKey, then the arguments, as the values themselves.
func TestLimitedCallArgs(t *testing.T) {
	limit := store.Limit{Rate: 600, Burst: 1200, Period: 90 * time.Second}
	gate := store.Gate{Key: store.OrgKey("acme"), Limit: store.PerMinute(300)}
	for _, tc := range []struct {
		n   store.Nonce
		op  string
		ttl time.Duration
	}{
		{store.Nonce{Org: "acme", ID: "n1"}, "put", time.Minute},
		{store.Nonce{Org: "acme", ID: "n2", Record: "rec"}, "put", 90 * time.Second},
		{store.Nonce{Org: "acme", ID: "n3", Record: "rec"}, "consume", 0},
		{store.Nonce{Org: "acme", ID: "n4"}, "consume", 0},
		{store.Nonce{Org: "acme", ID: "n5", PublicAgent: "web", Gate: gate}, "put", time.Minute},
		{store.Nonce{Org: "{odd}", ID: "", PublicAgent: "a b"}, "put", time.Millisecond},
	} {
		keys := []string{rateKey(tc.n.LimitKey()), nonceKey(tc.n)}
		rec := tc.n.Record
		if tc.op == "put" {
			rec = record(tc.n)
		}
		args := []any{limit.Burst, limit.Rate, limit.Period.Seconds(), tc.op, tc.ttl.Milliseconds(), rec}
		if g := tc.n.Gate; g.Key != "" {
			keys = append(keys, rateKey(g.Key))
			args = append(args, g.Limit.Burst, g.Limit.Rate, g.Limit.Period.Seconds())
		}
		want := []any{"evalsha", limitedNonce.Hash(), len(keys)}
		for _, k := range keys {
			want = append(want, k)
		}
		want = append(want, args...)

		c := newLimitedCall(tc.n, &limit, tc.op, tc.ttl)
		var got []any
		for _, a := range c.args[:c.nargs] {
			switch v := a.(type) {
			case *string:
				got = append(got, *v)
			case *int:
				got = append(got, *v)
			case *int64:
				got = append(got, *v)
			case *float64:
				got = append(got, *v)
			default:
				got = append(got, v)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%+v %s: args\n%#v\nwant\n%#v", tc.n, tc.op, got, want)
		}
	}
}
