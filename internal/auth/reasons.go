package auth

import (
	"strconv"
	"strings"

	"github.com/voicebroker/voicebroker/config"
)

// Reason is why an authentication failed, for the audit log (auth.failure)
// and the auth_failures metric: a fixed word, never credential material.
type Reason string

// The reasons this package gives.
const (
	ReasonUnknownCredential         Reason = "unknown_credential"
	ReasonMalformedKey              Reason = "malformed_key"
	ReasonAdminKeyNotAccepted       Reason = "admin_key_not_accepted"
	ReasonPublishableKeyNotAccepted Reason = "publishable_key_not_accepted"
	ReasonTestKeyInProduction       Reason = "test_key_in_production"
	ReasonUnknownKey                Reason = "unknown_key"
	ReasonRevoked                   Reason = "revoked"
	ReasonExpired                   Reason = "expired"
	ReasonIPNotAllowed              Reason = "ip_not_allowed"
	ReasonSeveralOrgs               Reason = "auth_not_required_but_several_orgs"
	ReasonBackendJWTInvalid         Reason = "backend_jwt_invalid"
	ReasonBackendJWTExpired         Reason = "backend_jwt_expired"
	ReasonBackendJWTLifetime        Reason = "backend_jwt_lifetime"
	ReasonBackendJWTAmbiguous       Reason = "backend_jwt_ambiguous"
	ReasonBackendJWTMalformed       Reason = "backend_jwt_malformed"
	ReasonIssuerJWKSUnreachable     Reason = "issuer_jwks_unreachable"
	ReasonSignFailed                Reason = "sign_failed"
	ReasonBadAuthServiceURL         Reason = "bad_auth_service_url"
	ReasonAuthServiceUnreachable    Reason = "auth_service_unreachable"
	ReasonAuthServiceReadFailed     Reason = "auth_service_read_failed"
	ReasonAuthServiceNamedNoOrg     Reason = "auth_service_named_no_org"
	ReasonAuthServiceAnswerTooLarge Reason = "auth_service_answer_too_large"
	ReasonAuthServiceBadAnswer      Reason = "auth_service_bad_answer"
	// ReasonAPISecretOrgGone: an API secret (AUTH_API_SECRETS_JSON) whose
	// org is not in the tenants in force, as when the org was deleted
	// through the admin API: the secret fails closed like a revoked key.
	ReasonAPISecretOrgGone Reason = "api_secret_org_gone"
)

// reasonAuthServicePrefix starts the reason of an auth service's answer.
const reasonAuthServicePrefix = "auth_service_"

// AuthServiceStatus is the reason of an auth service that answered status
// (other than 200): "auth_service_403".
func AuthServiceStatus(status int) Reason {
	return Reason(reasonAuthServicePrefix + strconv.Itoa(status))
}

// MissingScope is the reason of a credential without scope:
// "missing_scope:tokens:create".
func MissingScope(scope config.Scope) Reason {
	return Reason("missing_scope:" + string(scope))
}

// Label is the reason as the auth_failures metric's label: the reason
// itself (a fixed word, or one of the scopes), except that an auth
// service's status ("auth_service_418", any three digits the service
// chooses) becomes its class ("auth_service_4xx"), so the label's values
// stay a closed set.
func (r Reason) Label() string {
	s := string(r)
	if st, ok := strings.CutPrefix(s, reasonAuthServicePrefix); ok && len(st) == 3 && st[0] >= '1' && st[0] <= '9' {
		if _, err := strconv.Atoi(st); err == nil {
			return reasonAuthServicePrefix + st[:1] + "xx"
		}
	}
	return s
}
