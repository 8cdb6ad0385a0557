package httpapi

import (
	"encoding/json"
	"fmt"
	"strings"

	lkproto "github.com/livekit/protocol/livekit"
	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/strictjson"
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

// decodeTokenSourceRequest decodes a /livekit/token body strictly: one JSON
// object under strictjson.Check's rules (valid UTF-8, no key twice in any object
// nor two keys that differ only in case), no field under both its names
// (room_name and roomName), no field TokenSourceRequest does not have
// besides agent and channel, and in room_config nothing but agents: the
// broker sets the room's metadata, timeouts and everything else itself.
// Messages name the field at fault and never repeat a value.
func decodeTokenSourceRequest(data []byte) (*tokenSourceRequest, error) {
	if err := checkJSONObject(data, nil, false); err != nil {
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
			return nil, apiError(CodeInvalidRequest, "unknown field "+strictjson.KeyName(key))
		}
		if other, dup := seen[fd.Number()]; dup {
			return nil, apiError(CodeInvalidRequest, fmt.Sprintf("fields %s and %s are the same field", strictjson.KeyName(other), strictjson.KeyName(key)))
		}
		seen[fd.Number()] = key
		one, _ := json.Marshal(map[string]json.RawMessage{key: raw})
		var part lkproto.TokenSourceRequest
		if err := protojson.Unmarshal(one, &part); err != nil {
			return nil, apiError(CodeInvalidRequest, fmt.Sprintf("field %s is not valid for LiveKit's TokenSourceRequest", strictjson.KeyName(key)))
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
