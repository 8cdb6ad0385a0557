package registry

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"time"
)

// MergeImport returns the org as the file says (from), keeping what the
// registry knows that a file does not carry: creation times of keys,
// agents and publishable keys that are the same (same id and hash), their
// last use, when a still-revoked key was revoked, and the update time of a
// LiveKit project that is the same (URL, API key and secret). The LiveKit
// project is as the file says: an org without a livekit block goes back to
// the default project. cur is nil for a new org. changed reports whether
// the org differs from cur in anything the file carries.
func MergeImport(cur, from *OrgData, now time.Time) (merged *OrgData, changed bool) {
	m := from.Clone()
	if cur == nil {
		return m, true
	}
	m.Org.CreatedAt = cur.Org.CreatedAt
	m.Org.UpdatedAt = cur.Org.UpdatedAt
	sameLK := sameLiveKit(cur.LiveKit, m.LiveKit)
	if sameLK && m.LiveKit != nil {
		m.LiveKit.UpdatedAt = cur.LiveKit.UpdatedAt
	}
	for i := range m.Keys {
		k := &m.Keys[i]
		old := cur.Key(k.ID)
		if old == nil || old.Hash != k.Hash {
			k.CreatedAt, k.LastUsedAt = now, nil
			if k.RevokedAt != nil {
				k.RevokedAt = &now
			}
			continue
		}
		k.CreatedAt, k.LastUsedAt = old.CreatedAt, old.LastUsedAt
		if k.RevokedAt != nil && old.RevokedAt != nil {
			k.RevokedAt = old.RevokedAt
		} else if k.RevokedAt != nil {
			k.RevokedAt = &now
		}
	}
	for i := range m.Agents {
		a := &m.Agents[i]
		old := cur.Agent(a.Spec.ID)
		if old == nil {
			a.CreatedAt, a.UpdatedAt = now, now
			continue
		}
		a.CreatedAt, a.UpdatedAt = old.CreatedAt, old.UpdatedAt
		for j := range a.Keys {
			pk := &a.Keys[j]
			pk.CreatedAt = now
			for _, o := range old.Keys {
				if o.ID == pk.ID && o.Hash == pk.Hash {
					pk.CreatedAt = o.CreatedAt
				}
			}
		}
		if !sameSpec(old, a) {
			a.UpdatedAt = now
		}
	}
	changed = !sameFile(cur, m) || !sameLK
	if changed {
		m.Org.UpdatedAt = now
	}
	return m, changed
}

// sameFile reports whether a and b are the same tenants file stanza.
func sameFile(a, b *OrgData) bool {
	x, err1 := specJSON(a.FileOrg())
	y, err2 := specJSON(b.FileOrg())
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// sameLiveKit reports whether a and b are the same project: URL, API key
// and secret (compared in constant time). A project whose secret was not
// opened ("") is never the same as one with a secret.
func sameLiveKit(a, b *LiveKitData) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.URL == b.URL && a.APIKey == b.APIKey && a.APISecret != "" &&
		subtle.ConstantTimeCompare([]byte(a.APISecret), []byte(b.APISecret)) == 1
}

func sameSpec(a, b *AgentData) bool {
	x, err1 := EncodeAgent(a.Spec)
	y, err2 := EncodeAgent(b.Spec)
	return err1 == nil && err2 == nil && bytes.Equal(x, y) && (a.Spec.Public == nil) == (b.Spec.Public == nil)
}

// NewPublishableKeyID returns a fresh id for a publishable key: "pk-" and
// ten random characters of [a-z0-9].
func NewPublishableKeyID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 10)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "pk-" + string(b)
}

// Normalize puts times in UTC at microsecond precision, as the database
// keeps them, so that data compares equal before and after a round trip.
func Normalize(d *OrgData) {
	n := func(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
	np := func(t *time.Time) *time.Time {
		if t == nil {
			return nil
		}
		v := n(*t)
		return &v
	}
	d.Org.CreatedAt, d.Org.UpdatedAt = n(d.Org.CreatedAt), n(d.Org.UpdatedAt)
	for i := range d.Keys {
		k := &d.Keys[i]
		k.CreatedAt = n(k.CreatedAt)
		k.ExpiresAt, k.LastUsedAt, k.RevokedAt = np(k.ExpiresAt), np(k.LastUsedAt), np(k.RevokedAt)
	}
	for i := range d.Agents {
		a := &d.Agents[i]
		a.CreatedAt, a.UpdatedAt = n(a.CreatedAt), n(a.UpdatedAt)
		for j := range a.Keys {
			a.Keys[j].CreatedAt = n(a.Keys[j].CreatedAt)
		}
	}
	if d.LiveKit != nil {
		d.LiveKit.UpdatedAt = n(d.LiveKit.UpdatedAt)
	}
}
