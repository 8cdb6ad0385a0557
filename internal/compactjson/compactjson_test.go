package compactjson_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/voicebroker/voicebroker/internal/compactjson"
)

// reference is what encoding/json writes for src: json.Compact's output
// (escapeHTML false), or json.Marshal's for src as a json.RawMessage.
func reference(src []byte, escapeHTML bool) ([]byte, error) {
	if escapeHTML {
		return json.Marshal(json.RawMessage(src))
	}
	var b bytes.Buffer
	err := json.Compact(&b, src)
	return b.Bytes(), err
}

var seeds = []string{
	`{}`, `[]`, `{"a":1}`, " { \"a\" : [ 1 , 2.5e-3 , -0 , true , false , null ] }\n", `"x"`, `0`, `-1.5E+10`,
	`{"html":"<b>&amp;</b>","ls":"a` + "\u2028" + `b` + "\u2029" + `c","e":"\u2028"}`,
	`{"esc":"\" \\ \/ \b \f \n \r \t \u00e9 \uD83D\uDE00 \u003c"}`, "{\"raw\":\"\xff\xfe\"}",
	`{"a":01}`, `{"a":1,}`, `[1,]`, `{"a" 1}`, `{"a":}`, `{a:1}`, `[1 2]`, `-`, `1.`, `1e`, `1e+`, `.5`, `+1`,
	`tru`, `nul`, `nullx`, `"abc`, "\"a\tb\"", `"\x"`, `"\u12"`, `"\u12g4"`, ``, ` `, `{"a":1}}`, `[[]`,
	"\"\xe2\x80\"", "\"\xe2\x80\xa8", "\"\xe2\x80", "\"\xe2", "\"\\v\"", "\"\x1f\"", "\"\x7f\"", strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
}

// TestAppendMatchesEncodingJSON: for the seeds, Append writes what
// encoding/json writes, and refuses what it refuses, in both modes.
func TestAppendMatchesEncodingJSON(t *testing.T) {
	for _, s := range seeds {
		for _, escape := range []bool{false, true} {
			check(t, []byte(s), escape)
		}
	}
	// nil, which the fuzzer never passes: an error for json.Compact, null
	// for json.Marshal of a RawMessage.
	check(t, nil, false)
	check(t, nil, true)
}

func check(t *testing.T, src []byte, escape bool) {
	t.Helper()
	want, wantErr := reference(src, escape)
	prefix := []byte("prefix:")
	got, err := compactjson.Append(prefix, src, escape)
	switch {
	case (err == nil) != (wantErr == nil):
		t.Fatalf("%.60q (escape %v): error %v, encoding/json's %v", src, escape, err, wantErr)
	case err != nil:
		if string(got) != "prefix:" {
			t.Fatalf("%.60q: on an error dst is %q", src, got)
		}
	case !bytes.Equal(got, append([]byte("prefix:"), want...)):
		t.Fatalf("%.60q (escape %v):\n got %q\nwant %q", src, escape, got, want)
	}
}

func FuzzAppend(f *testing.F) {
	for _, s := range seeds {
		if len(s) < 1000 {
			f.Add([]byte(s), false)
			f.Add([]byte(s), true)
		}
	}
	f.Fuzz(func(t *testing.T, src []byte, escape bool) {
		check(t, src, escape)
	})
}

// BenchmarkAppend compacts metadata of 16 string members, of about 500 B
// and 2 KiB, with HTML escaping (as a ticket's claims are written), beside
// encoding/json doing the same.
func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{500, 2000} {
		var parts []string
		for i := range 16 {
			parts = append(parts, fmt.Sprintf(`"k%02d":"%s"`, i, strings.Repeat("x", size/16-8)))
		}
		src := []byte("{" + strings.Join(parts, ",") + "}")
		buf := make([]byte, 0, 4096)
		b.Run(fmt.Sprintf("compactjson %d B", size), func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := compactjson.Append(buf[:0], src, true); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("encoding-json %d B", size), func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := json.Marshal(json.RawMessage(src)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
