package config

import (
	"crypto/subtle"
	"fmt"
	"maps"
	"slices"
	"sort"
)

// Replace returns a copy of t in which each org named in parts is replaced
// by the only org of its part (a *Tenants that Build made from a file of
// that one org), or removed when its part is nil; t itself is not changed.
// It is how the tenant registry applies a change to a large snapshot without
// rebuilding every org: the cost is a copy of the indexes plus the changed
// orgs.
//
// The rules that span orgs hold in the result, as Build applies them: a
// key hash (secret or publishable) belongs to one org, an (issuer,
// audience) pair to one org, a LiveKit agent name to one org's agents
// unless every agent that uses it is shared, and a LiveKit project's API
// key to one org.
// A part that breaks one is left out, so its org is absent from the result
// (its credentials stop working: fail closed), and the returned
// *ValidationError names the org and the reason; the result is still
// usable. A part that does not hold exactly the org it is filed under is
// an error of the same kind.
//
// New orgs are placed in id order; orgs already in t keep their place.
func (t *Tenants) Replace(parts map[string]*Tenants) (*Tenants, error) {
	n := &Tenants{
		orgs:        maps.Clone(t.orgs),
		keys:        maps.Clone(t.keys),
		publishable: maps.Clone(t.publishable),
		issuers:     maps.Clone(t.issuers),
		pairs:       maps.Clone(t.pairs),
		order:       slices.Clone(t.order),
	}
	if n.orgs == nil {
		n.orgs = make(map[string]*Org)
		n.keys = make(map[string]*Key)
		n.publishable = make(map[string]*Agent)
		n.issuers = make(map[string][]*IssuerRef)
	}
	if n.pairs == nil {
		n.pairs = make(map[issuerPair]*Org)
	}
	ids := slices.Sorted(maps.Keys(parts))
	// Take every replaced org out first, so that a key hash moving from one
	// changed org to another in the same call is not a conflict.
	for _, id := range ids {
		n.remove(id)
	}
	var problems []string
	// The LiveKit agent names in use, built once for the whole call (not
	// once per part: a bulk load of many orgs would be quadratic) and kept
	// up to date as parts are added.
	var names map[string][]*Agent
	for _, id := range ids {
		part := parts[id]
		if part == nil {
			continue
		}
		if len(part.order) != 1 || part.order[0] != id {
			problems = append(problems, fmt.Sprintf("org %q: the part holds orgs %q", id, part.order))
			continue
		}
		if names == nil {
			names = make(map[string][]*Agent)
			for _, other := range n.orgs {
				addAgentNames(names, other)
			}
		}
		if p := n.conflicts(part, names); len(p) > 0 {
			for _, s := range p {
				problems = append(problems, fmt.Sprintf("org %q: %s", id, s))
			}
			continue
		}
		n.add(part)
		addAgentNames(names, part.orgs[id])
	}
	if len(problems) > 0 {
		return n, &ValidationError{Problems: problems}
	}
	return n, nil
}

// Compose joins single-org parts (each made by Build from a file of one
// org) into one Tenants, with Replace's rules and result.
func Compose(parts ...*Tenants) (*Tenants, error) {
	m := make(map[string]*Tenants, len(parts))
	var problems []string
	for _, p := range parts {
		if len(p.order) != 1 {
			problems = append(problems, fmt.Sprintf("a part holds orgs %q", p.order))
			continue
		}
		if m[p.order[0]] != nil {
			problems = append(problems, fmt.Sprintf("org %q: given twice", p.order[0]))
			continue
		}
		m[p.order[0]] = p
	}
	t, err := (&Tenants{}).Replace(m)
	if len(problems) > 0 {
		if ve, ok := err.(*ValidationError); ok {
			problems = append(problems, ve.Problems...)
		}
		return t, &ValidationError{Problems: problems}
	}
	return t, err
}

// remove takes the org id and every index entry that points into it out of
// n, whose maps are n's own copies.
func (n *Tenants) remove(id string) {
	o := n.orgs[id]
	if o == nil {
		return
	}
	delete(n.orgs, id)
	if i := slices.Index(n.order, id); i >= 0 {
		n.order = slices.Delete(n.order, i, i+1)
	}
	for i := range o.Keys {
		if k := &o.Keys[i]; n.keys[k.Hash] == k {
			delete(n.keys, k.Hash)
		}
	}
	for i := range o.Agents {
		a := &o.Agents[i]
		if a.Public == nil {
			continue
		}
		for _, h := range publicHashes(a.Public) {
			if n.publishable[h] == a {
				delete(n.publishable, h)
			}
		}
	}
	for i := range o.JWTIssuers {
		iss := o.JWTIssuers[i].Issuer
		refs := slices.DeleteFunc(slices.Clone(n.issuers[iss]), func(r *IssuerRef) bool { return r.Org == o })
		if len(refs) == 0 {
			delete(n.issuers, iss)
		} else {
			n.issuers[iss] = refs
		}
		if p := (issuerPair{canonicalIdentifier(iss), canonicalIdentifier(o.JWTIssuers[i].Audience)}); n.pairs[p] == o {
			delete(n.pairs, p)
		}
	}
}

