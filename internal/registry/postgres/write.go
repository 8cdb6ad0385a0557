package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/apikey"
	"github.com/voicebroker/voicebroker/internal/registry"
)

// change collects what a write transaction changed: the orgs to name in
// the notification and the audit events to record.
type change struct {
	orgs   []string
	events []registry.AuditEvent
}

func (c *change) record(org string, action registry.Action, target string, detail map[string]any) {
	c.orgs = append(c.orgs, org)
	c.events = append(c.events, registry.AuditEvent{Org: org, Action: action, Target: target, Detail: detail})
}

// errNoop ends a write that turned out to change nothing: the transaction
// is rolled back (no version, no notification, no audit) and the write
// succeeds.
var errNoop = errors.New("nothing to change")

// write runs fn in a transaction that first bumps the registry version
// (which serialises writers: concurrent creates of one id see each other),
// then records fn's audit events and notifies every replica, all or
// nothing.
func (r *Registry) write(ctx context.Context, fn func(ctx context.Context, tx pgx.Tx, c *change) error) error {
	ctx, cancel := r.timeout(ctx)
	defer cancel()
	actor := registry.ActorFrom(ctx)
	at := r.stamp()
	err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		var version int64
		if err := tx.QueryRow(ctx, "UPDATE voicebroker.registry_version SET version = version + 1 RETURNING version").Scan(&version); err != nil {
			return err
		}
		c := &change{}
		if err := fn(ctx, tx, c); err != nil {
			return err
		}
		for _, e := range c.events {
			var detail any
			if e.Detail != nil {
				detail = e.Detail
			}
			if _, err := tx.Exec(ctx, `INSERT INTO voicebroker.audit_events (at, actor, request_id, org_id, action, target, detail)
				VALUES ($1, $2, $3, $4, $5, $6, $7)`, at, actor.Subject, actor.RequestID, e.Org, string(e.Action), e.Target, detail); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", channel, payload(version, compact(c.orgs)))
		return err
	})
	if errors.Is(err, errNoop) {
		return nil
	}
	return pass(err)
}

func compact(ids []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// pass returns the registry's own errors as they are and turns database
// errors into the registry's.
func pass(err error) error {
	var ve *registry.ValidationError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ve), errors.Is(err, registry.ErrNotFound), errors.Is(err, registry.ErrConflict),
		errors.Is(err, registry.ErrNoSecretsKey), errors.Is(err, registry.ErrUnavailable):
		return err
	}
	return dbError(err)
}

// orgExists is nil when the org exists, else ErrNotFound.
func orgExists(ctx context.Context, q querier, id string) error {
	if !config.ValidID(id) {
		return registry.NotFound("org", id)
	}
	var ok bool
	if err := q.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM voicebroker.orgs WHERE id = $1)", id).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return registry.NotFound("org", id)
	}
	return nil
}

const orgColumns = "id, tier, rate_per_minute, allow_demo_rooms, created_at, updated_at"

func scanOrg(row pgx.Row) (registry.Org, error) {
	var o registry.Org
	err := row.Scan(&o.ID, &o.Tier, &o.RatePerMinute, &o.AllowDemoRooms, &o.CreatedAt, &o.UpdatedAt)
	o.CreatedAt, o.UpdatedAt = o.CreatedAt.UTC(), o.UpdatedAt.UTC()
	return o, err
}

// quarantine is registry.IDQuarantine in microseconds, PostgreSQL's
// resolution, for `$n::bigint * interval '1 microsecond'`.
var quarantine = registry.IDQuarantine.Microseconds()

// quarantined is registry.Quarantined for the first of the org ids deleted
// less than registry.IDQuarantine ago, by the database's clock (one for
// every replica), else nil.
func quarantined(ctx context.Context, q querier, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	var id string
	var at time.Time
	err := q.QueryRow(ctx, `SELECT id, deleted_at FROM voicebroker.org_tombstones
		WHERE id = ANY($1) AND deleted_at > now() - $2::bigint * interval '1 microsecond' ORDER BY id LIMIT 1`, ids, quarantine).Scan(&id, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	} else if err != nil {
		return err
	}
	return registry.Quarantined(id, at)
}

