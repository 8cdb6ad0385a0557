package postgres

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/internal/registry"
)

// FuzzParsePayload: any payload parses without panic; a payload made by
// payload() reads back as written.
func FuzzParsePayload(f *testing.F) {
	f.Add("12 acme globex")
	f.Add("12 *")
	f.Add("")
	f.Add("x y")
	f.Add("9223372036854775807 " + strings.Repeat("a", 70))
	f.Fuzz(func(t *testing.T, p string) {
		v, orgs, all := parsePayload(p)
		if all || len(orgs) == 0 {
			return
		}
		back := payload(v, orgs)
		if len(back) >= 8000 {
			t.Fatalf("a payload of %d bytes: PostgreSQL refuses 8000 or more", len(back))
		}
		v2, orgs2, all2 := parsePayload(back)
		if all2 && v2 == v && (len(orgs) > maxNamed || len(strconv.FormatInt(v, 10)+" "+strings.Join(orgs, " ")) > maxPayload) {
			return // too many to name: a full refresh
		}
		if all2 || v2 != v || strings.Join(orgs2, " ") != strings.Join(orgs, " ") {
			t.Fatalf("%q -> %q", p, back)
		}
	})
}

func TestPayload(t *testing.T) {
	if v, orgs, all := parsePayload(payload(7, []string{"a", "b"})); v != 7 || all || strings.Join(orgs, ",") != "a,b" {
		t.Fatal(v, orgs, all)
	}
	many := make([]string, maxNamed+1)
	for i := range many {
		many[i] = "org"
	}
	if _, _, all := parsePayload(payload(7, many)); !all {
		t.Fatal("a payload naming too many orgs must ask for a full refresh")
	}
	// 63-character ids: fewer than maxNamed, but too many bytes to name.
	long := make([]string, 150)
	for i := range long {
		long[i] = strings.Repeat("x", 63)
	}
	if p := payload(7, long); len(p) > maxPayload {
		t.Fatalf("a payload of %d bytes", len(p))
	} else if _, _, all := parsePayload(p); !all {
		t.Fatal("a payload too long to name its orgs must ask for a full refresh")
	}
	for _, p := range []string{"", "nope acme", "5 " + strings.Repeat("x", 64)} {
		if _, _, all := parsePayload(p); !all {
			t.Fatalf("%q must ask for a full refresh", p)
		}
	}
}

// TestUsageColumnsOrdered: a batch of uses goes out ordered by org and key
// id, whatever the map's order, with each use beside its own key.
func TestUsageColumnsOrdered(t *testing.T) {
	base := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	used := map[registry.KeyRef]time.Time{}
	for i, k := range []registry.KeyRef{{Org: "globex", ID: "b"}, {Org: "acme", ID: "z"}, {Org: "globex", ID: "a"}, {Org: "acme", ID: "a"}, {Org: "ab", ID: "q"}} {
		used[k] = base.Add(time.Duration(i) * time.Second)
	}
	for range 20 { // map order changes from one range to the next
		orgs, ids, ats := usageColumns(used)
		got := make([]string, len(orgs))
		for i := range orgs {
			got[i] = orgs[i] + "/" + ids[i]
			if !ats[i].Equal(used[registry.KeyRef{Org: orgs[i], ID: ids[i]}]) {
				t.Fatalf("%s has the time %v, not its own", got[i], ats[i])
			}
		}
		if want := "ab/q acme/a acme/z globex/a globex/b"; strings.Join(got, " ") != want {
			t.Fatalf("order %v, want %s", got, want)
		}
	}
}
