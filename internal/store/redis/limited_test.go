package redis

import (
	"math"
	"strconv"
	"strings"
	"testing"
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
