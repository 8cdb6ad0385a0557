package token

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"unicode/utf8"
)

// maxJSONDepth bounds the nesting of a DPoP header or payload. The deepest
// legitimate member is the jwk's key_ops array (depth 3).
const maxJSONDepth = 8

// strictObject parses data as one JSON object and returns its members by
// their exact names. It refuses invalid UTF-8 (which encoding/json would
// silently replace), anything after the object, nesting deeper than
// maxJSONDepth, and, in any object at any depth, a duplicate key or two keys
// that differ only in case: encoding/json keeps the last duplicate and
// matches struct fields case-insensitively, so two parsers could read such
// a document differently.
//
// Callers read members from the returned map by exact name, never through a
// struct, so that "ALG" is never taken for "alg".
func strictObject(data []byte) (map[string]json.RawMessage, error) {
	if !utf8.Valid(data) {
		return nil, errors.New("not valid UTF-8")
	}
	if err := checkKeys(data); err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil || m == nil {
		return nil, errors.New("not a JSON object")
	}
	return m, nil
}

// checkKeys walks the tokens of data and refuses duplicate or case-variant
// keys, excessive depth, and more than one top-level value, which must be an
// object.
func checkKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var stack []*jsonFrame
	values := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return errors.New("not a JSON object")
		}
		if len(stack) == 0 {
			values++
			if values > 1 || tok != json.Delim('{') {
				return errors.New("not a JSON object")
			}
		}
		var top *jsonFrame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.obj && top.wantKey {
			if tok == json.Delim('}') {
				stack = stack[:len(stack)-1]
				valueDone(stack)
				continue
			}
			key, ok := tok.(string)
			if !ok {
				return errors.New("not a JSON object")
			}
			folded := strings.ToLower(key)
			if _, dup := top.keys[folded]; dup {
				return errors.New("duplicate or case-variant key")
			}
			top.keys[folded] = struct{}{}
			top.wantKey = false
			continue
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) >= maxJSONDepth {
				return errors.New("nested too deeply")
			}
			f := &jsonFrame{obj: tok == json.Delim('{')}
			if f.obj {
				f.wantKey = true
				f.keys = make(map[string]struct{})
			}
			stack = append(stack, f)
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone(stack)
		default:
			valueDone(stack)
		}
	}
	if values != 1 || len(stack) != 0 {
		return errors.New("not a JSON object")
	}
	return nil
}

// jsonFrame is one open object or array in checkKeys.
type jsonFrame struct {
	obj     bool                // an object, not an array
	wantKey bool                // the next token is a key or the closing brace
	keys    map[string]struct{} // the keys seen, lower-cased
}

// valueDone records that a value ended: the enclosing object, if any,
// expects a key next.
func valueDone(stack []*jsonFrame) {
	if len(stack) > 0 && stack[len(stack)-1].obj {
		stack[len(stack)-1].wantKey = true
	}
}
