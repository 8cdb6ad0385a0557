// Package registry is the tenant registry: where orgs, agents, keys,
// publishable keys, JWT issuers and per-org LiveKit projects come from, and
// how they change.
//
// Three implementations share one interface and one conformance suite
// (registrytest), so the request path does not know which is in use:
//
//   - file: the tenants file (BROKER_CONFIG), re-read when it changes;
//     read-only, every write returns ErrReadOnly;
//   - memory: the embedded development tenant, writable, lost at exit;
//   - postgres: the registry in PostgreSQL (BROKER_DATABASE_URL), followed by
//     every replica through LISTEN/NOTIFY and a periodic full refresh.
//
// Every replica holds the whole registry in memory as a *config.Tenants
// snapshot, built and checked by the tenants file's own code: the request
// path reads Current() and never makes a database round trip.
package registry

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/apikey"
)

// Errors of the registry. Writers wrap them with %w (test with errors.Is);
// their texts name ids and fields, never a key, a hash or a secret.
var (
	// ErrNotFound: no such org, agent, key, publishable key or LiveKit
	// project (the admin API's 404 not_found).
	ErrNotFound = errors.New("not found")
	// ErrConflict: the id (or another unique value, such as an issuer and
	// audience pair or a LiveKit API key) exists already (409 conflict).
	ErrConflict = errors.New("already exists")
	// ErrReadOnly: the tenants come from a file; change the file instead
	// (409 registry_read_only).
	ErrReadOnly = errors.New("the tenants come from a file and are read-only here")
	// ErrUnavailable: the snapshot is older than the allowed staleness
	// (requests fail closed: 503 registry_unavailable), or the database did
	// not answer a write or an admin read.
	ErrUnavailable = errors.New("the tenant registry is unavailable")
	// ErrNoSecretsKey: a per-org LiveKit secret was given but
	// BROKER_SECRETS_KEY_FILE is not set, so it cannot be stored encrypted.
	ErrNoSecretsKey = errors.New("BROKER_SECRETS_KEY_FILE is not set: per-org LiveKit secrets cannot be stored")
)

// Reader is what the request path needs. Every method is cheap (an atomic
// load or a clock read) and safe for concurrent use.
type Reader interface {
	// Current returns the tenants in force, never nil. It has the shape of
	// config.Holder's Current, so the request path takes either. It keeps
	// returning the last snapshot when that is stale: call Check first.
	Current() *config.Tenants
	// Snapshot returns the snapshot in force with what the tenants file
	// schema does not carry (per-org LiveKit projects, the source version).
	Snapshot() *Snapshot
	// Check is nil while the snapshot may be served, and an error wrapping
	// ErrUnavailable once it is older than the allowed staleness: the
	// request path must then fail closed (503 registry_unavailable).
	Check() error
	// Age is how long ago the snapshot was last confirmed current with its
	// source (0 for the file and memory registries, whose source is local),
	// for /readyz and the voicebroker_registry_snapshot_age_seconds gauge.
	Age() time.Duration
	// Changed returns a channel closed when a newer snapshot is in force;
	// call it again for the next change.
	Changed() <-chan struct{}
	// Used records that a secret key authenticated a request, for the
	// key's last_used_at. It never blocks: writes are batched, at most one
	// a minute per key.
	Used(org, keyID string)
}

