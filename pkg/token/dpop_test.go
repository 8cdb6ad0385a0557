package token_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/voicebroker/voicebroker/pkg/token"
)

// connectURL is the target URI the tests' verifiers expect.
const connectURL = iss + "/connect"

// Test vectors made independently of this package.
const (
	// rfc9449Proof is the DPoP proof of RFC 9449 §4.1 (Figure 2), for
	// POST https://server.example.com/token at iat 1562262616. Its signature
	// was checked with Python's cryptography package before it went here.
	rfc9449Proof = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg"
	// rfc9449JKT is the thumbprint RFC 9449 §6.1 publishes for that proof's
	// key, and what Python's hashlib gives for its RFC 7638 canonical JSON.
	rfc9449JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	// ed25519Proof is an EdDSA proof for the same request, made with Python's
	// cryptography package and the private key of RFC 8037 Appendix A.1
	// (d = nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A): header
	// {"typ":"dpop+jwt","alg":"EdDSA","jwk":{"kty":"OKP","crv":"Ed25519","x":"11qY…URo"}},
	// payload {"jti":"8bVZz0Yq6QnMJQ0Y8mA1sA","htm":"POST","htu":"https://server.example.com/token","iat":1562262616},
	// signed with Ed25519PrivateKey.sign over header.payload.
	ed25519Proof = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVkRFNBIiwiandrIjp7Imt0eSI6Ik9LUCIsImNydiI6IkVkMjU1MTkiLCJ4IjoiMTFxWUFZS3hDcmZWU183VHlXUUhPZzdoY3ZQYXBpTWxyd0lhYVBjSFVSbyJ9fQ.eyJqdGkiOiI4YlZaejBZcTZRbk1KUTBZOG1BMXNBIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.vSTdwy4j_G-zaeQpaCMwTDgUaNH75EStsitZU-Ke4_EOiUBGtCFR7fXZABuafilyHhpV3tCWacVSnaysjEzxCg"
	// ed25519JKT is RFC 8037 Appendix A.3's thumbprint of that key.
	ed25519JKT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
	vectorHTU  = "https://server.example.com/token"
)

var vectorIAT = time.Unix(1562262616, 0)

