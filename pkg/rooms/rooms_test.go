package rooms_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/pkg/rooms"
)

func TestParse(t *testing.T) {
	good := map[string]rooms.Name{
		"agent_florencia_1700000000_abc123":                 {Kind: rooms.Agent, AgentID: "florencia", Timestamp: "1700000000", Random: "abc123"},
		"agent_a_1700000000123_ABCdef0123456789":            {Kind: rooms.Agent, AgentID: "a", Timestamp: "1700000000123", Random: "ABCdef0123456789"},
		"agent_bot-2_1700000000_" + strings.Repeat("x", 32): {Kind: rooms.Agent, AgentID: "bot-2", Timestamp: "1700000000", Random: strings.Repeat("x", 32)},
		"demo_x":                          {Kind: rooms.Demo, Identifier: "x"},
		"demo_Sales-Demo-1":               {Kind: rooms.Demo, Identifier: "Sales-Demo-1"},
		"demo_" + strings.Repeat("d", 64): {Kind: rooms.Demo, Identifier: strings.Repeat("d", 64)},
	}
	for s, want := range good {
		got, err := rooms.Parse(s)
		if err != nil || got != want || got.String() != s {
			t.Errorf("Parse(%q) = %+v, %v", s, got, err)
		}
	}
	bad := []string{
		"", "agent", "agent_", "demo_", "demo", "room1", "Agent_a_1700000000_abcdef",
		"agent_florencia_1700000000", "agent_florencia_1700000000_abc12", // random too short
		"agent_florencia_170000000_abcdef",      // 9-digit timestamp
		"agent_florencia_17000000000000_abcdef", // 14 digits
		"agent_florencia_17000000x0_abcdef",     // letter in timestamp
		"agent_flo_rencia_1700000000_abcdef",    // underscore in agent id
		"agent_Florencia_1700000000_abcdef",     // uppercase agent id
		"agent_-bot_1700000000_abcdef",          // leading dash
		"agent_florencia_1700000000_abc-def",    // dash in random
		"agent_florencia_1700000000_" + strings.Repeat("x", 33),
		"agent_florencia_1700000000_abcdef_x",                     // extra part
		"agent__1700000000_abcdef",                                // empty agent
		"agent_" + strings.Repeat("a", 64) + "_1700000000_abcdef", // 64-char agent id
		"demo_" + strings.Repeat("d", 65), "demo_a b", "demo_a_b", "demo_ä", "demo_a/../b", "demo_a\x00",
		" demo_a", "demo_a\n", "agent_florencia_1700000000_abcdéf",
	}
	for _, s := range bad {
		if _, err := rooms.Parse(s); !errors.Is(err, rooms.ErrInvalid) {
			t.Errorf("Parse(%q) accepted", s)
		}
	}
	long := "agent_" + strings.Repeat("a", 63) + "_1700000000123_" + strings.Repeat("r", 32) // 6+63+1+13+1+32 = 116
	if !rooms.Valid(long) {
		t.Error("116-character name refused")
	}
	if rooms.Valid("demo_" + strings.Repeat("d", 64) + "x") {
		t.Error("over-long demo name accepted")
	}
}

func TestNew(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	seen := map[string]bool{}
	for range 1000 {
		s, err := rooms.New("florencia", now)
		if err != nil {
			t.Fatal(err)
		}
		n, err := rooms.Parse(s)
		if err != nil || n.AgentID != "florencia" || n.Timestamp != "1800000000" || len(n.Random) != 12 || !n.Time().Equal(now) {
			t.Fatalf("New = %q (%+v, %v)", s, n, err)
		}
		if seen[s] {
			t.Fatal("repeated name")
		}
		seen[s] = true
	}
	if _, err := rooms.New("Bad_Agent", now); err == nil {
		t.Fatal("bad agent id accepted")
	}
}

// TestRandomBase62: n characters, every one of Base62, and every character
// of Base62 drawn (in 12,400 draws each is missed with probability about
// 62·(61/62)^12400, far below 1e-80).
func TestRandomBase62(t *testing.T) {
	for _, n := range []int{0, 1, 12, 43} {
		s, err := rooms.RandomBase62(n)
		if err != nil || len(s) != n {
			t.Fatalf("RandomBase62(%d) = %q, %v", n, s, err)
		}
	}
	seen := map[rune]bool{}
	for range 200 {
		s, err := rooms.RandomBase62(62)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range s {
			if !strings.ContainsRune(rooms.Base62, c) {
				t.Fatalf("%q is not in Base62", c)
			}
			seen[c] = true
		}
	}
	if len(seen) != len(rooms.Base62) {
		t.Fatalf("%d of 62 characters drawn", len(seen))
	}
}
