package config_test

import (
	"strings"
	"testing"

	"github.com/voicebroker/voicebroker/config"
)

// TestRequireDPoP: require_dpop is an agent's optional boolean, false when
// absent; anything but a boolean is refused with the field's path.
func TestRequireDPoP(t *testing.T) {
	ten, err := config.Parse([]byte(strings.Replace(good, "channels: [webrtc, chat]", "channels: [webrtc, chat]\n        require_dpop: true", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if !ten.Org("acme").Agent("florencia").RequireDPoP {
		t.Fatal("require_dpop: true not read")
	}
	if ten.Org("globex").Agent("bot").RequireDPoP {
		t.Fatal("require_dpop is true without being set")
	}
	for _, v := range []string{"maybe", `"true"`, "[true]", "1"} {
		_, err := config.Parse([]byte(strings.Replace(good, "channels: [webrtc, chat]", "channels: [webrtc, chat]\n        require_dpop: "+v, 1)))
		if err == nil || !strings.Contains(err.Error(), "orgs[0].agents[0].require_dpop") {
			t.Errorf("require_dpop: %s: %v, want a refusal naming orgs[0].agents[0].require_dpop", v, err)
		}
	}
}
