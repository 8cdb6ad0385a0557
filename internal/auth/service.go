package auth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/keyfile"
	"github.com/voicebroker/voicebroker/internal/strictjson"
)

// Service is Sayna's delegated mode: for every request it signs a JWT
// carrying the credential and the request (body, filtered headers, path,
// method), POSTs it to the auth service, and trusts the status it gets.
// Decisions are never cached.
type Service struct {
	url     string
	key     crypto.Signer
	method  jwt.SigningMethod
	client  *http.Client
	timeout time.Duration
	now     func() time.Time
}

// NewService reads the signing key (RSA for RS256, or ECDSA P-256 for
// ES256, chosen by the key type) from keyPath, with keyfile, the one PEM
// parser of the configuration.
func NewService(url, keyPath string, timeout time.Duration) (*Service, error) {
	k, err := keyfile.Read(keyPath)
	if err != nil {
		return nil, fmt.Errorf("AUTH_SIGNING_KEY_PATH: %w", err)
	}
	key, method, err := signingKey(k)
	if err != nil {
		return nil, fmt.Errorf("AUTH_SIGNING_KEY_PATH: %w", err)
	}
	return &Service{
		url: url, key: key, method: method, timeout: timeout, now: time.Now,
		client: &http.Client{
			Timeout: timeout,
			// The decision is the status of this URL; never follow a redirect elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// signingKey picks the JWT algorithm of k: RS256 for RSA, ES256 for ECDSA
// (keyfile has checked the size and the curve). Anything else, a public
// key included, is refused.
func signingKey(k *keyfile.Key) (crypto.Signer, jwt.SigningMethod, error) {
	if k.Private == nil {
		return nil, nil, errors.New("holds a public key; the auth service's signing key must be the private key")
	}
	switch k.Private.(type) {
	case *rsa.PrivateKey:
		return k.Private, jwt.SigningMethodRS256, nil
	case *ecdsa.PrivateKey:
		return k.Private, jwt.SigningMethodES256, nil
	}
	return nil, nil, fmt.Errorf("unsupported key type %T: RSA or ECDSA P-256", k.Private)
}

// Headers withheld from the auth service. Sayna's authentication docs
// withhold authorization, cookie, x-forwarded-*, x-sayna-*, host and
// x-real-ip (the credential itself travels as auth_data.token); the broker
// withholds, besides, every header that can carry a credential or that only
// means something between two hops. The list is a documented deny-list, so
// an auth service still sees the request's own headers (content-type,
// user-agent, origin, accept-*, x-request-id, custom x-* headers):
//
//   - hop-by-hop (RFC 9110 §7.6.1): connection and every header it names,
//     keep-alive, te, trailer, transfer-encoding, upgrade, proxy-*;
//   - proxies' client and route claims: forwarded, via, x-forwarded-*,
//     any name ending in -ip (x-real-ip, x-client-ip, true-client-ip,
//     cf-connecting-ip, ...);
//   - credentials: authorization, cookie, cookie2, dpop, and any name
//     containing auth, token, secret, key, password, passwd, session,
//     cookie, credential, signature, csrf, xsrf or cert (x-api-key,
//     x-auth-token, x-amz-security-token, ocp-apim-subscription-key,
//     x-client-cert, ...);
//   - host and x-sayna-*.
var (
	withheldExact = map[string]bool{
		"authorization": true, "cookie": true, "cookie2": true, "dpop": true, "host": true,
		"connection": true, "keep-alive": true, "te": true, "trailer": true, "transfer-encoding": true,
		"upgrade": true, "forwarded": true, "via": true,
	}
	withheldPrefixes = []string{"x-forwarded-", "x-sayna-", "proxy-"}
	withheldWords    = []string{"auth", "token", "secret", "key", "password", "passwd", "session", "cookie",
		"credential", "signature", "csrf", "xsrf", "cert"}
)

// forwardedHeaders returns the headers the auth service receives: h without
// the withheld ones, names in lower case, repeated values joined by ", ".
func forwardedHeaders(h http.Header) map[string]string {
	// Connection names further hop-by-hop headers of this request.
	listed := map[string]bool{}
	for _, v := range h.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			listed[strings.ToLower(strings.TrimSpace(name))] = true
		}
	}
	out := make(map[string]string, len(h))
	for name, vals := range h {
		n := strings.ToLower(name)
		if !listed[n] && !withheldHeader(n) {
			out[n] = strings.Join(vals, ", ")
		}
	}
	return out
}

// withheldHeader reports whether the lower-case header name n is never
// forwarded to the auth service.
func withheldHeader(n string) bool {
	if withheldExact[n] || strings.HasSuffix(n, "-ip") {
		return true
	}
	for _, p := range withheldPrefixes {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	for _, w := range withheldWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

type authData struct {
	Token          string            `json:"token"`
	RequestBody    json.RawMessage   `json:"request_body"`
	RequestHeaders map[string]string `json:"request_headers"`
	RequestPath    string            `json:"request_path"`
	RequestMethod  string            `json:"request_method"`
}

type servicePayload struct {
	jwt.RegisteredClaims
	AuthData authData `json:"auth_data"`
}

// Check asks the auth service about req. 200 allows (the org is auth_id of
// a JSON body, else the only org); 4xx is ErrServiceDenied; 5xx, and a 200
// whose body is over MaxServiceAnswer or a JSON object answerOrg refuses,
// ErrServiceFailed; a timeout or network error ErrServiceUnavailable.
func (s *Service) Check(ctx context.Context, req *Request, tenants *config.Tenants) (*Principal, error) {
	// The body the broker will decode, or null: never a body the service
	// could read differently (the caller has checked it is strict JSON).
	body := json.RawMessage("null")
	if b := bytes.TrimSpace(req.Body); len(b) > 0 && json.Valid(b) {
		body = b
	}
	headers := forwardedHeaders(req.Header)
	now := s.now()
	claims := servicePayload{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   "sayna-auth",
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(5 * time.Minute)),
		},
		AuthData: authData{Token: req.Credential, RequestBody: body, RequestHeaders: headers,
			RequestPath: req.Path, RequestMethod: req.Method},
	}
	signed, err := jwt.NewWithClaims(s.method, claims).SignedString(s.key)
	if err != nil {
		return nil, &Error{Kind: ErrSigning, Reason: ReasonSignFailed}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, strings.NewReader(signed))
	if err != nil {
		return nil, &Error{Kind: ErrConfig, Reason: ReasonBadAuthServiceURL}
	}
	hreq.Header.Set("Content-Type", "application/jwt")
	resp, err := s.client.Do(hreq)
	if err != nil {
		return nil, &Error{Kind: ErrServiceUnavailable, Reason: ReasonAuthServiceUnreachable}
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, MaxServiceAnswer+1))
	if err != nil {
		return nil, &Error{Kind: ErrServiceUnavailable, Reason: ReasonAuthServiceReadFailed}
	}
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return nil, &Error{Kind: ErrServiceDenied, Reason: AuthServiceStatus(resp.StatusCode)}
	case resp.StatusCode >= 500:
		return nil, &Error{Kind: ErrServiceFailed, Reason: AuthServiceStatus(resp.StatusCode)}
	default:
		// 2xx other than 200, or 3xx: not an allow.
		return nil, &Error{Kind: ErrServiceFailed, Reason: AuthServiceStatus(resp.StatusCode)}
	}
	if len(answer) > MaxServiceAnswer {
		// Cut short, its auth_id could be anything: a failed answer, not
		// an allow without an org.
		return nil, &Error{Kind: ErrServiceFailed, Reason: ReasonAuthServiceAnswerTooLarge}
	}
	org, err := answerOrg(answer)
	if err != nil {
		return nil, &Error{Kind: ErrServiceFailed, Reason: ReasonAuthServiceBadAnswer}
	}
	if org != "" {
		return &Principal{Org: org, Method: MethodAuthService, KeyID: "auth_service"}, nil
	}
	if orgs := tenants.Orgs(); len(orgs) == 1 {
		return &Principal{Org: orgs[0], Method: MethodAuthService, KeyID: "auth_service"}, nil
	}
	return nil, &Error{Kind: ErrConfig, Reason: ReasonAuthServiceNamedNoOrg}
}

