package config

// Demo ids of the embedded development tenant.
const (
	DemoOrg   = "demo"
	DemoAgent = "demo-bot"
	DemoKeyID = "dev"
)

// Demo returns the embedded development tenant: org "demo" (tier free,
// demo rooms allowed) with agent "demo-bot" on both channels, public mode for
// http://localhost:* and http://127.0.0.1:*, one secret key with every scope
// whose hash is skHash, and the publishable key whose hash is pkHash.
func Demo(skHash, pkHash string) (*Tenants, error) {
	return Build(&File{Orgs: []Org{{
		ID:             DemoOrg,
		Tier:           TierFree,
		AllowDemoRooms: true,
		Keys:           []Key{{ID: DemoKeyID, Hash: skHash, Scopes: AllScopes}},
		Agents: []Agent{{
			ID:       DemoAgent,
			Channels: []Channel{ChannelWebRTC, ChannelChat},
			Public: &Public{
				KeyHash:        pkHash,
				AllowedOrigins: []string{"http://localhost:*", "http://127.0.0.1:*"},
			},
		}},
	}}})
}
