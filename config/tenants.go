// Package config reads the broker's environment and its tenants file, checks
// them, and keeps the current tenants for the server, re-reading the file on
// SIGHUP or when it changes.
package config

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/idna"
	"gopkg.in/yaml.v3"

	"github.com/voicebroker/voicebroker/internal/apikey"
	"github.com/voicebroker/voicebroker/internal/keyfile"
	"github.com/voicebroker/voicebroker/pkg/origins"
)

// MaxFileSize bounds the tenants file.
const MaxFileSize = 4 << 20

// Scope is what a secret key or a backend JWT issuer lets its holder do.
type Scope string

// Scopes a key or issuer may carry.
const (
	ScopeTokensCreate Scope = "tokens:create"
	ScopeTokensRedeem Scope = "tokens:redeem"
	ScopeLiveKitToken Scope = "livekit:token"
	ScopeRoomsRead    Scope = "rooms:read"
	ScopeRoomsWrite   Scope = "rooms:write"
	// ScopeKeysWrite lets a secret key manage its own org's secret keys
	// through the admin API (/admin/orgs/{its org}/keys) and nothing else
	// there. Secret keys only: a jwt_issuers entry may not carry it.
	ScopeKeysWrite Scope = "keys:write"
)

// AllScopes lists every scope, in the contract's order.
var AllScopes = []Scope{ScopeTokensCreate, ScopeTokensRedeem, ScopeLiveKitToken, ScopeRoomsRead, ScopeRoomsWrite, ScopeKeysWrite}

// ScopeList is AllScopes joined by sep, for messages and help texts.
func ScopeList(sep string) string {
	names := make([]string, len(AllScopes))
	for i, s := range AllScopes {
		names[i] = string(s)
	}
	return strings.Join(names, sep)
}

// Channel is how a user talks with an agent.
type Channel string

// Channels an agent may offer.
const (
	ChannelWebRTC Channel = "webrtc"
	ChannelChat   Channel = "chat"
)

// Tiers and their per-minute request rates.
const (
	TierFree       = "free"
	TierPro        = "pro"
	TierEnterprise = "enterprise"
)

// File is the tenants file as written (contract §2).
type File struct {
	Orgs []Org `yaml:"orgs"`
}

// Org is one tenant.
type Org struct {
	ID             string      `yaml:"id"`
	Tier           string      `yaml:"tier"`
	RatePerMinute  int         `yaml:"rate_per_minute"`
	AllowDemoRooms bool        `yaml:"allow_demo_rooms"`
	Keys           []Key       `yaml:"keys"`
	JWTIssuers     []JWTIssuer `yaml:"jwt_issuers"`
	Agents         []Agent     `yaml:"agents"`
	// LiveKit is the org's own LiveKit project; nil means the default one
	// (LIVEKIT_*). See OrgLiveKit.
	LiveKit *OrgLiveKit `yaml:"livekit"`

	agents map[string]*Agent
}

// Key is a secret API key, held as its hash.
type Key struct {
	ID         string     `yaml:"id"`
	Hash       string     `yaml:"hash"`
	Scopes     []Scope    `yaml:"scopes"`
	AllowedIPs []string   `yaml:"allowed_ips"`
	ExpiresAt  *time.Time `yaml:"expires_at"`
	Revoked    bool       `yaml:"revoked"`

	org      *Org
	prefixes []netip.Prefix
}

// JWTIssuer is a backend that signs its own JWTs for the org.
type JWTIssuer struct {
	Issuer        string  `yaml:"issuer"`
	Audience      string  `yaml:"audience"`
	JWKSURL       string  `yaml:"jwks_url"`
	PublicKeyFile string  `yaml:"public_key_file"`
	Scopes        []Scope `yaml:"scopes"`

	key crypto.PublicKey // read from PublicKeyFile when the file is loaded
}

// PublicKey returns the key read from public_key_file, or nil for an
// issuer that publishes a JWKS.
func (i *JWTIssuer) PublicKey() crypto.PublicKey { return i.key }

