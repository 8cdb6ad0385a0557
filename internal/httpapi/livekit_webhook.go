package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	lkproto "github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/webhook"

	"github.com/voicebroker/voicebroker/internal/livekit"
	"github.com/voicebroker/voicebroker/internal/store"
)

// webhookReceiver verifies LiveKit's webhook requests.
type webhookReceiver interface {
	// ReceiveWebhook verifies r (signature and body hash; the body already
	// bounded) and returns its event; any error means it did not verify.
	ReceiveWebhook(r *http.Request) (*lkproto.WebhookEvent, error)
}

// WebhookReplayWindow is how long a webhook event's id is remembered, so
// that the event is acted on once. It must outlast the time in which the
// event's signature verifies: LiveKit signs each delivery with a token
// valid for 5 minutes, and livekit/protocol's receiver (go-jose) allows a
// minute of leeway on either side, 7 minutes from the first moment a
// capture verifies to the last. The other 3 minutes are for clock skew
// between LiveKit and the broker.
const WebhookReplayWindow = 10 * time.Minute

// maxEventID bounds a webhook event's id (LiveKit's are "EV_" and 12
// characters).
const maxEventID = 128

// webhook is POST /livekit/webhook: LiveKit's signed events, verified with
// the secret of the project whose API key signed them (the default
// project's or an org's own). Every event is audited. A webhook from an
// org's own project speaks for that org's rooms only: one about another
// org's room (its metadata names another auth_id) changes nothing, since
// whoever holds that project's secret can sign any body. Each event id is
// accepted once per project (store.Webhooks, for WebhookReplayWindow): a
// second delivery, LiveKit's retry of an event handled already or a replay
// of a captured one, answers 200 and does nothing. room_finished releases the room's owner record, but only a
// record claimed at or before the event's createdAt: a claim made after
// the room finished is for a later session of that name, and a late or
// replayed room_finished must not free the name for another org.
//
// The two times come from two clocks: createdAt is LiveKit's (whole
// seconds, rounded down, signed within the body), the claim time the
// store's (Redis's TIME, one clock for every replica; see
// store.Rooms.ClaimRoom). Neither the broker replica's own clock nor the
// time the webhook arrives is used: replicas' clocks differ, and a
// replay's arrival is late by design. Rounding down errs toward keeping
// the record. So does a LiveKit clock behind the store's: a claim made in
// the last moments before the room finished is kept, and expires with
// RoomOwnerTTL (the org keeps a name it was using). A LiveKit clock ahead
// by d would let an event release a claim made within d after the room
// finished; the id check above stops a replay whatever the clocks say,
// and keeping LiveKit and Redis on NTP keeps d far below the time between
// a room finishing and its name being claimed again.
//
// A finished room's name does not pass to another org at once: every
// LiveKit token issued for it opens it again until the token expires (a
// client that reconnects, or rejoins with a cached token, does so; LiveKit
// itself re-signs a joined participant's token, and gives agents tokens of
// an hour), and LiveKit gives a new room the configuration of whoever
// joins first. Were the name another org's by then, a user of the first
// org would walk into the other org's room, and be heard, seen and served
// by its agent. So the record is kept until every such token is dead
// (roomTokenLife after the room's end, which comes after its latest claim),
// and room_started renews the claim of a room reopened meanwhile.
func (s *Server) webhook(c echo.Context) error {
	r := c.Request()
	r.Body = http.MaxBytesReader(c.Response(), r.Body, MaxBodyBytes)
	ev, project, err := s.receiveWebhook(r)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return apiError(CodePayloadTooLarge, "")
		}
		s.Metrics.AuthFailures.WithLabelValues(reasonWebhookSignature.Label()).Inc()
		s.logger(c).LogAttrs(r.Context(), slog.LevelWarn, "webhook refused",
			slog.String("event", "livekit.webhook"), slog.String("result", "refused"),
			slog.String("client_ip", s.ClientIP.Of(r).String()),
			slog.String("reason", err.Error()))
		return newError(CodeUnauthorized, "the webhook signature did not verify", err)
	}
	ctx := r.Context()
	room := ev.GetRoom()
	owner := livekit.OwnerOf(room)
	from := project
	if from == "" {
		from = "default"
	}
	attrs := []slog.Attr{
		slog.String("event", "livekit.webhook"), slog.String("type", ev.Event), slog.String("project", from),
		slog.String("room", room.GetName()), slog.String("org", owner), slog.String("id", ev.Id),
	}
	if project != "" && owner != "" && owner != project {
		s.logger(c).LogAttrs(ctx, slog.LevelWarn, "webhook about another org's room ignored",
			slog.String("event", "livekit.webhook"), slog.String("result", "foreign_room"), slog.String("type", ev.Event),
			slog.String("project", from), slog.String("room", room.GetName()), slog.String("claimed_org", owner),
			slog.String("id", ev.Id))
		return c.JSON(http.StatusOK, map[string]string{"status": "ignored"})
	}
	if ev.Id == "" || len(ev.Id) > maxEventID {
		// Without an id an event cannot be accepted once; LiveKit always
		// sends one.
		s.logger(c).LogAttrs(ctx, slog.LevelWarn, "webhook refused", append(attrs,
			slog.String("result", "refused"), slog.String("reason", "no event id of 1 to 128 bytes"))...)
		return apiError(CodeInvalidRequest, "the webhook event has no id")
	}
	// Ids are LiveKit's, one namespace per project ("" is the default
	// project; an org id is never empty): an org's own project cannot take
	// an id of the default project's or another org's events.
	eventID := project + "/" + ev.Id
	switch err := s.Store.RecordWebhookEvent(ctx, eventID, WebhookReplayWindow); {
	case errors.Is(err, store.ErrExists):
		s.Metrics.AuthFailures.WithLabelValues(reasonWebhookReplay.Label()).Inc()
		s.logger(c).LogAttrs(ctx, slog.LevelWarn, "webhook event seen before: ignored", append(attrs,
			slog.String("result", "duplicate"), slog.String("client_ip", s.ClientIP.Of(r).String()))...)
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	case err != nil:
		return err // 503: LiveKit retries
	}
	s.logger(c).LogAttrs(ctx, slog.LevelInfo, "webhook received", append(attrs, slog.String("result", "ok"))...)
	// notHandled answers a store failure: LiveKit's retry must be handled,
	// so the id goes. If that fails too, the retry is taken for a duplicate
	// and the record stays with its owner until RoomOwnerTTL (fail closed).
	notHandled := func(err error) error {
		if ferr := s.Store.ForgetWebhookEvent(context.WithoutCancel(ctx), eventID); ferr != nil {
			s.logger(c).LogAttrs(ctx, slog.LevelWarn, "could not forget a webhook event that was not handled; its room's owner record expires on its own",
				append(attrs, slog.String("result", "forget_failed"), slog.String("cause", ferr.Error()))...)
		}
		return err // 503: LiveKit retries
	}
	if ev.Event == webhook.EventRoomStarted && room.GetName() != "" {
		// A room started: with a token the broker issued, which claimed the
		// name, or with one LiveKit re-signed (a user back in a finished
		// room with the token it held), which claimed nothing. Either way
		// the name stays the owner's for the room's life, so it cannot pass
		// to another org while the room runs: the owner's claim is renewed.
		// Renewed, never made: a name with no record is left free, so that
		// an org's own project, which can sign any event, cannot take names
		// past /livekit/token and its limits.
		//
		// A room without owner metadata is one an agent's job token
		// reopened after it finished (the token carries no room
		// configuration). Its name is still held by the org whose room it
		// was (room_finished keeps the record while such tokens live), and
		// that org's claim is renewed if this project speaks for that org:
		// the default project for any, an org's own for that org alone.
		holder, err := s.Store.RoomOwner(ctx, room.GetName())
		renew := owner
		if owner == "" && (project == "" || project == holder) {
			renew = holder
		}
		if err == nil && renew != "" && holder == renew {
			holder, err = s.Store.ClaimRoom(ctx, room.GetName(), renew, RoomOwnerTTL, 0)
		}
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return notHandled(err)
		case owner != "" && holder != owner:
			s.logger(c).LogAttrs(ctx, slog.LevelWarn, "room started under a name another org owns",
				append(attrs, slog.String("result", "foreign_owner"), slog.String("owner", holder))...)
		}
	}
	if ev.Event == webhook.EventRoomFinished && room.GetName() != "" && owner != "" {
		finished, life := time.Unix(ev.CreatedAt, 0), s.roomTokenLife(owner)
		released, err := s.Store.ReleaseRoomClaimedBy(ctx, room.GetName(), owner, finished, life)
		if err != nil {
			return notHandled(err)
		}
		if released {
			s.logger(c).LogAttrs(ctx, slog.LevelInfo, "room_finished released the owner record: the name is free once every token that opens the room is dead",
				append(attrs, slog.String("result", "released"), slog.Float64("token_life_seconds", life.Seconds()))...)
		} else {
			s.logger(c).LogAttrs(ctx, slog.LevelInfo, "room_finished released nothing: no owner record of that org claimed before the room finished",
				append(attrs, slog.String("result", "kept"), slog.Int64("finished_at", ev.CreatedAt))...)
		}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// How long tokens that LiveKit issues itself open a room (livekit-server
// 1.13.5): a participant's token is re-signed when it joins and every five
// minutes after, each valid for liveKitRefreshLife or what was left of the
// old one, whichever is longer, with the room's configuration (the SDK
// keeps it to reconnect); an agent's job token is valid for
// liveKitAgentLife from its dispatch, and is re-signed alike.
const (
	liveKitRefreshLife = 10 * time.Minute
	liveKitAgentLife   = time.Hour
)

// liveKitLeeway is how long past a room token's exp it still opens a room:
// livekit-server accepts a token up to go-jose's default leeway (one
// minute) past its exp; a second minute covers the clocks of the broker
// that signed it, the store that timed its claim and LiveKit.
const liveKitLeeway = 2 * time.Minute

// roomTokenLife is how long after the room's end (which is after its
// latest claim) a room of org may still be opened with a token issued for
// it: by the broker (org's token lifetime from the claim, which every
// issue renews; the store also never ends a record before the tokens of
// its claims, with the lifetimes they had, are dead), or by LiveKit (a refreshed participant's or an agent's
// token: whoever held one was in the room until the end), and
// liveKitLeeway. With no project for org now (its own
// was removed, or LiveKit is unset), what was issued before cannot be
// told: RoomOwnerTTL, the record's own life.
func (s *Server) roomTokenLife(org string) time.Duration {
	lk, err := s.liveKitFor(org)
	if err != nil {
		return RoomOwnerTTL
	}
	return max(lk.TokenTTL(), liveKitRefreshLife, liveKitAgentLife) + liveKitLeeway
}
