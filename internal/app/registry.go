package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

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
		reg = r
	case env.ConfigFile != "":
		r, err := file.Open(env.ConfigFile, file.Options{Log: log, OnReload: m.ReloadHook, Interval: env.ReloadInterval})
		if err != nil {
			return nil, nil, fmt.Errorf("tenants file %s: %w", env.ConfigFile, err)
		}
		reg = r
	default:
		if env.Production() {
			return nil, nil, errors.New("BROKER_CONFIG or BROKER_DATABASE_URL is required in production")
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
