package httpapi

import (
	"reflect"
	"testing"
)

// flatSeeds are request bodies of every shape the mint and the public
// mint see: plain, escaped, null, wrong types, nested metadata, odd
// spacing, and bodies the strict check refuses.
var flatSeeds = []string{
	`{"agent":"bot","channel":"webrtc"}`,
	` { "agent" : "bot" , "channel" : "chat" , "identity" : "ada" , "dpop_jkt" : "abc" } `,
	`{"agent":"bot","channel":"webrtc","metadata":{"a":[1,{"b":"}\"]"}],"c":null},"identity":null}`,
	`{"metadata":null,"dpop_jkt":null,"agent":null}`,
	`{"metadata":"x","agent":"b"}`, `{"metadata":[1,2],"agent":"b"}`, `{"metadata":12.5e3}`, `{"metadata":true}`,
	`{"agent":"b\u00e9","channel":"we\"b"}`, `{"\u0061gent":"bot"}`, `{"agent":"\/"}`,
	`{"agent":1}`, `{"agent":{}}`, `{"agent":[]}`, `{"channel":true}`, `{"identity":5}`, `{"identity":{"a":1}}`, `{"dpop_jkt":false}`,
	`{"agent":"x","agent":"y"}`, `{"Agent":"x"}`, `{"room":"x"}`, `{}`, `[]`, `""`, `null`, ``, `{"agent":"x"`, `{"agent":"x"} x`,
	"{\"agent\":\"ü日本\"}", "{\"agent\":\"a\xffb\"}", `{"identity":"","agent":""}`, "{\n\t\"agent\":\r\"bot\"\n}",
}

// sameDecode fails unless decodeFlatJSON decodes data into v's type as
// decodeJSON does: the same value, or the same error.
func sameDecode[T any](t *testing.T, data []byte, fields func(*T) []flatField) {
	t.Helper()
	var flat, generic T
	ferr := decodeFlatJSON(data, &flat, reflect.TypeFor[*T](), fields(&flat))
	gerr := decodeJSON(data, &generic, true)
	if (ferr == nil) != (gerr == nil) || ferr != nil && ferr.Error() != gerr.Error() {
		t.Fatalf("%q: flat error %v, generic error %v", data, ferr, gerr)
	}
	if ferr == nil && !reflect.DeepEqual(flat, generic) {
		t.Fatalf("%q: flat %+v, generic %+v", data, flat, generic)
	}
}

func TestDecodeFlatIsDecodeJSON(t *testing.T) {
	for _, s := range flatSeeds {
		sameDecode(t, []byte(s), (*mintRequest).fields)
		sameDecode(t, []byte(s), (*publicRequest).fields)
	}
}

// FuzzDecodeFlat: for every body, the mint's and the public mint's
// decoding without reflection answers as decodeJSON does.
func FuzzDecodeFlat(f *testing.F) {
	for _, s := range flatSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sameDecode(t, data, (*mintRequest).fields)
		sameDecode(t, data, (*publicRequest).fields)
	})
}