// readIssuerKey reads an RSA, ECDSA P-256 or Ed25519 public key in PEM.
func readIssuerKey(path string) (crypto.PublicKey, error) {
	k, err := keyfile.Read(path)
	if err != nil {
		return nil, err
	}
	if k.Private != nil {
		return nil, errors.New("holds a private key; give the issuer's public key (PEM PUBLIC KEY) and keep the private key with the issuer")
	}
	return k.Public, nil
}

// Agent is a voice agent of an org.
type Agent struct {
	ID       string    `yaml:"id"`
	Channels []Channel `yaml:"channels"`
	Server   string    `yaml:"server"`
	Public   *Public   `yaml:"public"`
	// LiveKitAgentName and LiveKitAgentShared: see LiveKitName and
	// checkLiveKitAgentNames (livekit_agents.go).
	LiveKitAgentName   string `yaml:"livekit_agent_name"`
	LiveKitAgentShared bool   `yaml:"livekit_agent_shared"`
	// RequireDPoP makes every ticket for the agent sender-constrained: a
	// mint without dpop_jkt is refused, and /connect wants a DPoP proof
	// even from a ticket minted before it was set.
	RequireDPoP bool `yaml:"require_dpop"`

	org     *Org
	matcher *origins.Matcher
}

// Public enables the agent's public (publishable-key) mode.
type Public struct {
	// KeyHash is the hash of the agent's one publishable key.
	KeyHash string `yaml:"key_hash,omitempty"`
	// Keys lists several publishable keys by id, any of which opens the
	// agent: the form the tenant registry keeps (rotation) and `broker
	// tenants export` writes. An explicitly empty list is public mode whose
	// keys have all been revoked: no key opens it.
	Keys           []PublishableKey `yaml:"keys"`
	AllowedOrigins []string         `yaml:"allowed_origins"`
	// RatePerMinute is the agent's public budget: /public/token requests a
	// minute with its publishable key, counted apart from the org's own
	// budget. 0 (absent) means the org tier's rate.
	RatePerMinute int `yaml:"rate_per_minute"`
}

// PublishableKey is one of an agent's publishable keys, held as its hash.
type PublishableKey struct {
	ID   string `yaml:"id"`
	Hash string `yaml:"hash"`
}

// Org returns the agent's org.
func (a *Agent) Org() *Org { return a.org }

// HasChannel reports whether the agent offers channel.
func (a *Agent) HasChannel(channel Channel) bool { return slices.Contains(a.Channels, channel) }

// Origins returns the matcher of the agent's allowed origins; nil (which
// matches nothing) for an agent without public mode.
func (a *Agent) Origins() *origins.Matcher { return a.matcher }

// Org returns the key's org.
func (k *Key) Org() *Org { return k.org }

// HasScope reports whether the key carries scope.
func (k *Key) HasScope(scope Scope) bool { return slices.Contains(k.Scopes, scope) }

