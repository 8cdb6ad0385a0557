package httpapi

import (
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/voicebroker/voicebroker/internal/registry"
)

// TestAdminQuery: the admin API's query strings are strict: known
// parameters only, each once, valid escapes and UTF-8, a limit from 1 to
// registry.MaxPage in plain digits, a printable cursor; messages never
// repeat a value.
func TestAdminQuery(t *testing.T) {
	allowed := []string{"org", "limit", "cursor"}
	q, err := parseQuery("limit=25&cursor=acme&org=globex", allowed)
	if err != nil {
		t.Fatal(err)
	}
	aq, err := q.auditQuery()
	if err != nil || aq.Limit != 25 || aq.Cursor != "acme" || aq.Org != "globex" {
		t.Fatalf("%+v %v", aq, err)
	}
	if q, err := parseQuery("", allowed); err != nil {
		t.Fatal(err)
	} else if p, err := q.page(); err != nil || p != (registry.Page{}) {
		t.Fatalf("%+v %v", p, err)
	}
	if q, _ := parseQuery("cursor=", allowed); true {
		if p, err := q.page(); err != nil || p.Cursor != "" {
			t.Fatalf("an empty cursor: %+v %v", p, err)
		}
	}
	secret := "sk_live_" + strings.Repeat("S", 43)
	for _, raw := range []string{
		"limit=0", "limit=1001", "limit=-1", "limit=%2B1", "limit=1e2", "limit=", "limit= 5", "limit=99999999999999999999",
		"cursor=" + strings.Repeat("c", 201), "cursor=a%20b", "cursor=%FF", "org=Acme", "org=" + secret,
		"limit=1&limit=1", "x=1", secret + "=1", "cursor=%zz", "a;b", "org=%00",
	} {
		q, err := parseQuery(raw, allowed)
		if err == nil {
			_, err = q.auditQuery()
		}
		if err == nil {
			t.Errorf("%q accepted", raw)
			continue
		}
		e := classify(err)
		if e.Code != CodeInvalidRequest || strings.Contains(e.Message, secret[8:]) {
			t.Errorf("%q: %v", raw, e)
		}
	}
}

// FuzzAdminQuery: parseQuery and the page readers never panic, and what
// they accept is within bounds: known parameters given once, a limit from
// 0 (absent) to registry.MaxPage, a printable cursor of at most
// MaxCursorLength, an org id.
func FuzzAdminQuery(f *testing.F) {
	for _, s := range []string{"", "limit=10", "limit=10&cursor=acme", "org=acme&cursor=12", "limit=1&limit=2", "cursor=%FF", "x", "=&=", "limit=%30"} {
		f.Add(s)
	}
	allowed := []string{"org", "limit", "cursor"}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseQuery(raw, allowed)
		if err != nil {
			if classify(err).Code != CodeInvalidRequest {
				t.Fatalf("%q: %v", raw, err)
			}
			return
		}
		for name, vs := range q.values {
			if len(vs) != 1 || (name != "org" && name != "limit" && name != "cursor") || !utf8.ValidString(vs[0]) {
				t.Fatalf("%q accepted as %v", raw, url.Values(q.values))
			}
		}
		aq, err := q.auditQuery()
		if err != nil {
			return
		}
		if aq.Limit < 0 || aq.Limit > registry.MaxPage || len(aq.Cursor) > MaxCursorLength || !printable(aq.Cursor) {
			t.Fatalf("%q read as %+v", raw, aq)
		}
		if aq.Org != "" && (len(aq.Org) > 63 || strings.ToLower(aq.Org) != aq.Org) {
			t.Fatalf("%q read as org %q", raw, aq.Org)
		}
	})
}
