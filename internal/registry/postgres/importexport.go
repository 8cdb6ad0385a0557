package postgres

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/registry"
)

// Import makes each org of the file as the file says, in one transaction.
// An org's livekit block is stored with its secret (read from
// api_secret_env or api_secret_file) sealed with the keyring, which a file
// with such a block therefore needs (registry.ErrNoSecretsKey); an org
// without one goes back to the default project. Creating an org whose id
// was deleted less than registry.IDQuarantine ago is ErrConflict, and
// nothing is imported.
func (r *Registry) Import(ctx context.Context, f *config.File) (*registry.ImportReport, error) {
	var report *registry.ImportReport
	ids := make([]string, 0, len(f.Orgs))
	for _, o := range f.Orgs {
		ids = append(ids, o.ID)
		if o.LiveKit != nil && r.opt.Keyring == nil {
			return nil, fmt.Errorf("org %s has a livekit block: %w", o.ID, registry.ErrNoSecretsKey)
		}
	}
	err := r.write(ctx, func(ctx context.Context, tx pgx.Tx, c *change) error {
		raw, _, err := loadRaw(ctx, tx, ids)
		if err != nil {
			return err
		}
		cur := map[string]*registry.OrgData{}
		for id, o := range raw {
			// The stored secrets are opened (when the keyring is there) so
			// that a project the file repeats is seen as unchanged.
			if cur[id], err = r.decode(o, r.opt.Keyring != nil); err != nil {
				return fmt.Errorf("org %s: %w", id, err)
			}
		}
		plan, err := registry.PlanImport(f, func(id string) *registry.OrgData { return cur[id] }, r.stamp())
		if err != nil {
			return err
		}
		report = plan.Report
		if err := quarantined(ctx, tx, plan.Report.Created); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT id FROM voicebroker.orgs WHERE id <> ALL($1) ORDER BY id", ids)
		if err != nil {
			return err
		}
		others, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		report.Untouched = others
		if len(plan.Changed) == 0 {
			return errNoop
		}
		if err := crossCheck(ctx, tx, f, ids); err != nil {
			return err
		}
		// The changed orgs' LiveKit projects go first, so that two orgs of
		// the file may swap API keys.
		if _, err := tx.Exec(ctx, "DELETE FROM voicebroker.livekit_projects WHERE org_id = ANY($1)", slices.Collect(maps.Keys(plan.Changed))); err != nil {
			return err
		}
		for _, id := range slices.Sorted(maps.Keys(plan.Changed)) {
			if err := r.writeOrg(ctx, tx, plan.Changed[id]); err != nil {
				return err
			}
			c.record(id, registry.ActionImport, "", plan.Details[id])
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return report, nil
}

// crossCheck refuses a file whose key hashes or (issuer, audience) pairs
// belong to orgs the file does not name; the message names the orgs,
// never the hash.
func crossCheck(ctx context.Context, tx pgx.Tx, f *config.File, ids []string) error {
	owner := map[string]string{} // hash -> file org
	var iss, aud, names []string
	pairOwner := map[[2]string]string{}
	type agentUse struct {
		org    string
		shared bool
	}
	nameUse := map[string][]agentUse{}
	lkOwner := map[string]string{}  // LiveKit API key -> file org
	lkServer := map[string]string{} // LiveKit server -> file org
	for _, o := range f.Orgs {
		if o.LiveKit != nil {
			lkOwner[o.LiveKit.APIKey] = o.ID
			if s, err := config.LiveKitServer(o.LiveKit.URL); err == nil {
				lkServer[s] = o.ID
			}
		}
		for _, k := range o.Keys {
			owner[k.Hash] = o.ID
		}
		for _, a := range o.Agents {
			if a.Public == nil {
				continue
			}
			if a.Public.KeyHash != "" {
				owner[a.Public.KeyHash] = o.ID
			}
			for _, k := range a.Public.Keys {
				owner[k.Hash] = o.ID
			}
		}
		for _, is := range o.JWTIssuers {
			ci, ca := config.CanonicalIdentifier(is.Issuer), config.CanonicalIdentifier(is.Audience)
			iss, aud = append(iss, ci), append(aud, ca)
			pairOwner[[2]string{ci, ca}] = o.ID
		}
		for _, a := range o.Agents {
			name := a.LiveKitName()
			names = append(names, name)
			nameUse[name] = append(nameUse[name], agentUse{org: o.ID, shared: a.LiveKitAgentShared})
		}
	}
	hashes := slices.Collect(maps.Keys(owner))
	rows, err := tx.Query(ctx, `SELECT hash, org_id FROM voicebroker.secret_keys WHERE hash = ANY($1) AND org_id <> ALL($2)
		UNION ALL SELECT hash, org_id FROM voicebroker.publishable_keys WHERE hash = ANY($1) AND org_id <> ALL($2)`, hashes, ids)
	if err != nil {
		return err
	}
	var problems []string
	for rows.Next() {
		var h, other string
		if err := rows.Scan(&h, &other); err != nil {
			rows.Close()
			return err
		}
		problems = append(problems, fmt.Sprintf("org %q: a key hash of the file is already listed in org %q", owner[h], other))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	rows, err = tx.Query(ctx, `SELECT i.issuer, i.audience, i.org_id FROM voicebroker.jwt_issuers i
		JOIN unnest($1::text[], $2::text[]) AS f(issuer, audience) ON i.issuer = f.issuer AND i.audience = f.audience
		WHERE i.org_id <> ALL($3)`, iss, aud, ids)
	if err != nil {
		return err
	}
	for rows.Next() {
		var i, a, other string
		if err := rows.Scan(&i, &a, &other); err != nil {
			rows.Close()
			return err
		}
		problems = append(problems, fmt.Sprintf("org %q: jwt issuer %q with audience %q is already trusted by org %q", pairOwner[[2]string{i, a}], i, a, other))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	rows, err = tx.Query(ctx, "SELECT "+liveKitName+", "+liveKitShared+", org_id FROM voicebroker.agents WHERE org_id <> ALL($2) AND "+
		liveKitName+" = ANY($1)", names, ids)
	if err != nil {
		return err
	}
	for rows.Next() {
		var name, other string
		var shared bool
		if err := rows.Scan(&name, &shared, &other); err != nil {
			rows.Close()
			return err
		}
		for _, u := range nameUse[name] {
			if !u.shared || !shared {
				problems = append(problems, fmt.Sprintf("org %q: LiveKit agent name %q is used by agents of org %q; give each org's agent its own livekit_agent_name, or set livekit_agent_shared: true on every agent that uses it", u.org, name, other))
				break
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	rows, err = tx.Query(ctx, "SELECT api_key, org_id FROM voicebroker.livekit_projects WHERE api_key = ANY($1) AND org_id <> ALL($2)",
		slices.Collect(maps.Keys(lkOwner)), ids)
	if err != nil {
		return err
	}
	for rows.Next() {
		var key, other string
		if err := rows.Scan(&key, &other); err != nil {
			rows.Close()
			return err
		}
		problems = append(problems, fmt.Sprintf("org %q: livekit.api_key %q is the LiveKit project of org %q", lkOwner[key], key, other))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	// The server is config.LiveKitServer's reading of a URL: the other
	// orgs' URLs are read and compared here.
	if len(lkServer) > 0 {
		rows, err = tx.Query(ctx, "SELECT url, org_id FROM voicebroker.livekit_projects WHERE org_id <> ALL($1) ORDER BY org_id", ids)
		if err != nil {
			return err
		}
		for rows.Next() {
			var u, other string
			if err := rows.Scan(&u, &other); err != nil {
				rows.Close()
				return err
			}
			if s, err := config.LiveKitServer(u); err == nil && lkServer[s] != "" {
				problems = append(problems, fmt.Sprintf("org %q: livekit.url: %s", lkServer[s], config.SameLiveKitServer(s, fmt.Sprintf("org %q", other))))
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return &registry.ValidationError{Problems: append([]string{"the file conflicts with orgs already in the registry"}, problems...)}
	}
	return nil
}

// writeOrg stores an org as d says: the org row upserted, its keys,
// agents, publishable keys, issuers and LiveKit project replaced (the
// project's secret sealed with the keyring and bound to the org).
func (r *Registry) writeOrg(ctx context.Context, tx pgx.Tx, d *registry.OrgData) error {
	o := d.Org
	if _, err := tx.Exec(ctx, `INSERT INTO voicebroker.orgs (id, tier, rate_per_minute, allow_demo_rooms, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE
		SET tier = $2, rate_per_minute = $3, allow_demo_rooms = $4, updated_at = $6`,
		o.ID, o.Tier, o.RatePerMinute, o.AllowDemoRooms, o.CreatedAt, o.UpdatedAt); err != nil {
		return err
	}
	for _, table := range []string{"secret_keys", "agents", "jwt_issuers"} {
		if _, err := tx.Exec(ctx, "DELETE FROM voicebroker."+table+" WHERE org_id = $1", o.ID); err != nil {
			return err
		}
	}
	for _, k := range d.Keys {
		if _, err := tx.Exec(ctx, `INSERT INTO voicebroker.secret_keys (org_id, id, hash, scopes, allowed_ips, expires_at, revoked_at, created_at, last_used_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			o.ID, k.ID, k.Hash, k.Scopes, k.AllowedIPs, k.ExpiresAt, k.RevokedAt, k.CreatedAt, k.LastUsedAt); err != nil {
			return err
		}
	}
	for _, a := range d.Agents {
		spec, err := registry.EncodeAgent(a.Spec)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO voicebroker.agents (org_id, id, spec, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)`,
			o.ID, a.Spec.ID, spec, a.CreatedAt, a.UpdatedAt); err != nil {
			return err
		}
		for _, k := range a.Keys {
			if _, err := tx.Exec(ctx, `INSERT INTO voicebroker.publishable_keys (org_id, agent_id, id, hash, created_at) VALUES ($1, $2, $3, $4, $5)`,
				o.ID, a.Spec.ID, k.ID, k.Hash, k.CreatedAt); err != nil {
				return err
			}
		}
	}
	if err := replaceIssuers(ctx, tx, o.ID, d.Issuers); err != nil {
		return err
	}
	if d.LiveKit == nil {
		_, err := tx.Exec(ctx, "DELETE FROM voicebroker.livekit_projects WHERE org_id = $1", o.ID)
		return err
	}
	if r.opt.Keyring == nil || d.LiveKit.APISecret == "" {
		return registry.ErrNoSecretsKey
	}
	sealed, err := r.opt.Keyring.Seal([]byte(d.LiveKit.APISecret.Reveal()), liveKitAD(o.ID))
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO voicebroker.livekit_projects (org_id, url, api_key, secret_sealed, secret_key_id, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (org_id) DO UPDATE SET url = $2, api_key = $3, secret_sealed = $4, secret_key_id = $5, updated_at = $6`,
		o.ID, d.LiveKit.URL, d.LiveKit.APIKey, sealed, r.opt.Keyring.ID(), d.LiveKit.UpdatedAt)
	return err
}

// Export returns the registry as a tenants file.
func (r *Registry) Export(ctx context.Context) (*config.File, error) {
	ctx, cancel := r.timeout(ctx)
	defer cancel()
	f := &config.File{Orgs: []config.Org{}}
	err := readOnlyPool(ctx, r, func(tx pgx.Tx) error {
		raw, _, err := loadRaw(ctx, tx, nil)
		if err != nil {
			return err
		}
		for _, id := range slices.Sorted(maps.Keys(raw)) {
			d, err := r.decode(raw[id], false)
			if err != nil {
				return fmt.Errorf("org %s: %w", id, err)
			}
			f.Orgs = append(f.Orgs, d.ExportOrg())
		}
		return nil
	})
	if err != nil {
		return nil, pass(err)
	}
	return f, nil
}