// AllowsIP reports whether ip may use the key: always when no allowed_ips
// are set.
func (k *Key) AllowsIP(ip netip.Addr) bool {
	if len(k.prefixes) == 0 {
		return true
	}
	ip = ip.Unmap()
	for _, p := range k.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// AllowsPrefix reports whether every address of p may use the key: always
// when no allowed_ips are set, otherwise when p lies wholly within one of
// them (the same family, no wider, and its address inside). It is how a
// key that makes another key is kept from giving it addresses it does not
// have itself. p is taken as ParseAllowedIP returns it: IPv4-mapped IPv6
// is unmapped here too, so that it meets the IPv4 prefixes it stands for.
func (k *Key) AllowsPrefix(p netip.Prefix) bool {
	if len(k.prefixes) == 0 {
		return true
	}
	p = netip.PrefixFrom(p.Addr().Unmap(), unmapBits(p))
	for _, q := range k.prefixes {
		if q.Bits() <= p.Bits() && q.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// Agent returns the org's agent with that id, or nil.
func (o *Org) Agent(id string) *Agent { return o.agents[id] }

// RateLimit returns the org's requests per minute by tier.
func (o *Org) RateLimit() int {
	switch o.Tier {
	case TierFree:
		return 60
	case TierPro:
		return 300
	}
	return o.RatePerMinute
}

// Tenants is a checked tenants file with its lookup indexes. It is
// immutable once built and safe for concurrent use.
type Tenants struct {
	orgs        map[string]*Org
	keys        map[string]*Key   // by hash
	publishable map[string]*Agent // by key hash
	issuers     map[string][]*IssuerRef
	// pairs: the canonical (issuer, audience) pairs and the org each
	// belongs to, for the rule spanning orgs (Replace looks a changed
	// org's pairs up here rather than canonicalising every issuer again).
	pairs map[issuerPair]*Org
	order []string

	// origins indexes every public agent's allowed origins for
	// AllowsOrigin, built at its first use (a snapshot that never sees a
	// preflight never pays for it).
	originsOnce sync.Once
	origins     *origins.Index
}

// IssuerRef ties a JWT issuer to its org.
type IssuerRef struct {
	*JWTIssuer
	Org *Org
}

// Org returns the org with that id, or nil.
func (t *Tenants) Org(id string) *Org { return t.orgs[id] }

// Orgs returns the org ids in file order.
func (t *Tenants) Orgs() []string { return t.order }

// KeyByHash returns the secret key whose hash is h (as apikey.Hash makes it), or nil.
func (t *Tenants) KeyByHash(h string) *Key { return t.keys[h] }

// KeyByHashBytes is KeyByHash of h as bytes; it allocates nothing.
func (t *Tenants) KeyByHashBytes(h []byte) *Key { return t.keys[string(h)] }

// PublishableByHash returns the agent whose publishable key hashes to h, or nil.
func (t *Tenants) PublishableByHash(h string) *Agent { return t.publishable[h] }

// PublishableByHashBytes is PublishableByHash of h as bytes; it allocates
// nothing.
func (t *Tenants) PublishableByHashBytes(h []byte) *Agent { return t.publishable[string(h)] }

// AllowsOrigin reports whether any agent's public mode allows o. It
// answers from an index of every agent's patterns (origins.Index), so a
// preflight costs the same with one agent or fifty thousand; the index is
// built once per snapshot, at the first call.
func (t *Tenants) AllowsOrigin(o origins.Origin) bool {
	t.originsOnce.Do(func() {
		x := origins.NewIndex()
		for _, a := range t.publishable {
			x.Add(a.matcher)
		}
		t.origins = x
	})
	return t.origins.MatchOrigin(o)
}

// Issuers returns the JWT issuers registered under the iss value.
func (t *Tenants) Issuers(iss string) []*IssuerRef { return t.issuers[iss] }

// ValidationError lists every problem found in a tenants file, each naming
// the field.
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string {
	return "invalid tenants file:\n  " + strings.Join(e.Problems, "\n  ")
}

// Parse reads, checks and indexes a tenants file. Unknown fields, duplicate
// ids and hashes, bad patterns, CIDRs and scopes are all errors; a
// *ValidationError names each one. Relative file paths in it are read from
// the working directory: a file read from disk goes through ParseIn.
func Parse(data []byte) (*Tenants, error) { return ParseIn(data, "") }

// ParseIn is Parse for a tenants file in directory dir, against which the
// relative paths it names (public_key_file, api_secret_file) are resolved.
//
// One call reports every problem it can find, in the order of the file's
// lines: what the YAML decoder refuses (unknown fields, values of the
// wrong shape, keys set twice), values read too loosely (yes, 1.5, a date
// without a zone), and what validation finds in everything else (bad ids,
// hashes, scopes, duplicates, unreadable key files). Validation of a value
// the decoder refused is left out, since it would repeat that refusal.
// Only a YAML syntax error, or a file of more than one document, stops the
// reading there: nothing after it has a shape to check.
func ParseIn(data []byte, dir string) (*Tenants, error) {
	if len(data) > MaxFileSize {
		return nil, &ValidationError{Problems: []string{fmt.Sprintf("(top level): the file is over the %d-byte limit", MaxFileSize)}}
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(blankUnreadableTimes(data)))
	dec.KnownFields(true)
	var problems []string
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ValidationError{Problems: []string{"orgs: the file is empty"}}
		}
		ve := yamlProblems(data, err)
		var te *yaml.TypeError
		var pe *time.ParseError
		if !errors.As(err, &te) && !errors.As(err, &pe) {
			return nil, ve // a syntax error: there is no document to check
		}
		// The file parsed as YAML: list the values read too loosely
		// along with what the decoder refused.
		problems = mergeProblems(strictValues(data), ve.Problems)
		if te == nil {
			// The decoder gave up part-way (a time it could not read
			// and blankUnreadableTimes could not blank): f is partial.
			inLineOrder(data, problems)
			return nil, &ValidationError{Problems: problems}
		}
		// Otherwise the decoder went on past each refusal, and f holds
		// every value it could read: validate those too.
	} else {
		var extra yaml.Node
		if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
			return nil, &ValidationError{Problems: []string{"(top level): more than one YAML document; keep one"}}
		}
		problems = strictValues(data)
	}
	f.ResolvePaths(dir)
	t, err := Build(&f)
	if err == nil && len(problems) == 0 {
		return t, nil
	}
	var ve *ValidationError
	if errors.As(err, &ve) {
		reported := make(map[string]bool, len(problems))
		for _, p := range problems {
			reported[problemPath(p)] = true
		}
		for _, p := range ve.Problems {
			if !under(problemPath(p), reported) {
				problems = append(problems, p)
			}
		}
	} else if err != nil {
		return nil, err
	}
	inLineOrder(data, problems)
	return nil, &ValidationError{Problems: problems}
}

