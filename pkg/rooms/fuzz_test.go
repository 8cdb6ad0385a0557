package rooms_test

import (
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/pkg/rooms"
)

// FuzzParse: every accepted name re-generates from its parts, stays within
// 128 characters, and (for agent rooms) its agent id makes names that New
// generates and Parse accepts.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"agent_florencia_1700000000_abc123", "demo_sales-1", "agent_a_1700000000123_Z",
		"agent_flo_rencia_1700000000_abcdef", "demo_", "agent__1_2", "demo_ä",
	} {
		f.Add(s, int64(1_700_000_000))
	}
	f.Fuzz(func(t *testing.T, s string, unix int64) {
		n, err := rooms.Parse(s)
		if err != nil {
			return
		}
		if n.String() != s || len(s) > rooms.MaxLength {
			t.Fatalf("%q parsed to %+v which makes %q", s, n, n.String())
		}
		if n.Kind != rooms.Agent {
			return
		}
		if unix < 1_000_000_000 || unix > 9_999_999_999 {
			unix = 1_700_000_000
		}
		g, err := rooms.New(n.AgentID, time.Unix(unix, 0))
		if err != nil {
			t.Fatalf("New(%q): %v", n.AgentID, err)
		}
		back, err := rooms.Parse(g)
		if err != nil || back.AgentID != n.AgentID {
			t.Fatalf("generated %q does not parse back: %v", g, err)
		}
	})
}
