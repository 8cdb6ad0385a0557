package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/voicebroker/voicebroker/internal/strictjson"
)

// TestDecodeJSONStrict: every body the broker decodes is read one way only.
// Each refused body here is accepted by encoding/json as the broker used it
// before (and would be read differently by some other reader).
func TestDecodeJSONStrict(t *testing.T) {
	type room struct {
		AgentName string `json:"agent_name"`
	}
	type req struct {
		Agent    string          `json:"agent"`
		Channel  string          `json:"channel"`
		Identity *string         `json:"identity"`
		Metadata json.RawMessage `json:"metadata"`
		Rooms    []room          `json:"rooms"`
		Attrs    map[string]room `json:"attrs"`
	}
	for _, tc := range []struct {
		name, body string
		strict     bool
		want       string // "" = accepted; else a fragment of the message
	}{
		{"plain", `{"agent":"a","channel":"chat"}`, true, ""},
		{"whitespace and nesting", " {\"agent\" : \"a\", \"metadata\": {\"x\": [1, {\"y\": null}], \"X2\": 1e-3}}\n", true, ""},
		{"unicode values and escapes", `{"agent":"\u00e9t\u00e9 \ud83d\ude00 ü","identity":"\"q\"\\/"}`, true, ""},
		{"duplicate key", `{"agent":"a","agent":"b"}`, true, `duplicate key "agent"`},
		{"case variant", `{"agent":"a","Agent":"b"}`, true, `differ only in case`},
		{"escaped duplicate", `{"agent":"a","\u0061gent":"b"}`, true, `duplicate key "agent"`},
		{"Kelvin sign folds to k", `{"token":"a","to\u212aen":"b"}`, false, `differ only in case`},
		{"long s folds to s", `{"rooms":[],"room\u017f":1}`, false, `differ only in case`},
		{"case variant alone", `{"Agent":"a","channel":"chat"}`, true, `case-sensitive (did you mean "agent"?)`},
		{"case variant alone, lenient", `{"AGENT":"a"}`, false, `case-sensitive`},
		{"unknown field", `{"agent":"a","room":"r"}`, true, `unknown field "room"`},
		{"unknown field, lenient", `{"agent":"a","room":"r"}`, false, ""},
		{"nested struct case variant", `{"rooms":[{"Agent_Name":"x"}]}`, true, `in "rooms[0]"`},
		{"map of structs checked too", `{"attrs":{"k":{"agent_name":"x","agent_Name":"y"}}}`, true, `differ only in case`},
		{"map keys may differ in case? no", `{"attrs":{"k":{},"K":{}}}`, true, `differ only in case`},
		{"metadata duplicate", `{"metadata":{"a":1,"a":2}}`, true, `duplicate key "a" in "metadata"`},
		{"metadata deep duplicate", `{"metadata":{"a":{"b":[{"c":1,"c":2}]}}}`, true, `in "metadata.a.b[0]"`},
		{"metadata case variant", `{"metadata":{"Email":"x","email":"y"}}`, true, `differ only in case`},
		{"invalid UTF-8 in a value", "{\"agent\":\"a\xff\"}", true, "not valid UTF-8"},
		{"invalid UTF-8 in a key", "{\"ag\xc3ent\":\"a\"}", true, "not valid UTF-8"},
		{"overlong encoding", "{\"agent\":\"\xc0\xaf\"}", true, "not valid UTF-8"},
		{"encoded surrogate", "{\"agent\":\"\xed\xa0\x80\"}", true, "not valid UTF-8"},
		{"lone high surrogate escape", `{"agent":"\ud800"}`, true, "lone surrogate"},
		{"lone low surrogate escape", `{"agent":"\udc00x"}`, true, "lone surrogate"},
		{"reversed pair", `{"agent":"\udc00\ud800"}`, true, "lone surrogate"},
		{"high then non-low", `{"agent":"\ud800\u0041"}`, true, "lone surrogate"},
		{"raw control character", "{\"agent\":\"a\tb\"}", true, "control character"},
		{"trailing data", `{"agent":"a"} {}`, true, "after the JSON value"},
		{"trailing comma", `{"agent":"a",}`, true, "malformed JSON"},
		{"leading zero", `{"metadata":{"n":01}}`, true, "malformed JSON"},
		{"number beyond a double", `{"metadata":{"n":1e999}}`, true, "out of range"},
		{"negative number beyond a double", `{"metadata":{"n":-` + strings.Repeat("9", 400) + `}}`, true, "out of range"},
		{"big but finite numbers", `{"metadata":{"n":1.7e308,"m":-123456789012345678901234567890,"u":1e-400}}`, true, ""},
		{"NBSP is not whitespace", "\u00a0{\"agent\":\"a\"}", true, "malformed JSON"},
		{"too deep", `{"metadata":` + strings.Repeat(`[`, strictjson.MaxDepth) + strings.Repeat(`]`, strictjson.MaxDepth) + `}`, true, "deeper than"},
		{"deep enough", `{"metadata":` + strings.Repeat(`[`, strictjson.MaxDepth-1) + strings.Repeat(`]`, strictjson.MaxDepth-1) + `}`, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v req
			err := decodeJSON([]byte(tc.body), &v, tc.strict)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("accepted, want %q", tc.want)
			case err != nil:
				e := classify(err)
				if e.Code != CodeInvalidRequest || !strings.Contains(e.Message, tc.want) {
					t.Fatalf("%s %q, want invalid_request with %q", e.Code, e.Message, tc.want)
				}
			}
		})
	}
}

