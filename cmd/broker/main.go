// Command broker runs voicebroker and its helper subcommands:
//
//	broker [serve]                              run the service
//	broker keys new --org ORG --id ID --scopes a,b [--env live|test]
//	broker keys new --publishable --org ORG --agent AGENT [--origins a,b] [--env live|test]
//	broker keys new --admin
//	broker config check FILE
//	broker tenants import FILE | export
//	broker migrate
//	broker version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/apikey"
	"github.com/voicebroker/voicebroker/internal/app"
	"github.com/voicebroker/voicebroker/internal/jsonlog"
	"github.com/voicebroker/voicebroker/pkg/origins"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

const usage = `usage:
  broker [serve]                      run the broker (configured by BROKER_* variables)
  broker keys new --org ORG --id ID --scopes a,b [--env live|test]
  broker keys new --publishable --org ORG --agent AGENT [--origins a,b] [--env live|test]
  broker keys new --admin             a platform admin key for the admin API (BROKER_ADMIN_KEY_HASHES)
  broker config check FILE            validate a tenants file
  broker tenants import FILE          load a tenants file into the database (BROKER_DATABASE_URL)
  broker tenants export               print the database's tenants as a tenants file
  broker migrate                      bring the database's registry schema up to date
  broker version
`

// run is main without os.Exit, for tests.
func run(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		return serve(stdout, stderr, getenv)
	}
	switch {
	case args[0] == "serve" && len(args) == 1:
		return serve(stdout, stderr, getenv)
	case args[0] == "keys" && len(args) >= 2 && args[1] == "new":
		return keysNew(args[2:], stdout, stderr)
	case args[0] == "config" && len(args) == 3 && args[1] == "check":
		return configCheck(args[2], stdout, stderr)
	case args[0] == "tenants" && len(args) >= 2:
		return tenantsCmd(args[1:], stdout, stderr, getenv)
	case args[0] == "migrate" && len(args) == 1:
		return migrateCmd(stdout, stderr, getenv)
	case args[0] == "version":
		fmt.Fprintln(stdout, app.Version)
		return 0
	case args[0] == "help" || args[0] == "-h" || args[0] == "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintln(stderr, "broker:", misuse(args))
	fmt.Fprint(stderr, usage)
	return 2
}

// misuse says what is wrong with a command line run did not take, in one
// line before the usage: a typo such as "servee" or "config chek" would
// otherwise look like a request for help.
func misuse(args []string) string {
	switch args[0] {
	case "serve", "migrate":
		return fmt.Sprintf("%s takes no arguments, got %q", args[0], strings.Join(args[1:], " "))
	case "version":
		return "version takes no arguments"
	case "tenants":
		return "tenants needs a subcommand: tenants import FILE, or tenants export"
	case "config", "keys":
		sub := map[string]string{"config": "check", "keys": "new"}[args[0]]
		if len(args) < 2 || args[1] != sub {
			if len(args) < 2 {
				return fmt.Sprintf("%s needs a subcommand: %s %s", args[0], args[0], sub)
			}
			return fmt.Sprintf("unknown command %q", args[0]+" "+args[1])
		}
		// Only "config check" with the wrong number of files is left.
		return fmt.Sprintf("config check takes one FILE, got %d arguments", len(args)-2)
	}
	return fmt.Sprintf("unknown command %q", args[0])
}

// gcPercent is the broker's garbage collector target when neither GOGC
// nor GOMEMLIMIT is set: the live heap is small (the tenants snapshot and
// the connections) and every request's garbage dies young, so at Go's
// default of 100 the collector runs every few hundred requests and costs
// more CPU per request than anything the broker does besides signing.
const gcPercent = 400

// setGC applies gcPercent unless the operator has chosen GOGC or
// GOMEMLIMIT, which the runtime has applied already and which win. Since
// gcPercent lets the heap grow to about five times the live heap, a
// process under a cgroup memory limit (a container's) also gets a soft
// memory limit of 90 % of it, so the collector works harder near the
// limit rather than the kernel ending the process. limit reports that
// cgroup limit, if any.
//
// A GOGC the runtime cannot read is an error: the runtime would silently
// run at its own default of 100 and the operator's setting, and the
// broker's 400, would both be lost. (A malformed GOMEMLIMIT never gets
// here: the runtime refuses it before main runs.)
func setGC(getenv func(string) string, limit func() (int64, bool)) error {
	if v := getenv("GOGC"); v != "" && !validGOGC(v) {
		return fmt.Errorf("GOGC: %q is not a percentage such as 400 (a whole number) or off; unset it to run at the broker's default of %d", truncateArg(v), gcPercent)
	}
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return nil
	}
	debug.SetGCPercent(gcPercent)
	if max, ok := limit(); ok {
		debug.SetMemoryLimit(max / 10 * 9)
	}
	return nil
}

