package httpapi

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
	lkproto "github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/webhook"

	"github.com/voicebroker/voicebroker/internal/livekit"
)

// webhookReceiver verifies LiveKit's webhook requests.
type webhookReceiver interface {
	// ReceiveWebhook verifies r (signature and body hash; the body already
	// bounded) and returns its event; any error means it did not verify.
	ReceiveWebhook(r *http.Request) (*lkproto.WebhookEvent, error)
}

// webhook is POST /livekit/webhook: LiveKit's signed events, verified with
// the secret of the project whose API key signed them (the default
// project's or an org's own). room_finished releases the room's owner
// record; every event is audited. A webhook from an org's own project
// speaks for that org's rooms only: one about another org's room (its
// metadata names another auth_id) changes nothing, since whoever holds
// that project's secret can sign any body.
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
	room := ev.GetRoom()
	owner := livekit.OwnerOf(room)
	from := project
	if from == "" {
		from = "default"
	}
	if project != "" && owner != "" && owner != project {
		s.logger(c).LogAttrs(r.Context(), slog.LevelWarn, "webhook about another org's room ignored",
			slog.String("event", "livekit.webhook"), slog.String("result", "foreign_room"), slog.String("type", ev.Event),
			slog.String("project", from), slog.String("room", room.GetName()), slog.String("claimed_org", owner),
			slog.String("id", ev.Id))
		return c.JSON(http.StatusOK, map[string]string{"status": "ignored"})
	}
	s.logger(c).LogAttrs(r.Context(), slog.LevelInfo, "webhook received",
		slog.String("event", "livekit.webhook"), slog.String("result", "ok"), slog.String("type", ev.Event),
		slog.String("project", from), slog.String("room", room.GetName()), slog.String("org", owner), slog.String("id", ev.Id))
	if ev.Event == webhook.EventRoomFinished && room.GetName() != "" && owner != "" {
		if err := s.Store.ReleaseRoom(r.Context(), room.GetName(), owner); err != nil {
			return err // 503: LiveKit retries the webhook
		}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}
