// Package origins matches browser Origin headers against allowed-origin
// patterns, built to refuse the bypasses CORS allowlists keep falling for.
//
// Patterns are parsed once into a Matcher; no regular expression is ever
// built from configuration text. Three forms exist:
//
//	https://demo.mysite.com   exact scheme, host and port
//	https://*.mysite.com      one or more labels below mysite.com, never mysite.com itself
//	http://localhost:*        any port, including the default one
//
// Only http and https are accepted. Hosts compare case-insensitively and
// Unicode hosts as punycode; default ports are normalised, so
// https://a.com:443 is https://a.com.
//
// A wildcard stands for whole labels, and admits a host only if the host's
// registrable domain (its eTLD+1 by the public suffix list) equals the
// base's: https://*.mysite.com admits a.b.mysite.com, while
// https://*.amazonaws.com never admits bucket.s3.amazonaws.com, which
// s3.amazonaws.com, a public suffix, makes another owner's domain. A base
// that is itself a public suffix (https://*.co.uk, https://*.github.io), an
// IP address, or a name a browser reads as one (https://*.0.1) is refused,
// and an IP-literal origin never matches a wildcard.
//
// Hosts that end in a number are IPv4 addresses to a browser (the WHATWG URL
// standard reads 127.1 and 0x7f.0.0.1 as 127.0.0.1 and always sends the
// dotted-decimal form), so anything else ending in a number is refused.
//
// A host is a DNS name of at most 253 characters in punycode, each label at
// most 63 (RFC 1035), or an IP address; a wildcard's domain leaves room for
// one label below it.
//
// An Origin header matches only if it is a bare serialised origin:
// scheme://host[:port] with no path, query, fragment, userinfo, whitespace or
// trailing dot, and not the opaque value "null".
package origins

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// MaxLength bounds a pattern or an Origin value.
const MaxLength = 512

// Bounds of a DNS name, in its ASCII (punycode) form without a trailing
// dot (RFC 1035): a longer name cannot be resolved, so no browser can be
// on such an origin.
const (
	MaxHostLength  = 253
	MaxLabelLength = 63
)

// Errors wrapped by ParsePattern and ParseOrigin; the wrapping text says why.
var (
	ErrPattern = errors.New("origins: invalid pattern")
	ErrOrigin  = errors.New("origins: invalid origin")
)

// Origin is a parsed, canonical serialised origin.
type Origin struct {
	Scheme string // "http" or "https"
	Host   string // lowercase ASCII (punycode), IPv6 without brackets
	Port   int    // always set: 80 or 443 when the header had none
}

// String returns the canonical serialisation: the default port is omitted
// and an IPv6 host is bracketed.
func (o Origin) String() string {
	host := o.Host
	if strings.IndexByte(host, ':') >= 0 {
		host = "[" + host + "]"
	}
	if o.Port == defaultPort(o.Scheme) {
		return o.Scheme + "://" + host
	}
	return o.Scheme + "://" + host + ":" + strconv.Itoa(o.Port)
}

// Pattern is one parsed allowed-origin pattern.
type Pattern struct {
	scheme   string
	host     string // for a wildcard, the domain below which labels may stand
	wildcard bool
	site     string // for a wildcard, the registrable domain (eTLD+1) of host
	port     int    // 0 means any port
}

// String returns the canonical form of the pattern.
func (p Pattern) String() string {
	host := p.host
	if strings.IndexByte(host, ':') >= 0 {
		host = "[" + host + "]"
	}
	if p.wildcard {
		host = "*." + host
	}
	switch p.port {
	case 0:
		return p.scheme + "://" + host + ":*"
	case defaultPort(p.scheme):
		return p.scheme + "://" + host
	}
	return p.scheme + "://" + host + ":" + strconv.Itoa(p.port)
}

// Match reports whether o is allowed by the pattern.
func (p Pattern) Match(o Origin) bool {
	if o.Scheme != p.scheme || (p.port != 0 && o.Port != p.port) {
		return false
	}
	if !p.wildcard {
		return o.Host == p.host
	}
	// One or more whole labels below the domain: "x.mysite.com" but never
	// "mysite.com" or "evilmysite.com".
	if len(o.Host) <= len(p.host)+1 ||
		!strings.HasSuffix(o.Host, p.host) ||
		o.Host[len(o.Host)-len(p.host)-1] != '.' {
		return false
	}
	// Never an IP literal, whatever its spelling.
	if strings.IndexByte(o.Host, ':') >= 0 || endsInNumber(o.Host) {
		return false
	}
	// The same owner: a public suffix between the host and the base (as
	// s3.amazonaws.com between bucket.s3.amazonaws.com and amazonaws.com)
	// makes the host someone else's registrable domain.
	site, err := publicsuffix.EffectiveTLDPlusOne(o.Host)
	return err == nil && site == p.site
}