// mergeProblems returns first, then each of more whose field path none of
// first names: the strict check and the decoder may both refuse one value.
func mergeProblems(first, more []string) []string {
	seen := make(map[string]bool, len(first))
	for _, p := range first {
		at, _, _ := strings.Cut(p, ": ")
		seen[at] = true
	}
	out := first
	for _, p := range more {
		if at, _, _ := strings.Cut(p, ": "); !seen[at] {
			out = append(out, p)
		}
	}
	return out
}

// Build checks and indexes an already-decoded file. It takes ownership of f.
func Build(f *File) (*Tenants, error) {
	b := &builder{
		t: &Tenants{
			orgs:        make(map[string]*Org),
			keys:        make(map[string]*Key),
			publishable: make(map[string]*Agent),
			issuers:     make(map[string][]*IssuerRef),
			pairs:       make(map[issuerPair]*Org),
		},
		keyIDs:         make(map[string]string),
		issuers:        make(map[issuerPair]issuerSeen),
		liveKitKeys:    make(map[string]string),
		liveKitServers: make(map[string]string),
	}
	if len(f.Orgs) == 0 {
		b.add("orgs", "at least one org is required")
	}
	for i := range f.Orgs {
		b.org(fmt.Sprintf("orgs[%d]", i), &f.Orgs[i])
	}
	checkLiveKitAgentNames(&b.validator, f)
	if len(b.problems) > 0 {
		return nil, &ValidationError{Problems: b.problems}
	}
	return b.t, nil
}

// builder checks a decoded file field by field and fills the indexes of
// the Tenants it builds; every problem is kept, each naming its field.
type builder struct {
	validator
	t       *Tenants
	keyIDs  map[string]string         // org/key id -> field path of its first use
	issuers map[issuerPair]issuerSeen // normalised (issuer, audience) -> first org
	// liveKitKeys: LiveKit API key of an org project -> where it was first
	// used (the webhook receiver finds a project by its key).
	liveKitKeys map[string]string
	// liveKitServers: LiveKit server of an org project (LiveKitServer) ->
	// where it was first used (a key of the server opens all its rooms).
	liveKitServers map[string]string
}