// validGOGC reports whether the runtime reads v as a GOGC setting: off, or
// a decimal int32 with an optional minus sign (negative turns the
// collector off, as off does). Anything else the runtime replaces with 100
// without a word.
func validGOGC(v string) bool {
	if v == "off" {
		return true
	}
	digits := strings.TrimPrefix(v, "-")
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return false
	}
	_, err := strconv.ParseInt(v, 10, 32)
	return err == nil
}

// truncateArg shortens a value quoted back in an error message.
func truncateArg(v string) string {
	if len(v) > 40 {
		return v[:40] + "..."
	}
	return v
}

// cgroupMemoryMax is the memory.max of the cgroup v2 this process is in,
// if it has one that is a number.
func cgroupMemoryMax() (int64, bool) { return cgroupMemoryMaxAt("/") }

// cgroupMemoryMaxAt is cgroupMemoryMax with /proc and /sys under root.
func cgroupMemoryMaxAt(root string) (int64, bool) {
	data, err := os.ReadFile(filepath.Join(root, "proc/self/cgroup"))
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(data)) {
		path, ok := strings.CutPrefix(strings.TrimSpace(line), "0::")
		if !ok {
			continue
		}
		max, err := os.ReadFile(filepath.Join(root, "sys/fs/cgroup", filepath.Clean("/"+path), "memory.max"))
		if err != nil {
			return 0, false
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(max)), 10, 64)
		return n, err == nil && n > 0
	}
	return 0, false
}

