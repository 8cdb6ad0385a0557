package config

import "github.com/voicebroker/voicebroker/pkg/rooms"

// IDGrammar is the one grammar of every id in the configuration: org,
// agent, key and API-secret ids. It is the agent-id part of the room-name
// grammar (agent ids appear in room names), so the two can never disagree.
const IDGrammar = "[a-z0-9][a-z0-9-]{0,62}"

// ValidID reports whether id matches IDGrammar.
func ValidID(id string) bool { return rooms.ValidAgentID(id) }
