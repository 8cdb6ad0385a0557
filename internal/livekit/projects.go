package livekit

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"

	lkproto "github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/webhook"

	"github.com/voicebroker/voicebroker/internal/registry"
)

// Projects picks the LiveKit project of a request: an org's own project,
// which the tenant registry's snapshot names (registry.Snapshot.LiveKit),
// or else the default one (LIVEKIT_*). A Client is made once per project
// and kept while the snapshot keeps that project (same URL, API key and
// secret); a snapshot that changes or removes it drops the old Client.
// Nothing is made per request. Projects is safe for concurrent use.
type Projects struct {
	def      *Client
	snapshot func() *registry.Snapshot
	opt      Options

	seen atomic.Pointer[registry.Snapshot] // the last snapshot swept
	mu   sync.RWMutex
	orgs map[string]*orgClient
}

type orgClient struct {
	project registry.LiveKitProject
	client  *Client
}

// NewProjects returns the projects of def (the default project's Client;
// nil when LIVEKIT_* are unset) and of the orgs that snapshot's snapshots
// give a project of their own. The org projects' Clients take opt's token
// lifetime, timeouts and Observe; its URL and keys are ignored.
func NewProjects(def *Client, snapshot func() *registry.Snapshot, opt Options) *Projects {
	opt.URL, opt.APIKey, opt.APISecret = "", "", ""
	return &Projects{def: def, snapshot: snapshot, opt: opt, orgs: map[string]*orgClient{}}
}

// Default returns the default project's Client; nil when LIVEKIT_* are
// unset.
func (p *Projects) Default() *Client { return p.def }

// Any reports whether there is any project at all: the default one, or
// an org's own in the snapshot in force. Without one, every LiveKit
// endpoint answers 501 livekit_not_configured before anything else.
func (p *Projects) Any() bool {
	return p.def != nil || p.snapshot().LiveKitProjects() > 0
}

// Own returns the Client of org's own project, or nil when org uses the
// default project (or is unknown).
func (p *Projects) Own(org string) *Client {
	snap := p.snapshot()
	p.sweep(snap)
	proj := snap.LiveKit(org)
	if proj == nil {
		return nil
	}
	p.mu.RLock()
	oc := p.orgs[org]
	p.mu.RUnlock()
	if oc != nil && oc.project == *proj {
		return oc.client
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if oc := p.orgs[org]; oc != nil && oc.project == *proj {
		return oc.client
	}
	opt := p.opt
	opt.URL, opt.APIKey, opt.APISecret = proj.URL, proj.APIKey, proj.APISecret.Reveal()
	oc = &orgClient{project: *proj, client: New(opt)}
	p.orgs[org] = oc
	return oc.client
}

// Orgs lists the orgs that have a project of their own in the snapshot in
// force, sorted.
func (p *Projects) Orgs() []string { return p.snapshot().LiveKitOrgs() }

// For returns the Client of org's project: its own, else the default;
// nil when there is neither.
func (p *Projects) For(org string) *Client {
	if c := p.Own(org); c != nil {
		return c
	}
	return p.def
}

// sweep drops, once per new snapshot, the Clients of projects that the
// snapshot changed or removed.
func (p *Projects) sweep(snap *registry.Snapshot) {
	if p.seen.Load() == snap {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for org, oc := range p.orgs {
		if cur := snap.LiveKit(org); cur == nil || *cur != oc.project {
			delete(p.orgs, org)
		}
	}
	p.seen.Store(snap)
}

// ErrUnknownWebhookKey: a webhook is signed with an API key that is
// neither the default project's nor any org project's.
var ErrUnknownWebhookKey = errors.New("livekit: webhook signed with an unknown API key")

// ReceiveWebhook verifies a webhook request with the secret of the
// project whose API key signed it (the JWT's iss): the default project's
// key, or an org project's, found in the snapshot in force. It returns
// the event and the org whose own project sent it ("" for the default
// project): a webhook from an org's project may speak for that org's rooms
// only, which the caller enforces. The body must already be bounded by the
// caller. Errors wrap ErrWebhook (and ErrUnknownWebhookKey for a key of
// no project).
func (p *Projects) ReceiveWebhook(r *http.Request) (*lkproto.WebhookEvent, string, error) {
	keys := &webhookKeys{p: p, snap: p.snapshot()}
	ev, err := webhook.ReceiveWebhookEvent(r, keys)
	if err != nil {
		if errors.Is(err, webhook.ErrSecretNotFound) {
			err = ErrUnknownWebhookKey
		}
		return nil, "", fmt.Errorf("%w: %w", ErrWebhook, err)
	}
	return ev, keys.org, nil
}

// webhookKeys is the key provider of one webhook: it finds the secret of
// the key the webhook names and remembers whose project it is.
type webhookKeys struct {
	p    *Projects
	snap *registry.Snapshot
	org  string
}

func (k *webhookKeys) GetSecret(key string) string {
	if d := k.p.def; d != nil && key == d.opt.APIKey {
		k.org = ""
		return d.opt.APISecret
	}
	if proj := k.snap.LiveKitByAPIKey(key); proj != nil {
		k.org = proj.Org
		return proj.APISecret.Reveal()
	}
	return ""
}

func (k *webhookKeys) NumKeys() int { return 1 }
