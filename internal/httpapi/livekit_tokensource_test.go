package httpapi

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	lkproto "github.com/livekit/protocol/livekit"
	"github.com/voicebroker/voicebroker/internal/strictjson"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

func TestDecodeTokenSourceRequest(t *testing.T) {
	for _, tc := range []struct {
		name           string
		body           string
		want           *lkproto.TokenSourceRequest
		agent, channel string
	}{
		{"snake_case", `{"room_name":"demo_a","participant_identity":"u","participant_name":"N","participant_metadata":"m","participant_attributes":{"k":"v"},"room_config":{"agents":[{"agent_name":"x","metadata":"md"}]}}`,
			&lkproto.TokenSourceRequest{RoomName: proto.String("demo_a"), ParticipantIdentity: proto.String("u"), ParticipantName: proto.String("N"),
				ParticipantMetadata: proto.String("m"), ParticipantAttributes: map[string]string{"k": "v"},
				RoomConfig: &lkproto.RoomConfiguration{Agents: []*lkproto.RoomAgentDispatch{{AgentName: "x", Metadata: "md"}}}}, "", ""},
		{"camelCase", `{"roomName":"demo_a","participantIdentity":"u","participantName":"N","participantMetadata":"m","participantAttributes":{"k":"v"},"roomConfig":{"agents":[{"agentName":"x","metadata":"md"}]}}`,
			&lkproto.TokenSourceRequest{RoomName: proto.String("demo_a"), ParticipantIdentity: proto.String("u"), ParticipantName: proto.String("N"),
				ParticipantMetadata: proto.String("m"), ParticipantAttributes: map[string]string{"k": "v"},
				RoomConfig: &lkproto.RoomConfiguration{Agents: []*lkproto.RoomAgentDispatch{{AgentName: "x", Metadata: "md"}}}}, "", ""},
		{"mixed, with agent and channel", `{"room_name":"demo_a","participantIdentity":"u","agent":"florencia","channel":"chat"}`,
			&lkproto.TokenSourceRequest{RoomName: proto.String("demo_a"), ParticipantIdentity: proto.String("u")}, "florencia", "chat"},
		{"empty object", `{}`, &lkproto.TokenSourceRequest{}, "", ""},
		{"nulls", `{"room_name":null,"agent":null,"room_config":null}`, &lkproto.TokenSourceRequest{}, "", ""},
		{"empty room_config", `{"room_config":{}}`, &lkproto.TokenSourceRequest{RoomConfig: &lkproto.RoomConfiguration{}}, "", ""},
		{"escaped key", `{"room\u005fname":"demo_a"}`, &lkproto.TokenSourceRequest{RoomName: proto.String("demo_a")}, "", ""},
		{"whitespace around", " \n{\"agent\":\"a\"}\n", &lkproto.TokenSourceRequest{}, "a", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeTokenSourceRequest([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(&got.TokenSourceRequest, tc.want) {
				t.Errorf("decoded %v, want %v", &got.TokenSourceRequest, tc.want)
			}
			if got.Agent != tc.agent || string(got.Channel) != tc.channel {
				t.Errorf("agent %q channel %q", got.Agent, got.Channel)
			}
		})
	}
}

func TestDecodeTokenSourceRequestRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, body, says string
	}{
		{"empty", ``, "required"},
		{"array", `[]`, "JSON object"},
		{"trailing data", `{} {}`, "after the JSON value"},
		{"truncated", `{"room_name":`, "malformed"},
		{"invalid UTF-8", "{\"room_name\":\"\xff\"}", "UTF-8"},
		{"lone surrogate", `{"room_name":"\ud800"}`, "lone surrogate"},
		{"duplicate key", `{"room_name":"a","room_name":"b"}`, `duplicate key "room_name"`},
		{"duplicate agent", `{"agent":"a","agent":"b"}`, `duplicate key "agent"`},
		{"case variant", `{"agent":"a","Agent":"b"}`, "differ only in case"},
		{"escaped duplicate", `{"agent":"a","\u0061gent":"b"}`, `duplicate key "agent"`},
		{"both names of a field", `{"room_name":"a","roomName":"b"}`, "same field"},
		{"nested duplicate", `{"room_config":{"agents":[{"agent_name":"a","agent_name":"b"}]}}`, "duplicate key"},
		{"nested both names", `{"room_config":{"agents":[{"agent_name":"a","agentName":"b"}]}}`, `"room_config"`},
		{"duplicate attribute", `{"participant_attributes":{"k":"a","k":"b"}}`, "duplicate key"},
		{"attributes equal under case folding", `{"participant_attributes":{"s":"a","\u017f":"b"}}`, "differ only in case"},
		{"unknown field", `{"room":"a"}`, `unknown field "room"`},
		{"wrong case of a field", `{"Room_Name":"a"}`, `unknown field "Room_Name"`},
		{"agent not a string", `{"agent":1}`, `field "agent" must be a string`},
		{"channel not a string", `{"channel":{}}`, `field "channel" must be a string`},
		{"room_name not a string", `{"room_name":123}`, `field "room_name" is not valid`},
		{"attributes not strings", `{"participant_attributes":{"k":1}}`, `"participant_attributes"`},
		{"unknown room_config field", `{"room_config":{"agents":[],"bogus":1}}`, `"room_config"`},
		{"room_config metadata", `{"room_config":{"metadata":"{\"auth_id\":\"other\"}"}}`, "only hold agents"},
		{"room_config egress", `{"roomConfig":{"egress":{"room":{"roomName":"x"}}}}`, "only hold agents"},
		{"room_config timeouts", `{"room_config":{"empty_timeout":1,"max_participants":2}}`, "empty_timeout, max_participants"},
		{"two agents", `{"room_config":{"agents":[{"agent_name":"a"},{"agent_name":"b"}]}}`, "one agent"},
		{"null agent entry", `{"room_config":{"agents":[null]}}`, `"room_config"`},
		{"too deep", `{"participant_attributes":` + strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40) + `}`, "deeper than 32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeTokenSourceRequest([]byte(tc.body))
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeInvalidRequest {
				t.Fatalf("got %v, want invalid_request", err)
			}
			if !strings.Contains(e.Message, tc.says) {
				t.Errorf("message %q does not say %q", e.Message, tc.says)
			}
		})
	}
}

