package config_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/voicebroker/voicebroker/config"
)

// twoOrgs is a tenants file with agent a0 in org one and agent a1 in org
// two; extra0 and extra1 are YAML lines added under each agent.
func twoOrgs(id0, extra0, id1, extra1 string) string {
	agent := func(id, extra string) string {
		s := "      - id: " + id + "\n        channels: [webrtc]\n"
		for _, l := range strings.Split(extra, "\n") {
			if l != "" {
				s += "        " + l + "\n"
			}
		}
		return s
	}
	return "orgs:\n  - id: one\n    tier: free\n    agents:\n" + agent(id0, extra0) +
		"  - id: two\n    tier: free\n    agents:\n" + agent(id1, extra1)
}

func TestLiveKitAgentNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		file string
		bad  []string // substrings of the problems; none for a good file
	}{
		{"distinct ids", twoOrgs("florencia", "", "hank", ""), nil},
		{"same id, distinct LiveKit names", twoOrgs("florencia", "", "florencia", "livekit_agent_name: two-florencia"), nil},
		{"same id in two orgs", twoOrgs("florencia", "", "florencia", ""), []string{
			`orgs[0].agents[0].livekit_agent_name: LiveKit agent name "florencia"`,
			`orgs[1].agents[0].livekit_agent_name: LiveKit agent name "florencia"`,
		}},
		{"a custom name equal to another org's id", twoOrgs("florencia", "", "hank", "livekit_agent_name: florencia"), []string{
			`orgs[0].agents[0].livekit_agent_name`, `orgs[1].agents[0].livekit_agent_name`,
		}},
		{"two custom names equal", twoOrgs("a", "livekit_agent_name: fleet", "b", "livekit_agent_name: fleet"), []string{
			`"fleet"`,
		}},
		{"shared by every user", twoOrgs("a", "livekit_agent_name: fleet\nlivekit_agent_shared: true", "b", "livekit_agent_name: fleet\nlivekit_agent_shared: true"), nil},
		{"same id shared by both", twoOrgs("florencia", "livekit_agent_shared: true", "florencia", "livekit_agent_shared: true"), nil},
		{"shared by one side only", twoOrgs("a", "livekit_agent_name: fleet\nlivekit_agent_shared: true", "b", "livekit_agent_name: fleet"), []string{
			`orgs[1].agents[0].livekit_agent_name: LiveKit agent name "fleet"`,
		}},
		{"shared alone is fine", twoOrgs("a", "livekit_agent_shared: true", "b", ""), nil},
		{"bad characters", twoOrgs("a", "livekit_agent_name: \"x y\"", "b", ""), []string{`orgs[0].agents[0].livekit_agent_name: "x y" must be`}},
		{"leading dash", twoOrgs("a", "livekit_agent_name: -x", "b", ""), []string{`orgs[0].agents[0].livekit_agent_name`}},
		{"too long", twoOrgs("a", "livekit_agent_name: "+strings.Repeat("x", 129), "b", ""), []string{`orgs[0].agents[0].livekit_agent_name`}},
		{"not a boolean", twoOrgs("a", "livekit_agent_shared: maybe", "b", ""), []string{""}}, // the message is the YAML decoder's
		{"case variants are distinct LiveKit names", twoOrgs("a", "livekit_agent_name: Fleet", "b", "livekit_agent_name: fleet"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tc.file))
			if len(tc.bad) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.file)
			}
			for _, want := range tc.bad {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not say %q:\n%v", want, err)
				}
			}
		})
	}
}

// TestLiveKitAgentNameCollisionNamesBoth: the message names every agent
// using the name, so the operator can find the other one.
func TestLiveKitAgentNameCollisionNamesBoth(t *testing.T) {
	_, err := config.Parse([]byte(twoOrgs("florencia", "", "florencia", "")))
	var ve *config.ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 2 {
		t.Fatalf("want 2 problems, got %v", err)
	}
	for _, p := range ve.Problems {
		if !strings.Contains(p, `orgs[0].agents[0] (org "one")`) || !strings.Contains(p, `orgs[1].agents[0] (org "two")`) {
			t.Errorf("problem does not name both agents: %s", p)
		}
	}
}

func TestLiveKitName(t *testing.T) {
	ten, err := config.Parse([]byte(`orgs:
  - id: one
    tier: free
    agents:
      - id: sales
        channels: [webrtc]
        livekit_agent_name: fleet
      - id: support
        channels: [webrtc]
        livekit_agent_name: fleet
      - id: florencia
        channels: [webrtc]
`))
	if err != nil {
		t.Fatal(err)
	}
	o := ten.Org("one")
	if got := o.Agent("florencia").LiveKitName(); got != "florencia" {
		t.Errorf("default LiveKit name %q", got)
	}
	if got := o.Agent("sales").LiveKitName(); got != "fleet" {
		t.Errorf("LiveKit name %q", got)
	}
	if got := o.AgentsByLiveKitName("fleet"); len(got) != 2 || got[0].ID != "sales" || got[1].ID != "support" {
		t.Errorf("AgentsByLiveKitName(fleet) = %v", got)
	}
	if got := o.AgentsByLiveKitName("florencia"); len(got) != 1 || got[0].ID != "florencia" {
		t.Errorf("AgentsByLiveKitName(florencia) = %v", got)
	}
	if got := o.AgentsByLiveKitName("sales"); len(got) != 0 {
		t.Errorf("an agent id with a custom LiveKit name still maps: %v", got)
	}
}

// FuzzLiveKitAgentNames: for any names and shared flags of four agents in
// two orgs, Parse accepts exactly the files where no LiveKit name is used
// by both orgs unless every agent using it is shared (a reference check
// written independently of the validator).
func FuzzLiveKitAgentNames(f *testing.F) {
	f.Add("florencia", "", false, "florencia", "", false)
	f.Add("a", "fleet", true, "b", "fleet", true)
	f.Add("a", "fleet", true, "b", "fleet", false)
	f.Add("a", "b", false, "b", "", false)
	f.Add("a", "Fleet", false, "b", "fleet", false)
	f.Fuzz(func(t *testing.T, id0, name0 string, shared0 bool, id1, name1 string, shared1 bool) {
		for _, s := range []string{id0, name0, id1, name1} {
			if strings.ContainsAny(s, "\"\\\n\r") || len(s) > 200 {
				return // keep the YAML well-formed; the patterns are tested above
			}
		}
		extra := func(name string, shared bool) string {
			return fmt.Sprintf("livekit_agent_name: \"%s\"\nlivekit_agent_shared: %v", name, shared)
		}
		file := twoOrgs(`"`+id0+`"`, extra(name0, shared0), `"`+id1+`"`, extra(name1, shared1))
		ten, err := config.Parse([]byte(file))
		if err != nil {
			return
		}
		lk := func(id, name string) string {
			if name != "" {
				return name
			}
			return id
		}
		n0, n1 := lk(id0, name0), lk(id1, name1)
		if n0 == n1 && !(shared0 && shared1) {
			t.Fatalf("accepted %q in two orgs (shared %v, %v)", n0, shared0, shared1)
		}
		if got := ten.Org("one").Agent(id0).LiveKitName(); got != n0 {
			t.Fatalf("LiveKitName %q, want %q", got, n0)
		}
	})
}
