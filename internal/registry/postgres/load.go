package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/voicebroker/voicebroker/internal/registry"
)

// rawOrg is an org's rows as read, before decoding.
type rawOrg struct {
	id, tier             string
	rate                 int
	demo                 bool
	createdAt, updatedAt time.Time
	keys                 []rawKey
	agents               []rawAgent
	pubs                 []rawPub
	issuers              [][]byte
	lk                   *rawLiveKit
}

type rawKey struct {
	id, hash                   string
	scopes, ips                []string
	expires, revoked, lastUsed *time.Time
	createdAt                  time.Time
}

type rawAgent struct {
	id                   string
	spec                 []byte
	createdAt, updatedAt time.Time
}

type rawPub struct {
	agent, id, hash string
	createdAt       time.Time
}

type rawLiveKit struct {
	url, apiKey, sealed string
	updatedAt           time.Time
}

// querier is what loading needs: a connection or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// loadRaw reads the rows of the orgs named (every org when ids is nil) and
// the registry version, in one consistent snapshot of the database; call
// it inside a REPEATABLE READ transaction.
func loadRaw(ctx context.Context, q querier, ids []string) (map[string]*rawOrg, int64, error) {
	var version int64
	if err := q.QueryRow(ctx, "SELECT version FROM voicebroker.registry_version").Scan(&version); err != nil {
		return nil, 0, err
	}
	all := ids == nil
	where := func(col string) string {
		if all {
			return "$1::text[] IS NULL"
		}
		return col + " = ANY($1)"
	}
	orgs := map[string]*rawOrg{}
	rows, err := q.Query(ctx, `SELECT id, tier, rate_per_minute, allow_demo_rooms, created_at, updated_at
		FROM voicebroker.orgs WHERE `+where("id")+` ORDER BY id`, ids)
	if err != nil {
		return nil, 0, err
	}
	for rows.Next() {
		o := &rawOrg{}
		if err := rows.Scan(&o.id, &o.tier, &o.rate, &o.demo, &o.createdAt, &o.updatedAt); err != nil {
			rows.Close()
			return nil, 0, err
		}
		orgs[o.id] = o
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	each := func(sql string, scan func(pgx.Rows) error) error {
		rows, err := q.Query(ctx, sql, ids)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	err = each(`SELECT org_id, id, hash, scopes, allowed_ips, expires_at, revoked_at, last_used_at, created_at
		FROM voicebroker.secret_keys WHERE `+where("org_id")+` ORDER BY org_id, seq`, func(rows pgx.Rows) error {
		var org string
		var k rawKey
		if err := rows.Scan(&org, &k.id, &k.hash, &k.scopes, &k.ips, &k.expires, &k.revoked, &k.lastUsed, &k.createdAt); err != nil {
			return err
		}
		if o := orgs[org]; o != nil {
			o.keys = append(o.keys, k)
		}
		return nil
	})
	if err == nil {
		err = each(`SELECT org_id, id, spec, created_at, updated_at FROM voicebroker.agents WHERE `+where("org_id")+
			` ORDER BY org_id, seq`, func(rows pgx.Rows) error {
			var org string
			var a rawAgent
			if err := rows.Scan(&org, &a.id, &a.spec, &a.createdAt, &a.updatedAt); err != nil {
				return err
			}
			if o := orgs[org]; o != nil {
				o.agents = append(o.agents, a)
			}
			return nil
		})
	}
	if err == nil {
		err = each(`SELECT org_id, agent_id, id, hash, created_at FROM voicebroker.publishable_keys WHERE `+where("org_id")+
			` ORDER BY org_id, agent_id, seq`, func(rows pgx.Rows) error {
			var org string
			var p rawPub
			if err := rows.Scan(&org, &p.agent, &p.id, &p.hash, &p.createdAt); err != nil {
				return err
			}
			if o := orgs[org]; o != nil {
				o.pubs = append(o.pubs, p)
			}
			return nil
		})
	}
	if err == nil {
		err = each(`SELECT org_id, spec FROM voicebroker.jwt_issuers WHERE `+where("org_id")+` ORDER BY org_id, position`,
			func(rows pgx.Rows) error {
				var org string
				var spec []byte
				if err := rows.Scan(&org, &spec); err != nil {
					return err
				}
				if o := orgs[org]; o != nil {
					o.issuers = append(o.issuers, spec)
				}
				return nil
			})
	}
	if err == nil {
		err = each(`SELECT org_id, url, api_key, secret_sealed, updated_at FROM voicebroker.livekit_projects WHERE `+where("org_id"),
			func(rows pgx.Rows) error {
				var org string
				var l rawLiveKit
				if err := rows.Scan(&org, &l.url, &l.apiKey, &l.sealed, &l.updatedAt); err != nil {
					return err
				}
				if o := orgs[org]; o != nil {
					o.lk = &l
				}
				return nil
			})
	}
	if err != nil {
		return nil, 0, err
	}
	return orgs, version, nil
}

// digest sums what of an org the snapshot is built from (not its
// timestamps or last use), so a refresh rebuilds only the orgs that moved.
func (o *rawOrg) digest() [32]byte {
	h := sha256.New()
	str := func(s string) {
		binary.Write(h, binary.LittleEndian, int64(len(s)))
		h.Write([]byte(s))
	}
	strs := func(ss []string) {
		binary.Write(h, binary.LittleEndian, int64(len(ss)))
		for _, s := range ss {
			str(s)
		}
	}
	tm := func(t *time.Time) {
		if t == nil {
			str("")
			return
		}
		str(t.UTC().Format(time.RFC3339Nano))
	}
	str(o.id)
	str(o.tier)
	binary.Write(h, binary.LittleEndian, int64(o.rate))
	binary.Write(h, binary.LittleEndian, o.demo)
	binary.Write(h, binary.LittleEndian, int64(len(o.keys)))
	for _, k := range o.keys {
		str(k.id)
		str(k.hash)
		strs(k.scopes)
		strs(k.ips)
		tm(k.expires)
		binary.Write(h, binary.LittleEndian, k.revoked != nil)
	}
	binary.Write(h, binary.LittleEndian, int64(len(o.agents)))
	for _, a := range o.agents {
		str(a.id)
		str(string(a.spec))
	}
	binary.Write(h, binary.LittleEndian, int64(len(o.pubs)))
	for _, p := range o.pubs {
		str(p.agent)
		str(p.id)
		str(p.hash)
	}
	binary.Write(h, binary.LittleEndian, int64(len(o.issuers)))
	for _, is := range o.issuers {
		str(string(is))
	}
	if o.lk != nil {
		str(o.lk.url)
		str(o.lk.apiKey)
		str(o.lk.sealed)
	}
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// liveKitAD binds a sealed LiveKit secret to its org.
func liveKitAD(org string) []byte { return []byte("voicebroker/livekit/" + org) }

// decode turns an org's rows into registry data. With open set, the
// LiveKit secret is opened with the keyring (an error when it cannot be);
// without, the project has its URL and API key and an empty secret (what
// an export writes, and what an import without the keyring compares).
func (r *Registry) decode(o *rawOrg, open bool) (*registry.OrgData, error) {
	d := &registry.OrgData{Org: registry.Org{ID: o.id, Tier: o.tier, RatePerMinute: o.rate, AllowDemoRooms: o.demo,
		CreatedAt: o.createdAt, UpdatedAt: o.updatedAt}}
	for _, k := range o.keys {
		d.Keys = append(d.Keys, registry.KeyData{Key: registry.Key{ID: k.id, Scopes: k.scopes, AllowedIPs: k.ips,
			ExpiresAt: k.expires, RevokedAt: k.revoked, LastUsedAt: k.lastUsed, CreatedAt: k.createdAt}, Hash: k.hash})
	}
	for _, a := range o.agents {
		spec, err := registry.DecodeAgent(a.spec)
		if err != nil {
			return nil, fmt.Errorf("agent %s: the stored spec does not decode: %w", a.id, err)
		}
		spec.ID = a.id
		d.Agents = append(d.Agents, registry.AgentData{Spec: spec, CreatedAt: a.createdAt, UpdatedAt: a.updatedAt})
	}
	for _, p := range o.pubs {
		a := d.Agent(p.agent)
		if a == nil {
			continue
		}
		a.Keys = append(a.Keys, registry.PublishableKeyData{PublishableKey: registry.PublishableKey{ID: p.id, CreatedAt: p.createdAt}, Hash: p.hash})
	}
	for i, raw := range o.issuers {
		is, err := registry.DecodeIssuer(raw)
		if err != nil {
			return nil, fmt.Errorf("jwt_issuers[%d]: the stored spec does not decode: %w", i, err)
		}
		d.Issuers = append(d.Issuers, is)
	}
	if o.lk != nil && open {
		if r.opt.Keyring == nil {
			return nil, errors.New("livekit: its secret is sealed and BROKER_SECRETS_KEY_FILE is not set")
		}
		secret, err := r.opt.Keyring.Open(o.lk.sealed, liveKitAD(o.id))
		if err != nil {
			return nil, fmt.Errorf("livekit: the secret does not open: %w", err)
		}
		d.LiveKit = &registry.LiveKitData{URL: o.lk.url, APIKey: o.lk.apiKey, APISecret: registry.Secret(secret), UpdatedAt: o.lk.updatedAt}
	} else if o.lk != nil {
		d.LiveKit = &registry.LiveKitData{URL: o.lk.url, APIKey: o.lk.apiKey, UpdatedAt: o.lk.updatedAt}
	}
	registry.Normalize(d)
	return d, nil
}

// readOnly runs fn in a REPEATABLE READ, read-only transaction on conn.
func readOnly(ctx context.Context, conn *pgx.Conn, fn func(pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
}

// refreshAll reloads the whole registry and rebuilds the orgs whose rows
// changed since the last load. It is the follower's (or Open's) only.
func (r *Registry) refreshAll(ctx context.Context, conn *pgx.Conn) error {
	var orgs map[string]*rawOrg
	var version int64
	err := readOnly(ctx, conn, func(tx pgx.Tx) (err error) {
		orgs, version, err = loadRaw(ctx, tx, nil)
		return err
	})
	if err != nil {
		return dbError(err)
	}
	changed := map[string]*rawOrg{}
	for id, o := range orgs {
		if d, ok := r.digests[id]; !ok || d != o.digest() {
			changed[id] = o
		}
	}
	for id := range r.digests {
		if orgs[id] == nil {
			changed[id] = nil
		}
	}
	r.apply(changed, version, "refresh")
	return nil
}

// refreshOrgs reloads the orgs named (a notification) and rebuilds those
// that changed.
func (r *Registry) refreshOrgs(ctx context.Context, conn *pgx.Conn, ids []string) error {
	var orgs map[string]*rawOrg
	var version int64
	err := readOnly(ctx, conn, func(tx pgx.Tx) (err error) {
		orgs, version, err = loadRaw(ctx, tx, ids)
		return err
	})
	if err != nil {
		return dbError(err)
	}
	changed := map[string]*rawOrg{}
	for _, id := range ids {
		o := orgs[id]
		if o == nil {
			if _, known := r.digests[id]; known {
				changed[id] = nil
			}
			continue
		}
		if d, ok := r.digests[id]; !ok || d != o.digest() {
			changed[id] = o
		}
	}
	r.apply(changed, version, "notify")
	return nil
}

// apply decodes the changed orgs (nil: gone), puts the new snapshot in
// force and confirms it current. An org that does not decode or check is
// left out and logged: its credentials stop working, the others go on.
func (r *Registry) apply(changed map[string]*rawOrg, version int64, why string) {
	if version > r.version {
		r.version = version
	}
	if len(changed) == 0 {
		r.confirm()
		return
	}
	data := make(map[string]*registry.OrgData, len(changed))
	for _, id := range slices.Sorted(maps.Keys(changed)) {
		o := changed[id]
		if o == nil {
			data[id] = nil
			delete(r.digests, id)
			continue
		}
		r.digests[id] = o.digest()
		d, err := r.decode(o, true)
		if err != nil {
			r.log.Error("org left out of the registry snapshot", "event", "registry.org_left_out", "org", id, "reason", err.Error())
			data[id] = nil
			continue
		}
		data[id] = d
	}
	start := time.Now()
	s, err := r.asm.Apply(data, r.version)
	if err != nil {
		r.log.Error("orgs left out of the registry snapshot", "event", "registry.org_left_out", "reason", err.Error())
	}
	// An org left out (it did not decode or check, or it broke a rule
	// spanning orgs) keeps no digest, so the next refresh tries it again:
	// what kept it out (an issuer key file not readable yet, another org's
	// conflicting row since fixed) may have gone while its own rows stay
	// the same.
	for id, o := range changed {
		if o != nil && s.Tenants.Org(id) == nil {
			delete(r.digests, id)
		}
	}
	r.Publish(s)
	r.confirm()
	r.log.Debug("registry snapshot updated", "event", "registry.update", "why", why, "orgs_changed", len(changed),
		"orgs", len(s.Tenants.Orgs()), "version", r.version, "build_ms", time.Since(start).Milliseconds())
}
