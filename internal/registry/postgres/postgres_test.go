package postgres_test

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/registry"
	"github.com/voicebroker/voicebroker/internal/registry/postgres"
	"github.com/voicebroker/voicebroker/internal/registry/registrytest"
	"github.com/voicebroker/voicebroker/internal/registry/secretbox"
	"github.com/voicebroker/voicebroker/internal/testenv"
)

var testKeyring, _ = secretbox.New(bytes.Repeat([]byte{0x42}, secretbox.KeySize))

// syncBuffer is a log sink safe for the registry's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// open opens a registry on url and runs it until the test ends.
func open(t testing.TB, url string, tune func(*postgres.Options)) *postgres.Registry {
	t.Helper()
	opt := postgres.Options{URL: url, Keyring: testKeyring, UsageFlush: time.Hour, Timeout: 5 * time.Second,
		Log: slog.New(slog.NewTextHandler(&syncBuffer{}, nil))}
	if tune != nil {
		tune(&opt)
	}
	r, err := postgres.Open(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		r.Close()
	})
	return r
}

func TestConformance(t *testing.T) {
	registrytest.Run(t, func(t *testing.T, seed *config.File) registry.Registry {
		r := open(t, testenv.PostgresURL(t), nil)
		if _, err := r.Import(registry.WithActor(context.Background(), registry.Actor{Subject: "seed"}), seed); err != nil {
			t.Fatal(err)
		}
		// The import reaches the snapshot through NOTIFY, as any write.
		registrytest.WaitFor(t, r, "the seed in force", func(ten *config.Tenants) bool {
			for _, o := range seed.Orgs {
				if ten.Org(o.ID) == nil {
					return false
				}
			}
			return true
		})
		return r
	}, registrytest.Options{Elapse: backdate})
}

// backdate makes d pass for the quarantine of deleted org ids: their
// tombstones hold the database's clock, so they are moved back by d.
func backdate(t testing.TB, r registry.Registry, d time.Duration) {
	t.Helper()
	if _, err := r.(*postgres.Registry).Pool().Exec(context.Background(),
		"UPDATE voicebroker.org_tombstones SET deleted_at = deleted_at - $1::bigint * interval '1 microsecond'", d.Microseconds()); err != nil {
		t.Fatal(err)
	}
}
