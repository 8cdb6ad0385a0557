package config

import (
	"fmt"
	"regexp"
	"strings"
)

// liveKitAgentNamePattern bounds livekit_agent_name: what LiveKit workers
// register under (agentName), 1 to 128 characters.
var liveKitAgentNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// LiveKitName returns the LiveKit agent name the broker dispatches for the
// agent: livekit_agent_name, or the agent id when that is empty.
//
// LiveKit agent names are global to a LiveKit project: every worker that
// registered under a name receives every job dispatched to it, whichever
// org's room it is for. The tenants file therefore refuses a name used by
// agents of two orgs unless all of them set livekit_agent_shared (see
// checkLiveKitAgentNames).
func (a *Agent) LiveKitName() string {
	if a.LiveKitAgentName != "" {
		return a.LiveKitAgentName
	}
	return a.ID
}

// AgentsByLiveKitName returns the org's agents dispatched under the LiveKit
// agent name name, in file order (several when the org points more than one
// agent at one worker fleet).
func (o *Org) AgentsByLiveKitName(name string) []*Agent {
	var out []*Agent
	for i := range o.Agents {
		if a := &o.Agents[i]; a.LiveKitName() == name {
			out = append(out, a)
		}
	}
	return out
}

// checkLiveKitAgentNames checks livekit_agent_name values and the tenant
// isolation rule of the contract (§2): a LiveKit agent name may be used by
// agents of one org only, unless every agent using it sets
// livekit_agent_shared: true (one worker fleet serving several orgs, which
// tells them apart by the job's metadata). Without the rule, LiveKit would
// hand one org's jobs, with their metadata, to another org's workers.
func checkLiveKitAgentNames(v *validator, f *File) {
	type use struct {
		at     string // field path of the agent
		org    string
		shared bool
	}
	uses := make(map[string][]use)
	var order []string
	for i := range f.Orgs {
		o := &f.Orgs[i]
		for j := range o.Agents {
			a := &o.Agents[j]
			at := fmt.Sprintf("orgs[%d].agents[%d]", i, j)
			if a.LiveKitAgentName != "" && !liveKitAgentNamePattern.MatchString(a.LiveKitAgentName) {
				v.add(at+".livekit_agent_name", fmt.Sprintf("%q must be 1 to 128 of [A-Za-z0-9._-], starting with a letter or digit", truncate(a.LiveKitAgentName)))
				continue
			}
			name := a.LiveKitName()
			if _, seen := uses[name]; !seen {
				order = append(order, name)
			}
			uses[name] = append(uses[name], use{at: at, org: o.ID, shared: a.LiveKitAgentShared})
		}
	}
	for _, name := range order {
		us := uses[name]
		orgs := make(map[string]bool)
		for _, u := range us {
			orgs[u.org] = true
		}
		if len(orgs) < 2 {
			continue
		}
		var where []string
		for _, u := range us {
			where = append(where, fmt.Sprintf("%s (org %q)", u.at, u.org))
		}
		for _, u := range us {
			if u.shared {
				continue
			}
			v.add(u.at+".livekit_agent_name", fmt.Sprintf(
				"LiveKit agent name %q (the agent id when livekit_agent_name is empty) is used by agents of %d orgs: %s; "+
					"LiveKit would send each org's jobs to the other's workers: give each org's agent its own livekit_agent_name, "+
					"or set livekit_agent_shared: true on every agent that uses it",
				name, len(orgs), strings.Join(where, ", ")))
		}
	}
}