func (b *builder) org(at string, o *Org) {
	b.id(at+".id", o.ID)
	if b.t.orgs[o.ID] != nil {
		b.add(at+".id", fmt.Sprintf("duplicate org id %q", o.ID))
	}
	b.t.orgs[o.ID] = o
	b.t.order = append(b.t.order, o.ID)
	b.tier(at, o)
	for j := range o.Keys {
		b.key(fmt.Sprintf("%s.keys[%d]", at, j), o, &o.Keys[j])
	}
	for j := range o.JWTIssuers {
		b.issuer(fmt.Sprintf("%s.jwt_issuers[%d]", at, j), o, &o.JWTIssuers[j])
	}
	o.agents = make(map[string]*Agent)
	for j := range o.Agents {
		b.agent(fmt.Sprintf("%s.agents[%d]", at, j), o, &o.Agents[j])
	}
	b.liveKitProject(at+".livekit", o)
}

func (b *builder) tier(at string, o *Org) {
	switch o.Tier {
	case TierFree, TierPro:
		if o.RatePerMinute != 0 {
			b.add(at+".rate_per_minute", "only allowed with tier enterprise")
		}
	case TierEnterprise:
		if o.RatePerMinute < 1 || o.RatePerMinute > 1_000_000 {
			b.add(at+".rate_per_minute", "required for tier enterprise, 1 to 1000000")
		}
	case "":
		b.add(at+".tier", "required: free, pro or enterprise")
	default:
		b.add(at+".tier", fmt.Sprintf("unknown tier %q: free, pro or enterprise", truncate(o.Tier)))
	}
}

func (b *builder) key(at string, o *Org, k *Key) {
	k.org = o
	b.id(at+".id", k.ID)
	if prev, dup := b.keyIDs[o.ID+"/"+k.ID]; dup {
		b.add(at+".id", fmt.Sprintf("duplicate key id %q (also %s)", k.ID, prev))
	}
	b.keyIDs[o.ID+"/"+k.ID] = at
	if b.keyHash(at+".hash", k.Hash) {
		b.t.keys[k.Hash] = k
	}
	b.scopes(at+".scopes", k.Scopes)
	if k.ExpiresAt != nil && (k.ExpiresAt.UTC().Year() < 1970 || k.ExpiresAt.UTC().Year() > 9999) {
		b.add(at+".expires_at", "must be a time between the years 1970 and 9999")
	}
	if k.AllowedIPs != nil && len(k.AllowedIPs) == 0 {
		// No list allows every address; an empty one reads as "none".
		b.add(at+".allowed_ips", "an empty list would allow every address; remove the field to allow any address, or list the CIDRs")
	}
	for n, cidr := range k.AllowedIPs {
		if p, ok := b.prefix(fmt.Sprintf("%s.allowed_ips[%d]", at, n), cidr); ok {
			k.prefixes = append(k.prefixes, p)
		}
	}
}

// keyHash checks a secret or publishable key hash and reports whether it
// may be indexed: well formed and not listed before.
func (b *builder) keyHash(at, h string) bool {
	switch {
	case !apikey.ValidHash(h):
		b.add(at, `must be "sha256:" and 64 lowercase hex digits`)
	case b.t.keys[h] != nil || b.t.publishable[h] != nil:
		b.add(at, "the same key hash is listed twice")
	default:
		return true
	}
	return false
}

// prefix parses a CIDR or a single address into an unmapped prefix.
func (b *builder) prefix(at, cidr string) (netip.Prefix, bool) {
	p, err := ParseAllowedIP(cidr)
	if err != nil {
		b.add(at, err.Error())
		return netip.Prefix{}, false
	}
	return p, true
}

// ParseAllowedIP parses one allowed_ips entry as the tenants file does: a
// CIDR, or a single address (its zone, if any, dropped), with no host bits
// set. An IPv4-mapped IPv6 prefix comes back as the IPv4 prefix it maps,
// for client addresses are compared unmapped (Key.AllowsIP). The error
// quotes s and says what is wrong with it.
func ParseAllowedIP(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		a, aerr := netip.ParseAddr(s)
		if aerr != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR or IP address", truncate(s))
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p != p.Masked() {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set; did you mean %s?", s, p.Masked())
	}
	return netip.PrefixFrom(p.Addr().Unmap(), unmapBits(p)), nil
}

