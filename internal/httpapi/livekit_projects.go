package httpapi

import (
	"errors"
	"net/http"

	lkproto "github.com/livekit/protocol/livekit"

	"github.com/voicebroker/voicebroker/internal/livekit"
)

// liveKitProjects picks an org's own LiveKit project; *livekit.Projects
// implements it.
type liveKitProjects interface {
	// Any reports whether any project exists: the default or an org's.
	Any() bool
	// Own returns the Client of org's own project; nil when org uses the
	// default one.
	Own(org string) *livekit.Client
	// Orgs lists the orgs that have a project of their own.
	Orgs() []string
	// ReceiveWebhook verifies a webhook with the secret of the project
	// whose API key signed it, and names the org whose own project that
	// is ("" for the default project). Any error means it did not verify.
	ReceiveWebhook(r *http.Request) (*lkproto.WebhookEvent, string, error)
}

var _ liveKitProjects = (*livekit.Projects)(nil)

// liveKitConfigured reports whether any LiveKit project exists; without
// one every LiveKit endpoint answers 501 before anything else.
func (s *Server) liveKitConfigured() bool {
	return s.LiveKit != nil || (s.LiveKitProjects != nil && s.LiveKitProjects.Any())
}

// liveKitFor returns the LiveKit project of org: its own when it has one,
// else the default; 501 livekit_not_configured when there is neither (an
// org without a project of its own on a broker without LIVEKIT_*).
func (s *Server) liveKitFor(org string) (liveKit, error) {
	if s.LiveKitProjects != nil {
		if c := s.LiveKitProjects.Own(org); c != nil {
			if s.onDefaultServer(c) {
				return nil, wrapError(CodeConfigError, errOwnProjectOnDefaultServer)
			}
			return c, nil
		}
	}
	if s.LiveKit == nil {
		return nil, apiError(CodeLiveKitNotConfigured, "LiveKit is not configured for your organisation: "+
			"the broker has no default project (LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET) and your org has no livekit project of its own")
	}
	return s.LiveKit, nil
}

// errOwnProjectOnDefaultServer: an org's own project is on this broker's
// default project's server. The admin API and the environment's checks
// refuse it, but a registry shared by brokers of different LIVEKIT_URLs
// (one moved before the others) can hold one: its key would open every
// room of that server, so the org is served nothing of LiveKit until the
// project is fixed (the broker's log and its mismatch gauge say so).
var errOwnProjectOnDefaultServer = errors.New("the org's own LiveKit project is on the default project's server")

// onDefaultServer reports whether c, an org's own project, is on the
// default project's server (each client's server is read once, not per
// request).
func (s *Server) onDefaultServer(c *livekit.Client) bool {
	return s.LiveKit != nil && c.Server() != "" && c.Server() == s.LiveKit.Server()
}

// ownProject reports whether org has a LiveKit project of its own, apart
// from the default project's server.
func (s *Server) ownProject(org string) bool {
	return s.LiveKitProjects != nil && s.LiveKitProjects.Own(org) != nil
}

// receiveWebhook verifies a webhook with the project whose API key signed
// it (LiveKitProjects; without it, with the default project). project is
// the org whose own project sent it, "" for the default project.
func (s *Server) receiveWebhook(r *http.Request) (ev *lkproto.WebhookEvent, project string, err error) {
	if s.LiveKitProjects != nil {
		return s.LiveKitProjects.ReceiveWebhook(r)
	}
	ev, err = s.LiveKit.ReceiveWebhook(r)
	return ev, "", err
}
