package config

import (
	"fmt"
	"strings"

	"github.com/voicebroker/voicebroker/internal/apikey"
)

// AdminEnv is the admin API's part of the environment (contract §3, §4.1).
type AdminEnv struct {
	// KeyHashes (BROKER_ADMIN_KEY_HASHES) are the sha256: hashes of the
	// platform admin keys (ak_live_…, from `broker keys new --admin`).
	// Empty: no admin key authenticates, and the admin API serves only
	// org keys with keys:write, for their own org's keys.
	KeyHashes []string
	// Addr (BROKER_ADMIN_ADDR), when set, serves /admin/* on its own
	// listener instead of the main one, which then answers 404 there.
	Addr string
}

// loadAdminEnv reads the admin API's variables, after the other
// listeners' (e); every problem names its variable. No message quotes an
// entry of BROKER_ADMIN_KEY_HASHES: a key pasted there by mistake must not
// reach a log.
func loadAdminEnv(r *envReader, e *Env) AdminEnv {
	const name = "BROKER_ADMIN_KEY_HASHES"
	var a AdminEnv
	entries := strings.Split(r.getenv(name), ",")
	if strings.TrimSpace(r.getenv(name)) == "" {
		entries = nil
	}
	seen := map[string]int{}
	for i, h := range entries {
		h = strings.TrimSpace(h)
		at := fmt.Sprintf("entry %d of %d", i+1, len(entries))
		switch {
		case h == "":
			r.bad(name, at+" is empty (a comma list of sha256:<64 hex> hashes)")
		case strings.HasPrefix(h, "ak_"):
			r.bad(name, at+" is an admin key itself: list only its hash (the sha256: line `broker keys new --admin` prints), and make a new key, since this one has been exposed")
		case !apikey.ValidHash(h):
			r.bad(name, at+` is not "sha256:" and 64 lowercase hex digits (the hash `+"`broker keys new --admin`"+` prints)`)
		case seen[h] != 0:
			r.bad(name, fmt.Sprintf("%s repeats entry %d", at, seen[h]))
		default:
			seen[h] = i + 1
			a.KeyHashes = append(a.KeyHashes, h)
		}
	}
	a.Addr = r.str("BROKER_ADMIN_ADDR", "")
	if a.Addr != "" && r.hostPort("BROKER_ADMIN_ADDR", a.Addr, true) {
		switch {
		case sameListener(a.Addr, e.Addr):
			r.bad("BROKER_ADMIN_ADDR", fmt.Sprintf("%q is BROKER_ADDR's address; give the admin API a listener of its own, or leave it unset to serve it on the main one", truncate(a.Addr)))
		case e.MetricsAddr != "" && sameListener(a.Addr, e.MetricsAddr):
			r.bad("BROKER_ADMIN_ADDR", fmt.Sprintf("%q is BROKER_METRICS_ADDR's address; give the admin API a listener of its own", truncate(a.Addr)))
		}
	}
	return a
}