// TestDecodeTokenSourceRequestEchoesNoValue: refusals never repeat a
// value from the body (it may hold anything, a credential included).
func TestDecodeTokenSourceRequestEchoesNoValue(t *testing.T) {
	const secret = "sk_live_SECRETSECRETSECRET"
	for _, body := range []string{
		`{"room_name":123,"participant_name":"` + secret + `"}`,
		`{"participant_attributes":{"` + secret + `":1}}`,
		`{"room_config":{"metadata":"` + secret + `"}}`,
		`{"agent":["` + secret + `"]}`,
		`{"room_name":"` + secret + `","room_name":"x"}`,
	} {
		_, err := decodeTokenSourceRequest([]byte(body))
		if err == nil {
			t.Fatalf("accepted %s", body)
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("message repeats a value: %v", err)
		}
	}
}

// FuzzTokenSourceRequest: decoding never panics; whatever it accepts is a
// single JSON object of valid UTF-8 without duplicate or case-variant keys,
// whose TokenSourceRequest part protojson itself accepts and which
// re-encodes to an equal message, with at most one agent dispatch and
// nothing else in room_config.
func FuzzTokenSourceRequest(f *testing.F) {
	f.Add(`{"room_name":"demo_a","participant_identity":"u","room_config":{"agents":[{"agent_name":"x","metadata":"m"}]}}`)
	f.Add(`{"roomName":"demo_a","participantAttributes":{"k":"v"},"roomConfig":{"agents":[{"agentName":"x"}]},"agent":"a","channel":"chat"}`)
	f.Add(`{"agent":"a","Agent":"b"}`)
	f.Add(`{"room_name":"a","roomName":"b"}`)
	f.Add(`{"room_config":{"metadata":"x"}}`)
	f.Add(`{"participant_attributes":{"a":{"b":1}}}`)
	f.Add(`{"room\u005fname":null}`)
	f.Add("{\"room_name\":\"\xff\"}")
	f.Fuzz(func(t *testing.T, body string) {
		req, err := decodeTokenSourceRequest([]byte(body))
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeInvalidRequest {
				t.Fatalf("error %v is not invalid_request", err)
			}
			return
		}
		if !utf8.ValidString(body) || !json.Valid([]byte(body)) {
			t.Fatalf("accepted invalid JSON or UTF-8: %q", body)
		}
		if strictjson.Check([]byte(body), nil, false) != nil {
			t.Fatal("accepted duplicate keys")
		}
		if rc := req.RoomConfig; rc != nil {
			if len(rc.Agents) > 1 || rc.Metadata != "" || rc.Egress != nil || rc.EmptyTimeout != 0 || rc.MaxParticipants != 0 {
				t.Fatalf("room_config let through: %v", rc)
			}
		}
		data, err := protojson.Marshal(&req.TokenSourceRequest)
		if err != nil {
			t.Fatal(err)
		}
		var again lkproto.TokenSourceRequest
		if err := protojson.Unmarshal(data, &again); err != nil || !proto.Equal(&again, &req.TokenSourceRequest) {
			t.Fatalf("re-encoding differs: %v", err)
		}
	})
}
