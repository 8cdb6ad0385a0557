package token

// Internal tests: parseCanonical and Verifier.validate are unexported
// shortcuts, checked here against the general routines they stand in for.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const canonicalJKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"

// canonicalClaims are claims as NewClaims makes them, in several shapes.
func canonicalClaims() []*Claims {
	base := Claims{Issuer: "https://broker.example", Audience: Audience, Subject: "user-1",
		ID: "Xo3Yl1qH5bB9m0mQ4L3b8w", IssuedAt: 1_800_000_000, NotBefore: 1_800_000_000,
		ExpiresAt: 1_800_000_060, Org: "acme", Agent: "florencia", Channel: "webrtc",
		Metadata: json.RawMessage(`{}`)}
	with := func(f func(c *Claims)) *Claims {
		c := base
		f(&c)
		return &c
	}
	return []*Claims{
		with(func(c *Claims) {}),
		with(func(c *Claims) { c.Metadata = json.RawMessage(`{"plan":"gold","n":[1,2.5,-3e2,{"x":null}],"t":true}`) }),
		with(func(c *Claims) { c.Origin = "https://demo.acme.example" }),
		with(func(c *Claims) { c.Confirmation = &Confirmation{JKT: canonicalJKT} }),
		with(func(c *Claims) {
			c.Origin = "https://x.example:8443"
			c.Confirmation = &Confirmation{JKT: canonicalJKT}
		}),
		with(func(c *Claims) { c.Subject = "" }),
		with(func(c *Claims) { c.Subject = "José Ñúñez 日本 🎙" }),
		with(func(c *Claims) { c.Metadata = json.RawMessage(`{"a<b":"c&d\u2028","q":"\"\\"}`) }),
		with(func(c *Claims) { c.IssuedAt, c.NotBefore, c.ExpiresAt = 0, -1, 999_999_999_999_999_999 }),
	}
}

// TestParseCanonicalTakesIssuerOutput: what the Issuer writes is taken,
// with the claims it was written from, unless a string claim needed an
// escape; then parseCanonical declines and json.Unmarshal reads it.
func TestParseCanonicalTakesIssuerOutput(t *testing.T) {
	for _, c := range canonicalClaims() {
		data, err := appendClaims(nil, c)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := parseCanonical(data)
		if !ok {
			t.Errorf("declined the Issuer's %s", data)
			continue
		}
		want := *c
		var md bytes.Buffer // as the Issuer wrote it: compacted, not HTML-escaped
		json.Compact(&md, c.Metadata)
		want.Metadata = md.Bytes()
		if !reflect.DeepEqual(got, &want) {
			t.Errorf("%s: %+v, want %+v", data, got, &want)
		}
	}
	for _, s := range []string{"a\"b", `a\b`, "a<b", "a>b", "a&b", "a\nb", "a\x00b", "a\u2028b", "a\u2029b", "a\xffb"} {
		c := canonicalClaims()[0]
		c.Subject = s
		data, _ := appendClaims(nil, c)
		if _, ok := parseCanonical(data); ok {
			t.Errorf("took the escaped string in %s", data)
		}
	}
}