func (b *builder) issuer(at string, o *Org, is *JWTIssuer) {
	okIss := b.identifier(at+".issuer", is.Issuer)
	okAud := b.identifier(at+".audience", is.Audience)
	switch {
	case (is.JWKSURL == "") == (is.PublicKeyFile == ""):
		b.add(at, "exactly one of jwks_url and public_key_file is required")
	case is.JWKSURL != "":
		if reason := checkJWKSURL(is.JWKSURL); reason != "" {
			b.add(at+".jwks_url", reason)
		}
	default:
		k, err := readIssuerKey(is.PublicKeyFile)
		if err != nil {
			b.add(at+".public_key_file", err.Error())
		}
		is.key = k
	}
	b.scopes(at+".scopes", is.Scopes)
	if n := slices.Index(is.Scopes, ScopeKeysWrite); n >= 0 {
		b.add(fmt.Sprintf("%s.scopes[%d]", at, n), string(ScopeKeysWrite)+" is for secret keys only (the admin API's self-service), not for backend JWTs")
	}
	b.t.issuers[is.Issuer] = append(b.t.issuers[is.Issuer], &IssuerRef{JWTIssuer: is, Org: o})
	if !okIss || !okAud {
		return
	}
	// Tenant isolation: a JWT of this issuer for this audience must name
	// one org only, whatever spelling of the URL each org used.
	pair := issuerPair{canonicalIdentifier(is.Issuer), canonicalIdentifier(is.Audience)}
	if first, seen := b.issuers[pair]; seen && first.org != o.ID {
		b.add(at, fmt.Sprintf("issuer %q with audience %q is already trusted by org %q (%s); an (issuer, audience) pair may belong to one org only",
			truncate(is.Issuer), truncate(is.Audience), first.org, first.at))
	} else if !seen {
		b.issuers[pair] = issuerSeen{org: o.ID, at: at}
		b.t.pairs[pair] = o
	}
}

// checkJWKSURL requires https for a JWKS URL: the keys fetched from it
// decide which JWTs are believed, so a plain-http fetch lets anyone on the
// path mint credentials for the org. Loopback hosts (localhost,
// 127.0.0.0/8, ::1) may use http, for development. It returns the reason a
// URL is refused, or "".
func checkJWKSURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return "must be an https URL with a host"
	}
	if u.User != nil {
		return "must have no user info"
	}
	switch u.Scheme {
	case "https":
		return ""
	case "http":
		if loopbackHost(u.Hostname()) {
			return ""
		}
		return "must be https: the keys fetched from it decide which JWTs are believed (http is accepted only for loopback hosts: localhost, 127.0.0.0/8, ::1)"
	}
	return "must be an https URL with a host"
}

// loopbackHost reports whether host is localhost or a loopback address.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Zone() == "" && ip.Unmap().IsLoopback()
}

type issuerPair struct{ issuer, audience string }

type issuerSeen struct{ org, at string }

// identifier checks an issuer or audience: required, bounded, printable,
// and, when it is a URL, an http(s) URL without user info, query or
// fragment (OpenID Connect's rule for issuers).
func (b *builder) identifier(at, s string) bool {
	switch {
	case s == "" || len(s) > 512:
		b.add(at, "required, at most 512 characters")
		return false
	case strings.TrimSpace(s) != s || strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0:
		b.add(at, "has surrounding spaces or control characters")
		return false
	case strings.Contains(s, "://"):
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.Contains(s, "#") {
			b.add(at, "a URL here must be http(s) with a host and no user info, query or fragment")
			return false
		}
	}
	return true
}