// addAgentNames files o's agents under their LiveKit agent names.
func addAgentNames(names map[string][]*Agent, o *Org) {
	for j := range o.Agents {
		b := &o.Agents[j]
		names[b.LiveKitName()] = append(names[b.LiveKitName()], b)
	}
}

// conflicts lists the rules spanning orgs that adding part to n would
// break; names holds the LiveKit agent names of n's agents.
func (n *Tenants) conflicts(part *Tenants, names map[string][]*Agent) []string {
	var problems []string
	owner := func(h string) string {
		if k := n.keys[h]; k != nil {
			return k.org.ID
		}
		if a := n.publishable[h]; a != nil {
			return a.org.ID
		}
		return ""
	}
	o := part.orgs[part.order[0]]
	for i := range o.Keys {
		if other := owner(o.Keys[i].Hash); other != "" {
			problems = append(problems, fmt.Sprintf("keys[%d].hash: the same key hash is listed in org %q", i, other))
		}
	}
	for i := range o.Agents {
		a := &o.Agents[i]
		if a.Public == nil {
			continue
		}
		for _, h := range publicHashes(a.Public) {
			if other := owner(h); other != "" {
				problems = append(problems, fmt.Sprintf("agents[%d].public: the same key hash is listed in org %q", i, other))
			}
		}
	}
	// The pair is compared as Build compares it: every spelling of one URL
	// is one issuer.
	for i := range o.JWTIssuers {
		is := &o.JWTIssuers[i]
		if other := n.pairs[issuerPair{canonicalIdentifier(is.Issuer), canonicalIdentifier(is.Audience)}]; other != nil {
			problems = append(problems, fmt.Sprintf("jwt_issuers[%d]: issuer %q with audience %q is already trusted by org %q",
				i, truncate(is.Issuer), truncate(is.Audience), other.ID))
		}
	}
	if o.LiveKit != nil {
		// A LiveKit project belongs to one org: webhooks are matched to
		// their project by its API key, and any key of a server opens
		// every room on it. part was built, so its URL parses.
		server, _ := LiveKitServer(o.LiveKit.URL)
		for _, other := range n.orgs {
			if other.LiveKit == nil {
				continue
			}
			if other.LiveKit.APIKey == o.LiveKit.APIKey {
				problems = append(problems, fmt.Sprintf("livekit.api_key: the same LiveKit API key is the project of org %q", other.ID))
			}
			if s, _ := LiveKitServer(other.LiveKit.URL); s == server {
				problems = append(problems, "livekit.url: "+SameLiveKitServer(server, fmt.Sprintf("org %q", other.ID)))
			}
		}
	}
	if len(o.Agents) > 0 {
		// LiveKit agent names (checkLiveKitAgentNames): one org's, unless
		// every agent that uses the name is shared.
		for i := range o.Agents {
			a := &o.Agents[i]
			for _, b := range names[a.LiveKitName()] {
				if !a.LiveKitAgentShared || !b.LiveKitAgentShared {
					problems = append(problems, fmt.Sprintf("agents[%d].livekit_agent_name: LiveKit agent name %q is used by agents of org %q; "+
						"give each org's agent its own livekit_agent_name, or set livekit_agent_shared: true on every agent that uses it",
						i, a.LiveKitName(), b.org.ID))
					break
				}
			}
		}
	}
	return problems
}

// add puts part's only org and its index entries into n.
func (n *Tenants) add(part *Tenants) {
	id := part.order[0]
	n.orgs[id] = part.orgs[id]
	i := sort.SearchStrings(n.order, id)
	n.order = slices.Insert(n.order, i, id)
	for h, k := range part.keys {
		n.keys[h] = k
	}
	for h, a := range part.publishable {
		n.publishable[h] = a
	}
	for iss, refs := range part.issuers {
		n.issuers[iss] = append(slices.Clone(n.issuers[iss]), refs...)
	}
	for p, o := range part.pairs {
		n.pairs[p] = o
	}
}

// HasKey reports whether h (as apikey.Hash makes it) is the hash of one of
// the public mode's publishable keys (key_hash or keys), comparing each in
// constant time.
func (p *Public) HasKey(h string) bool {
	found := 0
	for _, k := range publicHashes(p) {
		found |= subtle.ConstantTimeCompare([]byte(k), []byte(h))
	}
	return found == 1
}

// CanonicalIdentifier is the form in which JWT issuers and audiences are
// compared for the rule that an (issuer, audience) pair belongs to one org:
// every spelling of one URL gives the same string.
func CanonicalIdentifier(s string) string { return canonicalIdentifier(s) }

// publicHashes lists the publishable key hashes of a public mode.
func publicHashes(p *Public) []string {
	var hs []string
	if p.KeyHash != "" {
		hs = append(hs, p.KeyHash)
	}
	for _, k := range p.Keys {
		hs = append(hs, k.Hash)
	}
	return hs
}
