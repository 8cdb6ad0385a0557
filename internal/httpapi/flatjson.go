package httpapi

import (
	"bytes"
	"encoding/json"
	"reflect"
)

// flatField is one field of a request body that decodeFlat fills: a
// string (str), an optional string (opt: nil when absent or null) or any
// JSON value kept as it is (raw).
type flatField struct {
	name string
	str  *string
	opt  **string
	raw  *json.RawMessage
}

// decodeFlatJSON is decodeJSON(data, v, true) for a body of one flat
// object whose fields are fields (pointers into *v): after the same strict
// check it fills them without reflection when every key is plain and every
// string field holds a string without escapes or null, and otherwise
// decodes with decodeJSON, which then gives the same answer, or names the
// same error, as always.
func decodeFlatJSON(data []byte, v any, t reflect.Type, fields []flatField) error {
	if err := checkJSONObject(data, t, true); err != nil {
		return err
	}
	if decodeFlat(data, fields) {
		return nil
	}
	return decodeJSON(data, v, true)
}

// decodeFlat fills fields from data, a JSON object strictJSON accepted
// for their type (so it is valid, with no key twice and none unknown), and
// reports whether it could; on false the fields hold anything and the
// caller decodes again.
func decodeFlat(data []byte, fields []flatField) bool {
	i := skipSpace(data, 0) + 1 // past {
	for {
		i = skipSpace(data, i)
		switch data[i] {
		case '}':
			return true
		case ',':
			i = skipSpace(data, i+1)
		}
		key, end, ok := plainString(data, i)
		if !ok {
			return false
		}
		i = skipSpace(data, end)
		i = skipSpace(data, i+1) // past :
		end = skipValue(data, i)
		val := data[i:end]
		i = end
		var f *flatField
		for j := range fields {
			if string(key) == fields[j].name {
				f = &fields[j]
				break
			}
		}
		switch {
		case f == nil:
			return false
		case f.raw != nil:
			*f.raw = val // a slice of the body, which nothing writes to
		case string(val) == "null":
			// encoding/json leaves a string as it is, an optional one nil.
		default:
			s, _, ok := plainString(val, 0)
			if !ok || len(s)+2 != len(val) {
				return false // not a string, or one with escapes
			}
			if f.str != nil {
				*f.str = string(s)
			} else {
				p := string(s)
				*f.opt = &p
			}
		}
	}
}

// plainString returns the text of the JSON string at data[i] and the
// index past it, if it has no escape.
func plainString(data []byte, i int) ([]byte, int, bool) {
	if i >= len(data) || data[i] != '"' {
		return nil, 0, false
	}
	n := bytes.IndexAny(data[i+1:], `"\`)
	if n < 0 || data[i+1+n] != '"' {
		return nil, 0, false
	}
	return data[i+1 : i+1+n], i + n + 2, true
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the index past the JSON value starting at data[i];
// data is valid JSON.
func skipValue(data []byte, i int) int {
	depth := 0
	for ; i < len(data); i++ {
		switch data[i] {
		case '"':
			for i++; i < len(data) && data[i] != '"'; i++ {
				if data[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			depth++
			continue
		case '}', ']':
			depth--
			if depth < 0 {
				return i // the end of the enclosing object: a scalar ended
			}
		case ',':
			if depth == 0 {
				return i
			}
			continue
		case ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i
			}
			continue
		default:
			continue // inside a literal or number
		}
		if depth == 0 {
			return i + 1
		}
	}
	return i
}
