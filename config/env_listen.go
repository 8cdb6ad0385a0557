package config

import (
	"fmt"
	"net"
	"net/netip"
)

// MinLiveKitSecretLength is the shortest LIVEKIT_API_SECRET accepted: the
// LiveKit tokens are HS256 JWTs signed with it, and one token is enough to
// guess a short secret offline. livekit-server refuses shorter secrets too
// (outside its --dev mode).
const MinLiveKitSecretLength = 32

// Narrowest trusted-proxy prefixes accepted outside private ranges: a
// wider one holds addresses of the public internet, whose clients could
// then name any address in X-Forwarded-For (defeating the per-IP rate
// limits and the keys' allowed_ips). Real proxy and CDN ranges are /12 or
// narrower in IPv4 and /28 or narrower in IPv6.
const (
	minProxyBits4 = 8
	minProxyBits6 = 24
)

// privateRanges6 are the IPv6 ranges that never hold a public client; a
// trusted prefix inside them may be as wide as the range.
var privateRanges6 = []netip.Prefix{
	netip.MustParsePrefix("fc00::/7"),  // unique local
	netip.MustParsePrefix("fe80::/10"), // link local
}

// trustedProxy parses one BROKER_TRUSTED_PROXIES entry: a CIDR or a single
// address, IPv4-mapped IPv6 written as IPv4 (client addresses are compared
// unmapped). It returns the reason an entry is refused, or "".
func trustedProxy(s string) (netip.Prefix, string) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		a, aerr := netip.ParseAddr(s)
		if aerr != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Sprintf("%q is not a CIDR", truncate(s))
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p != p.Masked() {
		return netip.Prefix{}, fmt.Sprintf("%q has host bits set; did you mean %s?", truncate(s), p.Masked())
	}
	if p.Addr().Is4In6() {
		p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
	}
	wide := p.Addr().Is4() && p.Bits() < minProxyBits4 || p.Addr().Is6() && p.Bits() < minProxyBits6
	if wide && !within(p, privateRanges6) {
		return netip.Prefix{}, fmt.Sprintf("%s is too wide to trust: it holds addresses of the public internet, and any client there could then set its own address in X-Forwarded-For (rate limits and allowed_ips would believe it); list your proxies' own ranges (no wider than /%d in IPv4, or /%d in IPv6 outside fc00::/7 and fe80::/10)",
			p, minProxyBits4, minProxyBits6)
	}
	return p, ""
}

// within reports whether p lies wholly inside one of ranges.
func within(p netip.Prefix, ranges []netip.Prefix) bool {
	for _, r := range ranges {
		if r.Bits() <= p.Bits() && r.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// metrics reads BROKER_METRICS_ADDR: when set, /metrics is served on that
// listener only (contract §3).
func (r *envReader) metrics(e *Env) {
	e.MetricsAddr = r.str("BROKER_METRICS_ADDR", "")
	if e.MetricsAddr == "" {
		return
	}
	if !r.hostPort("BROKER_METRICS_ADDR", e.MetricsAddr, true) {
		return
	}
	if sameListener(e.MetricsAddr, e.Addr) {
		r.bad("BROKER_METRICS_ADDR", fmt.Sprintf("%q is BROKER_ADDR's address; give /metrics a listener of its own", truncate(e.MetricsAddr)))
	}
}

// sameListener reports whether two host:port addresses (already checked)
// would bind the same port on an overlapping interface. Port 0 picks a
// free port, so it never clashes.
func sameListener(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb || pa == "0" {
		return false
	}
	allInterfaces := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || allInterfaces(ha) || allInterfaces(hb)
}
