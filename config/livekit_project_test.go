package config_test

import (
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/voicebroker/voicebroker/config"
)

// lkSecret is an org project's LiveKit secret in these tests; no message
// may ever hold it.
const lkSecret = "acme-livekit-secret-0123456789abcdefXYZ"

// lkFile is a tenants file whose org acme has its own LiveKit project,
// described by block (the lines under livekit:, indented six spaces).
func lkFile(block string) string {
	return "orgs:\n  - id: acme\n    tier: free\n    livekit:\n" + block + "  - id: globex\n    tier: free\n"
}

func TestLiveKitProjectFromEnv(t *testing.T) {
	t.Setenv("ACME_LK_SECRET", lkSecret)
	ten, err := config.Parse([]byte(lkFile("      url: wss://acme.livekit.example\n      api_key: APIacme\n      api_secret_env: ACME_LK_SECRET\n")))
	if err != nil {
		t.Fatal(err)
	}
	l := ten.Org("acme").LiveKit
	if l == nil || l.URL != "wss://acme.livekit.example" || l.APIKey != "APIacme" || l.Secret() != lkSecret {
		t.Fatalf("project = %+v", l)
	}
	if ten.Org("globex").LiveKit != nil {
		t.Fatal("globex got a project")
	}
}

func TestLiveKitProjectFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "acme.secret")
	// Surrounding whitespace (a trailing newline, as editors write) is
	// trimmed.
	if err := os.WriteFile(path, []byte("\n  "+lkSecret+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ten, err := config.Parse([]byte(lkFile("      url: https://acme.livekit.example\n      api_key: APIacme\n      api_secret_file: " + path + "\n")))
	if err != nil {
		t.Fatal(err)
	}
	if got := ten.Org("acme").LiveKit.Secret(); got != lkSecret {
		t.Fatalf("secret read from the file = %d bytes, want the trimmed secret", len(got))
	}
}

// Every mistake in a livekit block is refused with the field's path and a
// reason, and no message holds the secret.
func TestLiveKitProjectRefusals(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	short := write("short", "only-twenty-chars-xx\n")
	big := write("big", strings.Repeat("x", config.MaxLiveKitSecretFile+1))
	empty := write("empty", " \n\t\n")
	spaced := write("spaced", "two words "+lkSecret)
	unreadable := write("unreadable", lkSecret)
	if err := os.Chmod(unreadable, 0); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LK_GOOD", lkSecret)
	t.Setenv("LK_EMPTY", "")
	t.Setenv("LK_SHORT", "too-short-secret")
	t.Setenv("LK_SPACE", lkSecret+" x")
	os.Unsetenv("LK_UNSET")
	const head = "      url: wss://acme.livekit.example\n      api_key: APIacme\n"
	cases := []struct {
		name, block string
		want        []string
	}{
		{"inline secret", head + "      api_secret: " + lkSecret + "\n",
			[]string{"orgs[0].livekit.api_secret: a secret is never written in the tenants file", "api_secret_env", "api_secret_file"}},
		{"inline secret beside env", head + "      api_secret_env: LK_GOOD\n      api_secret: " + lkSecret + "\n",
			[]string{"orgs[0].livekit.api_secret: a secret is never written"}},
		{"no secret", head, []string{"orgs[0].livekit: the API secret is required"}},
		{"both sources", head + "      api_secret_env: LK_GOOD\n      api_secret_file: " + short + "\n", []string{"orgs[0].livekit: set one of api_secret_env and api_secret_file, not both"}},
		{"unset variable", head + "      api_secret_env: LK_UNSET\n", []string{"orgs[0].livekit.api_secret_env: the environment variable LK_UNSET is not set"}},
		{"empty variable", head + "      api_secret_env: LK_EMPTY\n", []string{"orgs[0].livekit.api_secret_env: the environment variable LK_EMPTY is not set (or empty)"}},
		{"short variable", head + "      api_secret_env: LK_SHORT\n", []string{"orgs[0].livekit.api_secret_env: LK_SHORT: the secret is shorter than 32 characters"}},
		{"variable with a space", head + "      api_secret_env: LK_SPACE\n", []string{"orgs[0].livekit.api_secret_env: LK_SPACE: the secret holds a space"}},
		{"bad variable name", head + "      api_secret_env: \"A=B\"\n", []string{"orgs[0].livekit.api_secret_env: \"A=B\" is not an environment variable name"}},
		{"missing file", head + "      api_secret_file: " + filepath.Join(dir, "nope") + "\n", []string{"orgs[0].livekit.api_secret_file: cannot read " + filepath.Join(dir, "nope") + ": no such file"}},
		{"short file", head + "      api_secret_file: " + short + "\n", []string{"orgs[0].livekit.api_secret_file: " + short + ": the secret is shorter than 32"}},
		{"big file", head + "      api_secret_file: " + big + "\n", []string{"orgs[0].livekit.api_secret_file: " + big + " is over 4096 bytes"}},
		{"empty file", head + "      api_secret_file: " + empty + "\n", []string{"orgs[0].livekit.api_secret_file: " + empty + " is empty"}},
		{"file with a space", head + "      api_secret_file: " + spaced + "\n", []string{"orgs[0].livekit.api_secret_file: " + spaced + ": the secret holds a space"}},
		{"directory", head + "      api_secret_file: " + dir + "\n", []string{"orgs[0].livekit.api_secret_file: " + dir + " is not a regular file"}},
		{"fifo", head + "      api_secret_file: " + fifo + "\n", []string{"orgs[0].livekit.api_secret_file: " + fifo + " is not a regular file"}},
		{"bad url", "      url: ftp://acme.example\n      api_key: APIacme\n      api_secret_env: LK_GOOD\n", []string{"orgs[0].livekit.url: must be a ws(s) or http(s) URL"}},
		{"url with user info", "      url: wss://u:p@acme.example\n      api_key: APIacme\n      api_secret_env: LK_GOOD\n", []string{"orgs[0].livekit.url: must be"}},
		{"no url", "      api_key: APIacme\n      api_secret_env: LK_GOOD\n", []string{"orgs[0].livekit.url: must be"}},
		{"no key", "      url: wss://acme.example\n      api_secret_env: LK_GOOD\n", []string{"orgs[0].livekit.api_key: required"}},
		{"key with a space", "      url: wss://acme.example\n      api_key: API acme\n      api_secret_env: LK_GOOD\n", []string{"orgs[0].livekit.api_key: required, at most 256 printable"}},
		{"unknown field", head + "      api_secret_env: LK_GOOD\n      secret: x\n", []string{"orgs[0].livekit.secret", "unknown field", "api_secret_env, api_secret_file"}},
	}
	if os.Geteuid() != 0 { // root reads any file
		cases = append(cases, struct {
			name, block string
			want        []string
		}{"unreadable file", head + "      api_secret_file: " + unreadable + "\n", []string{"orgs[0].livekit.api_secret_file: cannot read " + unreadable + ": permission denied"}})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte(lkFile(tc.block)))
			var ve *config.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("accepted, or not a *ValidationError: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("%q not in:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), lkSecret) || strings.Contains(err.Error(), "too-short-secret") {
				t.Fatalf("the message holds the secret:\n%v", err)
			}
			if strings.Contains(err.Error(), "api_secret,") || strings.Contains(err.Error(), ", api_secret\n") {
				t.Fatalf("the message suggests api_secret:\n%v", err)
			}
		})
	}
}

