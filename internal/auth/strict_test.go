package auth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/auth"
)

// rawJWT signs header.payload as written, with EdDSA, so that a test can
// put into either part what no JWT library would write: a key twice, a
// date as a string, a crit header.
func rawJWT(priv ed25519.PrivateKey, header, payload string) string {
	enc := base64.RawURLEncoding.EncodeToString
	signed := enc([]byte(header)) + "." + enc([]byte(payload))
	return signed + "." + enc(ed25519.Sign(priv, []byte(signed)))
}

// backendIssuer is acme's tenants with one backend JWT issuer whose
// Ed25519 key is in a PEM file, and the authenticator over them, its clock
// at now.
func backendIssuer(t *testing.T, now time.Time) (*auth.Authenticator, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "issuer.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	ten, err := config.Parse([]byte(`orgs:
  - id: acme
    tier: free
    jwt_issuers: [{issuer: https://idp.example, audience: vb, public_key_file: ` + path + `, scopes: [tokens:create]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	return auth.New(config.StaticHolder(ten), auth.Options{Now: func() time.Time { return now }}), priv
}

// TestBackendJWTStrict: a backend JWT is read strictly before it is
// verified. Dates are JSON numbers (not "1795517325"), a crit header is
// refused whatever it names, and no header or claim appears twice, as a
// case variant of another, or as a case variant of a registered name.
// Every refused JWT below carries a valid signature over what it says, and
// golang-jwt alone accepts each of them.
func TestBackendJWTStrict(t *testing.T) {
	now := time.Unix(1_795_517_000, 0)
	a, priv := backendIssuer(t, now)
	iat, exp := now.Unix(), now.Add(5*time.Minute).Unix()
	hdr := `{"alg":"EdDSA","typ":"JWT"}`
	claims := func(extra string) string {
		return fmt.Sprintf(`{"iss":"https://idp.example","aud":"vb","sub":"svc","iat":%d,"exp":%d%s}`, iat, exp, extra)
	}
	// dates writes the claims with exp, iat and nbf as given.
	dates := func(iatV, expV, nbfV string) string {
		s := `{"iss":"https://idp.example","aud":"vb","sub":"svc","iat":` + iatV + `,"exp":` + expV
		if nbfV != "" {
			s += `,"nbf":` + nbfV
		}
		return s + "}"
	}
	n := func(v int64) string { return fmt.Sprint(v) }
	q := func(v int64) string { return fmt.Sprintf("%q", fmt.Sprint(v)) }
	for _, tc := range []struct {
		name            string
		header, payload string
		ok              bool
	}{
		{"good", hdr, claims(""), true},
		{"good, fractional dates", hdr, dates(n(iat)+".25", n(exp)+".5", n(iat)+".0"), true},
		{"good, an unregistered header and claim", `{"alg":"EdDSA","x-trace":"1"}`, claims(`,"role":"ops"`), true},

		{"exp a string", hdr, dates(n(iat), q(exp), ""), false},
		{"iat a string", hdr, dates(q(iat), n(exp), ""), false},
		{"nbf a string", hdr, dates(n(iat), n(exp), q(iat)), false},
		{"exp a string with a fraction", hdr, dates(n(iat), `"`+n(exp)+`.5"`, ""), false},
		{"exp negative", hdr, dates(n(iat), "-1", ""), false},
		{"exp past the year 9999", hdr, dates(n(iat), "1e300", ""), false},
		{"nbf true", hdr, dates(n(iat), n(exp), "true"), false},

		{"crit naming an unknown extension", `{"alg":"EdDSA","crit":["x-ext"],"x-ext":true}`, claims(""), false},
		{"crit naming a registered claim", `{"alg":"EdDSA","crit":["exp"]}`, claims(""), false},
		{"crit empty", `{"alg":"EdDSA","crit":[]}`, claims(""), false},
		{"Crit in another case", `{"alg":"EdDSA","Crit":["x-ext"],"x-ext":true}`, claims(""), false},

		{"alg twice", `{"alg":"HS256","alg":"EdDSA"}`, claims(""), false},
		{"alg and ALG", `{"alg":"EdDSA","ALG":"none"}`, claims(""), false},
		{"kid as KID", `{"alg":"EdDSA","KID":"k1"}`, claims(""), false},
		{"alg escaped twice", `{"alg":"EdDSA","\u0061lg":"EdDSA"}`, claims(""), false},
		{"aud twice, the last one ours", hdr, claims(`,"aud":"vb"`), false},
		{"exp twice", hdr, claims(fmt.Sprintf(`,"exp":%d`, exp+60)), false},
		{"exp and EXP", hdr, claims(fmt.Sprintf(`,"EXP":%d`, exp)), false},
		{"iss as ISS alone", hdr, fmt.Sprintf(`{"ISS":"https://idp.example","iss":"https://idp.example","aud":"vb","iat":%d,"exp":%d}`, iat, exp), false},
		{"Exp alone", hdr, fmt.Sprintf(`{"iss":"https://idp.example","aud":"vb","iat":%d,"Exp":%d}`, iat, exp), false},
		{"sub with a long s", hdr, claims(`,"\u017Fub":"x"`), false},
		{"kid with the Kelvin sign", `{"alg":"EdDSA","\u212Aid":"k1"}`, claims(""), false},
		{"a key twice deeper down", hdr, claims(`,"ctx":{"a":1,"a":2}`), false},
		{"invalid UTF-8 in a claim", hdr, claims(`,"n":"` + "\xff" + `"`), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := a.Authenticate(context.Background(), &auth.Request{Credential: rawJWT(priv, tc.header, tc.payload)})
			if tc.ok {
				if err != nil || p.Org != "acme" {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ae *auth.Error
			if !errors.Is(err, auth.ErrUnauthorized) || !errors.As(err, &ae) || ae.Reason != auth.ReasonBackendJWTMalformed {
				t.Fatalf("got %v, %v; want unauthorized (backend_jwt_malformed)", p, err)
			}
		})
	}
	t.Run("padding or stray bits", func(t *testing.T) {
		good := rawJWT(priv, hdr, claims(""))
		parts := strings.Split(good, ".")
		for _, bad := range []string{parts[0] + "=." + parts[1] + "." + parts[2], parts[0] + "." + parts[1] + "==." + parts[2]} {
			if _, err := a.Authenticate(context.Background(), &auth.Request{Credential: bad}); !errors.Is(err, auth.ErrUnauthorized) {
				t.Fatalf("accepted a padded part: %v", err)
			}
		}
	})
}

// TestServiceAnswerStrict: the org an auth service's 200 names is read
// strictly. A JSON object with auth_id twice (either order), in another
// case, of another type or not an org id, or any other key twice, is a
// failed answer (502 auth_service_error), never the first or last org it
// names; so is an answer over MaxServiceAnswer, which would otherwise be
// cut short and read as naming no org (the only org, or 500 config_error).
// A body that is not a JSON object ("OK") names no org, as before.
func TestServiceAnswerStrict(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	keyPath := filepath.Join(t.TempDir(), "auth.pem")
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	var answer atomic.Value // []byte, the next 200's body
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(answer.Load().([]byte))
	}))
	defer srv.Close()
	svc, err := auth.NewService(srv.URL, keyPath, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tenants := func(orgs ...string) *config.Tenants {
		y := "orgs:\n"
		for _, o := range orgs {
			y += "  - {id: " + o + ", tier: free}\n"
		}
		ten, err := config.Parse([]byte(y))
		if err != nil {
			t.Fatal(err)
		}
		return ten
	}
	two, one := tenants("acme", "globex"), tenants("acme")
	pad := func(n int) string { return strings.Repeat("p", n) }
	// exactly is a JSON object naming acme of exactly n bytes.
	exactly := func(n int) string {
		head := `{"auth_id":"acme","pad":"`
		return head + pad(n-len(head)-2) + `"}`
	}
	for _, tc := range []struct {
		name   string
		answer string
		ten    *config.Tenants
		org    string      // the principal's org, or "" for an error
		reason auth.Reason // the error's reason
	}{
		{"names an org", `{"auth_id":"globex"}`, two, "globex", ""},
		{"names an org, with more", `{"auth_id":"globex","user":{"id":7,"roles":["a"]}}`, two, "globex", ""},
		{"OK, one org", `OK`, one, "acme", ""},
		{"an object without auth_id, one org", `{"ok":true}`, one, "acme", ""},
		{"OK, two orgs", `OK`, two, "", auth.ReasonAuthServiceNamedNoOrg},
		{"exactly the bound", exactly(auth.MaxServiceAnswer), two, "acme", ""},

		{"auth_id twice, last globex", `{"auth_id":"acme","auth_id":"globex"}`, two, "", auth.ReasonAuthServiceBadAnswer},
		{"auth_id twice, last acme", `{"auth_id":"globex","auth_id":"acme"}`, two, "", auth.ReasonAuthServiceBadAnswer},
		{"auth_id twice, one escaped", `{"auth_id":"acme","\u0061uth_id":"globex"}`, two, "", auth.ReasonAuthServiceBadAnswer},
		{"auth_id and AUTH_ID", `{"auth_id":"acme","AUTH_ID":"globex"}`, two, "", auth.ReasonAuthServiceBadAnswer},
		{"AUTH_ID alone", `{"AUTH_ID":"globex"}`, two, "", auth.ReasonAuthServiceBadAnswer},
		{"AUTH_ID alone, one org", `{"AUTH_ID":"globex"}`, one, "", auth.ReasonAuthServiceBadAnswer},
		{"auth_id a number", `{"auth_id":7}`, one, "", auth.ReasonAuthServiceBadAnswer},
		{"auth_id null", `{"auth_id":null}`, one, "acme", ""},
		{"auth_id empty", `{"auth_id":""}`, one, "", auth.ReasonAuthServiceBadAnswer},
		{"auth_id not an org id", `{"auth_id":"Acme Corp"}`, two, "", auth.ReasonAuthServiceBadAnswer},
		{"another key twice", `{"auth_id":"acme","role":"user","role":"admin"}`, two, "", auth.ReasonAuthServiceBadAnswer},
		{"invalid UTF-8", `{"auth_id":"acme","n":"` + "\xff" + `"}`, two, "", auth.ReasonAuthServiceBadAnswer},
		{"malformed JSON", `{"auth_id":"acme"`, one, "", auth.ReasonAuthServiceBadAnswer},
		{"one byte over the bound", exactly(auth.MaxServiceAnswer + 1), two, "", auth.ReasonAuthServiceAnswerTooLarge},
		{"over the bound, one org", `OK` + pad(auth.MaxServiceAnswer), one, "", auth.ReasonAuthServiceAnswerTooLarge},
		{"over the bound, naming an org cut short", `{"pad":"` + pad(auth.MaxServiceAnswer) + `","auth_id":"globex"}`, two, "", auth.ReasonAuthServiceAnswerTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			answer.Store([]byte(tc.answer))
			p, err := svc.Check(context.Background(), &auth.Request{Credential: "user-token", Method: "POST", Path: "/token"}, tc.ten)
			if tc.org != "" {
				if err != nil || p.Org != tc.org {
					t.Fatalf("got %v, %v; want org %s", p, err, tc.org)
				}
				return
			}
			var ae *auth.Error
			want := auth.ErrServiceFailed
			if tc.reason == auth.ReasonAuthServiceNamedNoOrg {
				want = auth.ErrConfig
			}
			if !errors.Is(err, want) || !errors.As(err, &ae) || ae.Reason != tc.reason {
				t.Fatalf("got %v, %v; want %v (%s)", p, err, want, tc.reason)
			}
		})
	}
}
