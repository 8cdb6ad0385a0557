package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/voicebroker/voicebroker/internal/strictjson"
)

// maxNumericDate is the largest NumericDate a backend JWT may carry: the
// last second of the year 9999.
const maxNumericDate = 253402300799

// Registered names whose case variants are refused. golang-jwt reads the
// claims with encoding/json, which matches struct fields case-insensitively:
// {"EXP":…} would be read as exp, and {"exp":…,"EXP":…} as whichever came
// last. A header is read into a map, by exact name, but the same rule holds
// there so that no two readers can disagree on what "ALG" means.
var (
	jwtHeaderNames = []string{"alg", "typ", "cty", "kid", "jku", "jwk", "x5u", "x5c", "x5t", "x5t#S256", "crit", "b64"}
	jwtClaimNames  = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti"}
)

// Errors of strictJWT, each a fixed text.
var (
	errJWTParts    = errors.New("not three base64url parts")
	errJWTNotJSON  = errors.New("header or payload is not a strict JSON object")
	errJWTCrit     = errors.New("crit header: no extension is understood")
	errJWTCase     = errors.New("a registered header or claim name in another case")
	errJWTDateType = errors.New("exp, iat or nbf is not a number from 0 to the year 9999")
)

// strictJWT checks the compact JWT cred before golang-jwt reads it, and
// refuses what golang-jwt would accept loosely:
//   - anything but three parts of unpadded base64url without stray bits;
//   - a header or payload that is not one JSON object under strictjson's
//     rules: valid UTF-8, no key twice, also not under Unicode case folding,
//     at any depth (golang-jwt would keep the last of two);
//   - a crit header, whatever it lists: the broker understands no JWS
//     extension, and RFC 7515 §4.1.11 says to reject a JWS whose crit
//     names one the recipient does not understand;
//   - a header or claim that is a case variant of a registered name
//     ("EXP", "Alg");
//   - exp, iat or nbf other than a JSON number from 0 to the year 9999
//     (RFC 7519 §2: a NumericDate is a number; golang-jwt also takes the
//     string "1795517325").
//
// It verifies nothing: the signature and the claims' values are
// golang-jwt's to check.
func strictJWT(cred string) error {
	parts := strings.Split(cred, ".")
	if len(parts) != 3 {
		return errJWTParts
	}
	header, err := jwtObject(parts[0])
	if err != nil {
		return err
	}
	payload, err := jwtObject(parts[1])
	if err != nil {
		return err
	}
	for name := range header {
		if strings.EqualFold(name, "crit") {
			return errJWTCrit
		}
		if caseVariant(name, jwtHeaderNames) {
			return errJWTCase
		}
	}
	for name := range payload {
		if caseVariant(name, jwtClaimNames) {
			return errJWTCase
		}
	}
	for _, name := range []string{"exp", "iat", "nbf"} {
		if raw, ok := payload[name]; ok && !numericDate(raw) {
			return errJWTDateType
		}
	}
	return nil
}

// jwtObject decodes one part of a compact JWT into its members.
func jwtObject(part string) (map[string]json.RawMessage, error) {
	data, err := base64.RawURLEncoding.Strict().DecodeString(part)
	if err != nil || len(data) == 0 {
		return nil, errJWTParts
	}
	if strictjson.Check(data, nil, false) != nil || !bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("{")) {
		return nil, errJWTNotJSON
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return nil, errJWTNotJSON
	}
	return m, nil
}

// caseVariant reports whether name equals one of names under case folding
// without being it.
func caseVariant(name string, names []string) bool {
	for _, n := range names {
		if name != n && strings.EqualFold(name, n) {
			return true
		}
	}
	return false
}

// numericDate reports whether raw is a JSON number from 0 to maxNumericDate.
func numericDate(raw json.RawMessage) bool {
	if len(raw) == 0 || !(raw[0] == '-' || '0' <= raw[0] && raw[0] <= '9') {
		return false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	return err == nil && f >= 0 && f <= maxNumericDate
}
