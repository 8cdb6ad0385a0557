package token_test

import (
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

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

// FuzzDPoPSignedJSON fuzzes the JSON texts of a proof's header and payload
// behind a genuine signature, which FuzzDPoPProof's fuzzer cannot forge, so
// the parsing and claim checks are reached. Properties: no panic; whatever
// is accepted was signed by the key whose thumbprint it reports, has typ
// dpop+jwt and the alg of that key, no two top-level keys that differ only
// in case, htm POST and a jti of 16 to 128 characters.
func FuzzDPoPSignedJSON(f *testing.F) {
	es, _ := token.GenerateKey(token.ES256)
	ed, _ := token.GenerateKey(token.EdDSA)
	jwkOf := func(k *token.Key) string {
		j := k.JWK()
		b, _ := json.Marshal(token.JWK{Kty: j.Kty, Crv: j.Crv, X: j.X, Y: j.Y})
		return string(b)
	}
	payload := `{"jti":"x8Jd0vQ3Zr7kPq2LmN5tWa","htm":"POST","htu":"https://server.example.com/token","iat":1562262616}`
	// Seeds: genuine header and payload for each key, then near misses.
	f.Add(`{"typ":"dpop+jwt","alg":"ES256","jwk":`+jwkOf(es)+`}`, payload)
	f.Add(`{"typ":"dpop+jwt","alg":"EdDSA","jwk":`+jwkOf(ed)+`}`, payload)
	f.Add(`{"typ":"dpop+jwt","alg":"EdDSA","jwk":`+jwkOf(ed)+`,"ALG":"none"}`, payload)
	f.Add(`{"typ":"DPoP+JWT","alg":"ES256","jwk":`+jwkOf(es)+`}`, strings.Replace(payload, `"POST"`, `"P\u004fST"`, 1))
	f.Add(`{"typ":"dpop+jwt","alg":"ES256","jwk":`+jwkOf(es)+`}`, strings.Replace(payload, `token"`, `token?x"`, 1))
	f.Add(`{"typ":"dpop+jwt","alg":"ES256","jwk":`+jwkOf(ed)+`}`, payload)
	privs := map[*token.Key]crypto.Signer{es: privOf(f, es), ed: privOf(f, ed)}
	signingMethods := map[token.Algorithm]jwt.SigningMethod{token.ES256: jwt.SigningMethodES256, token.EdDSA: jwt.SigningMethodEdDSA}
	v, err := token.NewDPoPVerifier(vectorHTU, token.WithDPoPTimeFunc(fixed(vectorIAT)))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, header, claims string) {
		in := enc(header) + "." + enc(claims)
		for _, k := range []*token.Key{es, ed} {
			sig, err := signingMethods[k.Algorithm()].Sign(in, privs[k])
			if err != nil {
				t.Fatal(err)
			}
			proof := in + "." + base64.RawURLEncoding.EncodeToString(sig)
			p, err := v.Verify(proof, "POST")
			if err != nil {
				if !errors.Is(err, token.ErrDPoPInvalid) {
					t.Fatalf("unclassified error %v", err)
				}
				continue
			}
			if p.Thumbprint != k.ID() || p.Algorithm != k.Algorithm() {
				t.Fatalf("accepted a proof signed by %s (%s) as %s (%s)", k.ID(), k.Algorithm(), p.Thumbprint, p.Algorithm)
			}
			var h, c map[string]json.RawMessage
			if json.Unmarshal([]byte(header), &h) != nil || json.Unmarshal([]byte(claims), &c) != nil {
				t.Fatal("accepted JSON that encoding/json refuses")
			}
			for _, m := range []map[string]json.RawMessage{h, c} {
				lower := map[string]bool{}
				for name := range m {
					lower[strings.ToLower(name)] = true
				}
				if len(lower) != len(m) {
					t.Fatalf("accepted case-variant keys: %q %q", header, claims)
				}
			}
			var typ, alg, htm string
			_ = json.Unmarshal(h["typ"], &typ)
			_ = json.Unmarshal(h["alg"], &alg)
			_ = json.Unmarshal(c["htm"], &htm)
			if lt := strings.ToLower(typ); (lt != "dpop+jwt" && lt != "application/dpop+jwt") || alg != string(k.Algorithm()) || htm != "POST" {
				t.Fatalf("accepted typ %q alg %q htm %q", typ, alg, htm)
			}
			if len(p.JTI) < token.MinDPoPJTILength || len(p.JTI) > token.MaxDPoPJTILength {
				t.Fatalf("accepted jti of %d characters", len(p.JTI))
			}
		}
	})
}

// FuzzCheckUnsigned feeds arbitrary claims, signed with the verifier's key,
// and arbitrary strings to CheckUnsigned. Properties: it never panics;
// every error is ErrNoRecord, ErrInvalid or ErrExpired; on a signed ticket
// it agrees with Verify (both accept with equal claims, or both refuse,
// expired alike), so skipping the signature never widens what is accepted;
// its record is the issuer's record of the same string.
func FuzzCheckUnsigned(f *testing.F) {
	k, _ := token.GenerateKey(token.EdDSA)
	is, _ := token.NewIssuer(k, iss, time.Minute)
	is = is.WithClock(fixed(t0))
	good, _, _ := is.Mint(ticket)
	parts := strings.Split(good, ".")
	claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
	// Seeds: the genuine claims and ticket, claims with odd numbers,
	// duplicate keys and missing members.
	f.Add(string(claims), good)
	f.Add(`{"iss":"`+iss+`","aud":"voice-session","exp":1800000060.5,"iat":1800000000,"nbf":1800000000,"jti":"x","org":"o","agent":"a","channel":"c","metadata":{}}`, "")
	f.Add(`{"iss":"`+iss+`","iss":"x","aud":["voice-session"],"exp":1800000060,"iat":1800000000,"nbf":1800000000,"jti":"x","org":"o","agent":"a","channel":"c","metadata":{}}`, parts[0]+".e30.")
	f.Add(`{"exp":"1800000060"}`, parts[0]+"."+parts[1]+".")
	f.Add(`null`, "..")
	v, _ := token.NewVerifier(iss, []*token.Key{k}, fixed(t0), token.DefaultLeeway)
	priv := privOf(f, k).(ed25519.PrivateKey)
	classified := func(t *testing.T, err error) {
		if !errors.Is(err, token.ErrInvalid) && !errors.Is(err, token.ErrExpired) && !errors.Is(err, token.ErrNoRecord) {
			t.Fatalf("unclassified error %v", err)
		}
	}
	f.Fuzz(func(t *testing.T, claims, s string) {
		if _, _, err := v.CheckUnsigned(s); err != nil {
			classified(t, err)
		}
		input := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(claims))
		signed := input + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(priv, []byte(input)))
		cu, rec, uerr := v.CheckUnsigned(signed)
		cv, verr := v.Verify(signed)
		if (uerr == nil) != (verr == nil) || errors.Is(uerr, token.ErrExpired) != errors.Is(verr, token.ErrExpired) {
			t.Fatalf("CheckUnsigned: %v; Verify: %v", uerr, verr)
		}
		if uerr != nil {
			classified(t, uerr)
			return
		}
		if !reflect.DeepEqual(cu, cv) {
			t.Fatalf("claims %+v, Verify's %+v", cu, cv)
		}
		if rec != is.Record(signed) {
			t.Fatal("record differs from the issuer's")
		}
	})
}
