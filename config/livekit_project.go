package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
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
// with a DNS name or an IP address as host and a port from 1 to 65535 if
// any, at most 512 bytes (LiveKitServer reads it). The error is the reason
// alone.
func CheckLiveKitURL(s string) error {
	_, err := LiveKitServer(s)
	return err
}

// LiveKitServer is the LiveKit server a project URL names, as host:port:
// the host lowercased without a trailing dot (an IP address in its
// canonical form, IPv6 in brackets), the port the URL's or its scheme's
// default (ws and http 80, wss and https 443). Path, query and fragment
// are ignored, so ws:// and http:// on one host and port are one server,
// as are wss:// and https://. It is how org projects are told apart: a
// LiveKit API key signs tokens for any room of its server, so two projects
// on one server would let either org into the other's rooms. It cannot see
// through DNS (two names of one server, or a name and its address, stay
// two). The error is CheckLiveKitURL's.
func LiveKitServer(s string) (string, error) {
	bad := errors.New("must be a ws(s) or http(s) URL such as wss://acme.livekit.cloud, without user info")
	if len(s) > maxLiveKitURL {
		return "", bad
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil {
		return "", bad
	}
	port := 0
	switch u.Scheme {
	case "ws", "http":
		port = 80
	case "wss", "https":
		port = 443
	default:
		return "", bad
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return "", errors.New("the port must be a number from 1 to 65535")
		}
		port = n
	}
	host := strings.ToLower(u.Hostname())
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			// A zone names an interface of the broker's host, not a server.
			return "", errors.New("the host must be an IP address without a zone (%25...)")
		}
		if a.Is6() && !strings.HasPrefix(u.Host, "[") {
			// ws://::1:7880 could be ::1 port 7880 or ::1:7880 port 80.
			return "", errors.New("an IPv6 address must be in brackets, as in ws://[::1]:7880")
		}
		// ::ffff:127.0.0.1 is 127.0.0.1; 0:0::1 is ::1.
		host = a.Unmap().String()
	} else {
		host = strings.TrimSuffix(host, ".")
		if !dnsName(host) {
			return "", errors.New("the host must be a DNS name (letters, digits, '-', '_' and '.') or an IP address")
		}
		if numericLastLabel(host) {
			// 127.1, 2130706433, 0x7f000001, 0177.0.0.1 and 127.0.0.01
			// are 127.0.0.1 to resolvers, browsers and LiveKit's own
			// tools, yet no IP address to netip: read as names, they would
			// make one server two.
			return "", errors.New("the host must be an IP address in its usual form (such as 127.0.0.1), or a DNS name whose last label is not a number")
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
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

// dnsName reports whether s, lowercased, is a host name a resolver can
// look up: letters, digits, '-', '_' and dots between non-empty labels.
// url.Parse admits far more (percent-decoded bytes, a stray ']').
// numericLastLabel reports whether the last label of the DNS name s is a
// number (decimal, or 0x and hex), which URL parsers and resolvers take
// for an IPv4 address in one of its old forms (the WHATWG URL standard's
// "ends in a number").
func numericLastLabel(s string) bool {
	last := s[strings.LastIndexByte(s, '.')+1:]
	if hex, ok := strings.CutPrefix(last, "0x"); ok {
		return strings.Trim(hex, "0123456789abcdef") == ""
	}
	return last != "" && strings.Trim(last, "0123456789") == ""
}

func dnsName(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
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
	if server, err := LiveKitServer(l.URL); err != nil {
		b.add(at+".url", err.Error())
	} else if first, dup := b.liveKitServers[server]; dup {
		b.add(at+".url", SameLiveKitServer(server, first))
	} else {
		b.liveKitServers[server] = fmt.Sprintf("org %q (%s)", o.ID, at)
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

// SameLiveKitServer is the refusal of an org project on server (as
// LiveKitServer gives it), the server of the project of owner (`org
// "acme"`, and where it is): the field is the project's url.
func SameLiveKitServer(server, owner string) string {
	return fmt.Sprintf("the same LiveKit server (%s) as the project of %s: an API key of a LiveKit server opens every room on it, "+
		"so each org's project must be a server of its own", server, owner)
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

// checkLiveKitDefault checks the org projects of a tenants file against
// the default project (CheckLiveKitProjects).
func (e *Env) checkLiveKitDefault(t *Tenants) []string {
	var ps []OrgProject
	for _, id := range t.Orgs() {
		if l := t.Org(id).LiveKit; l != nil {
			ps = append(ps, OrgProject{Org: id, URL: l.URL, APIKey: l.APIKey})
		}
	}
	return e.liveKitProjectProblems(ps)
}

// OrgProject is an org's own LiveKit project as CheckLiveKitProjects sees
// it: no secret.
type OrgProject struct{ Org, URL, APIKey string }

// CheckLiveKitProjects checks org projects against the default project,
// as CheckTenants checks a tenants file's: for a registry, whose projects
// are in its snapshot rather than in its *Tenants. It refuses an org
// project whose API key is the default project's (LIVEKIT_API_KEY): a
// webhook signed with that key is verified as the default project's, so
// the org's own webhooks would never verify. And one on the default
// project's server (LIVEKIT_URL): any API key of a server opens every room
// on it. The error is an *EnvError naming the variable and the org.
func (e *Env) CheckLiveKitProjects(ps []OrgProject) error {
	if problems := e.liveKitProjectProblems(ps); len(problems) > 0 {
		return &EnvError{Problems: problems}
	}
	return nil
}

func (e *Env) liveKitProjectProblems(ps []OrgProject) []string {
	var problems []string
	for _, p := range ps {
		if e.LiveKitAPIKey != "" && p.APIKey == e.LiveKitAPIKey {
			problems = append(problems, fmt.Sprintf("LIVEKIT_API_KEY: is also the livekit.api_key of org %q; "+
				"an org's own LiveKit project needs its own API key (or drop the org's livekit block to use the default project)", p.Org))
		}
		if server, on := onLiveKitServer(e.LiveKitURL, p.URL); on {
			problems = append(problems, fmt.Sprintf("LIVEKIT_URL: is the LiveKit server (%s) of the livekit.url of org %q; %s",
				server, p.Org, defaultServerReason))
		}
	}
	return problems
}

// defaultServerReason says why an org project may not be on the default
// project's server, and what to do instead.
const defaultServerReason = "an API key of a LiveKit server opens every room on it, so the org could join every other org's room there: " +
	"an org's own project must be a LiveKit server of its own (or drop the org's livekit block to use the default project)"

// onLiveKitServer reports whether an org project at url would be on the
// server of the default project at defaultURL (LIVEKIT_URL), and which
// server that is (LiveKitServer). False when either is unset or does not
// parse (LoadEnv and CheckLiveKitURL refuse those).
func onLiveKitServer(defaultURL, url string) (string, bool) {
	if defaultURL == "" {
		return "", false
	}
	def, err := LiveKitServer(defaultURL)
	if err != nil {
		return "", false
	}
	server, err := LiveKitServer(url)
	return server, err == nil && server == def
}

// DefaultLiveKitServerProblem is the refusal of an org project at url on
// the server of the default project at defaultURL (LIVEKIT_URL), starting
// with field, the path of the url (the admin API's "livekit.url"); "" when
// it is another server, or there is no default project.
func DefaultLiveKitServerProblem(defaultURL, field, url string) string {
	server, on := onLiveKitServer(defaultURL, url)
	if !on {
		return ""
	}
	return fmt.Sprintf("%s: the same LiveKit server (%s) as the broker's default project (LIVEKIT_URL); %s", field, server, defaultServerReason)
}
