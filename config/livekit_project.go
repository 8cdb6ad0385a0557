package config

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Bounds of an org's own LiveKit project (the `livekit:` block).
const (
	// MinLiveKitSecret is the shortest API secret accepted: LiveKit's own
	// servers refuse shorter ones.
	MinLiveKitSecret = 32
	// MaxLiveKitSecret bounds the secret.
	MaxLiveKitSecret = 512
	// MaxLiveKitSecretFile bounds api_secret_file: the file is read up to
	// this many bytes (a secret and its surrounding whitespace).
	MaxLiveKitSecretFile = 4096
	maxLiveKitURL        = 512
	maxLiveKitAPIKey     = 256
)

// envNamePattern is a POSIX environment variable name, bounded.
var envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// OrgLiveKit is an org's own LiveKit project (contract §2, the org's
// `livekit:` block): its tokens are signed for this project, its room
// calls go to it, and webhooks signed with its API key are verified with
// its secret. The secret is never written in the tenants file: it comes
// from an environment variable (api_secret_env) or a file
// (api_secret_file), read when the file is loaded.
type OrgLiveKit struct {
	URL           string `yaml:"url"`
	APIKey        string `yaml:"api_key"`
	APISecretEnv  string `yaml:"api_secret_env"`
	APISecretFile string `yaml:"api_secret_file"`
	// APISecret is refused when set: it is decoded only so that the
	// refusal names the field and says what to write instead, rather than
	// "unknown field".
	APISecret string `yaml:"api_secret,omitempty"`

	secret string // read from APISecretEnv or APISecretFile at Build
}

// Secret returns the API secret read when the file was built; "" for a
// block that was not built (decoded only).
func (l *OrgLiveKit) Secret() string { return l.secret }

// ReadSecret reads the API secret from api_secret_env or api_secret_file
// and checks it. Its errors name the variable or the file, never the
// secret, with field paths relative to the org ("livekit.api_secret_env:
// ..."), in a *ValidationError.
func (l *OrgLiveKit) ReadSecret() (string, error) {
	var v validator
	s := readLiveKitSecret(&v, "livekit.", l)
	if len(v.problems) > 0 {
		return "", &ValidationError{Problems: v.problems}
	}
	return s, nil
}

// LiveKitSecretEnvName is the api_secret_env that `broker tenants export`
// writes for an org's project, whose secret stays in the database:
// LIVEKIT_API_SECRET_ and the org id in capitals, "-" as "_" (org acme-eu:
// LIVEKIT_API_SECRET_ACME_EU). Set it before serving or importing the
// exported file.
func LiveKitSecretEnvName(org string) string {
	return "LIVEKIT_API_SECRET_" + strings.ToUpper(strings.ReplaceAll(org, "-", "_"))
}

// CheckLiveKitURL checks a LiveKit project URL: ws, wss, http or https,
// with a host, at most 512 bytes. The error is the reason alone.
func CheckLiveKitURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || len(s) > maxLiveKitURL || u.User != nil ||
		(u.Scheme != "ws" && u.Scheme != "wss" && u.Scheme != "http" && u.Scheme != "https") {
		return errors.New("must be a ws(s) or http(s) URL such as wss://acme.livekit.cloud, without user info")
	}
	return nil
}

// CheckLiveKitAPIKey checks a LiveKit API key: 1 to 256 printable ASCII
// characters without spaces.
func CheckLiveKitAPIKey(s string) error {
	if s == "" || len(s) > maxLiveKitAPIKey || !printableASCII(s) {
		return errors.New("required, at most 256 printable characters without spaces")
	}
	return nil
}

