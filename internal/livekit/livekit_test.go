package livekit_test

import (
	"encoding/json"
	"testing"

	"github.com/livekit/protocol/auth"

	"github.com/voicebroker/voicebroker/internal/livekit"
)

const secret = "unit-test-secret-0123456789abcdef0123456789"

func grants(t *testing.T, p livekit.Participant) *auth.ClaimGrants {
	t.Helper()
	c := livekit.New(livekit.Options{URL: "ws://127.0.0.1:1", APIKey: "k", APISecret: secret})
	tok, err := c.Token(p)
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.ParseAPIToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	g, err := v.Verify(secret)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestTokenCarriesRoomConfiguration: the token is all LiveKit needs to
// create the room at join: metadata, timeouts and the dispatch, whose
// metadata nests the caller's string so it cannot change org or agent.
func TestTokenCarriesRoomConfiguration(t *testing.T) {
	sneaky := `","org":"globex","agent":"x`
	g := grants(t, livekit.Participant{
		Identity: "u", Room: "agent_florencia_1700000000_abcdef", Org: "acme", Agent: "florencia",
		AgentName: "acme-florencia", AgentMetadata: sneaky, CanPublish: true,
		Attributes: map[string]string{"org": "globex", "channel": "webrtc"},
	})
	rc := g.GetRoomConfiguration()
	if rc.GetMetadata() != `{"auth_id":"acme","agent":"florencia"}` || rc.GetEmptyTimeout() != 300 || rc.GetDepartureTimeout() != 20 {
		t.Fatalf("room configuration %v", rc)
	}
	if len(rc.GetAgents()) != 1 || rc.Agents[0].AgentName != "acme-florencia" {
		t.Fatalf("dispatch %v", rc.GetAgents())
	}
	var md livekit.DispatchMetadata
	if err := json.Unmarshal([]byte(rc.Agents[0].Metadata), &md); err != nil {
		t.Fatal(err)
	}
	if md != (livekit.DispatchMetadata{Org: "acme", Agent: "florencia", Metadata: sneaky}) {
		t.Fatalf("dispatch metadata %+v", md)
	}
	if g.Attributes["org"] != "acme" || g.Attributes["agent"] != "florencia" || g.Attributes["channel"] != "webrtc" {
		t.Fatalf("attributes %v", g.Attributes)
	}
	if g.Video.Room != "agent_florencia_1700000000_abcdef" || !g.Video.RoomJoin || g.Video.RoomCreate || g.Video.RoomAdmin || !g.Video.GetCanPublish() {
		t.Fatalf("grant %+v", g.Video)
	}
}

// TestTokenWithoutAgent: a room without an agent dispatches nothing and
// its metadata names only the owner.
func TestTokenWithoutAgent(t *testing.T) {
	g := grants(t, livekit.Participant{Identity: "u", Room: "demo_lobby", Org: "acme"})
	rc := g.GetRoomConfiguration()
	if len(rc.GetAgents()) != 0 || rc.GetMetadata() != `{"auth_id":"acme"}` {
		t.Fatalf("room configuration %v", rc)
	}
	if g.Video.GetCanPublish() {
		t.Fatal("can publish without CanPublish")
	}
}
