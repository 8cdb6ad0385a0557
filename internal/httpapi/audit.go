package httpapi

import (
	"log/slog"

	"github.com/labstack/echo/v4"

	"github.com/voicebroker/voicebroker/internal/jsonlog"
)

// auditInfo writes an Info line of the request, request_id first, as
// s.logger(c).LogAttrs would: the per-request audit lines (token.mint,
// token.redeem, auth.success), which every request that succeeds writes.
//
// With the broker's own logger (jsonlog.New) the line is appended into a
// pooled buffer and written in one Write, byte for byte what slog writes:
// 0.41 µs of CPU in place of slog's 1.45 µs (jsonlog's benchmarks), and no
// request logger (a With) made for it: a redemption makes 71 allocations
// in place of 80 (BenchmarkHandlerRedeem). With any other logger it goes
// through slog.
func (s *Server) auditInfo(c echo.Context, msg string, attrs ...slog.Attr) {
	fast := jsonlog.Fast(s.log)
	if fast == nil {
		s.logger(c).LogAttrs(c.Request().Context(), slog.LevelInfo, msg, attrs...)
		return
	}
	fast.Info(msg, []slog.Attr{slog.String("request_id", requestID(c))}, attrs...)
}
