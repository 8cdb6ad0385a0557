package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/voicebroker/voicebroker/internal/apikey"
)

// DefaultSecretOrg is the org AUTH_API_SECRET stands for (Sayna's single
// shared secret); the tenants file must list it.
const DefaultSecretOrg = "default"

// Bounds of an API secret. A credential longer than MaxSecretLength, or one
// with a character outside printable ASCII, cannot arrive in an
// Authorization header, so such a secret could never match.
const (
	MinSecretLength = 32
	MaxSecretLength = 1024
	maxSecretsJSON  = 1 << 20
)

// parseSecretsJSON reads AUTH_API_SECRETS_JSON strictly: an array of
// objects with exactly the keys "id" and "secret" (exact case, once each),
// string values, nothing after the array. Errors name the entry, never a
// value.
func parseSecretsJSON(js string) ([]APISecret, error) {
	shape := errors.New(`must be a JSON array of {"id":"<org>","secret":"..."} objects`)
	if len(js) > maxSecretsJSON {
		return nil, fmt.Errorf("over %d bytes", maxSecretsJSON)
	}
	dec := json.NewDecoder(strings.NewReader(js))
	syntax := func(err error) error {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fmt.Errorf("%v: not valid JSON near byte %d", shape, se.Offset)
		}
		return fmt.Errorf("%v: not valid JSON", shape)
	}
	delim := func(want json.Delim) error {
		tok, err := dec.Token()
		if err != nil {
			return syntax(err)
		}
		if d, ok := tok.(json.Delim); !ok || d != want {
			return shape
		}
		return nil
	}
	if err := delim('['); err != nil {
		return nil, err
	}
	var out []APISecret
	for i := 0; dec.More(); i++ {
		if err := delim('{'); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		fields := map[string]string{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return nil, syntax(err)
			}
			key, _ := tok.(string)
			if key != "id" && key != "secret" {
				return nil, fmt.Errorf(`entry %d: unknown key %q; only "id" and "secret"`, i, truncate(key))
			}
			if _, dup := fields[key]; dup {
				return nil, fmt.Errorf("entry %d: %q appears twice", i, key)
			}
			tok, err = dec.Token()
			if err != nil {
				return nil, syntax(err)
			}
			v, ok := tok.(string)
			if !ok {
				return nil, fmt.Errorf("entry %d: %q must be a string", i, key)
			}
			fields[key] = v
		}
		if err := delim('}'); err != nil {
			return nil, err
		}
		id, hasID := fields["id"]
		secret, hasSecret := fields["secret"]
		if !hasID || !hasSecret {
			return nil, fmt.Errorf(`entry %d: needs both "id" and "secret"`, i)
		}
		out = append(out, APISecret{ID: id, Secret: secret, Source: fmt.Sprintf("AUTH_API_SECRETS_JSON entry %d", i)})
	}
	if err := delim(']'); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%v: something follows the array", shape)
	}
	return out, nil
}

// checkSecrets finds secrets that could never match, or would match
// ambiguously. Messages name the entry and its id, never the secret.
func checkSecrets(list []APISecret) []string {
	var problems []string
	bad := func(s APISecret, reason string) {
		problems = append(problems, fmt.Sprintf("%s (id %q): %s", s.Source, truncate(s.ID), reason))
	}
	seen := map[string]string{}
	for _, s := range list {
		if !ValidID(s.ID) {
			bad(s, "the id must match "+IDGrammar)
		}
		switch {
		case len(s.Secret) < MinSecretLength:
			bad(s, fmt.Sprintf("the secret is shorter than %d bytes", MinSecretLength))
		case len(s.Secret) > MaxSecretLength:
			bad(s, fmt.Sprintf("the secret is longer than %d bytes", MaxSecretLength))
		case strings.IndexFunc(s.Secret, func(r rune) bool { return r <= ' ' || r >= 0x7f }) >= 0:
			bad(s, "the secret holds a space, control or non-ASCII character, which a Bearer credential cannot carry")
		case strings.HasPrefix(s.Secret, string(apikey.Admin)+"_"):
			bad(s, "the secret begins with ak_, the prefix of platform admin keys, which are never tried as API secrets; use a secret without that prefix")
		case apikey.Looks(s.Secret):
			bad(s, "the secret begins with sk_ or pk_: such credentials are always tried as API keys, so it could never match; use a secret without that prefix")
		}
		if prev, dup := seen[s.Secret]; dup && s.Secret != "" {
			bad(s, "the same secret is listed twice (also "+prev+"); each secret must name one org")
		}
		seen[s.Secret] = s.Source
	}
	return problems
}

// CheckTenants checks the environment against a tenants file: every API
// secret must name an org the file lists; with AUTH_REQUIRED=false the org
// a request without a credential stands for must exist (see
// AnonymousOrg); and no org's own LiveKit project may have the default
// project's API key (LIVEKIT_API_KEY). It runs at start and on every
// reload, so a reload that breaks any of them is refused.
func (e *Env) CheckTenants(t *Tenants) error {
	var problems []string
	if !e.AuthRequired {
		if _, ok := AnonymousOrg(t); !ok {
			orgs := t.Orgs()
			listed := strings.Join(orgs[:min(len(orgs), 5)], ", ")
			if len(orgs) > 5 {
				listed += ", …"
			}
			problems = append(problems, fmt.Sprintf("AUTH_REQUIRED: false lets a request without a credential through as the only org, or as org %q when there are several; the tenants file has %d orgs (%s) and none is %q: add an org %q, keep one org, or set AUTH_REQUIRED=true",
				DefaultSecretOrg, len(orgs), listed, DefaultSecretOrg, DefaultSecretOrg))
		}
	}
	for _, s := range e.AuthAPISecrets {
		if t.Org(s.ID) != nil {
			continue
		}
		reason := fmt.Sprintf("org %q is not in the tenants file, so this secret would fail on every use", s.ID)
		if s.Source == "AUTH_API_SECRET" {
			reason = fmt.Sprintf("stands for org %q, which the tenants file does not list; add that org or use AUTH_API_SECRETS_JSON with your org's id", s.ID)
			problems = append(problems, "AUTH_API_SECRET: "+reason)
			continue
		}
		problems = append(problems, fmt.Sprintf("AUTH_API_SECRETS_JSON: %s (id %q): %s", strings.TrimPrefix(s.Source, "AUTH_API_SECRETS_JSON "), truncate(s.ID), reason))
	}
	problems = append(problems, e.checkLiveKitDefault(t)...)
	if len(problems) > 0 {
		return &EnvError{Problems: problems}
	}
	return nil
}

// AnonymousOrg returns the org a request without a credential stands for
// when AUTH_REQUIRED=false (development only): the only org, or the org
// "default" when there are several; ok is false when there is none.
func AnonymousOrg(t *Tenants) (id string, ok bool) {
	orgs := t.Orgs()
	switch {
	case len(orgs) == 1:
		return orgs[0], true
	case t.Org(DefaultSecretOrg) != nil:
		return DefaultSecretOrg, true
	}
	return "", false
}
