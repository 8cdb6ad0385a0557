package widget_test

import (
	"io/fs"
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
		"loglevel@", "sdp-transform@", "tslib@", "webrtc-adapter@",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("THIRD_PARTY_LICENSES.txt lacks %q", want)
		}
	}
}