// CreateOrg adds an org. An id deleted less than registry.IDQuarantine ago
// is ErrConflict.
func (r *Registry) CreateOrg(ctx context.Context, o registry.OrgSpec) (registry.Org, error) {
	if err := registry.CheckOrg(o); err != nil {
		return registry.Org{}, err
	}
	var out registry.Org
	err := r.write(ctx, func(ctx context.Context, tx pgx.Tx, c *change) error {
		if err := quarantined(ctx, tx, []string{o.ID}); err != nil {
			return err
		}
		now := r.stamp()
		var err error
		out, err = scanOrg(tx.QueryRow(ctx, `INSERT INTO voicebroker.orgs (id, tier, rate_per_minute, allow_demo_rooms, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (id) DO NOTHING RETURNING `+orgColumns, o.ID, o.Tier, o.RatePerMinute, o.AllowDemoRooms, now))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: org %q", registry.ErrConflict, o.ID)
		}
		c.record(o.ID, registry.ActionOrgCreate, "", map[string]any{"tier": o.Tier, "rate_per_minute": o.RatePerMinute, "allow_demo_rooms": o.AllowDemoRooms})
		return err
	})
	return out, err
}

// GetOrg returns an org.
func (r *Registry) GetOrg(ctx context.Context, id string) (registry.Org, error) {
	if !config.ValidID(id) {
		return registry.Org{}, registry.NotFound("org", id)
	}
	ctx, cancel := r.timeout(ctx)
	defer cancel()
	o, err := scanOrg(r.pool.QueryRow(ctx, "SELECT "+orgColumns+" FROM voicebroker.orgs WHERE id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return registry.Org{}, registry.NotFound("org", id)
	}
	return o, pass(err)
}

// ListOrgs pages through the orgs in id order.
func (r *Registry) ListOrgs(ctx context.Context, p registry.Page) ([]registry.Org, string, error) {
	limit, after, err := p.OrgPage()
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := r.timeout(ctx)
	defer cancel()
	rows, err := r.pool.Query(ctx, "SELECT "+orgColumns+" FROM voicebroker.orgs WHERE id > $1 ORDER BY id LIMIT $2", after, limit+1)
	if err != nil {
		return nil, "", pass(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (registry.Org, error) { return scanOrg(row) })
	if err != nil {
		return nil, "", pass(err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = out[limit-1].ID
	}
	return out, next, nil
}

// UpdateOrg changes the fields the patch sets.
func (r *Registry) UpdateOrg(ctx context.Context, id string, p registry.OrgPatch) (registry.Org, error) {
	var out registry.Org
	err := r.write(ctx, func(ctx context.Context, tx pgx.Tx, c *change) error {
		if !config.ValidID(id) {
			return registry.NotFound("org", id)
		}
		cur, err := scanOrg(tx.QueryRow(ctx, "SELECT "+orgColumns+" FROM voicebroker.orgs WHERE id = $1", id))
		if errors.Is(err, pgx.ErrNoRows) {
			return registry.NotFound("org", id)
		} else if err != nil {
			return err
		}
		spec, detail := registry.ApplyPatch(cur, p)
		if err := registry.CheckOrg(spec); err != nil {
			return err
		}
		out, err = scanOrg(tx.QueryRow(ctx, `UPDATE voicebroker.orgs SET tier = $2, rate_per_minute = $3, allow_demo_rooms = $4, updated_at = $5
			WHERE id = $1 RETURNING `+orgColumns, id, spec.Tier, spec.RatePerMinute, spec.AllowDemoRooms, r.stamp()))
		c.record(id, registry.ActionOrgUpdate, "", detail)
		return err
	})
	return out, err
}

// DeleteOrg removes an org and everything in it, and quarantines its id
// for registry.IDQuarantine: its tombstone holds the database's now().
// Tombstones past the quarantine are pruned here.
func (r *Registry) DeleteOrg(ctx context.Context, id string) error {
	return r.write(ctx, func(ctx context.Context, tx pgx.Tx, c *change) error {
		if !config.ValidID(id) {
			return registry.NotFound("org", id)
		}
		tag, err := tx.Exec(ctx, "DELETE FROM voicebroker.orgs WHERE id = $1", id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return registry.NotFound("org", id)
		}
		if _, err := tx.Exec(ctx, "DELETE FROM voicebroker.org_tombstones WHERE deleted_at <= now() - $1::bigint * interval '1 microsecond'", quarantine); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO voicebroker.org_tombstones (id, deleted_at) VALUES ($1, now())
			ON CONFLICT (id) DO UPDATE SET deleted_at = now()`, id); err != nil {
			return err
		}
		c.record(id, registry.ActionOrgDelete, "", nil)
		return nil
	})
}

// agent reads an agent with its publishable keys (hashes included).
func agent(ctx context.Context, q querier, org, id string) (*registry.AgentData, error) {
	var raw rawAgent
	err := q.QueryRow(ctx, "SELECT id, spec, created_at, updated_at FROM voicebroker.agents WHERE org_id = $1 AND id = $2", org, id).
		Scan(&raw.id, &raw.spec, &raw.createdAt, &raw.updatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, registry.NotFound("agent", id)
	} else if err != nil {
		return nil, err
	}
	spec, err := registry.DecodeAgent(raw.spec)
	if err != nil {
		return nil, fmt.Errorf("agent %s: the stored spec does not decode: %w", id, err)
	}
	spec.ID = id
	a := &registry.AgentData{Spec: spec, CreatedAt: raw.createdAt.UTC(), UpdatedAt: raw.updatedAt.UTC()}
	rows, err := q.Query(ctx, "SELECT id, hash, created_at FROM voicebroker.publishable_keys WHERE org_id = $1 AND agent_id = $2 ORDER BY seq", org, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var k registry.PublishableKeyData
		if err := rows.Scan(&k.ID, &k.Hash, &k.CreatedAt); err != nil {
			return nil, err
		}
		k.CreatedAt = k.CreatedAt.UTC()
		a.Keys = append(a.Keys, k)
	}
	return a, rows.Err()
}

// PutAgent creates or replaces an agent.
func (r *Registry) PutAgent(ctx context.Context, org string, a config.Agent) (registry.Agent, bool, error) {
	if err := registry.CheckAgent(a); err != nil {
		return registry.Agent{}, false, err
	}
	spec := registry.AgentSpec(a)
	raw, err := registry.EncodeAgent(spec)
	if err != nil {
		return registry.Agent{}, false, err
	}
	var out registry.Agent
	var created bool
	err = r.write(ctx, func(ctx context.Context, tx pgx.Tx, c *change) error {
		if err := orgExists(ctx, tx, org); err != nil {
			return err
		}
		if err := liveKitNameFree(ctx, tx, org, spec); err != nil {
			return err
		}
		now := r.stamp()
		tag, err := tx.Exec(ctx, `INSERT INTO voicebroker.agents (org_id, id, spec, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)
			ON CONFLICT (org_id, id) DO NOTHING`, org, a.ID, raw, now)
		if err != nil {
			return err
		}
		created = tag.RowsAffected() == 1
		detail := registry.AgentDetail(spec)
		action := registry.ActionAgentCreate
		if !created {
			action = registry.ActionAgentReplace
			if _, err := tx.Exec(ctx, "UPDATE voicebroker.agents SET spec = $3, updated_at = $4 WHERE org_id = $1 AND id = $2", org, a.ID, raw, now); err != nil {
				return err
			}
			if spec.Public == nil {
				rows, err := tx.Query(ctx, "DELETE FROM voicebroker.publishable_keys WHERE org_id = $1 AND agent_id = $2 RETURNING id", org, a.ID)
				if err != nil {
					return err
				}
				dropped, err := pgx.CollectRows(rows, pgx.RowTo[string])
				if err != nil {
					return err
				}
				if len(dropped) > 0 {
					detail["publishable_keys_deleted"] = dropped
				}
			}
		}
		got, err := agent(ctx, tx, org, a.ID)
		if err != nil {
			return err
		}
		out = got.View()
		c.record(org, action, "agents/"+a.ID, detail)
		return nil
	})
	return out, created, err
}

// liveKitName is the SQL of an agent row's LiveKit agent name
// (config.Agent.LiveKitName: livekit_agent_name, else the agent id).
const liveKitName = "coalesce(nullif(spec->>'livekit_agent_name', ''), id)"

// liveKitShared is the SQL of an agent row's livekit_agent_shared.
const liveKitShared = "coalesce((spec->>'livekit_agent_shared')::boolean, false)"

// liveKitNameFree applies the tenants file's rule that a LiveKit agent
// name belongs to one org's agents unless every agent using it is shared
// (LiveKit sends a name's jobs to every worker registered under it).
func liveKitNameFree(ctx context.Context, tx pgx.Tx, org string, a config.Agent) error {
	rows, err := tx.Query(ctx, "SELECT "+liveKitShared+" FROM voicebroker.agents WHERE org_id <> $1 AND "+liveKitName+" = $2", org, a.LiveKitName())
	if err != nil {
		return err
	}
	shared, err := pgx.CollectRows(rows, pgx.RowTo[bool])
	if err != nil {
		return err
	}
	for _, other := range shared {
		if !other || !a.LiveKitAgentShared {
			return fmt.Errorf("%w: livekit_agent_name: the LiveKit agent name %q is used by another org's agents; give this agent its own livekit_agent_name, or set livekit_agent_shared on every agent that uses it",
				registry.ErrConflict, a.LiveKitName())
		}
	}
	return nil
}

// GetAgent returns an agent.
func (r *Registry) GetAgent(ctx context.Context, org, id string) (registry.Agent, error) {
	ctx, cancel := r.timeout(ctx)
	defer cancel()
	if err := orgExists(ctx, r.pool, org); err != nil {
		return registry.Agent{}, pass(err)
	}
	a, err := agent(ctx, r.pool, org, id)
	if err != nil {
		return registry.Agent{}, pass(err)
	}
	return a.View(), nil
}

// ListAgents lists the org's agents.
func (r *Registry) ListAgents(ctx context.Context, org string) ([]registry.Agent, error) {
	ctx, cancel := r.timeout(ctx)
	defer cancel()
	if err := orgExists(ctx, r.pool, org); err != nil {
		return nil, pass(err)
	}
	var out []registry.Agent
	err := readOnlyPool(ctx, r, func(tx pgx.Tx) error {
		orgs, _, err := loadRaw(ctx, tx, []string{org})
		if err != nil {
			return err
		}
		o := orgs[org]
		if o == nil {
			return registry.NotFound("org", org)
		}
		d, err := r.decode(o, false)
		if err != nil {
			return err
		}
		out = []registry.Agent{}
		for i := range d.Agents {
			out = append(out, d.Agents[i].View())
		}
		return nil
	})
	return out, pass(err)
}

func readOnlyPool(ctx context.Context, r *Registry, fn func(pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, r.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
}

// DeleteAgent removes an agent and its publishable keys.
func (r *Registry) DeleteAgent(ctx context.Context, org, id string) error {
	return r.write(ctx, func(ctx context.Context, tx pgx.Tx, c *change) error {
		if err := orgExists(ctx, tx, org); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, "DELETE FROM voicebroker.agents WHERE org_id = $1 AND id = $2", org, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return registry.NotFound("agent", id)
		}
		c.record(org, registry.ActionAgentDelete, "agents/"+id, nil)
		return nil
	})
}

// CreatePublishableKey makes a publishable key for an agent in public mode.
func (r *Registry) CreatePublishableKey(ctx context.Context, org, agentID string, env apikey.Env) (registry.PublishableKey, string, error) {
	env, err := registry.KeyEnv(env)
	if err != nil {
		return registry.PublishableKey{}, "", err
	}
	key, err := apikey.New(apikey.Publishable, env)
	if err != nil {
		return registry.PublishableKey{}, "", err
	}
	pk := registry.PublishableKey{ID: registry.NewPublishableKeyID(), CreatedAt: r.stamp()}
	err = r.write(ctx, func(ctx context.Context, tx pgx.Tx, c *change) error {
		if err := orgExists(ctx, tx, org); err != nil {
			return err
		}
		a, err := agent(ctx, tx, org, agentID)
		if err != nil {
			return err
		}
		if err := registry.CanAddPublishableKey(a); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO voicebroker.publishable_keys (org_id, agent_id, id, hash, created_at) VALUES ($1, $2, $3, $4, $5)`,
			org, agentID, pk.ID, apikey.Hash(key), pk.CreatedAt); err != nil {
			return err
		}
		c.record(org, registry.ActionPubKeyCreate, "agents/"+agentID+"/publishable-keys/"+pk.ID, map[string]any{"env": string(env)})
		return nil
	})
	if err != nil {
		return registry.PublishableKey{}, "", err
	}
	return pk, key, nil
}

// DeletePublishableKey revokes a publishable key.
func (r *Registry) DeletePublishableKey(ctx context.Context, org, agentID, id string) error {
	return r.write(ctx, func(ctx context.Context, tx pgx.Tx, c *change) error {
		if err := orgExists(ctx, tx, org); err != nil {
			return err
		}
		if _, err := agent(ctx, tx, org, agentID); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, "DELETE FROM voicebroker.publishable_keys WHERE org_id = $1 AND agent_id = $2 AND id = $3", org, agentID, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return registry.NotFound("publishable key", id)
		}
		c.record(org, registry.ActionPubKeyDelete, "agents/"+agentID+"/publishable-keys/"+id, nil)
		return nil
	})
}

const keyColumns = "id, scopes, allowed_ips, expires_at, created_at, last_used_at, revoked_at"

func scanKey(row pgx.Row) (registry.Key, error) {
	var k registry.Key
	err := row.Scan(&k.ID, &k.Scopes, &k.AllowedIPs, &k.ExpiresAt, &k.CreatedAt, &k.LastUsedAt, &k.RevokedAt)
	d := registry.OrgData{Keys: []registry.KeyData{{Key: k}}}
	registry.Normalize(&d)
	return d.Keys[0].Key, err
}

// CreateKey makes a secret key.
func (r *Registry) CreateKey(ctx context.Context, org string, k registry.KeySpec) (registry.Key, string, error) {
	if err := registry.CheckKey(k); err != nil {
		return registry.Key{}, "", err
	}
	env, err := registry.KeyEnv(k.Env)
	if err != nil {
		return registry.Key{}, "", err
	}
	key, err := apikey.New(apikey.Secret, env)
	if err != nil {
		return registry.Key{}, "", err
	}
	kd := registry.NewKeyData(k, apikey.Hash(key), r.stamp())
	err = r.write(ctx, func(ctx context.Context, tx pgx.Tx, c *change) error {
		if err := orgExists(ctx, tx, org); err != nil {
			return err
		}
		// Writers are serialised (write's version row), so the count
		// cannot move before the insert.
		var n int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM voicebroker.secret_keys WHERE org_id = $1", org).Scan(&n); err != nil {
			return err
		}
		if err := registry.CanAddKey(n); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO voicebroker.secret_keys (org_id, id, hash, scopes, allowed_ips, expires_at, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (org_id, id) DO NOTHING`,
			org, kd.ID, kd.Hash, kd.Scopes, kd.AllowedIPs, kd.ExpiresAt, kd.CreatedAt)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: key %q", registry.ErrConflict, k.ID)
		}
		c.record(org, registry.ActionKeyCreate, "keys/"+k.ID, registry.KeyDetail(kd.Key, env))
		return nil
	})
	if err != nil {
		return registry.Key{}, "", err
	}
	return kd.Key, key, nil
}

// ListKeys lists the org's secret keys.
func (r *Registry) ListKeys(ctx context.Context, org string) ([]registry.Key, error) {
	ctx, cancel := r.timeout(ctx)
	defer cancel()
	if err := orgExists(ctx, r.pool, org); err != nil {
		return nil, pass(err)
	}
	rows, err := r.pool.Query(ctx, "SELECT "+keyColumns+" FROM voicebroker.secret_keys WHERE org_id = $1 ORDER BY seq", org)
	if err != nil {
		return nil, pass(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (registry.Key, error) { return scanKey(row) })
	if err != nil {
		return nil, pass(err)
	}
	if out == nil {
		out = []registry.Key{}
	}
	return out, nil
}

// RevokeKey revokes a secret key.
func (r *Registry) RevokeKey(ctx context.Context, org, id string) error {
	return r.write(ctx, func(ctx context.Context, tx pgx.Tx, c *change) error {
		if err := orgExists(ctx, tx, org); err != nil {
			return err
		}
		var revoked *bool
		err := tx.QueryRow(ctx, "SELECT revoked_at IS NOT NULL FROM voicebroker.secret_keys WHERE org_id = $1 AND id = $2", org, id).Scan(&revoked)
		if errors.Is(err, pgx.ErrNoRows) {
			return registry.NotFound("key", id)
		} else if err != nil {
			return err
		}
		if *revoked {
			return errNoop
		}
		if _, err := tx.Exec(ctx, "UPDATE voicebroker.secret_keys SET revoked_at = $3 WHERE org_id = $1 AND id = $2", org, id, r.stamp()); err != nil {
			return err
		}
		c.record(org, registry.ActionKeyRevoke, "keys/"+id, nil)
		return nil
	})
}

// GetJWTIssuers returns the org's JWT issuers.
func (r *Registry) GetJWTIssuers(ctx context.Context, org string) ([]config.JWTIssuer, error) {
	ctx, cancel := r.timeout(ctx)
	defer cancel()
	if err := orgExists(ctx, r.pool, org); err != nil {
		return nil, pass(err)
	}
	return issuers(ctx, r.pool, org)
}

func issuers(ctx context.Context, q querier, org string) ([]config.JWTIssuer, error) {
	rows, err := q.Query(ctx, "SELECT spec FROM voicebroker.jwt_issuers WHERE org_id = $1 ORDER BY position", org)
	if err != nil {
		return nil, pass(err)
	}
	specs, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, pass(err)
	}
	out := []config.JWTIssuer{}
	for i, s := range specs {
		is, err := registry.DecodeIssuer(s)
		if err != nil {
			return nil, fmt.Errorf("jwt_issuers[%d]: the stored spec does not decode: %w", i, err)
		}
		out = append(out, is)
	}
	return out, nil
}

// PutJWTIssuers replaces the org's JWT issuers.
func (r *Registry) PutJWTIssuers(ctx context.Context, org string, list []config.JWTIssuer) ([]config.JWTIssuer, error) {
	if err := registry.CheckIssuers(list); err != nil {
		return nil, err
	}
	var out []config.JWTIssuer
	err := r.write(ctx, func(ctx context.Context, tx pgx.Tx, c *change) error {
		if err := orgExists(ctx, tx, org); err != nil {
			return err
		}
		if err := replaceIssuers(ctx, tx, org, list); err != nil {
			return err
		}
		var err error
		out, err = issuers(ctx, tx, org)
		c.record(org, registry.ActionIssuersPut, "jwt-issuers", registry.IssuersDetail(list))
		return err
	})
	return out, err
}

func replaceIssuers(ctx context.Context, tx pgx.Tx, org string, list []config.JWTIssuer) error {
	if _, err := tx.Exec(ctx, "DELETE FROM voicebroker.jwt_issuers WHERE org_id = $1", org); err != nil {
		return err
	}
	for i, is := range list {
		spec, err := registry.EncodeIssuer(is)
		if err != nil {
			return err
		}
		// The unique columns hold the canonical forms, so that two spellings
		// of one URL are one issuer, as the tenants file compares them.
		if _, err := tx.Exec(ctx, `INSERT INTO voicebroker.jwt_issuers (org_id, position, issuer, audience, spec) VALUES ($1, $2, $3, $4, $5)`,
			org, i, config.CanonicalIdentifier(is.Issuer), config.CanonicalIdentifier(is.Audience), spec); err != nil {
			return err
		}
	}
	return nil
}

// PutLiveKit sets the org's LiveKit project, its secret sealed with the
// keyring and bound to the org.
func (r *Registry) PutLiveKit(ctx context.Context, org string, lk registry.LiveKitSpec) (registry.LiveKit, error) {
	if err := registry.CheckLiveKit(lk); err != nil {
		return registry.LiveKit{}, err
	}
	if r.opt.Keyring == nil {
		return registry.LiveKit{}, registry.ErrNoSecretsKey
	}
	if !config.ValidID(org) {
		return registry.LiveKit{}, registry.NotFound("org", org)
	}
	sealed, err := r.opt.Keyring.Seal([]byte(lk.APISecret), liveKitAD(org))
	if err != nil {
		return registry.LiveKit{}, err
	}
	out := registry.LiveKit{URL: lk.URL, APIKey: lk.APIKey, SecretSet: true, UpdatedAt: r.stamp()}
	err = r.write(ctx, func(ctx context.Context, tx pgx.Tx, c *change) error {
		if err := orgExists(ctx, tx, org); err != nil {
			return err
		}
		// Every write holds the registry_version row, so no other
		// project can be written between this check and the insert.
		if err := otherServer(ctx, tx, org, lk.URL); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO voicebroker.livekit_projects (org_id, url, api_key, secret_sealed, secret_key_id, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (org_id) DO UPDATE SET url = $2, api_key = $3, secret_sealed = $4, secret_key_id = $5, updated_at = $6`,
			org, lk.URL, lk.APIKey, sealed, r.opt.Keyring.ID(), out.UpdatedAt); err != nil {
			return err
		}
		c.record(org, registry.ActionLiveKitPut, "livekit", map[string]any{"url": lk.URL, "api_key": lk.APIKey})
		return nil
	})
	if err != nil {
		return registry.LiveKit{}, err
	}
	return out, nil
}