// A LiveKit project belongs to one org: its API key is how webhooks find
// it. Refused in one file, and when a registry composes orgs.
func TestLiveKitProjectKeyOneOrg(t *testing.T) {
	t.Setenv("LK_A", lkSecret)
	t.Setenv("LK_B", lkSecret+"-b")
	y := "orgs:\n" +
		"  - id: acme\n    tier: free\n    livekit: {url: 'wss://a.example', api_key: SHARED, api_secret_env: LK_A}\n" +
		"  - id: globex\n    tier: free\n    livekit: {url: 'wss://b.example', api_key: SHARED, api_secret_env: LK_B}\n"
	_, err := config.Parse([]byte(y))
	if err == nil || !strings.Contains(err.Error(), `orgs[1].livekit.api_key: the same LiveKit API key is the project of org "acme" (orgs[0].livekit)`) {
		t.Fatalf("shared API key: %v", err)
	}
	one := func(id, key string) *config.Tenants {
		t.Helper()
		ten, err := config.Parse([]byte("orgs:\n  - id: " + id + "\n    tier: free\n    livekit: {url: 'wss://" + id + ".example', api_key: " + key + ", api_secret_env: LK_A}\n"))
		if err != nil {
			t.Fatal(err)
		}
		return ten
	}
	_, err = config.Compose(one("acme", "SHARED"), one("globex", "SHARED"))
	if err == nil || !strings.Contains(err.Error(), `org "globex": livekit.api_key: the same LiveKit API key is the project of org "acme"`) {
		t.Fatalf("compose: %v", err)
	}
	if _, err := config.Compose(one("acme", "KA"), one("globex", "KB")); err != nil {
		t.Fatal(err)
	}
}