func dpopVerifier(t testing.TB, htu string, now time.Time, opts ...token.DPoPOption) *token.DPoPVerifier {
	t.Helper()
	v, err := token.NewDPoPVerifier(htu, append([]token.DPoPOption{token.WithDPoPTimeFunc(fixed(now))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// members is a JSON object under construction, one raw "name":value member
// a string, so that a test can write duplicates, odd spellings and any type.
type members []string

func (m members) set(name, value string) members {
	out := members{}
	done := false
	for _, f := range m {
		if strings.HasPrefix(f, `"`+name+`":`) {
			if !done {
				out = append(out, `"`+name+`":`+value)
				done = true
			}
			continue
		}
		out = append(out, f)
	}
	if !done {
		out = append(out, `"`+name+`":`+value)
	}
	return out
}

func (m members) drop(name string) members {
	out := members{}
	for _, f := range m {
		if !strings.HasPrefix(f, `"`+name+`":`) {
			out = append(out, f)
		}
	}
	return out
}

func (m members) add(raw string) members { return append(append(members{}, m...), raw) }

func (m members) String() string { return "{" + strings.Join(m, ",") + "}" }

func enc(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func q(s string) string { b, _ := json.Marshal(s); return string(b) }

// signer signs a JWS signing input; each is independent of the package under test.
type signer func(input string) []byte

func es256Signer(t testing.TB, k *ecdsa.PrivateKey) signer {
	return func(in string) []byte {
		sig, err := jwt.SigningMethodES256.Sign(in, k)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
}

func ed25519Signer(k ed25519.PrivateKey) signer {
	return func(in string) []byte { return ed25519.Sign(k, []byte(in)) }
}

// jws assembles a compact JWS from raw JSON texts.
func jws(header, payload string, sign signer) string {
	in := enc(header) + "." + enc(payload)
	return in + "." + base64.RawURLEncoding.EncodeToString(sign(in))
}

func ecJWK(pub *ecdsa.PublicKey) members {
	raw, _ := pub.Bytes()
	return members{`"kty":"EC"`, `"crv":"P-256"`, `"x":` + q(b64(raw[1:33])), `"y":` + q(b64(raw[33:]))}
}

func okpJWK(pub ed25519.PublicKey) members {
	return members{`"kty":"OKP"`, `"crv":"Ed25519"`, `"x":` + q(b64(pub))}
}

func mustB64(s string) []byte {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// thumb is an RFC 7638 thumbprint computed here, by the RFC's recipe.
func thumb(canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	return b64(sum[:])
}

// TestDPoPVerify: every way a proof can be wrong is refused with
// ErrDPoPInvalid and an error text holding nothing of the proof; genuine
// ES256 and EdDSA proofs, and the spellings RFC 9449 §4.3 normalises, pass.
func TestDPoPVerify(t *testing.T) {
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	_, otherEd, _ := ed25519.GenerateKey(rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	es, ed := es256Signer(t, ecKey), ed25519Signer(edKey)

	jwkEC := ecJWK(&ecKey.PublicKey)
	hdr := members{`"typ":"dpop+jwt"`, `"alg":"ES256"`, `"jwk":` + jwkEC.String()}
	edHdr := members{`"typ":"dpop+jwt"`, `"alg":"EdDSA"`, `"jwk":` + okpJWK(edPub).String()}
	const jti = "x8Jd0vQ3Zr7kPq2LmN5tWa"
	pl := members{`"jti":"` + jti + `"`, `"htm":"POST"`, `"htu":` + q(connectURL), fmt.Sprintf(`"iat":%d`, t0.Unix())}
	good := jws(hdr.String(), pl.String(), es)
	goodParts := strings.Split(good, ".")

	hmac := func(secret []byte) signer {
		return func(in string) []byte {
			sig, err := jwt.SigningMethodHS256.Sign(in, secret)
			if err != nil {
				t.Fatal(err)
			}
			return sig
		}
	}
	rs256 := func(in string) []byte {
		sig, err := jwt.SigningMethodRS256.Sign(in, rsaKey)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	es384 := func(in string) []byte {
		sig, err := jwt.SigningMethodES384.Sign(in, p384)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	// asn1 signs ES256 the way crypto/ecdsa does by default, DER-encoded,
	// which JWS does not use.
	asn1 := func(in string) []byte {
		d := sha256.Sum256([]byte(in))
		sig, _ := ecdsa.SignASN1(rand.Reader, ecKey, d[:])
		return sig
	}
	rsaJWK := members{`"kty":"RSA"`, `"n":` + q(b64(rsaKey.N.Bytes())), `"e":"AQAB"`}
	p384Raw, _ := p384.PublicKey.Bytes()
	p384JWK := members{`"kty":"EC"`, `"crv":"P-384"`, `"x":` + q(b64(p384Raw[1:49])), `"y":` + q(b64(p384Raw[49:]))}
	ecPriv, _ := ecKey.Bytes()
	offCurve := func() string {
		raw, _ := ecKey.PublicKey.Bytes()
		y := append([]byte{}, raw[33:]...)
		y[31] ^= 1
		return jwkEC.set("y", q(b64(y))).String()
	}()
	tampered := func() string {
		raw, _ := base64.RawURLEncoding.DecodeString(goodParts[1])
		raw = []byte(strings.Replace(string(raw), jti, "y"+jti[1:], 1))
		return goodParts[0] + "." + enc(string(raw)) + "." + goodParts[2]
	}()
	// athOf is the ath claim of an access token.
	athOf := func(tok string) string { s := sha256.Sum256([]byte(tok)); return b64(s[:]) }

	type tc struct {
		name  string
		proof string
		htm   string    // "" means POST
		now   time.Time // zero means t0
		ok    bool
	}
	ok := func(name, proof string) tc { return tc{name: name, proof: proof, ok: true} }
	bad := func(name, proof string) tc { return tc{name: name, proof: proof} }
	with := func(h, p members, s signer) string { return jws(h.String(), p.String(), s) }
	cases := []tc{
		// Genuine proofs.
		ok("ES256", good),
		ok("EdDSA", with(edHdr, pl, ed)),
		ok("typ in upper case (media types are case-insensitive)", with(hdr.set("typ", `"DPoP+JWT"`), pl, es)),
		ok("typ with the application/ prefix (RFC 7515 §4.1.9)", with(hdr.set("typ", `"application/dpop+jwt"`), pl, es)),
		ok("iat at the past edge of the window", with(hdr, pl.set("iat", fmt.Sprint(t0.Add(-time.Minute).Unix())), es)),
		ok("iat at the future edge of the window", with(hdr, pl.set("iat", fmt.Sprint(t0.Add(time.Minute).Unix())), es)),
		ok("fractional iat", with(hdr, pl.set("iat", fmt.Sprintf("%d.25", t0.Unix())), es)),
		ok("htu with the default port", with(hdr, pl.set("htu", `"https://broker.example:443/connect"`), es)),
		ok("htu scheme and host in upper case", with(hdr, pl.set("htu", `"HTTPS://Broker.EXAMPLE/connect"`), es)),
		ok("htu with a percent-encoded unreserved character", with(hdr, pl.set("htu", `"https://broker.example/%63onnect"`), es)),
		ok("jwk as WebCrypto exports it (ext, key_ops)", with(hdr.set("jwk", jwkEC.add(`"ext":true`).add(`"key_ops":["verify"]`).String()), pl, es)),
		ok("jwk with matching alg and use", with(hdr.set("jwk", jwkEC.add(`"alg":"ES256"`).add(`"use":"sig"`).String()), pl, es)),
		ok("unknown non-critical header and claim", with(hdr.add(`"x-note":"hi"`), pl.add(`"nonce":"abc"`), es)),
		ok("ath", with(hdr, pl.add(`"ath":"`+athOf("ticket")+`"`), es)),
		ok("JSON with whitespace (Python's json.dumps)", jws(
			strings.ReplaceAll(" { "+strings.Join(hdr, " ,\n ")+" } ", `":`, `": `),
			strings.ReplaceAll("{\t"+strings.Join(pl, ", ")+"\n}", `":`, `": `), es)),
		ok("UUID jti", with(hdr, pl.set("jti", `"550e8400-e29b-41d4-a716-446655440000"`), es)),

		// Another key, or no key.
		bad("signed by another key than the jwk", with(hdr, pl, es256Signer(t, otherEC))),
		bad("jwk of another key", with(hdr.set("jwk", ecJWK(&otherEC.PublicKey).String()), pl, es)),
		bad("EdDSA signed by another key than the jwk", with(edHdr, pl, ed25519Signer(otherEd))),
		bad("EdDSA with another payload's signature", func() string {
			a, b := strings.Split(with(edHdr, pl, ed), "."), strings.Split(with(edHdr, pl.set("jti", `"y`+jti[1:]+`"`), ed), ".")
			return a[0] + "." + a[1] + "." + b[2]
		}()),
		bad("tampered payload", tampered),
		bad("signature truncated to 31 bytes", goodParts[0]+"."+goodParts[1]+"."+b64(mustB64(goodParts[2])[:31])),
		bad("signature of 65 bytes", goodParts[0]+"."+goodParts[1]+"."+b64(append(mustB64(goodParts[2]), 0))),
		bad("tampered signature", goodParts[0]+"."+goodParts[1]+"."+flip(goodParts[2])),
		bad("signature of another proof", goodParts[0]+"."+strings.Split(with(hdr, pl.set("jti", `"y`+jti[1:]+`"`), es), ".")[1]+"."+goodParts[2]),
		bad("no jwk", with(hdr.drop("jwk"), pl, es)),
		bad("jwk null", with(hdr.set("jwk", "null"), pl, es)),
		bad("jwk a string", with(hdr.set("jwk", q(jwkEC.String())), pl, es)),

		// Time.
		bad("stale iat", with(hdr, pl.set("iat", fmt.Sprint(t0.Add(-time.Minute-time.Second).Unix())), es)),
		bad("future iat", with(hdr, pl.set("iat", fmt.Sprint(t0.Add(time.Minute+time.Second).Unix())), es)),
		{name: "genuine proof presented too late", proof: good, now: t0.Add(61 * time.Second)},
		{name: "genuine proof presented too early", proof: good, now: t0.Add(-61 * time.Second)},
		bad("iat a string", with(hdr, pl.set("iat", q(fmt.Sprint(t0.Unix()))), es)),
		bad("iat null", with(hdr, pl.set("iat", "null"), es)),
		bad("iat huge", with(hdr, pl.set("iat", "1e300"), es)),
		bad("no iat", with(hdr, pl.drop("iat"), es)),

		// Target.
		bad("htu with a query", with(hdr, pl.set("htu", q(connectURL+"?a=1")), es)),
		bad("htu with an empty query", with(hdr, pl.set("htu", q(connectURL+"?")), es)),
		bad("htu with a fragment", with(hdr, pl.set("htu", q(connectURL+"#f")), es)),
		bad("htu of another host", with(hdr, pl.set("htu", `"https://evil.example/connect"`), es)),
		bad("htu of a sub-domain", with(hdr, pl.set("htu", `"https://a.broker.example/connect"`), es)),
		bad("htu of another path", with(hdr, pl.set("htu", `"https://broker.example/token"`), es)),
		bad("htu with a trailing slash", with(hdr, pl.set("htu", q(connectURL+"/")), es)),
		bad("htu in http instead of https", with(hdr, pl.set("htu", `"http://broker.example/connect"`), es)),
		bad("htu on another port", with(hdr, pl.set("htu", `"https://broker.example:8443/connect"`), es)),
		bad("htu with a zero-padded port", with(hdr, pl.set("htu", `"https://broker.example:0443/connect"`), es)),
		bad("htu with userinfo", with(hdr, pl.set("htu", `"https://broker.example@evil.example/connect"`), es)),
		bad("htu with a dot segment", with(hdr, pl.set("htu", `"https://broker.example/x/../connect"`), es)),
		bad("htu with an encoded slash", with(hdr, pl.set("htu", `"https://broker.example/%2Fconnect"`), es)),
		bad("htu relative", with(hdr, pl.set("htu", `"/connect"`), es)),
		bad("htu with a space", with(hdr, pl.set("htu", `"https://broker.example/connect "`), es)),
		bad("htu not a string", with(hdr, pl.set("htu", `["https://broker.example/connect"]`), es)),
		bad("no htu", with(hdr, pl.drop("htu"), es)),

		// Method.
		{name: "wrong htm", proof: good, htm: "GET"},
		bad("htm in lower case", with(hdr, pl.set("htm", `"post"`), es)),
		bad("no htm", with(hdr, pl.drop("htm"), es)),

		// jti.
		bad("no jti", with(hdr, pl.drop("jti"), es)),
		bad("jti of 15 characters", with(hdr, pl.set("jti", `"abcdefghijklmno"`), es)),
		bad("jti of 129 characters", with(hdr, pl.set("jti", q(strings.Repeat("a", 129))), es)),
		bad("jti outside base64url", with(hdr, pl.set("jti", `"abcdefghijklmnop:q"`), es)),
		bad("jti a number", with(hdr, pl.set("jti", "12345678901234567890"), es)),

		// Algorithms.
		bad("alg none", enc(hdr.set("alg", `"none"`).String())+"."+goodParts[1]+"."),
		bad("alg none with a signature", enc(hdr.set("alg", `"none"`).String())+"."+goodParts[1]+"."+goodParts[2]),
		bad("HS256 keyed with the jwk", with(hdr.set("alg", `"HS256"`), pl, hmac([]byte(jwkEC.String())))),
		bad("HS256 keyed with the x coordinate", with(hdr.set("alg", `"HS256"`), pl, hmac(func() []byte { r, _ := ecKey.PublicKey.Bytes(); return r[1:33] }()))),
		bad("RS256 with an RSA jwk", with(hdr.set("alg", `"RS256"`).set("jwk", rsaJWK.String()), pl, rs256)),
		bad("RS256 with the EC jwk", with(hdr.set("alg", `"RS256"`), pl, rs256)),
		bad("ES384 with a P-384 jwk", with(hdr.set("alg", `"ES384"`).set("jwk", p384JWK.String()), pl, es384)),
		bad("ES256 with a P-384 jwk", with(hdr.set("jwk", p384JWK.String()), pl, es384)),
		bad("alg in lower case", with(hdr.set("alg", `"es256"`), pl, es)),
		bad("no alg", with(hdr.drop("alg"), pl, es)),
		bad("alg only as ALG", with(hdr.drop("alg").add(`"ALG":"ES256"`), pl, es)),
		bad("EdDSA with an EC jwk", with(hdr.set("alg", `"EdDSA"`), pl, ed)),
		bad("ES256 with an OKP jwk", with(edHdr.set("alg", `"ES256"`), pl, es)),
		bad("ES256 signature DER-encoded", with(hdr, pl, asn1)),
		bad("jwk alg member differs", with(hdr.set("jwk", jwkEC.add(`"alg":"ES384"`).String()), pl, es)),

		// The key in the header.
		bad("private key in the jwk", with(hdr.set("jwk", jwkEC.add(`"d":`+q(b64(ecPriv))).String()), pl, es)),
		bad("private member in upper case", with(hdr.set("jwk", jwkEC.add(`"D":`+q(b64(ecPriv))).String()), pl, es)),
		bad("symmetric k member", with(hdr.set("jwk", jwkEC.add(`"k":"c2VjcmV0"`).String()), pl, es)),
		bad("point not on the curve", with(hdr.set("jwk", offCurve), pl, es)),
		bad("x of 31 bytes", with(hdr.set("jwk", jwkEC.set("x", q(b64(make([]byte, 31)))).String()), pl, es)),
		bad("x padded", with(hdr.set("jwk", jwkEC.set("x", q(base64.URLEncoding.EncodeToString(make([]byte, 32)))).String()), pl, es)),
		bad("crv P-521", with(hdr.set("jwk", jwkEC.set("crv", `"P-521"`).String()), pl, es)),
		bad("OKP with a y member", with(edHdr.set("jwk", okpJWK(edPub).add(`"y":"AA"`).String()), pl, ed)),
		bad("OKP Ed448", with(edHdr.set("jwk", okpJWK(edPub).set("crv", `"Ed448"`).String()), pl, ed)),
		bad("jwk use enc", with(hdr.set("jwk", jwkEC.add(`"use":"enc"`).String()), pl, es)),
		bad("jwk key_ops without verify", with(hdr.set("jwk", jwkEC.add(`"key_ops":["sign"]`).String()), pl, es)),
		bad("kid header", with(hdr.add(`"kid":"k1"`), pl, es)),
		bad("Kid header", with(hdr.add(`"Kid":"k1"`), pl, es)),
		bad("jku header", with(hdr.add(`"jku":"https://evil.example/jwks"`), pl, es)),
		bad("x5u header", with(hdr.add(`"x5u":"https://evil.example/cert"`), pl, es)),
		bad("x5c header", with(hdr.add(`"x5c":["MIIB"]`), pl, es)),
		bad("crit header", with(hdr.add(`"crit":["exp"]`), pl, es)),
		bad("b64 header", with(hdr.add(`"b64":false`), pl, es)),

		// typ.
		bad("no typ", with(hdr.drop("typ"), pl, es)),
		bad("typ JWT", with(hdr.set("typ", `"JWT"`), pl, es)),
		bad("typ dpop", with(hdr.set("typ", `"dpop"`), pl, es)),
		bad("typ with a space", with(hdr.set("typ", `"dpop+jwt "`), pl, es)),
		bad("typ with a parameter", with(hdr.set("typ", `"application/dpop+jwt; charset=utf-8"`), pl, es)),
		bad("typ of a ticket", with(hdr.set("typ", q(token.Type)), pl, es)),
		bad("typ a number", with(hdr.set("typ", "1"), pl, es)),

		// Duplicates and case variants.
		bad("duplicate alg", with(hdr.add(`"alg":"ES256"`), pl, es)),
		bad("alg and ALG", with(hdr.add(`"ALG":"none"`), pl, es)),
		bad("duplicate typ, second escaped", with(hdr.add(`"\u0074yp":"dpop+jwt"`), pl, es)),
		bad("duplicate x in the jwk", with(hdr.set("jwk", jwkEC.add(`"x":`+q(b64(make([]byte, 32)))).String()), pl, es)),
		bad("duplicate htu", with(hdr, pl.add(`"htu":"https://evil.example/connect"`), es)),
		bad("jti and JTI", with(hdr, pl.add(`"JTI":"`+jti+`"`), es)),
		bad("Kelvin-sign case variant", with(hdr, pl.add(`"htu\u212a":1`).add(`"htuk":1`), es)),

		// Encoding and size.
		bad("empty", ""),
		bad("two parts", goodParts[0]+"."+goodParts[1]),
		bad("four parts", good+"."+goodParts[2]),
		bad("padded signature", good+"=="),
		bad("newline in the signature", goodParts[0]+"."+goodParts[1]+"."+goodParts[2][:10]+"\n"+goodParts[2][10:]),
		bad("standard base64 alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(good)+"+/"),
		bad("header not JSON", enc("dpop")+"."+goodParts[1]+"."+goodParts[2]),
		bad("header an array", jws(`["typ","dpop+jwt"]`, pl.String(), es)),
		bad("header with trailing data", jws(hdr.String()+"{}", pl.String(), es)),
		bad("payload with trailing data", jws(hdr.String(), pl.String()+" []", es)),
		bad("invalid UTF-8 in the payload", jws(hdr.String(), pl.add("\"note\":\"\xff\"").String(), es)),
		bad("payload nested too deep", with(hdr, pl.add(`"deep":`+strings.Repeat("[", 20)+strings.Repeat("]", 20)), es)),
		bad("oversize", with(hdr, pl.add(`"pad":"`+strings.Repeat("a", token.DefaultDPoPMaxLength)+`"`), es)),
		bad("ath malformed", with(hdr, pl.add(`"ath":"abc"`), es)),
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			now := c.now
			if now.IsZero() {
				now = t0
			}
			htm := c.htm
			if htm == "" {
				htm = "POST"
			}
			p, err := dpopVerifier(t, connectURL, now).Verify(c.proof, htm)
			if c.ok {
				if err != nil {
					t.Fatalf("Verify = %v, want success", err)
				}
				if !token.ValidJKT(p.Thumbprint) || p.JTI == "" || p.HTM != "POST" {
					t.Fatalf("proof = %+v", p)
				}
				return
			}
			if !errors.Is(err, token.ErrDPoPInvalid) || p != nil {
				t.Fatalf("Verify = %+v, %v; want ErrDPoPInvalid", p, err)
			}
			for _, part := range strings.Split(c.proof, ".") {
				if len(part) >= 8 && strings.Contains(err.Error(), part) {
					t.Fatalf("error %q holds part of the proof", err)
				}
			}
			if strings.Contains(err.Error(), jti) {
				t.Fatalf("error %q holds the jti", err)
			}
		})
	}
}

// TestDPoPVectors: proofs made by others verify, with the thumbprints
// published for their keys.
func TestDPoPVectors(t *testing.T) {
	cases := []struct {
		name, proof, jkt, jti string
		alg                   token.Algorithm
	}{
		{"RFC 9449 ES256", rfc9449Proof, rfc9449JKT, "-BwC3ESc6acc2lTc", token.ES256},
		{"RFC 8037 key, EdDSA", ed25519Proof, ed25519JKT, "8bVZz0Yq6QnMJQ0Y8mA1sA", token.EdDSA},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := dpopVerifier(t, vectorHTU, vectorIAT).Verify(c.proof, "POST")
			if err != nil {
				t.Fatal(err)
			}
			if p.Thumbprint != c.jkt || p.JTI != c.jti || p.Algorithm != c.alg || !p.IssuedAt.Equal(vectorIAT) ||
				p.HTU != vectorHTU || p.HTM != "POST" || p.ATH != "" {
				t.Fatalf("proof = %+v", p)
			}
			if got, err := token.Thumbprint(p.JWK); err != nil || got != c.jkt {
				t.Fatalf("Thumbprint(proof.JWK) = %q, %v", got, err)
			}
			// The same proof a second later than the window allows.
			if _, err := dpopVerifier(t, vectorHTU, vectorIAT.Add(61*time.Second)).Verify(c.proof, "POST"); !errors.Is(err, token.ErrDPoPInvalid) {
				t.Fatalf("stale vector: %v", err)
			}
		})
	}
}

func TestThumbprint(t *testing.T) {
	// RFC 7638 §3.1: the RSA example key and its thumbprint.
	const rsaN = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
	ec := token.JWK{Kty: "EC", Crv: "P-256", X: "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs", Y: "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"}
	cases := []struct {
		name string
		jwk  token.JWK
		want string // "" means an error
	}{
		{"RFC 7638 §3.1 RSA", token.JWK{Kty: "RSA", N: rsaN, E: "AQAB", Kid: "2011-04-29", Alg: "RS256"}, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"},
		{"RFC 9449 EC", ec, rfc9449JKT},
		{"kid, alg and use are not hashed", token.JWK{Kty: "EC", Crv: "P-256", X: ec.X, Y: ec.Y, Kid: "k", Alg: "ES256", Use: "sig"}, rfc9449JKT},
		{"RFC 8037 A.3 Ed25519", token.JWK{Kty: "OKP", Crv: "Ed25519", X: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}, ed25519JKT},
		{"EC without y", token.JWK{Kty: "EC", Crv: "P-256", X: ec.X}, ""},
		{"OKP with y", token.JWK{Kty: "OKP", Crv: "Ed25519", X: ec.X, Y: ec.Y}, ""},
		{"RSA without e", token.JWK{Kty: "RSA", N: rsaN}, ""},
		{"x padded", token.JWK{Kty: "OKP", Crv: "Ed25519", X: "AAAA="}, ""},
		{"crv with a quote", token.JWK{Kty: "OKP", Crv: `Ed"25519`, X: "AAAA"}, ""},
		{"x with a quote", token.JWK{Kty: "OKP", Crv: "Ed25519", X: `AA","y":"AA`}, ""},
		{"oct", token.JWK{Kty: "oct"}, ""},
		{"kty in lower case", token.JWK{Kty: "ec", Crv: "P-256", X: ec.X, Y: ec.Y}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := token.Thumbprint(c.jwk)
			if c.want == "" {
				if !errors.Is(err, token.ErrInvalidJWK) {
					t.Fatalf("Thumbprint = %q, %v; want ErrInvalidJWK", got, err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("Thumbprint = %q, %v; want %s", got, err, c.want)
			}
		})
	}
	// A key's kid is the thumbprint of its JWK, computed here by hand too.
	for _, alg := range []token.Algorithm{token.EdDSA, token.ES256} {
		k := mustKey(t, alg)
		j := k.JWK()
		want := thumb(`{"crv":"` + j.Crv + `","kty":"` + j.Kty + `","x":"` + j.X + `"}`)
		if alg == token.ES256 {
			want = thumb(`{"crv":"P-256","kty":"EC","x":"` + j.X + `","y":"` + j.Y + `"}`)
		}
		if got, err := token.Thumbprint(j); err != nil || got != k.ID() || got != want {
			t.Fatalf("%s: Thumbprint = %q, %v; ID %s; by hand %s", alg, got, err, k.ID(), want)
		}
	}
}

func TestValidJKT(t *testing.T) {
	cases := []struct {
		s    string
		want bool
	}{
		{rfc9449JKT, true},
		{ed25519JKT, true},
		{strings.Repeat("A", 43), true},
		{"", false},
		{strings.Repeat("A", 42), false},
		{strings.Repeat("A", 44), false},
		{rfc9449JKT + "=", false},
		{rfc9449JKT[:42] + "=", false},
		{rfc9449JKT[:42] + "B", false}, // stray bits after the 32nd byte
		{"+" + rfc9449JKT[1:], false},
		{"/" + rfc9449JKT[1:], false},
		{rfc9449JKT[:20] + "\n" + rfc9449JKT[21:], false},
		{rfc9449JKT[:20] + " " + rfc9449JKT[21:], false},
		{rfc9449JKT[:42] + "é", false},
	}
	for _, c := range cases {
		if got := token.ValidJKT(c.s); got != c.want {
			t.Errorf("ValidJKT(%q) = %v, want %v", c.s, got, c.want)
		}
	}
}

// TestMintBindsJKT: a ticket minted with a thumbprint carries cnf.jkt and
// verifies with it; one minted without has no cnf; a malformed thumbprint
// is refused at mint.
func TestMintBindsJKT(t *testing.T) {
	k := mustKey(t, token.EdDSA)
	bound := ticket
	bound.JKT = rfc9449JKT
	s, minted := mint(t, k, bound)
	raw, _ := base64.RawURLEncoding.DecodeString(strings.Split(s, ".")[1])
	if !strings.Contains(string(raw), `"cnf":{"jkt":"`+rfc9449JKT+`"}`) {
		t.Fatalf("payload %s lacks cnf.jkt", raw)
	}
	c, err := verifier(t, t0, k).Verify(s)
	if err != nil || c.JKT() != rfc9449JKT || minted.JKT() != rfc9449JKT {
		t.Fatalf("Verify = %+v, %v", c, err)
	}

	s, _ = mint(t, k, ticket)
	raw, _ = base64.RawURLEncoding.DecodeString(strings.Split(s, ".")[1])
	if strings.Contains(string(raw), "cnf") {
		t.Fatalf("bearer ticket payload %s has cnf", raw)
	}
	if c, err := verifier(t, t0, k).Verify(s); err != nil || c.JKT() != "" || c.Confirmation != nil {
		t.Fatalf("bearer ticket: %+v, %v", c, err)
	}

	is, _ := token.NewIssuer(k, iss, time.Minute)
	for _, jkt := range []string{"abc", rfc9449JKT + "A", rfc9449JKT[:42] + "=", strings.Repeat("A", 42) + "B", " " + rfc9449JKT[1:]} {
		bad := ticket
		bad.JKT = jkt
		if s, c, err := is.Mint(bad); !errors.Is(err, token.ErrInvalidJKT) || s != "" || c != nil {
			t.Fatalf("Mint with jkt %q = %v, want ErrInvalidJKT", jkt, err)
		}
	}
}

// TestVerifyRefusesBadCnf: a ticket whose cnf has no usable jkt is refused,
// though it is signed with the right key.
func TestVerifyRefusesBadCnf(t *testing.T) {
	k := mustKey(t, token.EdDSA)
	priv := privOf(t, k)
	for _, cnf := range []any{map[string]any{}, map[string]any{"jkt": "short"}, map[string]any{"jkt": 42}, "x", []string{rfc9449JKT}} {
		tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"iss": iss, "aud": token.Audience, "sub": "u",
			"jti": "abcdefghijklmnopqrstuv", "iat": t0.Unix(), "nbf": t0.Unix(), "exp": t0.Add(time.Minute).Unix(),
			"org": "acme", "agent": "florencia", "channel": "webrtc", "metadata": map[string]any{}, "cnf": cnf})
		tok.Header["typ"], tok.Header["kid"] = token.Type, k.ID()
		s, err := tok.SignedString(priv)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := verifier(t, t0, k).Verify(s); !errors.Is(err, token.ErrInvalid) {
			t.Fatalf("cnf %v: Verify = %v, want ErrInvalid", cnf, err)
		}
	}
}

// TestDPoPBinding walks the /connect flow: the proof's key confirms the
// ticket it was bound to and no other, and ReplayKey and ReplayTTL say what
// to store.
func TestDPoPBinding(t *testing.T) {
	for _, alg := range []token.Algorithm{token.ES256, token.EdDSA} {
		t.Run(string(alg), func(t *testing.T) {
			client, other := mustKey(t, alg), mustKey(t, alg)
			k := mustKey(t, token.EdDSA)
			bound := ticket
			bound.JKT = client.ID()
			_, claims := mint(t, k, bound)
			_, bearer := mint(t, k, ticket)
			bound.JKT = other.ID()
			_, otherClaims := mint(t, k, bound)

			proof, err := token.NewDPoPProof(client, "POST", connectURL, t0)
			if err != nil {
				t.Fatal(err)
			}
			v := dpopVerifier(t, connectURL, t0)
			p, err := v.Verify(proof, "POST")
			if err != nil {
				t.Fatal(err)
			}
			if p.Thumbprint != client.ID() || p.Algorithm != alg || !p.IssuedAt.Equal(t0) || p.HTU != connectURL {
				t.Fatalf("proof = %+v", p)
			}
			if !p.Confirms(claims) || p.Confirms(otherClaims) || p.Confirms(bearer) || p.Confirms(nil) {
				t.Fatal("Confirms disagrees with the tickets' cnf.jkt")
			}
			if got, want := p.ReplayKey(), "dpop:"+client.ID()+":"+p.JTI; got != want {
				t.Fatalf("ReplayKey = %q, want %q", got, want)
			}
			if raw, err := base64.RawURLEncoding.DecodeString(p.JTI); err != nil || len(raw) != 16 {
				t.Fatalf("NewDPoPProof jti %q is not 128 bits", p.JTI)
			}
			second, _ := token.NewDPoPProof(client, "POST", connectURL, t0)
			if p2, _ := v.Verify(second, "POST"); p2 == nil || p2.ReplayKey() == p.ReplayKey() {
				t.Fatal("two proofs share a replay key")
			}
		})
	}
	if got := dpopVerifier(t, connectURL, t0).ReplayTTL(); got != 2*time.Minute+token.DefaultLeeway {
		t.Fatalf("ReplayTTL = %s", got)
	}
	if got := dpopVerifier(t, connectURL, t0, token.WithDPoPWindow(30*time.Second)).ReplayTTL(); got != time.Minute+token.DefaultLeeway {
		t.Fatalf("ReplayTTL with a 30 s window = %s", got)
	}
	if _, err := token.NewDPoPProof(mustKey(t, token.ES256).Public(), "POST", connectURL, t0); err == nil {
		t.Fatal("proof signed without a private key")
	}
}

func TestDPoPCheckAccessToken(t *testing.T) {
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	hdr := members{`"typ":"dpop+jwt"`, `"alg":"ES256"`, `"jwk":` + ecJWK(&ecKey.PublicKey).String()}
	pl := members{`"jti":"x8Jd0vQ3Zr7kPq2LmN5tWa"`, `"htm":"POST"`, `"htu":` + q(connectURL), fmt.Sprintf(`"iat":%d`, t0.Unix())}
	sum := sha256.Sum256([]byte("the-ticket"))
	v := dpopVerifier(t, connectURL, t0)

	p, err := v.Verify(jws(hdr.String(), pl.add(`"ath":"`+b64(sum[:])+`"`).String(), es256Signer(t, ecKey)), "POST")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CheckAccessToken("the-ticket"); err != nil {
		t.Fatalf("matching ath: %v", err)
	}
	if err := p.CheckAccessToken("another-ticket"); !errors.Is(err, token.ErrDPoPInvalid) {
		t.Fatalf("other ticket: %v", err)
	}
	p, err = v.Verify(jws(hdr.String(), pl.String(), es256Signer(t, ecKey)), "POST")
	if err != nil || p.CheckAccessToken("any") != nil {
		t.Fatalf("proof without ath: %v", err)
	}
}

func TestNewDPoPVerifier(t *testing.T) {
	cases := []struct {
		name string
		htu  string
		opts []token.DPoPOption
		want string // normalised htu, or "" for an error
	}{
		{"plain", connectURL, nil, connectURL},
		{"normalised", "HTTPS://Broker.Example:443/connect", nil, connectURL},
		{"http with its default port", "http://localhost:80/connect", nil, "http://localhost/connect"},
		{"other port kept", "http://localhost:8080/connect", nil, "http://localhost:8080/connect"},
		{"reserved escape kept, in upper case", "https://b.example/a%2fb/%7Ec", nil, "https://b.example/a%2Fb/~c"},
		{"IPv6", "http://[::1]:8080/connect", nil, "http://[::1]:8080/connect"},
		{"empty path", "https://broker.example", nil, "https://broker.example/"},
		{"query", connectURL + "?x=1", nil, ""},
		{"fragment", connectURL + "#x", nil, ""},
		{"ftp", "ftp://broker.example/connect", nil, ""},
		{"no host", "https:///connect", nil, ""},
		{"userinfo", "https://u:p@broker.example/connect", nil, ""},
		{"relative", "/connect", nil, ""},
		{"empty", "", nil, ""},
		{"window zero", connectURL, []token.DPoPOption{token.WithDPoPWindow(0)}, ""},
		{"window too long", connectURL, []token.DPoPOption{token.WithDPoPWindow(10 * time.Minute)}, ""},
		{"max length too small", connectURL, []token.DPoPOption{token.WithDPoPMaxLength(10)}, ""},
		{"RS256 allowed", connectURL, []token.DPoPOption{token.WithDPoPAlgorithms(token.ES256, "RS256")}, ""},
		{"no algorithm", connectURL, []token.DPoPOption{token.WithDPoPAlgorithms()}, ""},
		{"nil clock", connectURL, []token.DPoPOption{token.WithDPoPTimeFunc(nil)}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := token.NewDPoPVerifier(c.htu, c.opts...)
			if c.want == "" {
				if err == nil {
					t.Fatalf("accepted, htu %s", v.HTU())
				}
				return
			}
			if err != nil || v.HTU() != c.want {
				t.Fatalf("NewDPoPVerifier = %v; want htu %s", err, c.want)
			}
		})
	}
}

// TestDPoPVerifierOptions: the algorithm restriction, the window and the
// length bound are applied.
func TestDPoPVerifierOptions(t *testing.T) {
	es, ed := mustKey(t, token.ES256), mustKey(t, token.EdDSA)
	esProof, _ := token.NewDPoPProof(es, "POST", connectURL, t0)
	edProof, _ := token.NewDPoPProof(ed, "POST", connectURL, t0)
	only := dpopVerifier(t, connectURL, t0, token.WithDPoPAlgorithms(token.ES256))
	if _, err := only.Verify(esProof, "POST"); err != nil {
		t.Fatalf("ES256 proof: %v", err)
	}
	if _, err := only.Verify(edProof, "POST"); !errors.Is(err, token.ErrDPoPInvalid) {
		t.Fatalf("EdDSA proof with ES256 only: %v", err)
	}
	narrow := dpopVerifier(t, connectURL, t0.Add(11*time.Second), token.WithDPoPWindow(10*time.Second))
	if _, err := narrow.Verify(esProof, "POST"); !errors.Is(err, token.ErrDPoPInvalid) {
		t.Fatalf("proof outside a 10 s window: %v", err)
	}
	short := dpopVerifier(t, connectURL, t0, token.WithDPoPMaxLength(len(esProof)-1))
	if _, err := short.Verify(esProof, "POST"); !errors.Is(err, token.ErrDPoPInvalid) {
		t.Fatalf("proof over the length bound: %v", err)
	}
}

// TestDPoPHighS: ECDSA signatures are malleable ((r, s) and (r, n-s) both
// verify), so one proof has two spellings. That is harmless because replay
// is refused by jti, never by the proof's text; this test pins that both
// spellings carry the same replay key.
func TestDPoPHighS(t *testing.T) {
	k := mustKey(t, token.ES256)
	proof, _ := token.NewDPoPProof(k, "POST", connectURL, t0)
	parts := strings.Split(proof, ".")
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	n := elliptic.P256().Params().N
	s := new(big.Int).Sub(n, new(big.Int).SetBytes(sig[32:]))
	twin := append(append([]byte{}, sig[:32]...), s.FillBytes(make([]byte, 32))...)
	v := dpopVerifier(t, connectURL, t0)
	p1, err1 := v.Verify(proof, "POST")
	p2, err2 := v.Verify(parts[0]+"."+parts[1]+"."+b64(twin), "POST")
	if err1 != nil || err2 != nil || p1.ReplayKey() != p2.ReplayKey() {
		t.Fatalf("%v %v", err1, err2)
	}
}

// BenchmarkDPoPVerify measures one proof check (the CPU /connect adds for a
// bound ticket, before its one store write for the jti).
func BenchmarkDPoPVerify(b *testing.B) {
	for _, alg := range []token.Algorithm{token.ES256, token.EdDSA} {
		b.Run(string(alg), func(b *testing.B) {
			k := mustKey(b, alg)
			proof, err := token.NewDPoPProof(k, "POST", connectURL, t0)
			if err != nil {
				b.Fatal(err)
			}
			v := dpopVerifier(b, connectURL, t0)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(proof, "POST"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