// TestStrictJSONMessagesQuoteNoLongKeys: a message names a key only when it
// is short and plain, so a credential sent as a key is never echoed.
func TestStrictJSONMessagesQuoteNoLongKeys(t *testing.T) {
	secret := "sk_live_" + strings.Repeat("Q", 43)
	for _, body := range []string{
		`{"` + secret + `":1,"` + secret + `":2}`,
		`{"agent":"a","` + secret + `":1}`,
		`{"metadata":{"` + secret + `":{"a":1,"a":2}}}`,
		`{"a\"b":1,"a\"b":2}`,
	} {
		var v struct {
			Agent    string          `json:"agent"`
			Metadata json.RawMessage `json:"metadata"`
		}
		err := decodeJSON([]byte(body), &v, true)
		if err == nil {
			t.Fatalf("%s accepted", body)
		}
		if msg := classify(err).Message; strings.Contains(msg, secret) || strings.Contains(msg, `a"b`) {
			t.Fatalf("message %q repeats a key", msg)
		}
	}
}

// FuzzStrictJSON: strictjson.Check never panics; whatever it accepts is JSON that
// encoding/json accepts too, valid UTF-8, with no two keys of an object
// equal under strings.EqualFold (a simpler reference than the checker's
// fold table); and whatever it refuses that encoding/json accepts and the
// reference finds no such keys in, is refused for a lone surrogate, depth or
// a number out of a double's range.
func FuzzStrictJSON(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1}`, `{"a":1,"a":2}`, `{"a":1,"A":2}`, `{"k":1,"\u212a":2}`, `{"s":1,"\u017f":2}`,
		`{"a":{"b":[{"c":1},{"c":1}]}}`, `[1,2,{"x":[]}]`, `"\ud83d\ude00"`, `"\ud800"`, `{"a":"\u00e9"}`,
		"{\"a\":\"\xff\"}", `{"a":-0.5e+10}`, `{"a":01}`, `{"a":1,}`, `{"ǅ":1,"ǆ":2}`, `{"ß":1,"ẞ":2}`,
		`{"Σ":1,"ς":2}`, `{"ﬀ":1,"FF":2}`, strings.Repeat("[", 40) + strings.Repeat("]", 40), `[1e400, 1e-400]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := strictjson.Check(data, nil, false)
		valid := json.Valid(data) && utf8.Valid(data)
		if err == nil {
			if !valid {
				t.Fatalf("accepted %q, which encoding/json refuses", data)
			}
			if foldDuplicates(t, data) {
				t.Fatalf("accepted %q, whose keys repeat under EqualFold", data)
			}
			return
		}
		if valid && !foldDuplicates(t, data) {
			if msg := err.Error(); !strings.Contains(msg, "surrogate") && !strings.Contains(msg, "deeper") && !strings.Contains(msg, "out of range") {
				t.Fatalf("refused valid %q: %v", data, err)
			}
		}
	})
}

// foldDuplicates is the reference: encoding/json's tokens, keys compared
// pairwise with strings.EqualFold.
func foldDuplicates(t *testing.T, data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type frame struct {
		object    bool
		keys      []string
		expectKey bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return false
		}
		if err != nil {
			t.Fatalf("reference: %v", err)
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.expectKey {
			if d, ok := tok.(json.Delim); !ok || d != '}' {
				k := tok.(string)
				for _, prev := range top.keys {
					if strings.EqualFold(prev, k) {
						return true
					}
				}
				top.keys = append(top.keys, k)
				top.expectKey = false
				continue
			}
		}
		if top != nil && top.object {
			top.expectKey = true
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{':
				stack = append(stack, &frame{object: true, expectKey: true})
			case '[':
				stack = append(stack, &frame{})
			default:
				stack = stack[:len(stack)-1]
			}
		}
	}
}
