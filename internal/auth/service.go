package auth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/voicebroker/voicebroker/config"
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
// ES256, chosen by the key type) from keyPath.
func NewService(url, keyPath string, timeout time.Duration) (*Service, error) {
	data, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("AUTH_SIGNING_KEY_PATH: %w", err)
	}
	key, method, err := parseSigningKey(data)
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

func parseSigningKey(data []byte) (crypto.Signer, jwt.SigningMethod, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, nil, errors.New("no PEM block")
	}
	var k any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(block.Bytes)
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, nil, fmt.Errorf("unsupported PEM block %q", block.Type)
	}
	if err != nil {
		return nil, nil, err
	}
	switch pk := k.(type) {
	case *rsa.PrivateKey:
		if pk.N.BitLen() < 2048 {
			return nil, nil, errors.New("RSA key shorter than 2048 bits")
		}
		return pk, jwt.SigningMethodRS256, nil
	case *ecdsa.PrivateKey:
		if pk.Curve != elliptic.P256() {
			return nil, nil, errors.New("ECDSA key must be on P-256 (ES256)")
		}
		return pk, jwt.SigningMethodES256, nil
	}
	return nil, nil, fmt.Errorf("unsupported key type %T: RSA or ECDSA P-256", k)
}

// filteredHeader reports whether a header is withheld from the auth
// service (seed 004): credentials, cookies, proxy and Sayna headers.
func filteredHeader(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "authorization", "cookie", "host", "x-real-ip":
		return true
	}
	return strings.HasPrefix(n, "x-forwarded-") || strings.HasPrefix(n, "x-sayna-")
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
// a JSON body, else the only org); 4xx is ErrServiceDenied; 5xx
// ErrServiceFailed; a timeout or network error ErrServiceUnavailable.
func (s *Service) Check(ctx context.Context, req *Request, tenants *config.Tenants) (*Principal, error) {
	body := json.RawMessage("null")
	if b := bytes.TrimSpace(req.Body); len(b) > 0 {
		if json.Valid(b) {
			body = b
		} else {
			body, _ = json.Marshal(string(req.Body))
		}
	}
	headers := make(map[string]string, len(req.Header))
	for name, vals := range req.Header {
		if !filteredHeader(name) {
			headers[strings.ToLower(name)] = strings.Join(vals, ", ")
		}
	}
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
		return nil, &Error{Kind: ErrSigning, Reason: "sign_failed"}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, strings.NewReader(signed))
	if err != nil {
		return nil, &Error{Kind: ErrConfig, Reason: "bad_auth_service_url"}
	}
	hreq.Header.Set("Content-Type", "application/jwt")
	resp, err := s.client.Do(hreq)
	if err != nil {
		return nil, &Error{Kind: ErrServiceUnavailable, Reason: "auth_service_unreachable"}
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, &Error{Kind: ErrServiceUnavailable, Reason: "auth_service_read_failed"}
	}
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return nil, &Error{Kind: ErrServiceDenied, Reason: fmt.Sprintf("auth_service_%d", resp.StatusCode)}
	case resp.StatusCode >= 500:
		return nil, &Error{Kind: ErrServiceFailed, Reason: fmt.Sprintf("auth_service_%d", resp.StatusCode)}
	default:
		// 2xx other than 200, or 3xx: not an allow.
		return nil, &Error{Kind: ErrServiceFailed, Reason: fmt.Sprintf("auth_service_%d", resp.StatusCode)}
	}
	var decision struct {
		AuthID string `json:"auth_id"`
	}
	if json.Unmarshal(answer, &decision) == nil && decision.AuthID != "" {
		return &Principal{Org: decision.AuthID, Method: MethodAuthService, KeyID: "auth_service"}, nil
	}
	if orgs := tenants.Orgs(); len(orgs) == 1 {
		return &Principal{Org: orgs[0], Method: MethodAuthService, KeyID: "auth_service"}, nil
	}
	return nil, &Error{Kind: ErrConfig, Reason: "auth_service_named_no_org"}
}