func (b *builder) agent(at string, o *Org, a *Agent) {
	a.org = o
	b.id(at+".id", a.ID)
	if o.agents[a.ID] != nil {
		b.add(at+".id", fmt.Sprintf("duplicate agent id %q", a.ID))
	}
	o.agents[a.ID] = a
	if len(a.Channels) == 0 {
		b.add(at+".channels", "at least one of webrtc, chat")
	}
	seen := map[Channel]bool{}
	for n, c := range a.Channels {
		if c != ChannelWebRTC && c != ChannelChat {
			b.add(fmt.Sprintf("%s.channels[%d]", at, n), fmt.Sprintf("unknown channel %q: webrtc or chat", truncate(string(c))))
		} else if seen[c] {
			b.add(fmt.Sprintf("%s.channels[%d]", at, n), fmt.Sprintf("duplicate channel %q", c))
		}
		seen[c] = true
	}
	if a.Server != "" {
		if u, err := url.Parse(a.Server); err != nil || u.Host == "" || !slices.Contains([]string{"http", "https", "ws", "wss"}, u.Scheme) {
			b.add(at+".server", "must be an http(s) or ws(s) URL")
		}
	}
	if a.Public != nil {
		b.public(at+".public", a)
	}
}

func (b *builder) public(at string, a *Agent) {
	// key_hash, or keys (an explicitly empty list: no key yet, or all
	// revoked), or both.
	if a.Public.KeyHash != "" || a.Public.Keys == nil {
		if b.keyHash(at+".key_hash", a.Public.KeyHash) {
			b.t.publishable[a.Public.KeyHash] = a
		}
	}
	ids := map[string]bool{}
	for n, k := range a.Public.Keys {
		kat := fmt.Sprintf("%s.keys[%d]", at, n)
		b.id(kat+".id", k.ID)
		if ids[k.ID] {
			b.add(kat+".id", fmt.Sprintf("duplicate publishable key id %q", k.ID))
		}
		ids[k.ID] = true
		if b.keyHash(kat+".hash", k.Hash) {
			b.t.publishable[k.Hash] = a
		}
	}
	if a.Public.RatePerMinute < 0 || a.Public.RatePerMinute > 1_000_000 {
		b.add(at+".rate_per_minute", "1 to 1000000, or absent for the org tier's rate")
	}
	if len(a.Public.AllowedOrigins) == 0 {
		b.add(at+".allowed_origins", "at least one origin is required for public mode")
	}
	ok := true
	for n, s := range a.Public.AllowedOrigins {
		if _, err := origins.ParsePattern(s); err != nil {
			b.add(fmt.Sprintf("%s.allowed_origins[%d]", at, n), err.Error())
			ok = false
		}
	}
	if ok {
		a.matcher, _ = origins.NewMatcher(a.Public.AllowedOrigins...)
	}
}

// canonicalIdentifier folds the spellings of one URL together for the
// (issuer, audience) uniqueness check: scheme and host case, a trailing
// dot on the host, Unicode hosts (punycode), default ports, the spelling
// of an IP address, percent-encoding, dot segments and trailing slashes.
// Anything that is not an http(s) URL is compared as written.
func canonicalIdentifier(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || u.Host == "" {
		return s
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return s
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if a, err := idna.Lookup.ToASCII(host); err == nil {
		host = strings.ToLower(a)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		host = ip.Unmap().String()
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	port := strings.TrimLeft(u.Port(), "0")
	if port == "" && u.Port() != "" {
		port = "0"
	}
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if port != "" {
		host += ":" + port
	}
	p := u.Path // percent-decoded
	if p != "" {
		p = strings.TrimRight(path.Clean("/"+p), "/")
	}
	return scheme + "://" + host + p
}

func unmapBits(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return max(p.Bits()-96, 0)
	}
	return p.Bits()
}

type validator struct{ problems []string }

func (v *validator) add(field, reason string) {
	v.problems = append(v.problems, field+": "+reason)
}

func (v *validator) id(field, id string) {
	if !ValidID(id) {
		v.add(field, fmt.Sprintf("%q must match %s", truncate(id), IDGrammar))
	}
}

func (v *validator) scopes(field string, scopes []Scope) {
	if len(scopes) == 0 {
		v.add(field, "at least one scope is required")
	}
	for n, s := range scopes {
		if !slices.Contains(AllScopes, s) {
			v.add(fmt.Sprintf("%s[%d]", field, n), fmt.Sprintf("unknown scope %q: one of %s", truncate(string(s)), ScopeList(", ")))
		}
	}
}

func truncate(s string) string {
	if len(s) > 70 {
		return s[:70] + "…"
	}
	return s
}
