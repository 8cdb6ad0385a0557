package httpapi

import (
	"errors"

	"github.com/labstack/echo/v4"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/store"
	"github.com/voicebroker/voicebroker/pkg/token"
)

// Sender-constrained tickets (contract §6, after RFC 9449). A client that
// holds a key pair sends the thumbprint of its public key as dpop_jkt when
// the ticket is minted; the ticket then carries cnf.jkt, and /connect wants
// with it a fresh DPoP proof signed by that key. The steps, in the order
// /connect runs them:
//
//  1. dpopProof, before anything touches the store: exactly one DPoP
//     header, a proof that DPoPVerifier accepts (typ, alg, jwk, signature,
//     htm POST, htu BROKER_PUBLIC_URL + "/connect", iat within 60 s), whose
//     key is the ticket's (constant-time thumbprint comparison) and whose
//     optional ath is the ticket's hash;
//  2. consumeProved, the commit point: the proof's jti is recorded and the
//     ticket's nonce consumed in one atomic store step (one round trip,
//     instead of the bearer ticket's consume, so DPoP costs /connect no
//     extra store call). A replayed jti consumes nothing.
//
// A refused proof leaves the nonce in place: the same ticket still works
// with a correct proof. Nothing of a proof (nor the thumbprint) is logged;
// the log says which check failed.

// DPoPHeader is the request header that carries the proof.
const DPoPHeader = "DPoP"

// dpopAlgs is the algs parameter of the WWW-Authenticate challenge on a
// refused proof (RFC 9449 §7.1): the algorithms a proof may use.
const dpopAlgs = `algs="ES256 EdDSA"`

// dpopJKT checks a mint request's dpop_jkt against the agent: the
// thumbprint for a sender-constrained ticket, "" for a bearer ticket. An
// agent with require_dpop refuses a mint without one.
func dpopJKT(agent *config.Agent, jkt *string) (string, error) {
	if jkt == nil {
		if agent.RequireDPoP {
			return "", apiError(CodeInvalidRequest, `this agent accepts sender-constrained tickets only: field "dpop_jkt" is required`)
		}
		return "", nil
	}
	if !token.ValidJKT(*jkt) {
		return "", apiError(CodeInvalidRequest, `field "dpop_jkt" must be the RFC 7638 SHA-256 thumbprint of the client's public JWK: 43 base64url characters`)
	}
	return *jkt, nil
}

// dpopProof checks the DPoP proof that a bound ticket, or any ticket of an
// agent with require_dpop, must come with; it touches no store. For an
// unbound ticket of any other agent it returns nil and ignores any DPoP
// header. raw is the ticket as presented, for the proof's optional ath.
func (s *Server) dpopProof(c echo.Context, raw string, claims *token.Claims, agent *config.Agent) (*token.DPoPProof, error) {
	if claims.JKT() == "" && !agent.RequireDPoP {
		return nil, nil
	}
	r := c.Request()
	vals := r.Header.Values(DPoPHeader)
	switch {
	case len(vals) == 0:
		return nil, s.dpopRefused(c, claims, refusedDPoPRequired, errors.New("no DPoP header"))
	case len(vals) > 1:
		return nil, s.dpopRefused(c, claims, refusedDPoPInvalid, errors.New("more than one DPoP header"))
	case s.DPoP == nil:
		return nil, wrapError(CodeInternal, errors.New("no DPoP verifier configured"))
	}
	proof, err := s.DPoP.Verify(vals[0], r.Method)
	if err != nil {
		return nil, s.dpopRefused(c, claims, refusedDPoPInvalid, err)
	}
	if !proof.Confirms(claims) {
		if claims.JKT() == "" {
			return nil, s.dpopRefused(c, claims, refusedDPoPInvalid, errors.New("the ticket is not bound to a key and its agent requires one"))
		}
		return nil, s.dpopRefused(c, claims, refusedDPoPInvalid, errors.New("the proof's key is not the one the ticket is bound to"))
	}
	if err := proof.CheckAccessToken(raw); err != nil {
		return nil, s.dpopRefused(c, claims, refusedDPoPInvalid, err)
	}
	return proof, nil
}

// consumeProved consumes the ticket's nonce; with a proof, it records the
// proof's jti in the same atomic store step, for as long as the proof's
// iat keeps it acceptable. Of concurrent uses of one proof at most one
// succeeds; a replayed proof consumes nothing (401 dpop_invalid); a
// failing store consumes and records nothing it can tell of (503).
func (s *Server) consumeProved(c echo.Context, claims *token.Claims, proof *token.DPoPProof) error {
	if proof == nil {
		return s.consume(c, claims, nil)
	}
	err := s.Store.ConsumeNonceWithProof(c.Request().Context(), store.Nonce{Org: claims.Org, ID: claims.ID},
		store.Proof{Key: proof.ReplayKey(), TTL: s.DPoP.ReplayTTL()})
	switch {
	case errors.Is(err, store.ErrReplayed):
		return s.dpopRefused(c, claims, refusedDPoPReplay, errors.New("the proof's jti was used before"))
	case errors.Is(err, store.ErrNotFound):
		return s.ticketUsed(c, claims)
	}
	return err
}

// dpopRefused counts and logs a refused proof under reason (the metric's
// label: dpop_required, dpop_invalid or dpop_replay) and returns the
// contract's error with a DPoP challenge. cause names the failed check;
// it never holds anything of the proof.
func (s *Server) dpopRefused(c echo.Context, claims *token.Claims, reason refusal, cause error) error {
	s.refused(c, reason, claims.Org, cause)
	code, challenge := CodeDPoPInvalid, `DPoP error="invalid_dpop_proof", `+dpopAlgs
	if reason == refusedDPoPRequired {
		code, challenge = CodeDPoPRequired, "DPoP "+dpopAlgs
	}
	c.Response().Header().Set(echo.HeaderWWWAuthenticate, challenge)
	e := apiError(code, "")
	e.Cause = cause
	return e
}
