package memory_test

import (
	"context"
	"testing"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/registry"
	"github.com/voicebroker/voicebroker/internal/registry/memory"
	"github.com/voicebroker/voicebroker/internal/registry/registrytest"
)

func TestConformance(t *testing.T) {
	registrytest.Run(t, func(t *testing.T, seed *config.File) registry.Registry {
		r := memory.New(memory.Options{})
		if _, err := r.Import(context.Background(), seed); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}, registrytest.Options{})
}
