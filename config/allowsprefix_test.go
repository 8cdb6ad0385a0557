package config_test

import (
	"net/netip"
	"testing"

	"github.com/voicebroker/voicebroker/config"
)

// TestKeyAllowsPrefix: a prefix is allowed when it lies wholly within one
// of the key's allowed_ips (the same family, no wider, its address inside),
// read as the tenants file reads them; and whatever it allows, AllowsIP
// allows too at both ends of the prefix (agreement with the check every
// request makes).
func TestKeyAllowsPrefix(t *testing.T) {
	o := config.Org{ID: "acme", Tier: config.TierFree, Keys: []config.Key{
		{ID: "bound", Hash: hashA, Scopes: []config.Scope{config.ScopeKeysWrite},
			AllowedIPs: []string{"10.0.0.0/8", "::ffff:192.0.2.0/120", "2001:db8::/32", "fe80::1%eth0"}},
		{ID: "any", Hash: hashB, Scopes: []config.Scope{config.ScopeKeysWrite}},
	}}
	ten, err := config.Build(&config.File{Orgs: []config.Org{o}})
	if err != nil {
		t.Fatal(err)
	}
	bound, anyIP := ten.KeyByHash(hashA), ten.KeyByHash(hashB)
	for _, c := range []struct {
		in   string
		want bool
	}{
		{"10.0.0.0/8", true},
		{"10.1.0.0/16", true},
		{"10.1.2.3", true},
		{"10.0.0.0/7", false},
		{"11.0.0.0/8", false},
		{"0.0.0.0/0", false},
		{"192.0.2.0/24", true}, // the key's mapped prefix, unmapped
		{"192.0.2.128/25", true},
		{"192.0.0.0/16", false},
		{"::ffff:10.2.0.0/112", true}, // mapped within 10.0.0.0/8
		{"::ffff:0:0/96", false},      // every IPv4 address
		{"2001:db8:ff::/48", true},
		{"2001:db8::/31", false},
		{"::/0", false},
		{"::ffff:10.0.0.0/104", true},
		{"fe80::1", true}, // the key's zoned address, zone dropped
		{"fe80::1%eth1", true},
		{"fe80::2", false},
		{"fe80::/64", false},
	} {
		t.Run(c.in, func(t *testing.T) {
			p, err := config.ParseAllowedIP(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := bound.AllowsPrefix(p); got != c.want {
				t.Fatalf("AllowsPrefix(%s) = %v, want %v", p, got, c.want)
			}
			if !anyIP.AllowsPrefix(p) {
				t.Fatalf("a key without allowed_ips refused %s", p)
			}
			if c.want && !(bound.AllowsIP(p.Addr()) && bound.AllowsIP(last(p))) {
				t.Fatalf("AllowsPrefix(%s) but AllowsIP refuses an end of it", p)
			}
		})
	}
	for _, bad := range []string{"10.0.0.1/8", "nope", "10.0.0.0/33"} {
		if _, err := config.ParseAllowedIP(bad); err == nil {
			t.Errorf("ParseAllowedIP(%q) accepted", bad)
		}
	}
	// A zone is everything after %, so a length written after it is part
	// of the zone: the entry is one address, never the wider prefix it
	// may look like.
	if p, err := config.ParseAllowedIP("fe80::%eth0/64"); err != nil || p != netip.MustParsePrefix("fe80::/128") {
		t.Errorf(`ParseAllowedIP("fe80::%%eth0/64") = %v, %v; want fe80::/128`, p, err)
	}
}

// last is the last address of p.
func last(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