// LiveKitServer: every spelling of one server is one host:port.
func TestLiveKitServer(t *testing.T) {
	cases := []struct{ url, want string }{
		{"wss://acme.livekit.cloud", "acme.livekit.cloud:443"},
		{"https://ACME.LiveKit.Cloud/", "acme.livekit.cloud:443"},
		{"WSS://acme.livekit.cloud:443/rtc?x=1#f", "acme.livekit.cloud:443"},
		{"wss://acme.livekit.cloud.", "acme.livekit.cloud:443"},
		{"ws://acme.example", "acme.example:80"},
		{"http://acme.example:80", "acme.example:80"},
		{"ws://127.0.0.1:7880", "127.0.0.1:7880"},
		{"http://127.0.0.1:07880/", "127.0.0.1:7880"},
		{"ws://[::1]:7880", "[::1]:7880"},
		{"ws://[0:0::1]:7880", "[::1]:7880"},
		{"ws://[::FFFF:127.0.0.1]:7880", "127.0.0.1:7880"},
		{"wss://[2001:DB8::1]", "[2001:db8::1]:443"},
		{"ws://acme.example:", "acme.example:80"},
	}
	for _, tc := range cases {
		if got, err := config.LiveKitServer(tc.url); err != nil || got != tc.want {
			t.Errorf("LiveKitServer(%q) = %q, %v; want %q", tc.url, got, err, tc.want)
		}
	}
	// Two servers: another port, another host.
	for _, pair := range [][2]string{{"ws://127.0.0.1:7880", "ws://127.0.0.1:7890"}, {"wss://a.example", "ws://a.example"}, {"wss://a.example", "wss://b.example"}} {
		a, _ := config.LiveKitServer(pair[0])
		b, _ := config.LiveKitServer(pair[1])
		if a == b {
			t.Errorf("%q and %q are one server %q", pair[0], pair[1], a)
		}
	}
	for _, bad := range []string{"", "ftp://a.example", "wss://", "wss://u@a.example", "wss://a.example:0", "wss://a.example:65536", "wss://a.example:99999999999999999999", "wss://.", "a.example:443", "ws://[fe80::1%25eth0]:7880", "ws://a..example", "wss://%5D0", "ws://::1:7880",
		// Old IPv4 forms that resolvers and browsers read as 127.0.0.1
		// (a reviewer's bypass of one server per org).
		"ws://127.1:7880", "ws://2130706433:7880", "ws://0x7f000001:7880", "ws://0X7F000001:7880", "ws://0177.0.0.1:7880",
		"ws://127.0.0.01:7880", "ws://0x7f.0.0.1:7880", "ws://10.0.0.010"} {
		if got, err := config.LiveKitServer(bad); err == nil {
			t.Errorf("LiveKitServer(%q) = %q, want an error", bad, got)
		}
		if config.CheckLiveKitURL(bad) == nil {
			t.Errorf("CheckLiveKitURL(%q) accepted it", bad)
		}
	}
}