// otherServer is registry.ErrConflict when the project of another org
// than org is on the LiveKit server of url: any API key of a server signs
// tokens for every room on it. A unique column could not say it, since
// the server is config.LiveKitServer's reading of the URL.
func otherServer(ctx context.Context, tx pgx.Tx, org, url string) error {
	server, _ := config.LiveKitServer(url) // registry.CheckLiveKit parsed it
	rows, err := tx.Query(ctx, "SELECT url FROM voicebroker.livekit_projects WHERE org_id <> $1", org)
	if err != nil {
		return err
	}
	urls, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, u := range urls {
		if s, _ := config.LiveKitServer(u); s == server {
			return fmt.Errorf("%w: livekit.url: %s", registry.ErrConflict, config.SameLiveKitServer(server, "another org"))
		}
	}
	return nil
}

// GetLiveKit returns the org's LiveKit project without its secret.
func (r *Registry) GetLiveKit(ctx context.Context, org string) (registry.LiveKit, error) {
	ctx, cancel := r.timeout(ctx)
	defer cancel()
	if err := orgExists(ctx, r.pool, org); err != nil {
		return registry.LiveKit{}, pass(err)
	}
	var out registry.LiveKit
	err := r.pool.QueryRow(ctx, "SELECT url, api_key, updated_at FROM voicebroker.livekit_projects WHERE org_id = $1", org).
		Scan(&out.URL, &out.APIKey, &out.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return registry.LiveKit{}, registry.ErrNoLiveKitProject
	}
	out.SecretSet, out.UpdatedAt = true, out.UpdatedAt.UTC()
	return out, pass(err)
}

