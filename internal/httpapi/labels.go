package httpapi

import "github.com/voicebroker/voicebroker/internal/auth"

// The closed sets of words the audit log and the metrics' labels use
// besides the error codes: each is a type, so that a handler cannot log
// or count a word that is not one of them.

// refusal is why a ticket was refused: the token.refused line's reason
// and the tokens_refused metric's label.
type refusal string

const (
	refusedInvalid      refusal = "token_invalid"
	refusedExpired      refusal = "token_expired"
	refusedUsed         refusal = "token_used" // counted; the token.replay line says it
	refusedWrongOrg     refusal = "wrong_org"
	refusedAgentRemoved refusal = "agent_removed"
	refusedOrigin       refusal = "origin_mismatch"
	refusedDPoPRequired refusal = "dpop_required"
	refusedDPoPInvalid  refusal = "dpop_invalid"
	refusedDPoPReplay   refusal = "dpop_replay"
)

// Why a publishable key or a webhook was refused: auth.failure reasons
// (and auth_failures labels) of the public mode and the webhook, which
// this package checks itself.
const (
	reasonSecretKeyNotAccepted       auth.Reason = "secret_key_not_accepted"
	reasonOriginNotAllowed           auth.Reason = "origin_not_allowed"
	reasonPublishableKeyOfOtherAgent auth.Reason = "publishable_key_of_another_agent"
	reasonWebhookSignature           auth.Reason = "webhook_signature"
	reasonWebhookReplay              auth.Reason = "webhook_replay"
)

// limitScope is the budget a rate limit counts against: the rate_limited
// line's scope and the rate_limited metric's label.
type limitScope string

const (
	limitOrg    limitScope = "org"    // the org's budget
	limitPublic limitScope = "public" // an agent's public budget (publishable keys)
	limitIP     limitScope = "ip"     // a client address's (/connect, /public/token)
)

// mintMode is how a ticket was asked for: the token.mint line's mode and
// the tokens_minted metric's label.
type mintMode string

const (
	mintBackend mintMode = "backend" // POST /token
	mintPublic  mintMode = "public"  // POST /public/token
)

// redeemVia is where a ticket was redeemed: the token.redeem line's via
// and the tokens_redeemed metric's label.
type redeemVia string

const (
	viaRedeem  redeemVia = "redeem"  // POST /token/redeem
	viaConnect redeemVia = "connect" // POST /connect
)
