package rooms_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/voicebroker/voicebroker/pkg/rooms"
)

func ExampleParse() {
	n, err := rooms.Parse("agent_florencia_1700000000_Ab3dE9")
	fmt.Println(n.Kind, n.AgentID, n.Time().UTC().Format(time.RFC3339), n.Random, err)

	_, err = rooms.Parse("agent_flo_rencia_1700000000_Ab3dE9")
	fmt.Println(err)
	// Output:
	// agent florencia 2023-11-14T22:13:20Z Ab3dE9 <nil>
	// rooms: invalid room name: must be agent_{agentId}_{timestamp}_{random}
}

func ExampleNew() {
	name, _ := rooms.New("florencia", time.Unix(1_700_000_000, 0))
	n, _ := rooms.Parse(name)
	fmt.Println(n.Kind, n.AgentID, n.Timestamp, len(n.Random))
	// Output: agent florencia 1700000000 12
}

func ExampleRandomBase62() {
	s, _ := rooms.RandomBase62(12)
	fmt.Println(len(s), strings.Trim(s, rooms.Base62) == "")
	// Output: 12 true
}
