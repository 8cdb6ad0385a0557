package app_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/apikey"
	"github.com/voicebroker/voicebroker/internal/app"
	"github.com/voicebroker/voicebroker/internal/registry"
	"github.com/voicebroker/voicebroker/internal/testenv"
	"github.com/voicebroker/voicebroker/pkg/origins"
)

// BenchmarkManyOrgs compares, in one run, a broker whose registry holds
// one org with one whose registry holds VB_BENCH_ORGS orgs (default
// 10,000) of 10 secret keys and 5 public agents each, both the embedded
// development tenant's writable registry (the snapshot and request path
// are the PostgreSQL registry's; only the source differs). It reports:
//
//   - mint-ratio: ns per mint (POST /token through the whole HTTP stack,
//     8 clients, with one key of the demo org) with many orgs over ns per
//     mint with one; the target is at most 1.10;
//   - mint-ns-1org and mint-ns-many: the two figures;
//   - preflight-ns-1org and preflight-ns-many: the preflight's origin check
//     (Tenants.AllowsOrigin) for an origin no agent allows, the worst case.
//
// Rounds alternate between the two brokers so that a change in the load of
// the machine weighs on both.
//
//	go test ./internal/app -run '^$' -bench ManyOrgs -benchtime 20000x
func BenchmarkManyOrgs(b *testing.B) {
	n, _ := strconv.Atoi(os.Getenv("VB_BENCH_ORGS"))
	if n <= 0 {
		n = 10000
	}
	ctx := registry.WithActor(context.Background(), registry.Actor{Subject: "bench"})
	one, oneURL := testenv.StartDemoBroker(b)
	many, manyURL := testenv.StartDemoBroker(b)
	tier, rate := string(config.TierEnterprise), 1_000_000
	for _, a := range []*app.App{one, many} {
		if _, err := a.Tenants.UpdateOrg(ctx, config.DemoOrg, registry.OrgPatch{Tier: &tier, RatePerMinute: &rate}); err != nil {
			b.Fatal(err)
		}
	}
	f := &config.File{}
	for i := range n - 1 {
		o := config.Org{ID: fmt.Sprintf("org-%05d", i), Tier: config.TierPro}
		for k := range 10 {
			o.Keys = append(o.Keys, config.Key{ID: fmt.Sprintf("key-%d", k), Hash: apikey.Hash(fmt.Sprintf("sk-%d-%d", i, k)),
				Scopes: []config.Scope{config.ScopeTokensCreate, config.ScopeTokensRedeem}})
		}
		for a := range 5 {
			o.Agents = append(o.Agents, config.Agent{ID: fmt.Sprintf("agent-%d", a), Channels: []config.Channel{config.ChannelWebRTC},
				LiveKitAgentName: fmt.Sprintf("org-%05d-agent-%d", i, a),
				Public: &config.Public{KeyHash: apikey.Hash(fmt.Sprintf("pk-%d-%d", i, a)),
					AllowedOrigins: []string{fmt.Sprintf("https://*.org-%05d.example.com", i), fmt.Sprintf("https://app.org-%05d.example.net", i)}}})
		}
		f.Orgs = append(f.Orgs, o)
	}
	if _, err := many.Tenants.Import(ctx, f); err != nil {
		b.Fatal(err)
	}
	if got := len(many.Tenants.Current().Orgs()); got != n {
		b.Fatalf("%d orgs in the large registry", got)
	}

	// The preflight's origin check, for an origin nobody allows.
	nowhere, err := origins.ParseOrigin("https://nowhere.example.org")
	if err != nil {
		b.Fatal(err)
	}
	preflight := func(t *config.Tenants) float64 {
		t.AllowsOrigin(nowhere) // the index is built at the first call
		const rounds = 20000
		start := time.Now()
		for range rounds {
			if t.AllowsOrigin(nowhere) {
				b.Fatal("an origin nobody allows is allowed")
			}
		}
		return float64(time.Since(start).Nanoseconds()) / rounds
	}
	pre1, preN := preflight(one.Tenants.Current()), preflight(many.Tenants.Current())

	body := []byte(`{"agent":"demo-bot","channel":"chat"}`)
	mint := func(url, key string, count int) time.Duration {
		const clients = 8
		var wg sync.WaitGroup
		start := time.Now()
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := c; i < count; i += clients {
					if post(b, url+"/token", key, body, 201) == nil {
						return
					}
				}
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	mint(oneURL, one.DevKeys.Secret, 200) // warm up both
	mint(manyURL, many.DevKeys.Secret, 200)
	const rounds = 4
	per := max(b.N/rounds, 1)
	var d1, dN time.Duration
	b.ResetTimer()
	for r := range rounds {
		if r%2 == 0 {
			d1 += mint(oneURL, one.DevKeys.Secret, per)
			dN += mint(manyURL, many.DevKeys.Secret, per)
		} else {
			dN += mint(manyURL, many.DevKeys.Secret, per)
			d1 += mint(oneURL, one.DevKeys.Secret, per)
		}
	}
	b.StopTimer()
	ns1, nsN := float64(d1.Nanoseconds())/float64(per*rounds), float64(dN.Nanoseconds())/float64(per*rounds)
	b.ReportMetric(nsN/ns1, "mint-ratio")
	b.ReportMetric(ns1, "mint-ns-1org")
	b.ReportMetric(nsN, "mint-ns-many")
	b.ReportMetric(pre1, "preflight-ns-1org")
	b.ReportMetric(preN, "preflight-ns-many")
}
