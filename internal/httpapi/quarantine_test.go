package httpapi

import (
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/internal/registry"
)

// A deleted org id stays quarantined at least as long as the room owner
// records and room tokens that name it may live: registry.IDQuarantine's
// doc says it is RoomOwnerTTL's value.
func TestIDQuarantineCoversRoomOwners(t *testing.T) {
	if registry.IDQuarantine != RoomOwnerTTL {
		t.Fatalf("registry.IDQuarantine = %v, RoomOwnerTTL = %v: change both, and the doc comments that say why", registry.IDQuarantine, RoomOwnerTTL)
	}
	if longest := 24*time.Hour + liveKitLeeway; registry.IDQuarantine < longest {
		t.Fatalf("registry.IDQuarantine = %v, shorter than the longest room token's life %v", registry.IDQuarantine, longest)
	}
}
