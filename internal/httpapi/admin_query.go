package httpapi

import (
	"fmt"
	"net/url"
	"strconv"
	"unicode/utf8"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/registry"
	"github.com/voicebroker/voicebroker/internal/strictjson"
)

// MaxCursorLength bounds a cursor the admin API takes back.
const MaxCursorLength = 200

// adminQuery is an admin route's query string, checked: only the
// parameters the route takes, each at most once, valid UTF-8.
type adminQuery struct {
	values url.Values
}

// parseQuery parses raw (the URL's query string, still escaped) and
// refuses malformed escapes, parameters the route does not take and
// parameters given twice. Messages name the parameter when it is plain and
// never repeat a value.
func parseQuery(raw string, allowed []string) (adminQuery, error) {
	if raw == "" {
		return adminQuery{}, nil
	}
	values, err := url.ParseQuery(raw)
	if err != nil {
		return adminQuery{}, apiError(CodeInvalidRequest, "the query string is malformed")
	}
	for name, vs := range values {
		known := false
		for _, a := range allowed {
			known = known || a == name
		}
		switch {
		case !known:
			return adminQuery{}, apiError(CodeInvalidRequest, "unknown query parameter "+strictjson.KeyName(name))
		case len(vs) > 1:
			return adminQuery{}, apiError(CodeInvalidRequest, fmt.Sprintf("query parameter %s given more than once", strictjson.KeyName(name)))
		case !utf8.ValidString(vs[0]):
			return adminQuery{}, apiError(CodeInvalidRequest, fmt.Sprintf("query parameter %s is not valid UTF-8", strictjson.KeyName(name)))
		}
	}
	return adminQuery{values: values}, nil
}

// page reads limit (1 to registry.MaxPage; absent: registry.DefaultPage)
// and cursor (a value a previous page returned; the registry checks it).
func (q adminQuery) page() (registry.Page, error) {
	var p registry.Page
	if l, ok := q.values["limit"]; ok {
		n, err := strconv.Atoi(l[0])
		if err != nil || n < 1 || n > registry.MaxPage || l[0][0] < '0' || l[0][0] > '9' {
			return p, apiError(CodeInvalidRequest, fmt.Sprintf("limit: a whole number from 1 to %d", registry.MaxPage))
		}
		p.Limit = n
	}
	if cur, ok := q.values["cursor"]; ok {
		// An empty cursor is the first page, for clients that always send
		// the last next_cursor.
		if len(cur[0]) > MaxCursorLength || !printable(cur[0]) {
			return p, apiError(CodeInvalidRequest, "cursor: not a cursor this API returned")
		}
		p.Cursor = cur[0]
	}
	return p, nil
}

// auditQuery reads /admin/audit's parameters: org (an org id), limit and
// cursor.
func (q adminQuery) auditQuery() (registry.AuditQuery, error) {
	p, err := q.page()
	if err != nil {
		return registry.AuditQuery{}, err
	}
	aq := registry.AuditQuery{Page: p}
	if org, ok := q.values["org"]; ok {
		if !config.ValidID(org[0]) {
			return aq, apiError(CodeInvalidRequest, "org: must be an org id ("+config.IDGrammar+")")
		}
		aq.Org = org[0]
	}
	return aq, nil
}