// Two orgs' projects on one LiveKit server are refused, however the URL
// is spelt: either org's API key signs tokens for the other's rooms. In one
// file, and when a registry composes orgs.
func TestLiveKitProjectServerOneOrg(t *testing.T) {
	t.Setenv("LK_A", lkSecret)
	t.Setenv("LK_B", lkSecret+"-b")
	y := "orgs:\n" +
		"  - id: acme\n    tier: free\n    livekit: {url: 'wss://lk.example', api_key: KA, api_secret_env: LK_A}\n" +
		"  - id: globex\n    tier: free\n    livekit: {url: 'https://LK.example:443/rtc', api_key: KB, api_secret_env: LK_B}\n"
	_, err := config.Parse([]byte(y))
	want := `orgs[1].livekit.url: the same LiveKit server (lk.example:443) as the project of org "acme" (orgs[0].livekit): ` +
		"an API key of a LiveKit server opens every room on it, so each org's project must be a server of its own"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("shared server: %v", err)
	}
	if strings.Contains(err.Error(), lkSecret) {
		t.Fatal("the message holds the secret")
	}
	// Another port of one host is another server.
	if _, err := config.Parse([]byte(strings.Replace(y, "https://LK.example:443/rtc", "wss://lk.example:7443", 1))); err != nil {
		t.Fatal(err)
	}
	one := func(id, url, key string) *config.Tenants {
		t.Helper()
		ten, err := config.Parse([]byte("orgs:\n  - id: " + id + "\n    tier: free\n    livekit: {url: '" + url + "', api_key: " + key + ", api_secret_env: LK_A}\n"))
		if err != nil {
			t.Fatal(err)
		}
		return ten
	}
	_, err = config.Compose(one("acme", "ws://127.0.0.1:7880", "KA"), one("globex", "http://127.0.0.1:7880/", "KB"))
	if err == nil || !strings.Contains(err.Error(), `org "globex": livekit.url: the same LiveKit server (127.0.0.1:7880) as the project of org "acme"`) {
		t.Fatalf("compose: %v", err)
	}
	if _, err := config.Compose(one("acme", "ws://127.0.0.1:7880", "KA"), one("globex", "ws://127.0.0.1:7890", "KB")); err != nil {
		t.Fatal(err)
	}
}

// An org project may not be on the default project's LiveKit server
// (LIVEKIT_URL): at start and on every reload (CheckTenants), and the
// admin API refuses it with DefaultLiveKitServerProblem.
func TestLiveKitProjectNotTheDefaultServer(t *testing.T) {
	t.Setenv("LK_A", lkSecret)
	ten, err := config.Parse([]byte(lkFile("      url: http://127.0.0.1:7880/\n      api_key: APIacme\n      api_secret_env: LK_A\n")))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"LIVEKIT_URL": "ws://127.0.0.1:7880", "LIVEKIT_API_KEY": "DEFAULTKEY", "LIVEKIT_API_SECRET": strings.Repeat("d", 40)}
	e, err := config.LoadEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	err = e.CheckTenants(ten)
	if err == nil || !strings.Contains(err.Error(), `LIVEKIT_URL: is the LiveKit server (127.0.0.1:7880) of the livekit.url of org "acme"; `+
		"an API key of a LiveKit server opens every room on it") {
		t.Fatalf("CheckTenants: %v", err)
	}
	if strings.Contains(err.Error(), lkSecret) || strings.Contains(err.Error(), strings.Repeat("d", 40)) {
		t.Fatal("the message holds a secret")
	}
	// A registry's projects, which are not in its tenants, are checked
	// alike.
	err = e.CheckLiveKitProjects([]config.OrgProject{{Org: "globex", URL: "wss://globex.example", APIKey: "K1"}, {Org: "acme", URL: "ws://127.0.0.1:7880/x", APIKey: "K2"}})
	var ee *config.EnvError
	if !errors.As(err, &ee) || len(ee.Problems) != 1 || !strings.HasPrefix(ee.Problems[0], `LIVEKIT_URL: is the LiveKit server (127.0.0.1:7880) of the livekit.url of org "acme"`) {
		t.Fatalf("CheckLiveKitProjects: %v", err)
	}
	if got := config.DefaultLiveKitServerProblem(env["LIVEKIT_URL"], "livekit.url", "http://127.0.0.1:7880/"); !strings.HasPrefix(got,
		"livekit.url: the same LiveKit server (127.0.0.1:7880) as the broker's default project (LIVEKIT_URL); an API key") {
		t.Fatalf("DefaultLiveKitServerProblem = %q", got)
	}
	for _, other := range []string{"ws://127.0.0.1:7890", "ws://localhost.example:7880"} {
		env["LIVEKIT_URL"] = other
		if e, _ = config.LoadEnv(func(k string) string { return env[k] }); e.CheckTenants(ten) != nil {
			t.Fatalf("refused with the default project on %s", other)
		}
		if got := config.DefaultLiveKitServerProblem(other, "livekit.url", "http://127.0.0.1:7880/"); got != "" {
			t.Fatalf("DefaultLiveKitServerProblem(%s) = %q", other, got)
		}
	}
	if got := config.DefaultLiveKitServerProblem("", "livekit.url", "http://127.0.0.1:7880/"); got != "" {
		t.Fatalf("no default project: %q", got)
	}
}