// TestParseCanonicalDeclines: anything but the Issuer's shape is declined,
// though json.Unmarshal reads much of it.
func TestParseCanonicalDeclines(t *testing.T) {
	good, _ := appendClaims(nil, canonicalClaims()[4])
	g := string(good)
	for _, tc := range []struct{ name, data string }{
		{"empty", ``},
		{"null", `null`},
		{"empty object", `{}`},
		{"BOM", "\ufeff" + g},
		{"leading space", " " + g},
		{"trailing space", g + " "},
		{"trailing newline", g + "\n"},
		{"trailing value", g + "{}"},
		{"space after colon", strings.Replace(g, `"iss":`, `"iss": `, 1)},
		{"upper-case key", strings.Replace(g, `"iss"`, `"ISS"`, 1)},
		{"escaped key", strings.Replace(g, `"iss"`, `"\u0069ss"`, 1)},
		{"escape in a value", strings.Replace(g, `"acme"`, `"\u0061cme"`, 1)},
		{"NUL escape", strings.Replace(g, `"acme"`, `"ac\u0000me"`, 1)},
		{"duplicate key", strings.Replace(g, `"aud"`, `"iss":"x","aud"`, 1)},
		{"duplicate last", strings.TrimSuffix(g, "}") + `,"org":"evil"}`},
		{"unknown member", strings.TrimSuffix(g, "}") + `,"x":1}`},
		{"members reordered", strings.Replace(g, `"org":"acme","agent":"florencia"`, `"agent":"florencia","org":"acme"`, 1)},
		{"float", strings.Replace(g, `"exp":1800000060`, `"exp":1800000060.0`, 1)},
		{"exponent", strings.Replace(g, `"exp":1800000060`, `"exp":18e8`, 1)},
		{"leading zero", strings.Replace(g, `"exp":1800000060`, `"exp":01800000060`, 1)},
		{"minus zero", strings.Replace(g, `"iat":1800000000`, `"iat":-0`, 1)},
		{"19 digits", strings.Replace(g, `"exp":1800000060`, `"exp":1000000000000000000`, 1)},
		{"huge", strings.Replace(g, `"exp":1800000060`, `"exp":99999999999999999999999`, 1)},
		{"string number", strings.Replace(g, `"exp":1800000060`, `"exp":"1800000060"`, 1)},
		{"null number", strings.Replace(g, `"exp":1800000060`, `"exp":null`, 1)},
		{"null string", strings.Replace(g, `"org":"acme"`, `"org":null`, 1)},
		{"aud array", strings.Replace(g, `"aud":"voice-session"`, `"aud":["voice-session"]`, 1)},
		{"metadata string", strings.Replace(g, `"metadata":{}`, `"metadata":"{}"`, 1)},
		{"metadata array", strings.Replace(g, `"metadata":{}`, `"metadata":[]`, 1)},
		{"metadata null", strings.Replace(g, `"metadata":{}`, `"metadata":null`, 1)},
		{"metadata unclosed", strings.Replace(g, `"metadata":{}`, `"metadata":{"a":[}`, 1)},
		{"metadata mismatched", strings.Replace(g, `"metadata":{}`, `"metadata":{]`, 1)},
		{"metadata trailing comma", strings.Replace(g, `"metadata":{}`, `"metadata":{"a":1,}`, 1)},
		{"metadata bad escape", strings.Replace(g, `"metadata":{}`, `"metadata":{"a":"\x"}`, 1)},
		{"metadata missing", strings.Replace(g, `"metadata":{},`, ``, 1)},
		{"empty origin", strings.Replace(g, `"origin":"https://x.example:8443"`, `"origin":""`, 1)},
		{"cnf before origin", strings.Replace(strings.Replace(g, `,"origin":"https://x.example:8443"`, ``, 1), `}}`, `},"origin":"https://x.example:8443"}`, 1)},
		{"cnf extra member", strings.Replace(g, `"jkt":"`+canonicalJKT+`"`, `"jkt":"`+canonicalJKT+`","x":1`, 1)},
		{"invalid UTF-8", strings.Replace(g, `"acme"`, "\"ac\xffme\"", 1)},
		{"raw control", strings.Replace(g, `"acme"`, "\"ac\tme\"", 1)},
		{"raw U+2028", strings.Replace(g, `"acme"`, "\"ac\u2028me\"", 1)},
		{"raw <", strings.Replace(g, `"acme"`, `"ac<me"`, 1)},
		{"unterminated", strings.TrimSuffix(g, "}")},
		{"cut in a string", g[:20]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.data == g {
				t.Fatal("the case changes nothing")
			}
			if c, ok := parseCanonical([]byte(tc.data)); ok {
				t.Fatalf("took %q as %+v", tc.data, c)
			}
		})
	}
	if _, ok := parseCanonical(good); !ok {
		t.Fatalf("declined the Issuer's %s", good)
	}
}

