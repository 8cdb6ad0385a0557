package memory_test

import (
	"context"
	"testing"

	"github.com/voicebroker/voicebroker/internal/registry"
	"github.com/voicebroker/voicebroker/internal/registry/memory"
	"github.com/voicebroker/voicebroker/internal/registry/registrytest"
)

// FuzzImportExport: any tenants file the broker accepts imports into a
// registry whose export is again a valid tenants file, exporting the same
// after a second trip, and importing it over the first changes nothing.
func FuzzImportExport(f *testing.F) {
	f.Add([]byte(registrytest.SeedYAML))
	f.Add([]byte("orgs:\n  - id: a\n    tier: free\n"))
	f.Add([]byte("orgs:\n- id: a\n  tier: free\n  agents:\n  - id: b\n    channels: [chat]\n    public: {keys: [], allowed_origins: ['https://a.example']}\n"))
	f.Add([]byte("orgs:\n- id: a\n  tier: enterprise\n  rate_per_minute: 7\n  keys:\n  - {id: k, hash: \"sha256:0000000000000000000000000000000000000000000000000000000000000001\", scopes: [rooms:read], expires_at: 2030-01-01T00:00:00.123456789+02:00, revoked: true}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := registry.ParseFile(data)
		if err != nil {
			return
		}
		ctx := context.Background()
		r := memory.New(memory.Options{})
		if _, err := r.Import(ctx, file); err != nil {
			// A file may name "default" both ways; that is refused, cleanly.
			return
		}
		out := export(t, r)
		again, err := registry.ParseFile(out)
		if err != nil {
			t.Fatalf("the export does not parse: %v\n%s", err, out)
		}
		r2 := memory.New(memory.Options{})
		if _, err := r2.Import(ctx, again); err != nil {
			t.Fatalf("the export does not import: %v", err)
		}
		if out2 := export(t, r2); string(out2) != string(out) {
			t.Fatalf("second trip differs:\n%s\n---\n%s", out, out2)
		}
		rep, err := r.Import(ctx, again)
		if err != nil || len(rep.Changed)+len(rep.Created) != 0 {
			t.Fatalf("re-import changed %+v: %v", rep, err)
		}
	})
}

func export(t *testing.T, r *memory.Registry) []byte {
	t.Helper()
	f, err := r.Export(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b, err := registry.MarshalFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