// FuzzLiveKitServer: LiveKitServer never panics, and what it accepts is a
// host:port whose port is 1 to 65535 and whose host is lowercase; it is
// CheckLiveKitURL's verdict; it is a fixed point (the server's own ws://
// URL names it); and the scheme's twin (ws and http, wss and https) and a
// path or query leave it unchanged.
func FuzzLiveKitServer(f *testing.F) {
	f.Add("wss://acme.livekit.cloud")
	f.Add("HTTPS://Acme.LiveKit.Cloud:443/rtc?a=b#c")
	f.Add("ws://127.0.0.1:7880")
	f.Add("ws://[::ffff:127.0.0.1]:07880/")
	f.Add("ws://[fe80::1%25eth0]:1") // a zone: refused
	f.Add("wss://a.example.:65536")
	f.Add("wss://%41.example")
	f.Add("wss://u:p@a.example")
	f.Add("ftp://a.example")
	f.Add("wss://[::1")
	f.Fuzz(func(t *testing.T, s string) {
		server, err := config.LiveKitServer(s)
		if (err == nil) != (config.CheckLiveKitURL(s) == nil) {
			t.Fatalf("LiveKitServer and CheckLiveKitURL disagree on %q", s)
		}
		if err != nil {
			return
		}
		host, port, err := net.SplitHostPort(server)
		if err != nil || host == "" || host != strings.ToLower(host) {
			t.Fatalf("LiveKitServer(%q) = %q: not host:port with a lowercase host", s, server)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			t.Fatalf("LiveKitServer(%q) = %q: port out of range or not canonical", s, server)
		}
		// A host the URL parser cannot take back (a percent-decoded byte)
		// has no URL of its own; any other is a fixed point.
		if again, err := config.LiveKitServer("ws://" + server); err == nil && again != server {
			t.Fatalf("LiveKitServer(ws://%s) = %q, want %q", server, again, server)
		}
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		twin := map[string]string{"ws": "http", "http": "ws", "wss": "https", "https": "wss"}
		u.Scheme, u.Path, u.RawPath, u.RawQuery, u.Fragment = twin[u.Scheme], "/some/path", "", "q=1", ""
		if len(u.String()) <= 512 {
			if got, err := config.LiveKitServer(u.String()); err != nil || got != server {
				t.Fatalf("LiveKitServer(%q) = %q, %v; %q gave %q", u, got, err, s, server)
			}
		}
	})
}