// FuzzParseCanonical is the differential test of parseCanonical against
// json.Unmarshal. Properties: no panic; whatever parseCanonical takes,
// json.Unmarshal reads without error into the same claims (metadata byte
// for byte), and, when its metadata is compact, is what appendClaims
// writes for those claims, byte for byte.
func FuzzParseCanonical(f *testing.F) {
	// Seeds: the Issuer's output in each shape, then the kinds of input a
	// fast parser gets wrong: escapes, duplicates, case variants, odd
	// numbers, whitespace, trailing data, a BOM, deep metadata.
	for _, c := range canonicalClaims() {
		data, _ := appendClaims(nil, c)
		f.Add(data)
	}
	g, _ := appendClaims(nil, canonicalClaims()[4])
	for _, r := range [][2]string{
		{`"acme"`, `"\u0061cme"`},
		{`"acme"`, `"ac\u0000me"`},
		{`"acme"`, `"\ud83c\udf99"`},
		{`"acme"`, `"\ud800"`},
		{`"acme"`, "\"\xed\xa0\x80\""},
		{`"iss"`, `"ISS"`},
		{`"iss"`, `"\u0069ss"`},
		{`"jti"`, `"jtı"`},
		{`"aud"`, `"iss":"x","aud"`},
		{`{"iss"`, "\ufeff{\"iss\""},
		{`"exp":1800000060`, `"exp":1800000060.0`},
		{`"exp":1800000060`, `"exp":1.8e9`},
		{`"exp":1800000060`, `"exp":-9223372036854775808`},
		{`"exp":1800000060`, `"exp":9223372036854775808`},
		{`"exp":1800000060`, `"exp":-1800000060`},
		{`"iat":1800000000`, `"iat":-0`},
		{`"metadata":{}`, `"metadata":{"a":{"b":[[[{"c":"\"}"}]]]},"a":2}`},
		{`"metadata":{}`, `"metadata":{ "a" : 1 }`},
		{`"metadata":{}`, `"metadata":{"a":"\u003c\u2028"}`},
		{`"metadata":{}`, `"metadata":{"a":"` + "\xff" + `"}`},
		{`"metadata":{}`, `"metadata":{"a":"]}"}`},
		{`"metadata":{}`, `"metadata":{"a":1,}`},
		{`"metadata":{}`, `"metadata":{"a" 1}`},
		{`"metadata":{}`, `"metadata":` + strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40)},
		{`,"cnf"`, `,"cnf":null,"cnf"`},
	} {
		f.Add([]byte(strings.Replace(string(g), r[0], r[1], 1)))
	}
	f.Add(append(bytes.Clone(g), ' '))
	f.Add(append(bytes.Clone(g), "{}"...))
	f.Add(append(bytes.Clone(g[:len(g)-1]), `,"org":"x"}`...))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, ok := parseCanonical(data)
		if !ok {
			if c != nil {
				t.Fatal("claims with a refusal")
			}
			return
		}
		var want Claims
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("took %q, which json.Unmarshal refuses: %v", data, err)
		}
		if !reflect.DeepEqual(c, &want) {
			t.Fatalf("%q: %+v, json.Unmarshal's %+v", data, c, &want)
		}
		if compact, err := json.Marshal(c.Metadata); err == nil && bytes.Equal(compact, c.Metadata) {
			if again, err := appendClaims(nil, c); err != nil || !bytes.Equal(again, data) {
				t.Fatalf("took %q, which the Issuer writes as %q", data, again)
			}
		}
	})
}

