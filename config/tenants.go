// Package config reads the broker's environment and its tenants file, checks
// them, and keeps the current tenants for the server, re-reading the file on
// SIGHUP or when it changes.
package config

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/voicebroker/voicebroker/internal/apikey"
	"github.com/voicebroker/voicebroker/pkg/origins"
)

// MaxFileSize bounds the tenants file.
const MaxFileSize = 4 << 20

// Scopes a key or issuer may carry.
const (
	ScopeTokensCreate = "tokens:create"
	ScopeTokensRedeem = "tokens:redeem"
	ScopeLiveKitToken = "livekit:token"
	ScopeRoomsRead    = "rooms:read"
	ScopeRoomsWrite   = "rooms:write"
)

// AllScopes lists every scope, in the contract's order.
var AllScopes = []string{ScopeTokensCreate, ScopeTokensRedeem, ScopeLiveKitToken, ScopeRoomsRead, ScopeRoomsWrite}

// Channels an agent may offer.
const (
	ChannelWebRTC = "webrtc"
	ChannelChat   = "chat"
)

// Tiers and their per-minute request rates.
const (
	TierFree       = "free"
	TierPro        = "pro"
	TierEnterprise = "enterprise"
)

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

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

	agents map[string]*Agent
}

// Key is a secret API key, held as its hash.
type Key struct {
	ID         string     `yaml:"id"`
	Hash       string     `yaml:"hash"`
	Scopes     []string   `yaml:"scopes"`
	AllowedIPs []string   `yaml:"allowed_ips"`
	ExpiresAt  *time.Time `yaml:"expires_at"`
	Revoked    bool       `yaml:"revoked"`

	org      *Org
	prefixes []netip.Prefix
}

// JWTIssuer is a backend that signs its own JWTs for the org.
type JWTIssuer struct {
	Issuer        string   `yaml:"issuer"`
	Audience      string   `yaml:"audience"`
	JWKSURL       string   `yaml:"jwks_url"`
	PublicKeyFile string   `yaml:"public_key_file"`
	Scopes        []string `yaml:"scopes"`

	key crypto.PublicKey // read from PublicKeyFile when the file is loaded
}

// PublicKey returns the key read from public_key_file, or nil for an
// issuer that publishes a JWKS.
func (i *JWTIssuer) PublicKey() crypto.PublicKey { return i.key }