// An org project may not have the default project's API key
// (LIVEKIT_API_KEY): at start and on every reload.
func TestLiveKitProjectNotTheDefaultKey(t *testing.T) {
	t.Setenv("LK_A", lkSecret)
	ten, err := config.Parse([]byte(lkFile("      url: wss://acme.example\n      api_key: DEFAULTKEY\n      api_secret_env: LK_A\n")))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"LIVEKIT_URL": "ws://127.0.0.1:7880", "LIVEKIT_API_KEY": "DEFAULTKEY", "LIVEKIT_API_SECRET": strings.Repeat("d", 40)}
	e, err := config.LoadEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if err := e.CheckTenants(ten); err == nil || !strings.Contains(err.Error(), `LIVEKIT_API_KEY: is also the livekit.api_key of org "acme"`) {
		t.Fatalf("CheckTenants: %v", err)
	}
	env["LIVEKIT_API_KEY"] = "OTHER"
	if e, _ = config.LoadEnv(func(k string) string { return env[k] }); e.CheckTenants(ten) != nil {
		t.Fatal("refused with another default key")
	}
}

// ReadSecret reads the secret of a block that was only decoded (as an
// import reads a file), with paths relative to the org.
func TestLiveKitReadSecret(t *testing.T) {
	t.Setenv("LK_A", lkSecret)
	l := &config.OrgLiveKit{URL: "wss://a.example", APIKey: "K", APISecretEnv: "LK_A"}
	if s, err := l.ReadSecret(); err != nil || s != lkSecret {
		t.Fatalf("ReadSecret = %d bytes, %v", len(s), err)
	}
	l = &config.OrgLiveKit{URL: "wss://a.example", APIKey: "K", APISecretEnv: "LK_NOT_SET_HERE"}
	if _, err := l.ReadSecret(); err == nil || !strings.HasPrefix(strings.TrimPrefix(err.Error(), "invalid tenants file:\n  "), "livekit.api_secret_env: the environment variable LK_NOT_SET_HERE") {
		t.Fatalf("ReadSecret: %v", err)
	}
	if got := config.LiveKitSecretEnvName("acme-eu-2"); got != "LIVEKIT_API_SECRET_ACME_EU_2" {
		t.Fatalf("LiveKitSecretEnvName = %q", got)
	}
}

// FuzzLiveKitBlock: whatever an org's livekit block holds, the loader
// never panics, a refusal never holds the secret, and what it accepts is a
// project with a usable URL, key and secret.
func FuzzLiveKitBlock(f *testing.F) {
	f.Add("wss://acme.livekit.example", "APIacme", "LK_FUZZ", "", "")
	f.Add("ws://127.0.0.1:7880", "k", "LK_FUZZ", "", lkSecret)
	f.Add("https://a.example/x?y", "APIacme", "", "/dev/zero", "")
	f.Add("wss://a", "A B", "LK_FUZZ", "/etc/hostname", "")
	f.Add("", "", "", "", "")
	f.Add("wss://[::1]:1", "\u00e9", "1BAD", "", "")
	f.Fuzz(func(t *testing.T, url, key, env, file, inline string) {
		t.Setenv("LK_FUZZ", lkSecret)
		l := &config.OrgLiveKit{URL: url, APIKey: key, APISecretEnv: env, APISecretFile: file, APISecret: inline}
		ten, err := config.Build(&config.File{Orgs: []config.Org{{ID: "acme", Tier: "free", LiveKit: l}}})
		if err != nil {
			if strings.Contains(err.Error(), lkSecret) {
				t.Fatal("a refusal holds the secret")
			}
			return
		}
		got := ten.Org("acme").LiveKit
		if inline != "" || (env == "") == (file == "") {
			t.Fatal("accepted an inline secret, or not exactly one source")
		}
		if config.CheckLiveKitURL(got.URL) != nil || config.CheckLiveKitAPIKey(got.APIKey) != nil || config.CheckLiveKitSecret(got.Secret()) != nil {
			t.Fatalf("accepted an unusable project %q %q", got.URL, got.APIKey)
		}
	})
}
