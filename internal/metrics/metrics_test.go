package metrics_test

import (
	"context"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/voicebroker/voicebroker/internal/metrics"
	"github.com/voicebroker/voicebroker/internal/store"
	"github.com/voicebroker/voicebroker/internal/store/memory"
)

// series returns the samples of a family, keyed by their label values
// joined with "/", and for histograms their counts.
func series(t *testing.T, m *metrics.Metrics, name string) map[string]float64 {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			key := ""
			for i, l := range s.GetLabel() {
				if i > 0 {
					key += "/"
				}
				key += l.GetValue()
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = s.GetCounter().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[key] = float64(s.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// TestCachedChildren: the looked-up-once children count exactly as the
// vectors would, with the same closed label values.
func TestCachedChildren(t *testing.T) {
	m := metrics.New("test")
	for range 3 {
		m.ObserveHTTP("/token", "POST", 201, time.Millisecond)
	}
	m.ObserveHTTP("/token", "BREW", 201, time.Millisecond)
	m.ObserveHTTP("unmatched", "GET", 999, time.Millisecond)
	m.ObserveHTTP("unmatched", "GET", 42, time.Millisecond)
	got := series(t, m, "voicebroker_http_request_duration_seconds")
	want := map[string]float64{"POST//token/201": 3, "OTHER//token/201": 1, "GET/unmatched/other": 2}
	if len(got) != len(want) {
		t.Fatalf("series %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("series %v, want %v", got, want)
		}
	}
	m.Minted("acme", "backend")
	m.Minted("acme", "backend")
	m.Minted("globex", "public")
	m.Redeemed("acme", "connect")
	if got := series(t, m, "voicebroker_tokens_minted_total"); got["backend/acme"] != 2 || got["public/globex"] != 1 || len(got) != 2 {
		t.Fatalf("minted %v", got)
	}
	if got := series(t, m, "voicebroker_tokens_redeemed_total"); got["acme/connect"] != 1 || len(got) != 1 {
		t.Fatalf("redeemed %v", got)
	}

	st := m.InstrumentStore(memory.New(time.Minute))
	ctx := context.Background()
	n := store.Nonce{Org: "acme", ID: "x"}
	st.PutNonce(ctx, n, time.Minute, nil)
	st.PutNonce(ctx, n, time.Minute, nil)
	st.ConsumeNonce(ctx, n, nil)
	got = series(t, m, "voicebroker_store_duration_seconds")
	if got["put_nonce/ok"] != 1 || got["put_nonce/miss"] != 1 || got["consume_nonce/ok"] != 1 || len(got) != 3 {
		t.Fatalf("store %v", got)
	}
}