// FuzzValidate checks Verifier.validate's shortcut against the validator:
// for any claim times, aud, iss and clock, both accept, or both refuse
// with the same error.
func FuzzValidate(f *testing.F) {
	const issuer = "https://broker.example"
	t0 := int64(1_800_000_000)
	// Seeds: a genuine ticket at mint and at each edge of its window
	// (leeway 5 s), and wrong or missing claims.
	for _, s := range []struct {
		exp, nbf, iat, now int64
		nsec               uint32
		aud, iss           string
	}{
		{t0 + 60, t0, t0, t0, 0, Audience, issuer},
		{t0 + 60, t0, t0, t0 + 64, 999_999_999, Audience, issuer},
		{t0 + 60, t0, t0, t0 + 65, 0, Audience, issuer},
		{t0 + 60, t0, t0, t0 - 5, 0, Audience, issuer},
		{t0 + 60, t0, t0, t0 - 6, 999_999_999, Audience, issuer},
		{t0 + 60, t0 + 10, t0, t0, 0, Audience, issuer},
		{t0 + 60, t0, t0 + 10, t0, 0, Audience, issuer},
		{0, t0, t0, t0, 0, Audience, issuer},
		{t0 + 60, 0, 0, t0, 0, Audience, issuer},
		{t0 + 60, t0, t0, t0, 0, "", issuer},
		{t0 + 60, t0, t0, t0, 0, "voice-sessions", issuer},
		{t0 + 60, t0, t0, t0, 0, Audience, ""},
		{t0 + 60, t0, t0, t0, 0, Audience, issuer + "/"},
		{-1 << 62, 1 << 62, -1, 0, 0, Audience, issuer},
	} {
		f.Add(s.exp, s.nbf, s.iat, s.now, s.nsec, s.aud, s.iss)
	}
	k, err := GenerateKey(EdDSA)
	if err != nil {
		f.Fatal(err)
	}
	var clock time.Time // set by each run, which runs alone
	v, err := NewVerifier(issuer, []*Key{k}, func() time.Time { return clock }, DefaultLeeway)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, exp, nbf, iat, now int64, nsec uint32, aud, iss string) {
		clock = time.Unix(now, int64(nsec%1_000_000_000))
		c := &Claims{Issuer: iss, Audience: aud, ExpiresAt: exp, NotBefore: nbf, IssuedAt: iat}
		got, want := v.validate(c), v.validator.Validate(c)
		if (got == nil) != (want == nil) || got != nil && got.Error() != want.Error() ||
			errors.Is(got, jwt.ErrTokenExpired) != errors.Is(want, jwt.ErrTokenExpired) {
			t.Fatalf("%+v at %v: validate %v, validator %v", c, clock, got, want)
		}
	})
}

// TestVerifyCanonicalTakesMintedTickets: Verify's shortcut answers for
// what an Issuer mints, with either algorithm, and leaves to the parser a
// ticket whose claims are not in the Issuer's shape or whose header is
// not one of the verifier's keys'.
func TestVerifyCanonicalTakesMintedTickets(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	for _, alg := range []Algorithm{EdDSA, ES256} {
		t.Run(string(alg), func(t *testing.T) {
			k, err := GenerateKey(alg)
			if err != nil {
				t.Fatal(err)
			}
			is, err := NewIssuer(k, "https://broker.example", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			v, err := NewVerifier("https://broker.example", []*Key{k.Public()}, func() time.Time { return t0 }, DefaultLeeway)
			if err != nil {
				t.Fatal(err)
			}
			s, want, err := is.WithClock(func() time.Time { return t0 }).Mint(Ticket{Org: "acme", Agent: "florencia",
				Channel: "webrtc", Identity: "user-1", Metadata: json.RawMessage(`{"plan":"gold"}`), JKT: canonicalJKT})
			if err != nil {
				t.Fatal(err)
			}
			got, done, err := v.verifyCanonical(s)
			if !done || err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("verifyCanonical = %+v, %v, %v; want %+v", got, done, err, want)
			}
			parts := strings.Split(s, ".")
			other := encodeSigned(t, k, parts[0], `{"aud":"voice-session"}`)
			if _, done, _ := v.verifyCanonical(other); done {
				t.Fatal("answered for claims not in the Issuer's shape")
			}
			if _, done, _ := v.verifyCanonical("e30." + parts[1] + "." + parts[2]); done {
				t.Fatal("answered for a header not of the verifier's keys")
			}
		})
	}
}