// readIssuerKey reads an RSA, ECDSA P-256 or Ed25519 public key in PEM.
func readIssuerKey(path string) (crypto.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("not a PEM PUBLIC KEY")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	switch pk := k.(type) {
	case *rsa.PublicKey:
		if pk.N.BitLen() < 2048 {
			return nil, errors.New("RSA key shorter than 2048 bits")
		}
	case *ecdsa.PublicKey:
		if pk.Curve != elliptic.P256() {
			return nil, errors.New("ECDSA key not on P-256")
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("unsupported key type %T", k)
	}
	return k, nil
}

// Agent is a voice agent of an org.
type Agent struct {
	ID       string   `yaml:"id"`
	Channels []string `yaml:"channels"`
	Server   string   `yaml:"server"`
	Public   *Public  `yaml:"public"`
	// LiveKitAgentName and LiveKitAgentShared: see LiveKitName and
	// checkLiveKitAgentNames (livekit_agents.go).
	LiveKitAgentName   string `yaml:"livekit_agent_name"`
	LiveKitAgentShared bool   `yaml:"livekit_agent_shared"`

	org     *Org
	matcher *origins.Matcher
}

// Public enables the agent's public (publishable-key) mode.
type Public struct {
	KeyHash        string   `yaml:"key_hash"`
	AllowedOrigins []string `yaml:"allowed_origins"`
}

// Org returns the agent's org.
func (a *Agent) Org() *Org { return a.org }

// HasChannel reports whether the agent offers channel.
func (a *Agent) HasChannel(channel string) bool { return slices.Contains(a.Channels, channel) }

// Origins returns the matcher of the agent's allowed origins; nil (which
// matches nothing) for an agent without public mode.
func (a *Agent) Origins() *origins.Matcher { return a.matcher }

// Org returns the key's org.
func (k *Key) Org() *Org { return k.org }

// HasScope reports whether the key carries scope.
func (k *Key) HasScope(scope string) bool { return slices.Contains(k.Scopes, scope) }

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
	order       []string
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

// PublishableByHash returns the agent whose publishable key hashes to h, or nil.
func (t *Tenants) PublishableByHash(h string) *Agent { return t.publishable[h] }

// AllowsOrigin reports whether any agent's public mode allows o.
func (t *Tenants) AllowsOrigin(o origins.Origin) bool {
	for _, a := range t.publishable {
		if a.matcher.MatchOrigin(o) {
			return true
		}
	}
	return false
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
// *ValidationError names each one.
func Parse(data []byte) (*Tenants, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("tenants file is %d bytes, over the %d limit", len(data), MaxFileSize)
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ValidationError{Problems: []string{"orgs: the file is empty"}}
		}
		return nil, fmt.Errorf("tenants file: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("tenants file: more than one YAML document")
	}
	return Build(&f)
}

// Build checks and indexes an already-decoded file. It takes ownership of f.
func Build(f *File) (*Tenants, error) {
	v := &validator{}
	t := &Tenants{
		orgs:        make(map[string]*Org),
		keys:        make(map[string]*Key),
		publishable: make(map[string]*Agent),
		issuers:     make(map[string][]*IssuerRef),
	}
	if len(f.Orgs) == 0 {
		v.add("orgs", "at least one org is required")
	}
	keyIDs := make(map[string]string)
	for i := range f.Orgs {
		o := &f.Orgs[i]
		at := fmt.Sprintf("orgs[%d]", i)
		v.id(at+".id", o.ID)
		if t.orgs[o.ID] != nil {
			v.add(at+".id", fmt.Sprintf("duplicate org id %q", o.ID))
		}
		t.orgs[o.ID] = o
		t.order = append(t.order, o.ID)
		switch o.Tier {
		case TierFree, TierPro:
			if o.RatePerMinute != 0 {
				v.add(at+".rate_per_minute", "only allowed with tier enterprise")
			}
		case TierEnterprise:
			if o.RatePerMinute < 1 || o.RatePerMinute > 1_000_000 {
				v.add(at+".rate_per_minute", "required for tier enterprise, 1 to 1000000")
			}
		case "":
			v.add(at+".tier", "required: free, pro or enterprise")
		default:
			v.add(at+".tier", fmt.Sprintf("unknown tier %q: free, pro or enterprise", o.Tier))
		}
		for j := range o.Keys {
			k := &o.Keys[j]
			kat := fmt.Sprintf("%s.keys[%d]", at, j)
			k.org = o
			v.id(kat+".id", k.ID)
			if prev, dup := keyIDs[o.ID+"/"+k.ID]; dup {
				v.add(kat+".id", fmt.Sprintf("duplicate key id %q (also %s)", k.ID, prev))
			}
			keyIDs[o.ID+"/"+k.ID] = kat
			if !apikey.ValidHash(k.Hash) {
				v.add(kat+".hash", `must be "sha256:" and 64 lowercase hex digits`)
			} else if t.keys[k.Hash] != nil || t.publishable[k.Hash] != nil {
				v.add(kat+".hash", "the same key hash is listed twice")
			} else {
				t.keys[k.Hash] = k
			}
			v.scopes(kat+".scopes", k.Scopes)
			for n, cidr := range k.AllowedIPs {
				p, err := netip.ParsePrefix(cidr)
				if err != nil {
					if a, aerr := netip.ParseAddr(cidr); aerr == nil {
						p = netip.PrefixFrom(a, a.BitLen())
					} else {
						v.add(fmt.Sprintf("%s.allowed_ips[%d]", kat, n), fmt.Sprintf("%q is not a CIDR or IP address", cidr))
						continue
					}
				}
				if p != p.Masked() {
					v.add(fmt.Sprintf("%s.allowed_ips[%d]", kat, n), fmt.Sprintf("%q has host bits set; did you mean %s?", cidr, p.Masked()))
					continue
				}
				k.prefixes = append(k.prefixes, netip.PrefixFrom(p.Addr().Unmap(), unmapBits(p)))
			}
		}
		for j := range o.JWTIssuers {
			is := &o.JWTIssuers[j]
			iat := fmt.Sprintf("%s.jwt_issuers[%d]", at, j)
			if is.Issuer == "" || len(is.Issuer) > 512 {
				v.add(iat+".issuer", "required, at most 512 characters")
			}
			if is.Audience == "" || len(is.Audience) > 512 {
				v.add(iat+".audience", "required, at most 512 characters")
			}
			switch {
			case (is.JWKSURL == "") == (is.PublicKeyFile == ""):
				v.add(iat, "exactly one of jwks_url and public_key_file is required")
			case is.JWKSURL != "":
				if u, err := url.Parse(is.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
					v.add(iat+".jwks_url", "must be an http(s) URL")
				}
			default:
				k, err := readIssuerKey(is.PublicKeyFile)
				if err != nil {
					v.add(iat+".public_key_file", err.Error())
				}
				is.key = k
			}
			v.scopes(iat+".scopes", is.Scopes)
			t.issuers[is.Issuer] = append(t.issuers[is.Issuer], &IssuerRef{JWTIssuer: is, Org: o})
		}
		o.agents = make(map[string]*Agent)
		for j := range o.Agents {
			a := &o.Agents[j]
			aat := fmt.Sprintf("%s.agents[%d]", at, j)
			a.org = o
			v.id(aat+".id", a.ID)
			if o.agents[a.ID] != nil {
				v.add(aat+".id", fmt.Sprintf("duplicate agent id %q", a.ID))
			}
			o.agents[a.ID] = a
			if len(a.Channels) == 0 {
				v.add(aat+".channels", "at least one of webrtc, chat")
			}
			seen := map[string]bool{}
			for n, c := range a.Channels {
				if c != ChannelWebRTC && c != ChannelChat {
					v.add(fmt.Sprintf("%s.channels[%d]", aat, n), fmt.Sprintf("unknown channel %q: webrtc or chat", c))
				} else if seen[c] {
					v.add(fmt.Sprintf("%s.channels[%d]", aat, n), fmt.Sprintf("duplicate channel %q", c))
				}
				seen[c] = true
			}
			if a.Server != "" {
				if u, err := url.Parse(a.Server); err != nil || u.Host == "" || !slices.Contains([]string{"http", "https", "ws", "wss"}, u.Scheme) {
					v.add(aat+".server", "must be an http(s) or ws(s) URL")
				}
			}
			if a.Public == nil {
				continue
			}
			pat := aat + ".public"
			if !apikey.ValidHash(a.Public.KeyHash) {
				v.add(pat+".key_hash", `must be "sha256:" and 64 lowercase hex digits`)
			} else if t.keys[a.Public.KeyHash] != nil || t.publishable[a.Public.KeyHash] != nil {
				v.add(pat+".key_hash", "the same key hash is listed twice")
			} else {
				t.publishable[a.Public.KeyHash] = a
			}
			if len(a.Public.AllowedOrigins) == 0 {
				v.add(pat+".allowed_origins", "at least one origin is required for public mode")
			}
			for n, s := range a.Public.AllowedOrigins {
				if _, err := origins.ParsePattern(s); err != nil {
					v.add(fmt.Sprintf("%s.allowed_origins[%d]", pat, n), err.Error())
				}
			}
			if m, err := origins.NewMatcher(a.Public.AllowedOrigins...); err == nil {
				a.matcher = m
			}
		}
	}
	checkLiveKitAgentNames(v, f)
	if len(v.problems) > 0 {
		return nil, &ValidationError{Problems: v.problems}
	}
	return t, nil
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
	if !idPattern.MatchString(id) {
		v.add(field, fmt.Sprintf("%q must match [a-z0-9][a-z0-9-]{0,62}", truncate(id)))
	}
}

func (v *validator) scopes(field string, scopes []string) {
	if len(scopes) == 0 {
		v.add(field, "at least one scope is required")
	}
	for n, s := range scopes {
		if !slices.Contains(AllScopes, s) {
			v.add(fmt.Sprintf("%s[%d]", field, n), fmt.Sprintf("unknown scope %q: one of %s", truncate(s), strings.Join(AllScopes, ", ")))
		}
	}
}

func truncate(s string) string {
	if len(s) > 70 {
		return s[:70] + "…"
	}
	return s
}
