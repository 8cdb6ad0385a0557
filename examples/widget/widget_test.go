package widget_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/voicebroker/voicebroker/examples/widget"
)

// TestBundleCarriesLicences: the served bundle starts with a notice that
// points at the bundled packages' licences, and that file holds
// livekit-client's Apache licence and every package livekit-client needs.
func TestBundleCarriesLicences(t *testing.T) {
	js, err := fs.ReadFile(widget.FS(), "widget.js")
	if err != nil {
		t.Fatal(err)
	}
	head := string(js[:min(len(js), 400)])
	if !strings.HasPrefix(head, "/*!") || !strings.Contains(head, "livekit-client") || !strings.Contains(head, "THIRD_PARTY_LICENSES.txt") {
		t.Fatalf("widget.js does not start with the licence notice: %q", head)
	}
	data, err := fs.ReadFile(widget.FS(), "THIRD_PARTY_LICENSES.txt")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, want := range []string{
		"livekit-client@", "Apache License", "Version 2.0",
		"@livekit/protocol@", "@livekit/mutex@", "@bufbuild/protobuf@", "events@", "jose@",
		"loglevel@", "sdp-transform@", "tslib@", "webrtc-adapter@", "@voicebroker/client",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("THIRD_PARTY_LICENSES.txt lacks %q", want)
		}
	}
}

// TestPageHasNoInlineCode: the page and the backend's page load their
// script and style from files, so both can be served under a CSP without
// 'unsafe-inline'.
func TestPageHasNoInlineCode(t *testing.T) {
	for _, path := range []string{"dist/index.html", "../backend/page.html"} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		html := string(data)
		if regexp.MustCompile(`<script(\s[^>]*)?>[^<]`).MatchString(html) || strings.Contains(html, "<style") ||
			regexp.MustCompile(`\s(style|on[a-z]+)=`).MatchString(html) {
			t.Errorf("%s has inline script or style", path)
		}
		if !strings.Contains(html, `src="`) || !strings.Contains(html, "widget.js") || !strings.Contains(html, "widget.css") {
			t.Errorf("%s does not load widget.js and widget.css", path)
		}
	}
}

// codes collects the error codes found by re in the file at path.
func codes(t *testing.T, path string, re *regexp.Regexp, from, to string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	if from != "" {
		i := strings.Index(text, from)
		if i < 0 {
			t.Fatalf("%s: no %q", path, from)
		}
		text = text[i:]
		if j := strings.Index(text[len(from):], to); j >= 0 {
			text = text[:len(from)+j]
		}
	}
	var out []string
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		if !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no error codes found", path)
	}
	return out
}

// TestEveryErrorCodeHasASentence: every error code the widget can meet
// (the contract's table, @voicebroker/client's own codes, the example
// backend's and the widget's) has a sentence in src/messages.json, which
// names nothing but the facts the widget fills in; the sentence of
// livekit_not_configured names the variables to set; and no sentence is
// left for a code that no longer exists.
func TestEveryErrorCodeHasASentence(t *testing.T) {
	data, err := os.ReadFile("src/messages.json")
	if err != nil {
		t.Fatal(err)
	}
	var messages map[string]string
	if err := json.Unmarshal(data, &messages); err != nil {
		t.Fatal(err)
	}
	contract := codes(t, "../../docs/CONTRACT.md", regexp.MustCompile(`(?m)^\| ([a-z_]+) \| \d`), "## 5. Errors", "\n## ")
	library := codes(t, "../../clients/js/src/errors.ts", regexp.MustCompile(`\| '([a-z_]+)'`), "export type BrokerErrorCode", ";")
	backend := codes(t, "../backend/main.go", regexp.MustCompile(`apiError\(w, http\.Status\w+, "([a-z_]+)"`), "", "")
	own := slices.Concat(
		codes(t, "src/widget.js", regexp.MustCompile(`(?:new (?:Widget|Broker)Error\(|sentence\(|code = )'([a-z_]+)'`), "", ""),
		codes(t, "src/explain.js", regexp.MustCompile(`(?:return |Error\()'([a-z_]+)'`), "function codeOf", "\n}"))
	for _, set := range []struct {
		name  string
		codes []string
		least int
	}{{"the contract", contract, 29}, {"@voicebroker/client", library, 36}, {"examples/backend", backend, 5}, {"the widget", own, 6}} {
		if len(set.codes) < set.least {
			t.Fatalf("only %d codes found in %s: %v", len(set.codes), set.name, set.codes)
		}
		for _, code := range set.codes {
			if strings.TrimSpace(messages[code]) == "" {
				t.Errorf("%s's code %s has no sentence in src/messages.json", set.name, code)
			}
		}
	}

	known := slices.Concat(contract, library, backend, own, []string{"unknown"})
	placeholder := regexp.MustCompile(`\{(\w*)\}`)
	for key, text := range messages {
		if strings.HasPrefix(key, "_") {
			continue
		}
		code, mode, moded := strings.Cut(key, "@")
		if !slices.Contains(known, code) || (moded && mode != "public" && mode != "backend") {
			t.Errorf("src/messages.json: %q is no code the widget can meet", key)
		}
		if !strings.HasSuffix(text, ".") && !strings.HasSuffix(text, "?") {
			t.Errorf("%s: %q is not a sentence", key, text)
		}
		for _, m := range placeholder.FindAllStringSubmatch(text, -1) {
			if !slices.Contains([]string{"agent", "origin", "broker", "server", "status", "retryAfter", "code"}, m[1]) {
				t.Errorf("%s: unknown placeholder {%s}", key, m[1])
			}
		}
	}
	for _, v := range []string{"LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"} {
		if !strings.Contains(messages["livekit_not_configured"], v) {
			t.Errorf("livekit_not_configured does not name %s", v)
		}
	}
}
