package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/registry"
	"github.com/voicebroker/voicebroker/internal/registry/postgres"
	"github.com/voicebroker/voicebroker/internal/registry/secretbox"
)

const tenantsUsage = `usage:
  broker tenants import FILE   load a tenants file into the database: each org of the file
                               becomes exactly as the file says; other orgs are left alone;
                               importing the same file again changes nothing
  broker tenants export        print the database's tenants as a tenants file; an org's
                               LiveKit project is written with api_secret_env:
                               LIVEKIT_API_SECRET_<ORG>, never its secret
  broker migrate               bring the database's registry schema up to date
(BROKER_DATABASE_URL names the database; BROKER_SECRETS_KEY_FILE seals the LiveKit
secrets an import brings, read from each livekit block's api_secret_env or api_secret_file)
`

// commandTimeout bounds a database command.
const commandTimeout = 5 * time.Minute

// tenantsCmd runs `broker tenants import FILE` and `broker tenants export`.
func tenantsCmd(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	switch {
	case len(args) == 2 && args[0] == "import":
		return tenantsImport(args[1], stdout, stderr, getenv)
	case len(args) == 1 && args[0] == "export":
		return tenantsExport(stdout, stderr, getenv)
	case len(args) == 1 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help"):
		fmt.Fprint(stdout, tenantsUsage)
		return 0
	}
	switch args[0] {
	case "import":
		fmt.Fprintf(stderr, "broker: tenants import takes one FILE, got %d arguments\n", len(args)-1)
	case "export":
		fmt.Fprintf(stderr, "broker: tenants export takes no arguments, got %q\n", strings.Join(args[1:], " "))
	default:
		fmt.Fprintf(stderr, "broker: unknown command %q\n", "tenants "+args[0])
	}
	fmt.Fprint(stderr, tenantsUsage)
	return 2
}

// openDatabase opens the registry in BROKER_DATABASE_URL for a command.
func openDatabase(ctx context.Context, name string, stderr io.Writer, getenv func(string) string) (*postgres.Registry, bool) {
	env, err := config.LoadRegistryEnv(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "broker %s: %v\n", name, err)
		return nil, false
	}
	// The keyring seals the LiveKit secrets an import brings (a file's
	// livekit blocks); without it such an import is refused.
	var keys *secretbox.Keyring
	if env.SecretsKeyFile != "" {
		if keys, err = secretbox.LoadKeyFile(env.SecretsKeyFile); err != nil {
			fmt.Fprintf(stderr, "broker %s: %v\n", name, err)
			return nil, false
		}
	}
	r, err := postgres.Open(ctx, postgres.Options{URL: env.DatabaseURL, Offline: true, Keyring: keys})
	if err != nil {
		fmt.Fprintf(stderr, "broker %s: %v\n", name, err)
		return nil, false
	}
	return r, true
}

func commandContext() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	return ctx, func() { cancel(); stop() }
}

func tenantsImport(path string, stdout, stderr io.Writer, getenv func(string) string) int {
	data, err := config.ReadBounded(path)
	if err != nil {
		fmt.Fprintf(stderr, "broker tenants import: %v\n", err)
		return 1
	}
	f, err := registry.ParseFileIn(data, filepath.Dir(path))
	if err != nil {
		printProblems(stderr, "broker tenants import: "+path, err)
		return 1
	}
	ctx, cancel := commandContext()
	defer cancel()
	r, ok := openDatabase(ctx, "tenants import", stderr, getenv)
	if !ok {
		return 1
	}
	defer r.Close()
	ctx = registry.WithActor(ctx, registry.Actor{Subject: "cli:tenants-import"})
	report, err := r.Import(ctx, f)
	if err != nil {
		printProblems(stderr, "broker tenants import: "+path, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: imported into the database: %s\n", path, report)
	for _, line := range []struct {
		what string
		ids  []string
	}{{"created", report.Created}, {"changed", report.Changed}, {"unchanged", report.Unchanged}, {"not in the file, left as they are", report.Untouched}} {
		if len(line.ids) > 0 {
			fmt.Fprintf(stdout, "  %s: %s\n", line.what, strings.Join(line.ids, ", "))
		}
	}
	return 0
}

func tenantsExport(stdout, stderr io.Writer, getenv func(string) string) int {
	ctx, cancel := commandContext()
	defer cancel()
	r, ok := openDatabase(ctx, "tenants export", stderr, getenv)
	if !ok {
		return 1
	}
	defer r.Close()
	f, err := r.Export(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "broker tenants export: %v\n", err)
		return 1
	}
	if len(f.Orgs) == 0 {
		// A tenants file needs an org; say so rather than print one that
		// `broker config check` refuses.
		fmt.Fprintln(stderr, "broker tenants export: the registry has no org")
		return 1
	}
	out, err := registry.MarshalFile(f)
	if err != nil {
		fmt.Fprintf(stderr, "broker tenants export: %v\n", err)
		return 1
	}
	stdout.Write(out)
	return 0
}

func migrateCmd(stdout, stderr io.Writer, getenv func(string) string) int {
	env, err := config.LoadRegistryEnv(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "broker migrate: %v\n", err)
		return 1
	}
	ctx, cancel := commandContext()
	defer cancel()
	applied, err := postgres.MigrateURL(ctx, env.DatabaseURL)
	if err != nil {
		fmt.Fprintf(stderr, "broker migrate: %v\n", err)
		return 1
	}
	if len(applied) == 0 {
		fmt.Fprintf(stdout, "registry schema already at version %d\n", postgres.SchemaVersion())
	} else {
		fmt.Fprintf(stdout, "registry schema now at version %d (applied %s)\n", postgres.SchemaVersion(), strings.Join(applied, ", "))
	}
	return 0
}

// printProblems prints a validation error a problem a line, as `broker
// config check` does.
func printProblems(w io.Writer, prefix string, err error) {
	var ce *config.ValidationError
	var re *registry.ValidationError
	switch {
	case errors.As(err, &ce):
		fmt.Fprintf(w, "%s: %d problem(s):\n  %s\n", prefix, len(ce.Problems), strings.Join(ce.Problems, "\n  "))
	case errors.As(err, &re):
		fmt.Fprintf(w, "%s: %d problem(s):\n  %s\n", prefix, len(re.Problems), strings.Join(re.Problems, "\n  "))
	default:
		fmt.Fprintf(w, "%s: %v\n", prefix, err)
	}
}