// Writer is the registry's write role, for the admin API (contract §4.1)
// and `broker tenants import`. Every write validates with the tenants
// file's rules (a *ValidationError names the fields as the file does),
// records an audit event with the Actor of ctx, and is in force on every
// replica within about a second. The file registry returns ErrReadOnly from
// every write; its reads work. Errors: ErrNotFound, ErrConflict,
// ErrReadOnly, ErrUnavailable, ErrNoSecretsKey, *ValidationError.
type Writer interface {
	// CreateOrg adds an org. An id that exists, or that was deleted less
	// than IDQuarantine ago, is ErrConflict.
	CreateOrg(ctx context.Context, o OrgSpec) (Org, error)
	GetOrg(ctx context.Context, id string) (Org, error)
	// ListOrgs pages through the orgs in id order; next is "" on the last
	// page.
	ListOrgs(ctx context.Context, p Page) (orgs []Org, next string, err error)
	// UpdateOrg changes the fields the patch sets.
	UpdateOrg(ctx context.Context, id string, p OrgPatch) (Org, error)
	// DeleteOrg removes the org with everything in it: its keys stop at
	// once. Its audit events stay. Its id cannot be created again for
	// IDQuarantine.
	DeleteOrg(ctx context.Context, id string) error

	// PutAgent creates or replaces an agent, as in the tenants file but
	// without publishable keys (public.key_hash and public.keys are
	// refused: make them with CreatePublishableKey). Replacing keeps the
	// agent's publishable keys, unless the new agent has no public mode:
	// then they are deleted.
	PutAgent(ctx context.Context, org string, a config.Agent) (agent Agent, created bool, err error)
	GetAgent(ctx context.Context, org, id string) (Agent, error)
	ListAgents(ctx context.Context, org string) ([]Agent, error)
	DeleteAgent(ctx context.Context, org, id string) error

	// CreatePublishableKey makes a new pk_ key for an agent in public mode
	// and returns it once; the agent's earlier keys keep working until
	// deleted. Only its hash is kept.
	CreatePublishableKey(ctx context.Context, org, agent string, env apikey.Env) (pk PublishableKey, key string, err error)
	DeletePublishableKey(ctx context.Context, org, agent, id string) error

	// CreateKey makes a new sk_ key and returns it once; only its hash is
	// kept. An id in use, even by a revoked key, is ErrConflict.
	CreateKey(ctx context.Context, org string, k KeySpec) (view Key, key string, err error)
	// ListKeys lists the org's secret keys, revoked ones included, without
	// secret or hash.
	ListKeys(ctx context.Context, org string) ([]Key, error)
	// RevokeKey revokes a key at once; the key stays listed for the audit
	// trail. Revoking a revoked key changes nothing and is no error.
	RevokeKey(ctx context.Context, org, id string) error

	GetJWTIssuers(ctx context.Context, org string) ([]config.JWTIssuer, error)
	// PutJWTIssuers replaces the org's whole jwt_issuers list. An issuer
	// and audience pair of another org is ErrConflict.
	PutJWTIssuers(ctx context.Context, org string, list []config.JWTIssuer) ([]config.JWTIssuer, error)

	// PutLiveKit sets the org's own LiveKit project. The secret is kept
	// encrypted at rest and never returned. An API key of another org's
	// project is ErrConflict.
	PutLiveKit(ctx context.Context, org string, lk LiveKitSpec) (LiveKit, error)
	// GetLiveKit returns the project without its secret; ErrNotFound when
	// the org has none.
	GetLiveKit(ctx context.Context, org string) (LiveKit, error)
	DeleteLiveKit(ctx context.Context, org string) error

	// Audit pages through audit events, newest first, of one org when
	// q.Org is set.
	Audit(ctx context.Context, q AuditQuery) (events []AuditEvent, next string, err error)

	// Import makes each org of the file exactly as the file says (orgs
	// not in the file are left alone). Importing the same file twice
	// changes nothing the second time. Keys stay hashes; an org's livekit
	// block becomes its LiveKit project, the secret read from the block's
	// api_secret_env or api_secret_file (and sealed where the registry
	// keeps secrets at rest); an org without one uses the default project.
	// A file that would create an org whose id was deleted less than
	// IDQuarantine ago is ErrConflict, and nothing of it is imported.
	Import(ctx context.Context, f *config.File) (*ImportReport, error)
	// Export returns the whole registry as a tenants file that `broker
	// config check` accepts and that imports back to the same state. An
	// org's LiveKit project is exported without its secret: its block
	// names a variable for it (config.LiveKitSecretEnvName, or the file's
	// own for the file registry), which must be set to use the file.
	Export(ctx context.Context) (*config.File, error)
}

// Registry is a tenant registry: a Reader for the request path and a
// Writer for the admin API.
type Registry interface {
	Reader
	Writer
	// Kind is "file", "memory" or "postgres", for logs.
	Kind() string
	// Run follows the source (file polling and SIGHUP, LISTEN/NOTIFY and
	// refreshes, last-used flushes) until ctx ends. It returns nil then.
	Run(ctx context.Context) error
	// Close flushes what Used recorded and releases the source.
	Close() error
}

// Actor is who makes a change, for the audit trail. Subject names the
// caller without any secret, e.g. "admin:3f2a9c01" (a prefix of the admin
// key's hash), "org:acme/key:ops" or "cli:tenants-import".
type Actor struct {
	Subject   string
	RequestID string
}

type actorKey struct{}

// WithActor returns ctx carrying the actor that writes will record.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom returns the actor of ctx; Subject "system" when none was set.
func ActorFrom(ctx context.Context) Actor {
	a, _ := ctx.Value(actorKey{}).(Actor)
	if a.Subject == "" {
		a.Subject = "system"
	}
	a.Subject = clip(a.Subject, 200)
	a.RequestID = clip(a.RequestID, 200)
	return a
}

// ErrNoLiveKitProject is ErrNotFound for an org that uses the default
// LiveKit project.
var ErrNoLiveKitProject = fmt.Errorf("%w: LiveKit project", ErrNotFound)

// NotFound is ErrNotFound naming what is missing: its kind ("org",
// "agent", "key", ...) and its id, quoted and cut to 64 bytes.
func NotFound(kind, id string) error {
	if len(id) > 64 {
		id = clip(id, 64) + "…"
	}
	return fmt.Errorf("%w: %s %s", ErrNotFound, kind, strconv.Quote(id))
}

// clip cuts s to at most n bytes, at a character boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
