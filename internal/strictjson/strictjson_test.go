package strictjson_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/voicebroker/voicebroker/internal/strictjson"
)

// keys returns an object with n distinct keys k0..k(n-1), then extra.
func keys(n int, extra ...string) string {
	var parts []string
	for i := range n {
		parts = append(parts, fmt.Sprintf(`"k%d":%d`, i, i))
	}
	return "{" + strings.Join(append(parts, extra...), ",") + "}"
}

// TestDuplicateKeysAtAnyPosition: a key twice, or twice under case
// folding, is refused wherever it falls: among an object's first keys
// (compared pairwise) or later (indexed by Fold), and across the two.
func TestDuplicateKeysAtAnyPosition(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"second key repeats the first", `{"a":1,"a":2}`, `duplicate key "a"`},
		{"case variant among the first", `{"ab":1,"AB":2}`, `keys "ab" and "AB" differ only in case`},
		{"Kelvin sign", `{"k":1,"\u212a":2}`, `keys "k" and (a key) differ only in case`},
		{"escaped spelling", `{"a":1,"\u0061":2}`, `duplicate key "a"`},
		{"ninth key repeats the first", keys(8, `"k0":9`), `duplicate key "k0"`},
		{"twentieth key repeats the fifth, in case", keys(19, `"K4":9`), `keys "k4" and "K4" differ only in case`},
		{"late key repeats a late one", keys(12, `"x":1`, `"y":1`, `"x":2`), `duplicate key "x"`},
		{"many distinct keys", keys(40), ""},
		{"distinct keys differing in length", `{"a":1,"aa":2,"aaa":3,"aaaa":4,"aaaaa":5,"aaaaaa":6,"aaaaaaa":7,"aaaaaaaa":8,"aaaaaaaaa":9}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := strictjson.Check([]byte(tc.body), nil, false)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || err.Error() != tc.want):
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// TestValueStringsChecked: a string value is checked as strictly as a key
// although its text is never kept.
func TestValueStringsChecked(t *testing.T) {
	for _, body := range []string{`{"a":"\ud800"}`, "{\"a\":\"x\ty\"}", `{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"abc`} {
		if err := strictjson.Check([]byte(body), nil, false); err == nil {
			t.Errorf("%q passed", body)
		}
	}
	if err := strictjson.Check([]byte(`{"a":"\ud83d\ude00 \" \\ \/ \b\f\n\r\t \u00e9"}`), nil, false); err != nil {
		t.Errorf("valid escapes refused: %v", err)
	}
}

// metadataBody is a mint's body whose metadata has n string members of
// about size bytes in all, as the harness's metadata dimension sends.
func metadataBody(n, size int) []byte {
	var parts []string
	for i := range n {
		parts = append(parts, fmt.Sprintf(`"k%02d":"%s"`, i, strings.Repeat("x", max(1, size/n-8))))
	}
	return []byte(`{"agent":"bot","channel":"webrtc","metadata":{` + strings.Join(parts, ",") + `}}`)
}

// BenchmarkCheck is the strict check of request bodies: a mint's without
// metadata, and with 16 members of metadata, of about 500 B and 2 KiB.
// A key costs no allocation below the top level (it is read in place, and
// its path is spelled out only for an error).
func BenchmarkCheck(b *testing.B) {
	for _, bc := range []struct {
		name string
		body []byte
	}{
		{"mint", []byte(`{"agent":"bot","channel":"webrtc"}`)},
		{"metadata 16 members 500 B", metadataBody(16, 500)},
		{"metadata 16 members 2 KiB", metadataBody(16, 2000)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.body)))
			for b.Loop() {
				if err := strictjson.Check(bc.body, nil, true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
