package httpapi

import (
	"bytes"
	"encoding/json"
	"reflect"

	"github.com/voicebroker/voicebroker/internal/strictjson"
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
// object whose fields are fields (pointers into *v): the strict check
// returns the object's members, read in its one pass over the body, and
// they fill the fields without reflection when every string field holds
// a string without escapes or null; otherwise decodeJSON decodes, and
// gives the same answer, or names the same error, as always.
func decodeFlatJSON(data []byte, v any, t reflect.Type, fields []flatField) error {
	members, n, err := checkJSONMembers(data, t, true)
	if err != nil {
		return err
	}
	if n >= 0 && decodeFlat(members[:n], fields) {
		return nil
	}
	return decodeJSON(data, v, true)
}

// decodeFlat fills fields from members, those of a JSON object the strict
// check accepted for their type (so no key twice and none unknown), and
// reports whether it could; on false the fields hold anything and the
// caller decodes again.
func decodeFlat(members []strictjson.Member, fields []flatField) bool {
	for _, m := range members {
		var f *flatField
		for j := range fields {
			if m.Key == fields[j].name {
				f = &fields[j]
				break
			}
		}
		val := m.Value
		switch {
		case f == nil:
			return false
		case f.raw != nil:
			*f.raw = val // a slice of the body, which nothing writes to
		case string(val) == "null":
			// encoding/json leaves a string as it is, an optional one nil.
		default:
			if len(val) < 2 || val[0] != '"' || bytes.IndexAny(val[1:], `"\`) != len(val)-2 {
				return false // not a string, or one with escapes
			}
			if f.str != nil {
				*f.str = string(val[1 : len(val)-1])
			} else {
				s := string(val[1 : len(val)-1])
				*f.opt = &s
			}
		}
	}
	return true
}