// encodeSigned returns the compact JWS of header (a segment) and claims
// (JSON), signed with k.
func encodeSigned(t testing.TB, k *Key, header, claims string) string {
	t.Helper()
	in := header + "." + base64.RawURLEncoding.EncodeToString([]byte(claims))
	sig, err := signingMethod(k.alg).Sign(in, k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// FuzzVerifyCanonical is the differential test of Verify and
// CheckUnsigned, which read canonical claims with parseCanonical and
// validate with validate's shortcut, against verifyParsed (the jwt parser,
// json.Unmarshal and the validator). Claims are signed with each key, the
// signature then kept, altered or cut; the clock moves. Properties: Verify
// answers as verifyParsed does, with equal claims or the same error text;
// CheckUnsigned accepts a signed ticket with the same claims exactly when
// verifyParsed does, and refuses an expired one as expired.
func FuzzVerifyCanonical(f *testing.F) {
	// Seeds: the Issuer's claims in each shape and their broken variants
	// (FuzzParseCanonical's), at mint and off the ticket's window.
	for _, c := range canonicalClaims() {
		data, _ := appendClaims(nil, c)
		for _, m := range []uint8{0, 1, 2} {
			f.Add(data, m, int64(0))
		}
		f.Add(data, uint8(0), int64(65))
		f.Add(data, uint8(0), int64(-6))
	}
	g, _ := appendClaims(nil, canonicalClaims()[4])
	for _, r := range [][2]string{
		{`"acme"`, `"\u0061cme"`},
		{`"acme"`, `""`},
		{`"iss"`, `"ISS"`},
		{`"aud":"voice-session"`, `"aud":"voice-sessions"`},
		{`"exp":1800000060`, `"exp":0`},
		{`"metadata":{}`, `"metadata":[]`},
		{`"jkt":"0`, `"jkt":"`},
	} {
		f.Add([]byte(strings.Replace(string(g), r[0], r[1], 1)), uint8(0), int64(0))
	}
	ed, err := GenerateKey(EdDSA)
	if err != nil {
		f.Fatal(err)
	}
	es, err := GenerateKey(ES256)
	if err != nil {
		f.Fatal(err)
	}
	stranger, err := GenerateKey(EdDSA)
	if err != nil {
		f.Fatal(err)
	}
	var clock time.Time // set by each run, which runs alone
	v, err := NewVerifier("https://broker.example", []*Key{ed, es}, func() time.Time { return clock }, DefaultLeeway)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, claims []byte, mode uint8, offset int64) {
		clock = time.Unix(1_800_000_000+offset%1000, 0)
		for _, k := range []*Key{ed, es, stranger} {
			h, err := headerOf(k)
			if err != nil {
				t.Fatal(err)
			}
			s := encodeSigned(t, k, h, string(claims))
			switch mode % 4 {
			case 1: // another signature of the same length
				s = encodeSigned(t, k, h, string(claims)+" ")
				s = h + "." + base64.RawURLEncoding.EncodeToString(claims) + s[strings.LastIndexByte(s, '.'):]
			case 2: // a short signature
				s = s[:len(s)-4]
			case 3: // no signature
				s = s[:strings.LastIndexByte(s, '.')+1]
			}
			got, gotErr := v.Verify(s)
			want, wantErr := v.verifyParsed(s)
			if !reflect.DeepEqual(got, want) || (gotErr == nil) != (wantErr == nil) ||
				gotErr != nil && (gotErr.Error() != wantErr.Error() || errors.Is(gotErr, ErrExpired) != errors.Is(wantErr, ErrExpired)) {
				t.Fatalf("%s: Verify = %+v, %v; the parser's %+v, %v", s, got, gotErr, want, wantErr)
			}
			if mode%4 != 0 || k == stranger {
				continue
			}
			cu, _, cuErr := v.CheckUnsigned(s)
			if (cuErr == nil) != (wantErr == nil) || !reflect.DeepEqual(cu, want) ||
				errors.Is(cuErr, ErrExpired) != errors.Is(wantErr, ErrExpired) {
				t.Fatalf("%s: CheckUnsigned = %+v, %v; the parser's %+v, %v", s, cu, cuErr, want, wantErr)
			}
		}
	})
}

// TestCompactChar: the table holds exactly the base64url alphabet and the
// dot.
func TestCompactChar(t *testing.T) {
	const want = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
	for c := range 256 {
		in := strings.IndexByte(want, byte(c)) >= 0
		if compactChar[c] != in || compactChars(string([]byte{byte(c)})) != in {
			t.Errorf("byte %#x: %v", c, compactChar[c])
		}
	}
}
