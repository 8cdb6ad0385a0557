package registry

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/apikey"
)

// Org is an org as the admin API shows it.
type Org struct {
	ID             string    `json:"id"`
	Tier           string    `json:"tier"`
	RatePerMinute  int       `json:"rate_per_minute"`
	AllowDemoRooms bool      `json:"allow_demo_rooms"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// OrgSpec is a new org.
type OrgSpec struct {
	ID             string
	Tier           string
	RatePerMinute  int
	AllowDemoRooms bool
}

// OrgPatch changes the fields that are set.
type OrgPatch struct {
	Tier           *string
	RatePerMinute  *int
	AllowDemoRooms *bool
}

// Key is a secret key as the admin API lists it: never its secret or hash.
type Key struct {
	ID         string     `json:"id"`
	Scopes     []string   `json:"scopes"`
	AllowedIPs []string   `json:"allowed_ips"`
	ExpiresAt  *time.Time `json:"expires_at"`
	CreatedAt  time.Time  `json:"created_at"`
	// LastUsedAt is updated at most once a minute.
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

// KeySpec is a new secret key.
type KeySpec struct {
	ID         string
	Scopes     []string
	AllowedIPs []string
	ExpiresAt  *time.Time
	// Env is live (the default) or test.
	Env apikey.Env
}

// Agent is an agent as the tenants file has it (Spec, whose public mode
// never carries key hashes here) with its publishable keys.
type Agent struct {
	Spec            config.Agent
	PublishableKeys []PublishableKey
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// PublishableKey is one of an agent's publishable keys: never its key or
// hash.
type PublishableKey struct {
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"created_at"`
}

// LiveKitSpec is an org's own LiveKit project. APISecret is written, never
// read back.
type LiveKitSpec struct {
	URL       string
	APIKey    string
	APISecret string
}

// LiveKit is an org's LiveKit project as the admin API shows it.
type LiveKit struct {
	URL       string    `json:"url"`
	APIKey    string    `json:"api_key"`
	SecretSet bool      `json:"secret_set"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Page asks for one page of a list.
type Page struct {
	// Limit is 1 to MaxPage; 0 means DefaultPage.
	Limit int
	// Cursor is the next value a previous page returned; "" for the first.
	Cursor string
}

// Page sizes.
const (
	DefaultPage = 100
	MaxPage     = 1000
)

// limit returns p's limit checked and defaulted.
func (p Page) limit() (int, error) {
	switch {
	case p.Limit == 0:
		return DefaultPage, nil
	case p.Limit < 0 || p.Limit > MaxPage:
		return 0, &ValidationError{Problems: []string{fmt.Sprintf("limit: 1 to %d", MaxPage)}}
	}
	return p.Limit, nil
}

// OrgPage checks p as a page of orgs: the limit, and a cursor that is an
// org id.
func (p Page) OrgPage() (limit int, after string, err error) {
	limit, err = p.limit()
	if err != nil {
		return 0, "", err
	}
	if p.Cursor != "" && !config.ValidID(p.Cursor) {
		return 0, "", &ValidationError{Problems: []string{"cursor: not a cursor this API returned"}}
	}
	return limit, p.Cursor, nil
}

// AuditQuery selects audit events.
type AuditQuery struct {
	// Org, when set, selects that org's events.
	Org string
	Page
}

// AuditPage checks q: the limit, and a cursor that is an event id; before
// is 0 for the first page.
func (q AuditQuery) AuditPage() (limit int, before int64, err error) {
	limit, err = q.limit()
	if err != nil {
		return 0, 0, err
	}
	if q.Cursor != "" {
		n, err := strconv.ParseInt(q.Cursor, 10, 64)
		if err != nil || n <= 0 {
			return 0, 0, &ValidationError{Problems: []string{"cursor: not a cursor this API returned"}}
		}
		before = n
	}
	return limit, before, nil
}

// Action is what an audit event records; a closed set.
type Action string

// The actions.
const (
	ActionOrgCreate     Action = "org.create"
	ActionOrgUpdate     Action = "org.update"
	ActionOrgDelete     Action = "org.delete"
	ActionAgentCreate   Action = "agent.create"
	ActionAgentReplace  Action = "agent.replace"
	ActionAgentDelete   Action = "agent.delete"
	ActionPubKeyCreate  Action = "publishable_key.create"
	ActionPubKeyDelete  Action = "publishable_key.delete"
	ActionKeyCreate     Action = "key.create"
	ActionKeyRevoke     Action = "key.revoke"
	ActionIssuersPut    Action = "jwt_issuers.replace"
	ActionLiveKitPut    Action = "livekit.put"
	ActionLiveKitDelete Action = "livekit.delete"
	ActionImport        Action = "tenants.import"
)

// AuditEvent is one change: who, what, when, with which request.
type AuditEvent struct {
	ID        int64     `json:"id"`
	At        time.Time `json:"at"`
	Actor     string    `json:"actor"`
	RequestID string    `json:"request_id,omitempty"`
	Org       string    `json:"org,omitempty"`
	Action    Action    `json:"action"`
	// Target is the changed object within the org, such as "keys/prod-v2".
	Target string `json:"target,omitempty"`
	// Detail says what changed: ids, scopes, tiers; never a key, hash or
	// secret.
	Detail map[string]any `json:"detail,omitempty"`
}

// ImportReport says what an import changed, an org at a time.
type ImportReport struct {
	Created   []string // orgs that did not exist
	Changed   []string // orgs that differed from the file
	Unchanged []string // orgs already as the file says
	// Untouched are the orgs of the registry the file does not name.
	Untouched []string
}

func (r *ImportReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d created, %d changed, %d unchanged", len(r.Created), len(r.Changed), len(r.Unchanged))
	if len(r.Untouched) > 0 {
		fmt.Fprintf(&b, "; %d other orgs left as they are", len(r.Untouched))
	}
	return b.String()
}

// ValidationError lists what is wrong with a write, each problem naming the
// field as the tenants file does ("scopes[1]: unknown scope ...", relative
// to the object written).
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string {
	return "invalid: " + strings.Join(e.Problems, "; ")
}

// Secret is a secret held in memory (a per-org LiveKit API secret). It
// prints, logs and marshals as "[redacted]"; use Reveal to sign with it.
type Secret string

// Reveal returns the secret itself.
func (s Secret) Reveal() string { return string(s) }

func (s Secret) String() string               { return "[redacted]" }
func (s Secret) GoString() string             { return "[redacted]" }
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"[redacted]"`), nil }
func (s Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }
