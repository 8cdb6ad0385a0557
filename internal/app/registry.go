package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/apikey"
	"github.com/voicebroker/voicebroker/internal/metrics"
	"github.com/voicebroker/voicebroker/internal/registry"
	"github.com/voicebroker/voicebroker/internal/registry/file"
	"github.com/voicebroker/voicebroker/internal/registry/memory"
	"github.com/voicebroker/voicebroker/internal/registry/postgres"
	"github.com/voicebroker/voicebroker/internal/registry/secretbox"
)

// openRegistry opens the tenant registry the environment names: the
// database (BROKER_DATABASE_URL), the tenants file (BROKER_CONFIG), or, in
// development, the embedded demo tenant in memory (with its fresh keys).
func openRegistry(ctx context.Context, env *config.Env, log *slog.Logger, m *metrics.Metrics) (registry.Registry, *DevKeys, error) {
	var reg registry.Registry
	var dev *DevKeys
	switch {
	case env.Registry.DatabaseURL != "":
		var keys *secretbox.Keyring
		if env.Registry.SecretsKeyFile != "" {
			k, err := secretbox.LoadKeyFile(env.Registry.SecretsKeyFile)
			if err != nil {
				return nil, nil, err
			}
			keys = k
		}
		r, err := postgres.Open(ctx, postgres.Options{
			URL: env.Registry.DatabaseURL, Refresh: env.Registry.Refresh, MaxStaleness: env.Registry.MaxStaleness,
			Keyring: keys, Log: log,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("tenant registry: %w", err)
		}
		if err := checkRegistry(env, r); err != nil {
			r.Close()
			return nil, nil, fmt.Errorf("%w\n  (the tenants come from BROKER_DATABASE_URL)", err)
		}
		reg = r
	case env.ConfigFile != "":
		r, err := file.Open(env.ConfigFile, file.Options{Log: log, OnReload: m.ReloadHook, Interval: env.ReloadInterval,
			Checks: []func(*config.Tenants) error{env.CheckTenants}})
		var ee *config.EnvError
		if errors.As(err, &ee) {
			// The file is fine; a variable disagrees with it. Naming the
			// file first would send the reader to the wrong place.
			return nil, nil, fmt.Errorf("%w\n  (the tenants come from BROKER_CONFIG %s)", err, env.ConfigFile)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("BROKER_CONFIG %s: %w", env.ConfigFile, err)
		}
		reg = r
	default:
		if env.Production() {
			return nil, nil, errors.New("BROKER_CONFIG: a tenants file (or BROKER_DATABASE_URL) is required in production")
		}
		sk, err := apikey.New(apikey.Secret, apikey.Test)
		if err != nil {
			return nil, nil, err
		}
		pk, err := apikey.New(apikey.Publishable, apikey.Test)
		if err != nil {
			return nil, nil, err
		}
		t, err := config.Demo(apikey.Hash(sk), apikey.Hash(pk))
		if err != nil {
			return nil, nil, err
		}
		r := memory.New(memory.Options{})
		if err := r.Seed(t); err != nil {
			return nil, nil, err
		}
		if err := checkRegistry(env, r); err != nil {
			return nil, nil, fmt.Errorf("%w\n  (no BROKER_CONFIG: the embedded development tenant has the one org %q)", err, config.DemoOrg)
		}
		reg, dev = r, &DevKeys{Secret: sk, Publishable: pk}
	}
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "voicebroker_registry_snapshot_age_seconds",
			Help: "How long ago the tenant registry snapshot was last confirmed current with its source (0 for a file or the demo tenant).",
		}, func() float64 { return reg.Age().Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "voicebroker_registry_unavailable",
			Help: "1 while the registry snapshot is older than BROKER_REGISTRY_MAX_STALENESS (authenticated requests fail closed).",
		}, func() float64 {
			if reg.Check() != nil {
				return 1
			}
			return 0
		}),
	)
	return reg, dev, nil
}

// checkRegistry is the environment's check of a writable registry
// (config.Env.CheckTenants), and of its LiveKit projects, which are in its
// snapshot rather than in its tenants (a tenants file's are in both, and
// file.Options.Checks sees them): an org project on the default project's
// server or with its API key.
func checkRegistry(env *config.Env, r registry.Reader) error {
	var problems []string
	var ee *config.EnvError
	if err := env.CheckTenants(r.Current()); errors.As(err, &ee) {
		problems = append(problems, ee.Problems...)
	} else if err != nil {
		return err
	}
	snap := r.Snapshot()
	var ps []config.OrgProject
	for _, id := range snap.LiveKitOrgs() {
		p := snap.LiveKit(id)
		ps = append(ps, config.OrgProject{Org: id, URL: p.URL, APIKey: p.APIKey})
	}
	if err := env.CheckLiveKitProjects(ps); errors.As(err, &ee) {
		problems = append(problems, ee.Problems...)
	}
	if len(problems) > 0 {
		return &config.EnvError{Problems: problems}
	}
	return nil
}

// ungated are the paths that never read the tenants, and /readyz, which
// answers the outage itself (503 registry_unavailable with the snapshot's
// age): they keep answering while the registry is unavailable, so probes
// and scrapes see the outage.
var ungated = map[string]bool{"/": true, "/healthz": true, "/readyz": true, "/metrics": true, "/.well-known/jwks.json": true, "/openapi.yaml": true}

// registryGate fails closed: while the registry's Check fails, every
// request that reads the tenants (every authenticated route, /connect,
// /public/token and its preflight, the webhook) gets the contract's 503
// registry_unavailable (§5) before any handler runs, so nothing is minted or
// redeemed against a stale snapshot. Check is an atomic load and a clock
// read. The file and demo registries never fail it.
func registryGate(reg registry.Reader, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if reg.Check() != nil && !ungated[r.URL.Path] && !strings.HasPrefix(r.URL.Path, "/demo/") {
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Retry-After", "5")
			refuse(w, http.StatusServiceUnavailable, "registry_unavailable", "the tenant registry is unavailable; try again shortly")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// watchTenantChecks re-checks the environment against every new snapshot
// of a writable registry (the database, the development tenant), as the
// tenants file's reload does. A file reload that fails the checks is
// refused; a snapshot cannot be, since the registry is the truth (an org
// deleted through the admin API is gone). So a failure is logged once as
// an error (registry.check, naming the variable and the org, never a
// secret), sets voicebroker_registry_config_mismatch, and the request path
// fails closed: an API secret whose org is gone is 401 unauthorized, like
// a revoked key. It returns when ctx ends.
func (a *App) watchTenantChecks(ctx context.Context) {
	if _, isFile := a.Tenants.(*file.Registry); isFile {
		return // file.Options.Checks refuses such a reload
	}
	last := ""
	for {
		changed := a.Tenants.Changed()
		msg := ""
		if err := checkRegistry(a.Env, a.Tenants); err != nil {
			msg = err.Error()
		}
		a.tenantsMismatch.Store(msg != "")
		switch {
		case msg != "" && msg != last:
			a.Log.Error("the tenant registry no longer matches the environment: the credentials named fail closed (401) until it does; fix the environment or recreate the org",
				"event", "registry.check", "problems", msg)
		case msg == "" && last != "":
			a.Log.Info("the tenant registry matches the environment again", "event", "registry.check")
		}
		last = msg
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}