// ParsePattern parses one allowed-origin pattern.
func ParsePattern(s string) (Pattern, error) {
	fail := func(reason string) (Pattern, error) {
		return Pattern{}, fmt.Errorf("%w %q: %s", ErrPattern, truncate(s), reason)
	}
	if len(s) > MaxLength {
		return fail("too long")
	}
	scheme, rest, err := splitScheme(s)
	if err != nil {
		return fail(err.Error())
	}
	hostport := rest
	if strings.ContainsAny(hostport, "/?#@\\") {
		return fail("must be scheme://host[:port] with no path, query, fragment or userinfo")
	}
	host, portText, err := splitHostPort(hostport)
	if err != nil {
		return fail(err.Error())
	}
	p := Pattern{scheme: scheme}
	switch portText {
	case "*":
		p.port = 0
	case "":
		p.port = defaultPort(scheme)
	default:
		if p.port, err = parsePort(portText); err != nil {
			return fail(err.Error())
		}
	}
	if strings.HasPrefix(host, "*.") {
		p.wildcard = true
		host = host[2:]
	}
	if strings.Contains(host, "*") {
		return fail("a wildcard may only be a whole leftmost label, as in https://*.example.com")
	}
	if p.wildcard && host != "" && (endsInNumber(host) || host[0] == '[') {
		return fail("a wildcard cannot stand before an IP address")
	}
	if p.host, err = canonicalHost(host); err != nil {
		return fail(err.Error())
	}
	if p.wildcard {
		if strings.IndexByte(p.host, ':') >= 0 || endsInNumber(p.host) {
			return fail("a wildcard cannot stand before an IP address")
		}
		if !strings.Contains(p.host, ".") {
			return fail("a wildcard needs a domain of at least two labels")
		}
		if len(p.host) > MaxHostLength-2 {
			return fail(fmt.Sprintf("no host below a domain of %d characters fits in %d", len(p.host), MaxHostLength))
		}
		if suffix, _ := publicsuffix.PublicSuffix(p.host); suffix == p.host {
			return fail("a wildcard cannot cover a public suffix (public suffix list): it would admit other owners' domains")
		}
		if p.site, err = publicsuffix.EffectiveTLDPlusOne(p.host); err != nil {
			return fail("a wildcard cannot cover a public suffix (public suffix list): it would admit other owners' domains")
		}
		// Under a wildcard rule of the list (*.compute.amazonaws.com) every
		// name below the base is a suffix or another owner's domain.
		if probe, err := publicsuffix.EffectiveTLDPlusOne("x0-probe." + p.host); err != nil || probe != p.site {
			return fail("every name below this domain is another owner's (public suffix list); list the exact origins instead")
		}
	}
	return p, nil
}

// ParseOrigin parses the value of an Origin header. It refuses anything that
// is not exactly a serialised tuple origin, including "null".
func ParseOrigin(s string) (Origin, error) {
	fail := func(reason string) (Origin, error) {
		return Origin{}, fmt.Errorf("%w: %s", ErrOrigin, reason)
	}
	if s == "" {
		return fail("empty")
	}
	if s == "null" {
		return fail("opaque origin null")
	}
	if len(s) > MaxLength {
		return fail("too long")
	}
	scheme, rest, err := splitScheme(s)
	if err != nil {
		return fail(err.Error())
	}
	if strings.ContainsAny(rest, "/?#@\\*") {
		return fail("has a path, query, fragment, userinfo or wildcard")
	}
	host, portText, err := splitHostPort(rest)
	if err != nil {
		return fail(err.Error())
	}
	o := Origin{Scheme: scheme, Port: defaultPort(scheme)}
	if portText != "" {
		if o.Port, err = parsePort(portText); err != nil {
			return fail(err.Error())
		}
	}
	if o.Host, err = canonicalHost(host); err != nil {
		return fail(err.Error())
	}
	return o, nil
}

// Matcher holds a list of patterns. The zero Matcher matches nothing. It is
// safe for concurrent use.
type Matcher struct {
	exact    map[Origin]bool
	patterns []Pattern // wildcard hosts and any-port patterns
}

// NewMatcher parses every pattern; the first bad one is the error.
func NewMatcher(patterns ...string) (*Matcher, error) {
	m := &Matcher{exact: make(map[Origin]bool)}
	for _, s := range patterns {
		p, err := ParsePattern(s)
		if err != nil {
			return nil, err
		}
		if !p.wildcard && p.port != 0 {
			m.exact[Origin{Scheme: p.scheme, Host: p.host, Port: p.port}] = true
			continue
		}
		m.patterns = append(m.patterns, p)
	}
	return m, nil
}

// Allow parses origin and reports its canonical form and whether any pattern
// matches it. A value that does not parse is never allowed.
func (m *Matcher) Allow(origin string) (Origin, bool) {
	o, err := ParseOrigin(origin)
	if err != nil || m == nil {
		return Origin{}, false
	}
	return o, m.MatchOrigin(o)
}