// MaxServiceAnswer bounds the body of an auth service's answer; a longer
// one is a failed answer (502 auth_service_error).
const MaxServiceAnswer = 64 << 10

// serviceDecision is the JSON body of an auth service's 200.
type serviceDecision struct {
	AuthID *string `json:"auth_id"`
}

// answerOrg reads the org an auth service's 200 names. A body that is not
// a JSON object ("OK", as in the example of Sayna's authentication docs,
// or nothing) names none. An object is read strictly, since the org it
// names is the caller's: under strictjson's rules (no key twice, also not
// under case folding, so {"auth_id":"acme","auth_id":"globex"} or
// {"AUTH_ID":"globex"} is not an answer to guess at), with auth_id, if
// present, an org id. An object without auth_id names none.
func answerOrg(answer []byte) (string, error) {
	trimmed := bytes.TrimSpace(answer)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return "", nil
	}
	var d serviceDecision
	if err := strictjson.Check(trimmed, reflect.TypeOf(d), false); err != nil {
		return "", err
	}
	if err := json.Unmarshal(trimmed, &d); err != nil {
		return "", err
	}
	if d.AuthID == nil {
		return "", nil
	}
	if !config.ValidID(*d.AuthID) {
		return "", errors.New("auth_id is not an org id")
	}
	return *d.AuthID, nil
}