// DeleteLiveKit returns the org to the default LiveKit project.
func (r *Registry) DeleteLiveKit(ctx context.Context, org string) error {
	return r.write(ctx, func(ctx context.Context, tx pgx.Tx, c *change) error {
		if err := orgExists(ctx, tx, org); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, "DELETE FROM voicebroker.livekit_projects WHERE org_id = $1", org)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return registry.ErrNoLiveKitProject
		}
		c.record(org, registry.ActionLiveKitDelete, "livekit", nil)
		return nil
	})
}

// Audit pages through the audit trail, newest first.
func (r *Registry) Audit(ctx context.Context, q registry.AuditQuery) ([]registry.AuditEvent, string, error) {
	limit, before, err := q.AuditPage()
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := r.timeout(ctx)
	defer cancel()
	rows, err := r.pool.Query(ctx, `SELECT id, at, actor, request_id, org_id, action, target, detail FROM voicebroker.audit_events
		WHERE ($1 = '' OR org_id = $1) AND ($2 = 0 OR id < $2) ORDER BY id DESC LIMIT $3`, q.Org, before, limit+1)
	if err != nil {
		return nil, "", pass(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (registry.AuditEvent, error) {
		var e registry.AuditEvent
		var action string
		err := row.Scan(&e.ID, &e.At, &e.Actor, &e.RequestID, &e.Org, &action, &e.Target, &e.Detail)
		e.Action, e.At = registry.Action(action), e.At.UTC()
		return e, err
	})
	if err != nil {
		return nil, "", pass(err)
	}
	if out == nil {
		out = []registry.AuditEvent{}
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = strconv.FormatInt(out[limit-1].ID, 10)
	}
	return out, next, nil
}
