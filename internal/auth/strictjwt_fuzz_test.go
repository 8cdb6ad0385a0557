package auth

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzStrictJWT: strictJWT never panics, and a JWT it accepts reads the
// same to golang-jwt as to a reader by exact names: exp, iat and nbf are
// numbers in range that golang-jwt decodes to the same second, and no
// header is crit.
func FuzzStrictJWT(f *testing.F) {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, seed := range [][2]string{
		{`{"alg":"EdDSA"}`, `{"iss":"i","exp":1795517325}`},    // good
		{`{"alg":"EdDSA"}`, `{"exp":"1795517325"}`},            // a date as a string
		{`{"alg":"EdDSA","crit":["x"],"x":1}`, `{"exp":1}`},    // an extension
		{`{"alg":"EdDSA","alg":"none"}`, `{}`},                 // a header twice
		{`{"alg":"EdDSA"}`, `{"exp":1,"EXP":2}`},               // a case variant
		{`{"alg":"EdDSA"}`, `{"Exp":1}`},                       // a registered name in another case
		{`{"alg":"EdDSA"}`, `{"exp":1e400}`},                   // out of range
		{`{"alg":"EdDSA"}`, `{"nbf":-0.5,"iat":253402300799}`}, // at the bounds
	} {
		f.Add(enc(seed[0]) + "." + enc(seed[1]) + ".c2ln")
	}
	f.Fuzz(func(t *testing.T, cred string) {
		if strictJWT(cred) != nil {
			return
		}
		parts := strings.Split(cred, ".")
		header, _ := base64.RawURLEncoding.DecodeString(parts[0])
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var h map[string]json.RawMessage
		if err := json.Unmarshal(header, &h); err != nil {
			t.Fatalf("accepted a header that is not an object: %v", err)
		}
		for name := range h {
			if strings.EqualFold(name, "crit") {
				t.Fatal("accepted a crit header")
			}
		}
		var exact map[string]json.RawMessage
		if err := json.Unmarshal(payload, &exact); err != nil {
			t.Fatalf("accepted a payload that is not an object: %v", err)
		}
		var rc jwt.RegisteredClaims
		if err := json.Unmarshal(payload, &rc); err != nil {
			// Other claims of the wrong type (an iss number) are
			// golang-jwt's to refuse; dates never are.
			for _, name := range []string{"exp", "iat", "nbf"} {
				var d jwt.NumericDate
				if raw, ok := exact[name]; ok && d.UnmarshalJSON(raw) != nil {
					t.Fatalf("accepted a %s golang-jwt cannot read: %s", name, raw)
				}
			}
			return
		}
		for name, got := range map[string]*jwt.NumericDate{"exp": rc.ExpiresAt, "iat": rc.IssuedAt, "nbf": rc.NotBefore} {
			raw, ok := exact[name]
			if !ok {
				if got != nil {
					t.Fatalf("golang-jwt read a %s the payload does not have by that name", name)
				}
				continue
			}
			var f float64
			if err := json.Unmarshal(raw, &f); err != nil || f < 0 || f > maxNumericDate {
				t.Fatalf("accepted %s %s", name, raw)
			}
			if got == nil || got.Unix() != int64(f) {
				t.Fatalf("%s: golang-jwt read %v, the payload says %s", name, got, raw)
			}
		}
	})
}
