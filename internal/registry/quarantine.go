package registry

import (
	"fmt"
	"strconv"
	"time"
)

// IDQuarantine is how long a deleted org's id cannot be created again (by
// CreateOrg or Import). LiveKit rooms, their metadata (auth_id) and the
// store's room owner records name an org only by its id, so a new tenant
// under a reused id would inherit the old tenant's rooms: list them, get
// tokens into them, and meet the old tenant's users rejoining with tokens
// they still hold. The quarantine outlives every such token: 24 h, the
// longest BROKER_LIVEKIT_TOKEN_TTL, plus the minute past exp that LiveKit
// still accepts a token and a minute for the clocks of the broker, the
// store and LiveKit. That is httpapi.RoomOwnerTTL's value too (a test
// holds them equal): every owner record the old org claimed has expired by
// then.
const IDQuarantine = 24*time.Hour + 2*time.Minute

// Quarantined is the ErrConflict of creating the org id again, deletedAt
// (the registry's clock) being less than IDQuarantine ago. The message
// says when the id is free again, rounded up to the second so that it is
// never early.
func Quarantined(id string, deletedAt time.Time) error {
	if len(id) > 64 {
		id = clip(id, 64) + "…"
	}
	free := deletedAt.Add(IDQuarantine)
	if t := free.Truncate(time.Second); !t.Equal(free) {
		free = t.Add(time.Second)
	}
	return fmt.Errorf("%w: org %s: the id was deleted at %s; it can be used again from %s: tokens issued for the old org's rooms may still be live until then",
		ErrConflict, strconv.Quote(id), deletedAt.UTC().Format(time.RFC3339), free.UTC().Format(time.RFC3339))
}
