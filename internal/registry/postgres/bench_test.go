package postgres_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/apikey"
	"github.com/voicebroker/voicebroker/internal/registry"
	"github.com/voicebroker/voicebroker/internal/registry/postgres"
	"github.com/voicebroker/voicebroker/internal/testenv"
)

// BenchmarkScale loads VB_BENCH_ORGS orgs (default 1000) of 10 keys and 5
// agents each, then reports what a replica pays: the first load, the
// snapshot's heap, and the time a key created on one replica takes to be
// in force on another (b.N times).
//
//	VB_BENCH_ORGS=10000 go test ./internal/registry/postgres -run '^$' -bench Scale -benchtime 20x
func BenchmarkScale(b *testing.B) {
	n, _ := strconv.Atoi(os.Getenv("VB_BENCH_ORGS"))
	if n <= 0 {
		n = 1000
	}
	db := testenv.PostgresURL(b)
	ctx := context.Background()
	admin, err := postgres.Open(ctx, postgres.Options{URL: db, Offline: true, Timeout: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close()
	f := &config.File{}
	for i := range n {
		o := config.Org{ID: fmt.Sprintf("org-%05d", i), Tier: config.TierPro}
		for k := range 10 {
			o.Keys = append(o.Keys, config.Key{ID: fmt.Sprintf("key-%d", k), Hash: apikey.Hash(fmt.Sprintf("sk-%d-%d", i, k)),
				Scopes: []config.Scope{config.ScopeTokensCreate, config.ScopeTokensRedeem}})
		}
		for a := range 5 {
			o.Agents = append(o.Agents, config.Agent{ID: fmt.Sprintf("agent-%d", a), Channels: []config.Channel{config.ChannelWebRTC},
				LiveKitAgentName: fmt.Sprintf("org-%05d-agent-%d", i, a),
				Public:           &config.Public{KeyHash: apikey.Hash(fmt.Sprintf("pk-%d-%d", i, a)), AllowedOrigins: []string{"https://*.example.com"}}})
		}
		f.Orgs = append(f.Orgs, o)
	}
	start := time.Now()
	if _, err := admin.Import(ctx, f); err != nil {
		b.Fatal(err)
	}
	b.Logf("import of %d orgs: %s", n, time.Since(start).Round(time.Millisecond))

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start = time.Now()
	replica := open(b, db, nil)
	startMS := float64(time.Since(start).Milliseconds())
	runtime.GC()
	runtime.ReadMemStats(&after)
	heapMiB := float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
	if len(replica.Current().Orgs()) != n {
		b.Fatalf("%d orgs in the snapshot", len(replica.Current().Orgs()))
	}
	writer := open(b, db, nil)
	b.ResetTimer()
	for i := range b.N {
		org := fmt.Sprintf("org-%05d", i%n)
		_, key, err := writer.CreateKey(ctx, org, registry.KeySpec{ID: fmt.Sprintf("bench-%d", i), Scopes: []string{string(config.ScopeTokensCreate)}})
		if err != nil {
			b.Fatal(err)
		}
		h := apikey.Hash(key)
		for {
			ch := replica.Changed()
			if replica.Current().KeyByHash(h) != nil {
				break
			}
			<-ch
		}
	}
	b.ReportMetric(startMS, "start-ms")
	b.ReportMetric(heapMiB, "snapshot-MiB")
}
