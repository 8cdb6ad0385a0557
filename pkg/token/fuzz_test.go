package token_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/pkg/token"
)

// FuzzVerify feeds arbitrary strings to the verifier. Properties: it never
// panics; every error is ErrInvalid or ErrExpired; nothing but an untouched
// genuine ticket verifies.
func FuzzVerify(f *testing.F) {
	k, _ := token.GenerateKey(token.EdDSA)
	is, _ := token.NewIssuer(k, iss, time.Minute)
	good, _, _ := is.WithClock(fixed(t0)).Mint(ticket)
	parts := strings.Split(good, ".")
	// Seeds: the genuine ticket, its pieces rearranged, classic attacks.
	f.Add(good)
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add(parts[0] + "." + parts[1])
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("eyJhbGciOiJIUzI1NiIsInR5cCI6InZzdCtqd3QifQ.e30.x")
	f.Add("...")
	f.Add("")
	f.Add(strings.Repeat("A", 100) + "." + parts[1] + "." + parts[2])
	v, _ := token.NewVerifier(iss, []*token.Key{k}, fixed(t0), token.DefaultLeeway)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := v.Verify(s)
		if err != nil {
			if !errors.Is(err, token.ErrInvalid) && !errors.Is(err, token.ErrExpired) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if s != good {
			// EdDSA signatures are not malleable and the header and payload
			// are signed, so only the exact genuine string may pass... except
			// for base64 encodings that decode to the same bytes, which the
			// strict decoder refuses.
			t.Fatalf("a string other than the genuine ticket verified: %q", s)
		}
		if c.Org != ticket.Org {
			t.Fatalf("claims %+v", c)
		}
	})
}

// FuzzDPoPProof feeds arbitrary strings to the DPoP verifier. Properties:
// it never panics; every refusal is ErrDPoPInvalid with a text that holds
// nothing of the proof; whatever it accepts has, when decoded here without
// the package's help, typ dpop+jwt, alg ES256 or EdDSA on a key of the
// matching type with no private member, the request's htm, and a jwk whose
// thumbprint is the one reported.
func FuzzDPoPProof(f *testing.F) {
	es, _ := token.GenerateKey(token.ES256)
	ed, _ := token.GenerateKey(token.EdDSA)
	ownES, _ := token.NewDPoPProof(es, "POST", vectorHTU, vectorIAT)
	ownED, _ := token.NewDPoPProof(ed, "POST", vectorHTU, vectorIAT)
	parts := strings.Split(rfc9449Proof, ".")
	// Seeds: genuine proofs by RFC 9449, by Python (RFC 8037's key) and by
	// this package; then the classic attacks and broken shapes.
	f.Add(rfc9449Proof)
	f.Add(ed25519Proof)
	f.Add(ownES)
	f.Add(ownED)
	f.Add(enc(`{"typ":"dpop+jwt","alg":"none"}`) + "." + parts[1] + ".")
	f.Add(enc(`{"typ":"dpop+jwt","alg":"HS256","jwk":{"kty":"oct","k":"c2VjcmV0"}}`) + "." + parts[1] + "." + parts[2])
	f.Add(enc(`{"typ":"dpop+jwt","alg":"ES256","alg":"EdDSA"}`) + "." + parts[1] + "." + parts[2])
	f.Add(parts[0] + "." + enc(`{"jti":"-BwC3ESc6acc2lTc","htm":"POST","htu":"https://server.example.com/token","iat":1562262616,"IAT":0}`) + "." + parts[2])
	f.Add(parts[0] + "." + parts[1])
	f.Add("..")
	f.Add("")
	f.Add(strings.Repeat("A", token.DefaultDPoPMaxLength+1))
	v, err := token.NewDPoPVerifier(vectorHTU, token.WithDPoPTimeFunc(fixed(vectorIAT)))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := v.Verify(s, "POST")
		if err != nil {
			if !errors.Is(err, token.ErrDPoPInvalid) || p != nil {
				t.Fatalf("Verify = %+v, %v", p, err)
			}
			for _, part := range strings.Split(s, ".") {
				if len(part) >= 8 && strings.Contains(err.Error(), part) {
					t.Fatalf("error %q holds part of the proof", err)
				}
			}
			return
		}
		ps := strings.Split(s, ".")
		var hdr struct {
			Typ string         `json:"typ"`
			Alg string         `json:"alg"`
			JWK map[string]any `json:"jwk"`
		}
		rawHdr, err1 := base64.RawURLEncoding.DecodeString(ps[0])
		rawPl, err2 := base64.RawURLEncoding.DecodeString(ps[1])
		var pl map[string]any
		if err1 != nil || err2 != nil || json.Unmarshal(rawHdr, &hdr) != nil || json.Unmarshal(rawPl, &pl) != nil {
			t.Fatalf("accepted a proof that does not decode: %q", s)
		}
		if typ := strings.ToLower(hdr.Typ); typ != "dpop+jwt" && typ != "application/dpop+jwt" {
			t.Fatalf("accepted typ %q", hdr.Typ)
		}
		str := func(m map[string]any, k string) string { v, _ := m[k].(string); return v }
		switch {
		case hdr.Alg == "ES256" && str(hdr.JWK, "kty") == "EC" && str(hdr.JWK, "crv") == "P-256":
		case hdr.Alg == "EdDSA" && str(hdr.JWK, "kty") == "OKP" && str(hdr.JWK, "crv") == "Ed25519":
		default:
			t.Fatalf("accepted alg %q with jwk %v", hdr.Alg, hdr.JWK)
		}
		if _, private := hdr.JWK["d"]; private {
			t.Fatal("accepted a private key")
		}
		want, err := token.Thumbprint(token.JWK{Kty: str(hdr.JWK, "kty"), Crv: str(hdr.JWK, "crv"), X: str(hdr.JWK, "x"), Y: str(hdr.JWK, "y")})
		if err != nil || p.Thumbprint != want {
			t.Fatalf("thumbprint %s, jwk's %s (%v)", p.Thumbprint, want, err)
		}
		if again, err := token.Thumbprint(p.JWK); err != nil || again != p.Thumbprint {
			t.Fatalf("proof.JWK thumbprint %s != %s", again, p.Thumbprint)
		}
		if str(pl, "htm") != "POST" || str(pl, "jti") != p.JTI || string(p.Algorithm) != hdr.Alg {
			t.Fatalf("claims %v, proof %+v", pl, p)
		}
		if d := p.IssuedAt.Sub(vectorIAT); d > token.DefaultDPoPWindow || d < -token.DefaultDPoPWindow {
			t.Fatalf("iat %s outside the window", p.IssuedAt)
		}
	})
}
