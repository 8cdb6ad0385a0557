package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	lkproto "github.com/livekit/protocol/livekit"
	"github.com/voicebroker/voicebroker/config"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// tokenSourceRequest is the body of POST /livekit/token: LiveKit's own
// livekit.TokenSourceRequest, as its client SDKs' endpoint TokenSource
// sends it (proto JSON, so camelCase and snake_case names both), plus the
// broker's optional agent and channel.
type tokenSourceRequest struct {
	lkproto.TokenSourceRequest
	Agent   string
	Channel config.Channel
}

// maxJSONDepth bounds the nesting of a /livekit/token body; the deepest
// legitimate value (room_config.agents[].metadata) is at depth 4.
const maxJSONDepth = 16

// decodeTokenSourceRequest decodes a /livekit/token body strictly: one JSON
// object of valid UTF-8, no key twice in any object (nor two keys that
// differ only in case, nor a field under both its names, room_name and
// roomName), no field TokenSourceRequest does not have besides agent and
// channel, and in room_config nothing but agents: the broker sets the
// room's metadata, timeouts and everything else itself. Messages name the
// field at fault and never repeat a value.
func decodeTokenSourceRequest(data []byte) (*tokenSourceRequest, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, apiError(CodeInvalidRequest, "a JSON body is required")
	}
	if data[0] != '{' {
		return nil, apiError(CodeInvalidRequest, "the body must be a JSON object")
	}
	if !utf8.Valid(data) {
		return nil, apiError(CodeInvalidRequest, "the body is not valid UTF-8")
	}
	if err := checkJSONKeys(data); err != nil {
		return nil, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, apiError(CodeInvalidRequest, "malformed JSON")
	}
	req := &tokenSourceRequest{}
	for key, dst := range map[string]*string{"agent": &req.Agent, "channel": (*string)(&req.Channel)} {
		raw, ok := top[key]
		if !ok {
			continue
		}
		delete(top, key)
		if string(raw) == "null" {
			continue
		}
		if json.Unmarshal(raw, dst) != nil {
			return nil, apiError(CodeInvalidRequest, fmt.Sprintf("field %q must be a string", key))
		}
	}
	// Each field on its own, so an error names its field, and a field sent
	// under both its proto names is caught.
	fields := req.ProtoReflect().Descriptor().Fields()
	seen := make(map[protoreflect.FieldNumber]string, len(top))
	for key, raw := range top {
		fd := fields.ByJSONName(key)
		if fd == nil {
			fd = fields.ByTextName(key)
		}
		if fd == nil {
			return nil, apiError(CodeInvalidRequest, "unknown field "+quoteField(key))
		}
		if other, dup := seen[fd.Number()]; dup {
			return nil, apiError(CodeInvalidRequest, fmt.Sprintf("fields %s and %s are the same field", quoteField(other), quoteField(key)))
		}
		seen[fd.Number()] = key
		one, _ := json.Marshal(map[string]json.RawMessage{key: raw})
		var part lkproto.TokenSourceRequest
		if err := protojson.Unmarshal(one, &part); err != nil {
			return nil, apiError(CodeInvalidRequest, fmt.Sprintf("field %s is not valid for LiveKit's TokenSourceRequest", quoteField(key)))
		}
		proto.Merge(&req.TokenSourceRequest, &part)
	}
	if rc := req.RoomConfig; rc != nil {
		var extra []string
		rc.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
			if fd.Name() != "agents" {
				extra = append(extra, string(fd.Name()))
			}
			return true
		})
		if len(extra) > 0 {
			return nil, apiError(CodeInvalidRequest, fmt.Sprintf("room_config may only hold agents; the broker sets %s itself", strings.Join(extra, ", ")))
		}
		if len(rc.Agents) > 1 {
			return nil, apiError(CodeInvalidRequest, "room_config.agents may dispatch one agent")
		}
	}
	return req, nil
}

// quoteField quotes a caller's field name for a message, bounded.
func quoteField(k string) string {
	if len(k) > 64 {
		k = k[:64] + "…"
	}
	return fmt.Sprintf("%q", strings.ToValidUTF8(k, "?"))
}

// checkJSONKeys walks a JSON document and refuses an object holding a key
// twice, or two keys that differ only in case (contract §5), at any depth,
// and nesting deeper than maxJSONDepth. Keys compare after unescaping, so
// "agent" and "\u0061gent" are the same key.
func checkJSONKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		object bool
		keys   map[string]string // folded key -> key as sent
		expect bool              // the next string token is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var se *json.SyntaxError
			if errors.As(err, &se) {
				return apiError(CodeInvalidRequest, fmt.Sprintf("malformed JSON at byte %d", se.Offset))
			}
			return apiError(CodeInvalidRequest, "malformed JSON")
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.expect && tok != json.Delim('}') {
			k, _ := tok.(string)
			folded := strings.ToLower(k)
			if prev, dup := top.keys[folded]; dup {
				if prev == k {
					return apiError(CodeInvalidRequest, "duplicate key "+quoteField(k))
				}
				return apiError(CodeInvalidRequest, fmt.Sprintf("keys %s and %s differ only in case", quoteField(prev), quoteField(k)))
			}
			top.keys[folded] = k
			top.expect = false
			continue
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) >= maxJSONDepth {
				return apiError(CodeInvalidRequest, "the JSON body is nested too deeply")
			}
			f := &frame{object: tok == json.Delim('{')}
			if f.object {
				f.keys, f.expect = map[string]string{}, true
			}
			stack = append(stack, f)
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value (or the end of a nested one) was read: the enclosing
		// object expects a key next.
		if len(stack) > 0 {
			if p := stack[len(stack)-1]; p.object {
				p.expect = true
			}
		}
	}
	if len(stack) != 0 {
		return apiError(CodeInvalidRequest, "malformed JSON")
	}
	return nil
}
