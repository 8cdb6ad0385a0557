package memory_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/registry"
	"github.com/voicebroker/voicebroker/internal/registry/memory"
	"github.com/voicebroker/voicebroker/internal/registry/registrytest"
)

// clock is a registry's clock: the real time moved on by what Elapse
// added.
type clock struct{ ahead atomic.Int64 }

func (c *clock) now() time.Time { return time.Now().Add(time.Duration(c.ahead.Load())) }

func TestConformance(t *testing.T) {
	var clocks sync.Map // *memory.Registry -> *clock
	registrytest.Run(t, func(t *testing.T, seed *config.File) registry.Registry {
		c := &clock{}
		r := memory.New(memory.Options{Now: c.now})
		clocks.Store(r, c)
		if _, err := r.Import(context.Background(), seed); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close(); clocks.Delete(r) })
		return r
	}, registrytest.Options{Elapse: func(t testing.TB, r registry.Registry, d time.Duration) {
		c, ok := clocks.Load(r)
		if !ok {
			t.Fatal("not a registry of this test's")
		}
		c.(*clock).ahead.Add(int64(d))
	}})
}