// MatchOrigin reports whether a parsed origin is allowed.
func (m *Matcher) MatchOrigin(o Origin) bool {
	if m == nil {
		return false
	}
	if m.exact[o] {
		return true
	}
	for _, p := range m.patterns {
		if p.Match(o) {
			return true
		}
	}
	return false
}

func splitScheme(s string) (scheme, rest string, err error) {
	i := strings.Index(s, "://")
	if i < 0 {
		return "", "", errors.New("missing scheme://")
	}
	switch s[:i] {
	case "http", "https":
		return s[:i], s[i+3:], nil
	case "HTTP", "HTTPS", "Http", "Https":
		// Browsers always send lowercase; a pattern may be written either way.
		return strings.ToLower(s[:i]), s[i+3:], nil
	}
	return "", "", errors.New("scheme must be http or https")
}

// splitHostPort splits host[:port] and [v6][:port]; the port text may be
// empty (absent) or "*".
func splitHostPort(s string) (host, port string, err error) {
	if s == "" {
		return "", "", errors.New("empty host")
	}
	if s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", errors.New("unterminated IPv6 literal")
		}
		host, rest := s[1:end], s[end+1:]
		addr, perr := netip.ParseAddr(host)
		if perr != nil || !addr.Is6() || addr.Zone() != "" {
			return "", "", errors.New("bad IPv6 literal")
		}
		host = "[" + addr.String() + "]"
		if rest == "" {
			return host, "", nil
		}
		if rest[0] != ':' {
			return "", "", errors.New("junk after IPv6 literal")
		}
		return host, rest[1:], nilIfPort(rest[1:])
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		return s[:i], s[i+1:], nilIfPort(s[i+1:])
	}
	return s, "", nil
}

func nilIfPort(p string) error {
	if p == "" {
		return errors.New("empty port")
	}
	return nil
}

func parsePort(s string) (int, error) {
	if len(s) > 5 || s[0] == '0' {
		return 0, errors.New("bad port")
	}
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, errors.New("bad port")
		}
		n = n*10 + int(c-'0')
	}
	if n < 1 || n > 65535 {
		return 0, errors.New("port out of range")
	}
	return n, nil
}

// canonicalHost lowercases a DNS name and converts it to punycode, or
// canonicalises an IP literal; it refuses empty labels, a trailing dot, and
// any character a host cannot hold.
func canonicalHost(h string) (string, error) {
	if h == "" {
		return "", errors.New("empty host")
	}
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		// splitHostPort has checked and canonicalised it.
		return h[1 : len(h)-1], nil
	}
	if addr, err := netip.ParseAddr(h); err == nil {
		if addr.Is6() {
			return "", errors.New("IPv6 literal must be bracketed")
		}
		return addr.String(), nil
	}
	if strings.IndexByte(h, ':') >= 0 {
		return "", errors.New("IPv6 literal must be bracketed")
	}
	if strings.HasSuffix(h, ".") {
		return "", errors.New("trailing dot")
	}
	if !utf8.ValidString(h) {
		return "", errors.New("host is not valid UTF-8")
	}
	for _, r := range h {
		if r <= ' ' || r == 0x7f || strings.ContainsRune("%[]:\"'<>^`{|}~!$&()+,;=", r) {
			return "", errors.New("bad character in host")
		}
	}
	ascii, err := idna.Lookup.ToASCII(h)
	if err != nil {
		return "", fmt.Errorf("bad host: %v", err)
	}
	ascii = strings.ToLower(ascii)
	if ascii == "" || strings.HasSuffix(ascii, ".") {
		return "", errors.New("bad host")
	}
	if len(ascii) > MaxHostLength {
		return "", fmt.Errorf("host longer than %d characters", MaxHostLength)
	}
	for _, label := range strings.Split(ascii, ".") {
		if label == "" || len(label) > MaxLabelLength {
			return "", fmt.Errorf("empty label, or a label longer than %d characters", MaxLabelLength)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return "", errors.New("bad character in host")
			}
		}
	}
	if _, err := netip.ParseAddr(ascii); err == nil {
		// A Unicode digit form that folds to an IP address.
		return "", errors.New("host folds to an IP address")
	}
	if endsInNumber(ascii) {
		// A browser reads it as IPv4 (127.1, 0x7f.0.0.1) and sends only
		// the dotted-decimal form, which netip has parsed above.
		return "", errors.New("host ends in a number but is not a dotted-decimal IPv4 address (write 127.0.0.1, not 127.1)")
	}
	return ascii, nil
}

// endsInNumber is the WHATWG URL standard's test: a host whose last label
// is all digits or 0x and hex digits is parsed by browsers as IPv4.
func endsInNumber(host string) bool {
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	if strings.HasPrefix(last, "0x") || strings.HasPrefix(last, "0X") {
		for i := 2; i < len(last); i++ {
			if !isHex(last[i]) {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(last); i++ {
		if last[i] < '0' || last[i] > '9' {
			return false
		}
	}
	return true
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func defaultPort(scheme string) int {
	if scheme == "https" {
		return 443
	}
	return 80
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