func serve(stdout, stderr io.Writer, getenv func(string) string) int {
	if err := setGC(getenv, cgroupMemoryMax); err != nil {
		fmt.Fprintln(stderr, "broker:", err)
		return 1
	}
	logs := newLogWriter(stderr)
	defer logs.Close()
	// slog's JSONHandler at Info, whose hot audit lines httpapi appends
	// without slog's machinery (jsonlog.Fast).
	log := jsonlog.New(logs)
	env, err := config.LoadEnv(getenv)
	if err != nil {
		fmt.Fprintln(stderr, "broker:", err)
		return 1
	}
	a, err := app.New(env, log)
	if err != nil {
		logs.Flush()
		fmt.Fprintln(stderr, "broker:", err)
		return 1
	}
	defer a.Close()
	if err := a.Listen(); err != nil {
		logs.Flush()
		fmt.Fprintln(stderr, "broker:", err)
		return 1
	}
	if a.DevKeys != nil {
		printDevBanner(stdout, a)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := a.Run(ctx); err != nil {
		log.Error("broker stopped", "event", "stop", "error", err.Error())
		return 1
	}
	return 0
}

// printDevBanner prints the development credentials once, to stdout (the
// log stream never carries them), with lines ready to paste.
func printDevBanner(w io.Writer, a *app.App) {
	base := "http://" + strings.Replace(a.Addr(), "[::]", "localhost", 1)
	fmt.Fprintf(w, `
voicebroker %s (development, embedded demo tenant, %s)

  org %q, agent %q; these keys live only until this process exits:
  secret key       %s
  publishable key  %s

  export VB_KEY=%s
  curl -s -X POST %s/token -H "Authorization: Bearer $VB_KEY" -H 'Content-Type: application/json' -d '{"agent":"%s","channel":"webrtc"}'

  demo widget: %s/demo/ (joins a room when LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET are set)

`, app.Version, a.StoreDescription(), config.DemoOrg, config.DemoAgent, a.DevKeys.Secret, a.DevKeys.Publishable,
		a.DevKeys.Secret, base, config.DemoAgent, base)
}

func keysNew(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keys new", flag.ContinueOnError)
	fs.SetOutput(stderr)
	org := fs.String("org", "", "org id")
	id := fs.String("id", "", "key id (secret keys)")
	scopes := fs.String("scopes", "", "comma-separated scopes (secret keys): "+config.ScopeList(","))
	env := fs.String("env", "live", "live or test")
	publishable := fs.Bool("publishable", false, "make a publishable key for an agent's public mode")
	agent := fs.String("agent", "", "agent id (publishable keys)")
	originList := fs.String("origins", "", "comma-separated allowed origins (publishable keys), e.g. https://www.mysite.com,https://*.mysite.com")
	admin := fs.Bool("admin", false, "make a platform admin key for the admin API (BROKER_ADMIN_KEY_HASHES)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *admin {
		return adminKeyNew(fs, stdout, stderr)
	}
	var problems []string
	if fs.NArg() > 0 {
		problems = append(problems, "unexpected arguments: "+strings.Join(fs.Args(), " "))
	}
	if *env != "live" && *env != "test" {
		problems = append(problems, "--env must be live or test")
	}
	if !config.ValidID(*org) {
		problems = append(problems, "--org must match "+config.IDGrammar)
	}
	var scopeList, allowed []string
	if *publishable {
		if !config.ValidID(*agent) {
			problems = append(problems, "--agent must match "+config.IDGrammar)
		}
		if *id != "" || *scopes != "" {
			problems = append(problems, "--id and --scopes are for secret keys")
		}
		for _, o := range strings.Split(*originList, ",") {
			if o = strings.TrimSpace(o); o == "" {
				continue
			}
			if _, err := origins.ParsePattern(o); err != nil {
				problems = append(problems, "--origins: "+err.Error())
			}
			allowed = append(allowed, o)
		}
	} else {
		if !config.ValidID(*id) {
			problems = append(problems, "--id must match "+config.IDGrammar)
		}
		if *originList != "" {
			problems = append(problems, "--origins is for publishable keys")
		}
		for _, s := range strings.Split(*scopes, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			if !slices.Contains(config.AllScopes, config.Scope(s)) {
				problems = append(problems, fmt.Sprintf("unknown scope %q (one of %s)", s, config.ScopeList(", ")))
			}
			scopeList = append(scopeList, s)
		}
		if len(scopeList) == 0 {
			problems = append(problems, "--scopes needs at least one scope")
		}
		if *agent != "" {
			problems = append(problems, "--agent is for publishable keys")
		}
	}
	if len(problems) > 0 {
		fmt.Fprintln(stderr, "broker keys new:\n  "+strings.Join(problems, "\n  "))
		return 2
	}
	kind := apikey.Secret
	if *publishable {
		kind = apikey.Publishable
	}
	key, err := apikey.New(kind, apikey.Env(*env))
	if err != nil {
		fmt.Fprintln(stderr, "broker keys new:", err)
		return 1
	}
	if *publishable {
		fmt.Fprint(stdout, publishableStanza(*org, *agent, key, allowed))
		return 0
	}
	fmt.Fprintf(stdout, `# Secret key %q of org %q. It is shown once: store it in your backend's
# secret manager. Only its hash goes into the tenants file.
%s

# Under orgs[id=%s].keys:
      - id: %s
        hash: "%s"
        scopes: [%s]
`, *id, *org, key, *org, *id, apikey.Hash(key), strings.Join(scopeList, ", "))
	return 0
}

// adminKeyNew is `broker keys new --admin`: a platform admin key, printed
// once, and the hash that goes into BROKER_ADMIN_KEY_HASHES. It takes no
// other flag: an admin key belongs to no org and is always live.
func adminKeyNew(fs *flag.FlagSet, stdout, stderr io.Writer) int {
	var problems []string
	fs.Visit(func(f *flag.Flag) {
		switch {
		case f.Name == "admin":
		case f.Name == "env" && f.Value.String() == "live":
		case f.Name == "env":
			problems = append(problems, "--env: admin keys are always live (ak_live_)")
		default:
			problems = append(problems, "--"+f.Name+" is not for admin keys (an admin key belongs to no org)")
		}
	})
	if fs.NArg() > 0 {
		problems = append(problems, "unexpected arguments: "+strings.Join(fs.Args(), " "))
	}
	if len(problems) > 0 {
		fmt.Fprintln(stderr, "broker keys new:\n  "+strings.Join(problems, "\n  "))
		return 2
	}
	key, err := apikey.New(apikey.Admin, apikey.Live)
	if err != nil {
		fmt.Fprintln(stderr, "broker keys new:", err)
		return 1
	}
	hash := apikey.Hash(key)
	fmt.Fprintf(stdout, `# Platform admin key. It opens the whole admin API (every org); it is shown
# once: keep it in your secret manager. Only its hash goes to the broker.
%s

# Add the hash to BROKER_ADMIN_KEY_HASHES (a comma list of such hashes);
# logs and the audit trail name this key %s.
BROKER_ADMIN_KEY_HASHES=%s
`, key, "admin:"+hash[len(apikey.HashPrefix):len(apikey.HashPrefix)+8], hash)
	return 0
}

// publishableStanza is what keys new --publishable prints: the key once,
// then the public: block indented to paste as is under the agent's
// "- id:" line (agent fields at eight spaces, as in the README's example).
func publishableStanza(org, agent, key string, allowed []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# Publishable key for agent %q of org %q. It is shown once; it may sit in
# browser code, and works only from the agent's allowed_origins.
%s

# Paste under orgs[id=%s].agents[id=%s], in place of any public: block it has:
        public:
          key_hash: "%s"
          allowed_origins:
`, agent, org, key, org, agent, apikey.Hash(key))
	if len(allowed) == 0 {
		b.WriteString("            - https://demo.example.com   # replace with your site's origins (or use --origins)\n")
	}
	for _, o := range allowed {
		fmt.Fprintf(&b, "            - %q\n", o)
	}
	return b.String()
}

func configCheck(path string, stdout, stderr io.Writer) int {
	t, _, err := config.ReadFile(path)
	if err != nil {
		var ve *config.ValidationError
		if errors.As(err, &ve) {
			fmt.Fprintf(stderr, "%s: %d problem(s):\n  %s\n", path, len(ve.Problems), strings.Join(ve.Problems, "\n  "))
		} else {
			fmt.Fprintf(stderr, "%s: %v\n", path, err)
		}
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (%d orgs: %s)\n", path, len(t.Orgs()), strings.Join(t.Orgs(), ", "))
	return 0
}
