// Package authservice is an auth service for the broker's delegated mode
// (the "JWT + auth service" option of Sayna's authentication docs): it
// verifies the JWT the broker POSTs with the broker's public key, runs the
// verification checklist of those docs (subject, iat within 60 s, the
// bearer token), and answers 200 with {"auth_id": org} or 401.
// cmd/authservice runs it; the broker's tests use it as the real peer.
package authservice

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Payload is what the broker signs (the schema of Sayna's authentication docs).
type Payload struct {
	Sub      string   `json:"sub"`
	IAT      int64    `json:"iat"`
	EXP      int64    `json:"exp"`
	AuthData AuthData `json:"auth_data"`
}

// AuthData is the request context the broker forwards.
type AuthData struct {
	Token          string            `json:"token"`
	RequestBody    json.RawMessage   `json:"request_body"`
	RequestHeaders map[string]string `json:"request_headers"`
	RequestPath    string            `json:"request_path"`
	RequestMethod  string            `json:"request_method"`
}

// GetExpirationTime and the rest implement jwt.Claims.
func (p *Payload) GetExpirationTime() (*jwt.NumericDate, error) { return date(p.EXP), nil }
func (p *Payload) GetIssuedAt() (*jwt.NumericDate, error)       { return date(p.IAT), nil }
func (p *Payload) GetNotBefore() (*jwt.NumericDate, error)      { return nil, nil }
func (p *Payload) GetIssuer() (string, error)                   { return "", nil }
func (p *Payload) GetSubject() (string, error)                  { return p.Sub, nil }
func (p *Payload) GetAudience() (jwt.ClaimStrings, error)       { return nil, nil }

func date(s int64) *jwt.NumericDate {
	if s == 0 {
		return nil
	}
	return jwt.NewNumericDate(time.Unix(s, 0))
}

// Decision is the service's answer for a verified request.
type Decision struct {
	Status int
	Body   any // JSON-encoded when not nil
	Delay  time.Duration
}

// Service verifies and decides.
type Service struct {
	// PublicKey verifies the broker's JWT (RSA or ECDSA P-256).
	PublicKey crypto.PublicKey
	// Tokens maps accepted bearer tokens to the org they stand for.
	Tokens map[string]string
	// Decide, if set, replaces the Tokens lookup (tests use it to answer
	// 403, 500, 503 or slowly); it runs only after the checklist passed.
	Decide func(p *Payload) Decision
	// Received, if set, sees every verified payload.
	Received func(p *Payload)
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// ParsePublicKeyPEM reads a PKIX (or PKCS#1 RSA) public key.
func ParsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if block.Type == "RSA PUBLIC KEY" {
		return x509.ParsePKCS1PublicKey(block.Bytes)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	switch k.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey:
		return k, nil
	}
	return nil, fmt.Errorf("unsupported key %T", k)
}

// Verify runs the checklist of Sayna's authentication docs on a JWT and
// returns its payload.
func (s *Service) Verify(raw string) (*Payload, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	p := new(Payload)
	_, err := jwt.NewParser(
		jwt.WithValidMethods([]string{"RS256", "ES256"}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(now),
	).ParseWithClaims(raw, p, func(*jwt.Token) (any, error) { return s.PublicKey, nil })
	if err != nil {
		return nil, fmt.Errorf("JWT verification failed: %w", err)
	}
	if p.Sub != "sayna-auth" {
		return nil, errors.New("invalid JWT subject")
	}
	if d := now().Unix() - p.IAT; d > 60 || d < -60 {
		return nil, errors.New("JWT too old")
	}
	return p, nil
}

// ServeHTTP handles POST with a body that is the broker's JWT.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		http.Error(w, "unreadable body", http.StatusBadRequest)
		return
	}
	p, err := s.Verify(string(raw))
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if s.Received != nil {
		s.Received(p)
	}
	d := s.decide(p)
	if d.Delay > 0 {
		select {
		case <-time.After(d.Delay):
		case <-r.Context().Done():
			return
		}
	}
	if d.Body == nil {
		w.WriteHeader(d.Status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(d.Status)
	json.NewEncoder(w).Encode(d.Body)
}

func (s *Service) decide(p *Payload) Decision {
	if s.Decide != nil {
		return s.Decide(p)
	}
	for token, org := range s.Tokens {
		if subtle.ConstantTimeCompare([]byte(token), []byte(p.AuthData.Token)) == 1 {
			return Decision{Status: http.StatusOK, Body: map[string]string{"auth_id": org}}
		}
	}
	return Decision{Status: http.StatusUnauthorized, Body: map[string]string{"error": "invalid bearer token"}}
}
