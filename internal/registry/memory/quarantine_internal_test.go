package memory

import (
	"context"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/internal/registry"
)

// Deletion times past the quarantine are pruned at the next delete, so
// the map holds at most a day's deletions.
func TestDeletedPruned(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	r := New(Options{Now: func() time.Time { return now }})
	ctx := context.Background()
	for _, id := range []string{"a", "b", "c"} {
		if _, err := r.CreateOrg(ctx, registry.OrgSpec{ID: id, Tier: "free"}); err != nil {
			t.Fatal(err)
		}
	}
	del := func(id string) {
		t.Helper()
		if err := r.DeleteOrg(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	del("a")
	now = now.Add(registry.IDQuarantine - time.Minute)
	del("b")
	if len(r.deleted) != 2 {
		t.Fatalf("deleted within the quarantine = %v", r.deleted)
	}
	now = now.Add(time.Minute)
	del("c")
	if _, ok := r.deleted["a"]; ok || len(r.deleted) != 2 {
		t.Fatalf("deleted after a delete = %v, want a's pruned", r.deleted)
	}
}
