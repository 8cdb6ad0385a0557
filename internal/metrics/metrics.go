// Package metrics defines the Prometheus metrics operators watch, on a
// registry of the broker's own (no global state, so tests can run many
// brokers in one process).
//
// /metrics is unauthenticated, so every label value must come from a
// closed set, never from what a client sends: orgs are ids of the tenants
// file, routes are the registered patterns or "unmatched", methods one of
// Methods or "OTHER", statuses a status the broker answers, reasons and
// scopes fixed words of the code.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/voicebroker/voicebroker/internal/store"
)

// Metrics holds every collector.
type Metrics struct {
	Registry *prometheus.Registry

	TokensMinted   *prometheus.CounterVec   // org, mode (backend|public)
	TokensRedeemed *prometheus.CounterVec   // org, via (redeem|connect)
	TokensRefused  *prometheus.CounterVec   // reason
	AuthFailures   *prometheus.CounterVec   // reason
	RateLimited    *prometheus.CounterVec   // scope (org|public|ip|admin)
	StoreDuration  *prometheus.HistogramVec // op, result
	LiveKitCalls   *prometheus.HistogramVec // op, result
	HTTPDuration   *prometheus.HistogramVec // route, method, status
	ConfigReloads  *prometheus.CounterVec   // result
	// ConfigStale is 1 from a failed tenants reload until one succeeds.
	ConfigStale prometheus.Gauge

	stale atomic.Bool

	// The children of the vectors the hot path touches, each looked up
	// once: WithLabelValues hashes and checks its values on every call.
	http     labelCache[httpKey, prometheus.Observer]
	minted   labelCache[[2]string, prometheus.Counter]
	redeemed labelCache[[2]string, prometheus.Counter]
}

type httpKey struct {
	route, method string
	status        int
}

// labelCache maps label values to a vector's child.
type labelCache[K comparable, V any] struct {
	mu sync.RWMutex
	m  map[K]V
}

func (c *labelCache[K, V]) get(k K, with func() V) V {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.m[k]; ok {
		return v
	}
	if c.m == nil {
		c.m = make(map[K]V)
	}
	v = with()
	c.m[k] = v
	return v
}

// ObserveHTTP records one request's duration in HTTPDuration. route must be
// a registered pattern or "unmatched"; method and status are reduced to
// their label values here.
func (m *Metrics) ObserveHTTP(route, method string, status int, d time.Duration) {
	method = MethodLabel(method)
	if status < 100 || status > 599 {
		status = 0 // StatusLabel's "other"
	}
	m.http.get(httpKey{route, method, status}, func() prometheus.Observer {
		return m.HTTPDuration.WithLabelValues(route, method, StatusLabel(status))
	}).Observe(d.Seconds())
}

// Minted counts a minted ticket in TokensMinted.
func (m *Metrics) Minted(org, mode string) {
	m.minted.get([2]string{org, mode}, func() prometheus.Counter { return m.TokensMinted.WithLabelValues(org, mode) }).Inc()
}

// Redeemed counts a redeemed ticket in TokensRedeemed.
func (m *Metrics) Redeemed(org, via string) {
	m.redeemed.get([2]string{org, via}, func() prometheus.Counter { return m.TokensRedeemed.WithLabelValues(org, via) }).Inc()
}

// New registers every collector on a fresh registry.
func New(version string) *Metrics {
	r := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { r.MustRegister(c) }
	m := &Metrics{
		Registry: r,
		TokensMinted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "voicebroker_tokens_minted_total", Help: "Single-use tokens minted.",
		}, []string{"org", "mode"}),
		TokensRedeemed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "voicebroker_tokens_redeemed_total", Help: "Single-use tokens redeemed (nonce consumed).",
		}, []string{"org", "via"}),
		TokensRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "voicebroker_tokens_refused_total", Help: "Token redemptions refused, by reason.",
		}, []string{"reason"}),
		AuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "voicebroker_auth_failures_total", Help: "Failed authentications, by reason.",
		}, []string{"reason"}),
		RateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "voicebroker_rate_limited_total", Help: "Requests refused by a rate limit.",
		}, []string{"scope"}),
		StoreDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "voicebroker_store_duration_seconds", Help: "Store call latency.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"op", "result"}),
		LiveKitCalls: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "voicebroker_livekit_duration_seconds", Help: "LiveKit API call latency.",
			Buckets: prometheus.DefBuckets,
		}, []string{"op", "result"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "voicebroker_http_request_duration_seconds", Help: "HTTP request latency by route and status.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method", "status"}),
		ConfigReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "voicebroker_config_reloads_total", Help: "Tenants file reloads by result.",
		}, []string{"result"}),
		ConfigStale: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "voicebroker_config_stale",
			Help: "1 when the last tenants reload failed and the previous tenants are still in force, until a reload succeeds.",
		}),
	}
	f(m.TokensMinted)
	f(m.TokensRedeemed)
	f(m.TokensRefused)
	f(m.AuthFailures)
	f(m.RateLimited)
	f(m.StoreDuration)
	f(m.LiveKitCalls)
	f(m.HTTPDuration)
	f(m.ConfigReloads)
	f(m.ConfigStale)
	goVersion := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "voicebroker_build_info", Help: "Build information; always 1.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": goVersion},
	})
	build.Set(1)
	f(build)
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