// CheckLiveKitSecret checks a LiveKit API secret's shape; the error never
// quotes it.
func CheckLiveKitSecret(s string) error {
	switch {
	case len(s) < MinLiveKitSecret:
		return fmt.Errorf("the secret is shorter than %d characters", MinLiveKitSecret)
	case len(s) > MaxLiveKitSecret:
		return fmt.Errorf("the secret is longer than %d characters", MaxLiveKitSecret)
	case !printableASCII(s):
		return errors.New("the secret holds a space, control or non-ASCII character")
	}
	return nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// liveKitProject checks an org's `livekit:` block at field path at and
// reads its secret.
func (b *builder) liveKitProject(at string, o *Org) {
	l := o.LiveKit
	if l == nil {
		return
	}
	if err := CheckLiveKitURL(l.URL); err != nil {
		b.add(at+".url", err.Error())
	}
	if err := CheckLiveKitAPIKey(l.APIKey); err != nil {
		b.add(at+".api_key", err.Error())
	} else if first, dup := b.liveKitKeys[l.APIKey]; dup {
		b.add(at+".api_key", fmt.Sprintf("the same LiveKit API key is the project of %s; a LiveKit project belongs to one org", first))
	} else {
		b.liveKitKeys[l.APIKey] = fmt.Sprintf("org %q (%s)", o.ID, at)
	}
	l.secret = readLiveKitSecret(&b.validator, at+".", l)
}

// readLiveKitSecret reads and checks the secret of l, adding problems with
// field paths under prefix.
func readLiveKitSecret(v *validator, prefix string, l *OrgLiveKit) string {
	if l.APISecret != "" {
		v.add(prefix+"api_secret", "a secret is never written in the tenants file: name an environment variable "+
			"that holds it with api_secret_env, or a file with api_secret_file")
		return ""
	}
	field := strings.TrimSuffix(prefix, ".")
	switch {
	case l.APISecretEnv != "" && l.APISecretFile != "":
		v.add(field, "set one of api_secret_env and api_secret_file, not both")
	case l.APISecretEnv != "":
		return readSecretEnv(v, prefix+"api_secret_env", l.APISecretEnv)
	case l.APISecretFile != "":
		return readSecretFile(v, prefix+"api_secret_file", l.APISecretFile)
	default:
		v.add(field, "the API secret is required: name an environment variable with api_secret_env, or a file with api_secret_file")
	}
	return ""
}

func readSecretEnv(v *validator, at, name string) string {
	if !envNamePattern.MatchString(name) {
		v.add(at, fmt.Sprintf("%q is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)", truncate(name)))
		return ""
	}
	s, ok := os.LookupEnv(name)
	if !ok || s == "" {
		v.add(at, fmt.Sprintf("the environment variable %s is not set (or empty); set it to the project's API secret", name))
		return ""
	}
	if err := CheckLiveKitSecret(s); err != nil {
		v.add(at, fmt.Sprintf("%s: %v", name, err))
		return ""
	}
	return s
}

func readSecretFile(v *validator, at, path string) string {
	if !utf8.ValidString(path) || strings.ContainsRune(path, 0) || len(path) > 4096 {
		v.add(at, "not a usable file path")
		return ""
	}
	// A FIFO or a device would block or never end: only a regular file
	// (a symbolic link to one, as mounted secrets are) is read.
	fi, err := os.Stat(path)
	if err != nil {
		v.add(at, fmt.Sprintf("cannot read %s: %v", truncate(path), pathError(err)))
		return ""
	}
	if !fi.Mode().IsRegular() {
		v.add(at, fmt.Sprintf("%s is not a regular file", truncate(path)))
		return ""
	}
	f, err := os.Open(path)
	if err != nil {
		v.add(at, fmt.Sprintf("cannot read %s: %v", truncate(path), pathError(err)))
		return ""
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxLiveKitSecretFile+1))
	if err != nil {
		v.add(at, fmt.Sprintf("cannot read %s: %v", truncate(path), pathError(err)))
		return ""
	}
	if len(data) > MaxLiveKitSecretFile {
		v.add(at, fmt.Sprintf("%s is over %d bytes: it should hold the API secret alone", truncate(path), MaxLiveKitSecretFile))
		return ""
	}
	s := strings.TrimSpace(string(data))
	if s == "" {
		v.add(at, fmt.Sprintf("%s is empty", truncate(path)))
		return ""
	}
	if err := CheckLiveKitSecret(s); err != nil {
		v.add(at, fmt.Sprintf("%s: %v", truncate(path), err))
		return ""
	}
	return s
}

// pathError is an os error without the path, which the message names
// already.
func pathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// checkLiveKitDefault refuses an org project whose API key is the default
// project's (LIVEKIT_API_KEY): a webhook signed with that key is verified
// as the default project's, so the org's own webhooks would never verify.
func (e *Env) checkLiveKitDefault(t *Tenants) []string {
	if e.LiveKitAPIKey == "" {
		return nil
	}
	var problems []string
	for _, id := range t.Orgs() {
		if l := t.Org(id).LiveKit; l != nil && l.APIKey == e.LiveKitAPIKey {
			problems = append(problems, fmt.Sprintf("LIVEKIT_API_KEY: is also the livekit.api_key of org %q; "+
				"an org's own LiveKit project needs its own API key (or drop the org's livekit block to use the default project)", id))
		}
	}
	return problems
}