// ReloadHook counts a reload result and sets ConfigStale; for
// config.NewHolder.
func (m *Metrics) ReloadHook(ok bool) {
	m.stale.Store(!ok)
	if ok {
		m.ConfigReloads.WithLabelValues("ok").Inc()
		m.ConfigStale.Set(0)
	} else {
		m.ConfigReloads.WithLabelValues("error").Inc()
		m.ConfigStale.Set(1)
	}
}

// Stale reports whether the last tenants reload failed (see ConfigStale).
func (m *Metrics) Stale() bool { return m.stale.Load() }

// Methods are the HTTP methods that are their own label value.
var Methods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// MethodLabel returns method if it is one of Methods, else "OTHER": a
// client may send any token as a method.
func MethodLabel(method string) string {
	for _, m := range Methods {
		if method == m {
			return m
		}
	}
	return "OTHER"
}

// StatusLabel returns the status as three digits, or "other" outside
// 100-599.
func StatusLabel(status int) string {
	if status < 100 || status > 599 {
		return "other"
	}
	return strconv.Itoa(status)
}

// InstrumentStore returns s with each call timed into StoreDuration.
func (m *Metrics) InstrumentStore(s store.Store) store.Store {
	return &timedStore{Store: s, h: m.StoreDuration}
}

type timedStore struct {
	store.Store
	h   *prometheus.HistogramVec
	obs labelCache[[2]string, prometheus.Observer]
}

func (t *timedStore) observe(op string, start time.Time, err error) {
	result := "ok"
	switch {
	case err == nil:
	case errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrReplayed) ||
		errors.Is(err, store.ErrMismatch):
		result = "miss"
	default:
		result = "error"
	}
	t.obs.get([2]string{op, result}, func() prometheus.Observer { return t.h.WithLabelValues(op, result) }).
		Observe(time.Since(start).Seconds())
}

func (t *timedStore) PutNonce(ctx context.Context, n store.Nonce, ttl time.Duration, limit *store.Limit) (store.Result, error) {
	start := time.Now()
	r, err := t.Store.PutNonce(ctx, n, ttl, limit)
	t.observe("put_nonce", start, err)
	return r, err
}

func (t *timedStore) ConsumeNonce(ctx context.Context, n store.Nonce, limit *store.Limit) (store.Result, error) {
	start := time.Now()
	r, err := t.Store.ConsumeNonce(ctx, n, limit)
	t.observe("consume_nonce", start, err)
	return r, err
}

func (t *timedStore) ConsumeNonceWithProof(ctx context.Context, n store.Nonce, p store.Proof) error {
	start := time.Now()
	err := t.Store.ConsumeNonceWithProof(ctx, n, p)
	t.observe("consume_nonce_dpop", start, err)
	return err
}

func (t *timedStore) ClaimRoom(ctx context.Context, room, org string, ttl, tokens time.Duration) (string, error) {
	start := time.Now()
	owner, err := t.Store.ClaimRoom(ctx, room, org, ttl, tokens)
	t.observe("claim_room", start, err)
	return owner, err
}

func (t *timedStore) RoomOwner(ctx context.Context, room string) (string, error) {
	start := time.Now()
	owner, err := t.Store.RoomOwner(ctx, room)
	t.observe("room_owner", start, err)
	return owner, err
}

func (t *timedStore) ReleaseRoom(ctx context.Context, room, org string) error {
	start := time.Now()
	err := t.Store.ReleaseRoom(ctx, room, org)
	t.observe("release_room", start, err)
	return err
}

func (t *timedStore) ReleaseRoomClaimedBy(ctx context.Context, room, org string, at time.Time, keep time.Duration) (bool, error) {
	start := time.Now()
	released, err := t.Store.ReleaseRoomClaimedBy(ctx, room, org, at, keep)
	t.observe("release_room_claimed_by", start, err)
	return released, err
}

func (t *timedStore) RecordWebhookEvent(ctx context.Context, id string, ttl time.Duration) error {
	start := time.Now()
	err := t.Store.RecordWebhookEvent(ctx, id, ttl)
	t.observe("record_webhook_event", start, err)
	return err
}

func (t *timedStore) ForgetWebhookEvent(ctx context.Context, id string) error {
	start := time.Now()
	err := t.Store.ForgetWebhookEvent(ctx, id)
	t.observe("forget_webhook_event", start, err)
	return err
}

func (t *timedStore) Allow(ctx context.Context, key string, limit store.Limit) (store.Result, error) {
	start := time.Now()
	r, err := t.Store.Allow(ctx, key, limit)
	t.observe("rate_limit", start, err)
	return r, err
}
