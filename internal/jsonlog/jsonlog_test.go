package jsonlog_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/internal/jsonlog"
)

// slogLine is the line slog's JSONHandler at Info writes for
// l.With(with...).LogAttrs(ctx, slog.LevelInfo, msg, attrs...) at time t.
func slogLine(t time.Time, msg string, with, attrs []slog.Attr) string {
	var b bytes.Buffer
	h := slog.NewJSONHandler(&b, &slog.HandlerOptions{Level: slog.LevelInfo}).WithAttrs(with)
	r := slog.NewRecord(t, slog.LevelInfo, msg, 0)
	r.AddAttrs(attrs...)
	h.Handle(context.Background(), r)
	return b.String()
}

// FuzzAppendInfo: for any time, message, keys and values, AppendInfo
// appends what slog's JSONHandler writes for the same record, or declines
// a line only for the reasons it documents (an empty key, a zero time, a
// year outside 0–9999).
func FuzzAppendInfo(f *testing.F) {
	// time (seconds, nanoseconds, zone offset in seconds), message, one
	// With attribute, two record attributes.
	f.Add(int64(1795968000), int64(123456789), 0, "token minted", "request_id", "req-1",
		"event", "token.mint", "client_ip", "192.0.2.1")
	f.Add(int64(1795968000), int64(0), 3600, "", "k", "", "", "", "x", "y")              // whole second, empty key
	f.Add(int64(1795968000), int64(100000), -12600, "a\"b\\c", "\n\r\t", "\x00\x1f\x7f", // escapes, DEL stays
		"<&>", "'", "\u2028", "\u2029")
	f.Add(int64(0), int64(999999999), 50400, "\xff\xfe", "é\xc3", "\xe2\x80", "😀", "\xf0\x9f\x98", // invalid UTF-8
		"\U0010ffff", "\ufffd")
	f.Add(int64(-62135596800), int64(0), 0, "zero time", "a", "b", "c", "d", "e", "f")  // IsZero: slog writes no time
	f.Add(int64(253402300800), int64(0), 0, "year 10000", "a", "b", "c", "d", "e", "f") // year out of range
	f.Add(int64(-62167219200), int64(0), -60, "year -1", "a", "b", "c", "d", "e", "f")
	f.Fuzz(func(t *testing.T, sec, nsec int64, offset int, msg, wk, wv, k1, v1, k2, v2 string) {
		tm := time.Unix(sec, nsec).In(time.FixedZone("", offset%(26*3600)))
		with := []slog.Attr{slog.String(wk, wv)}
		attrs := []slog.Attr{slog.String(k1, v1), slog.String(k2, v2)}
		want := slogLine(tm, msg, with, attrs)
		got, ok := jsonlog.AppendInfo([]byte("prefix"), tm, msg, with, attrs)
		if !ok {
			y := tm.Year()
			if wk != "" && k1 != "" && k2 != "" && !tm.IsZero() && y >= 0 && y < 10000 {
				t.Fatalf("AppendInfo declined a plain line; slog wrote %q", want)
			}
			if string(got) != "prefix" {
				t.Fatalf("AppendInfo declined but changed dst: %q", got)
			}
			return
		}
		if string(got) != "prefix"+want {
			t.Fatalf("AppendInfo and slog differ:\n got %q\nwant %q", got, "prefix"+want)
		}
	})
}

// noTime is a line without its time attribute.
var noTime = regexp.MustCompile(`^\{"time":"[^"]*",`)

// TestWriterLines: the audit lines the broker writes through Writer.Info
// (token.mint, token.redeem, auth.success) are byte for byte what the
// request's logger wrote through slog, apart from the time, which is now,
// in slog's format; a line Writer.Info does not append itself still comes
// out as slog writes it.
func TestWriterLines(t *testing.T) {
	rid := []slog.Attr{slog.String("request_id", "req-1")}
	for _, tc := range []struct {
		name  string
		msg   string
		attrs []slog.Attr
	}{
		{"token.mint", "token minted", []slog.Attr{
			slog.String("event", "token.mint"), slog.String("mode", "backend"),
			slog.String("org", "acme"), slog.String("agent", "bot"), slog.String("channel", "webrtc"),
			slog.String("auth_method", "api_key"), slog.String("key_id", "main"), slog.String("jti_hash", "0123456789ab"),
			slog.String("client_ip", "192.0.2.1")}},
		{"token.redeem", "token redeemed", []slog.Attr{
			slog.String("event", "token.redeem"), slog.String("via", "redeem"),
			slog.String("auth_method", "api_key"), slog.String("key_id", ""),
			slog.String("org", "acme"), slog.String("agent", "bot"), slog.String("channel", "chat"),
			slog.String("jti_hash", "0123456789ab"), slog.String("client_ip", "2001:db8::1")}},
		{"auth.success", "authenticated", []slog.Attr{
			slog.String("event", "auth.success"), slog.String("method", "publishable_key"),
			slog.String("org", "acme"), slog.String("key_id", ""), slog.String("client_ip", "192.0.2.1"),
			slog.String("route", "/public/token")}},
		{"not a string: through slog", "odd", []slog.Attr{
			slog.String("event", "x"), slog.Int("n", 3), slog.Bool("b", true), slog.Group("g", slog.String("k", "v"))}},
		{"empty attribute: through slog", "odd", []slog.Attr{slog.String("", ""), slog.String("event", "x")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fast, ref bytes.Buffer
			before := time.Now().Truncate(time.Second)
			l := jsonlog.New(&fast)
			w := jsonlog.Fast(l)
			if w == nil {
				t.Fatal("Fast(New(w)) is nil")
			}
			w.Info(tc.msg, rid, tc.attrs...)
			slog.New(slog.NewJSONHandler(&ref, nil)).With(rid[0]).LogAttrs(context.Background(), slog.LevelInfo, tc.msg, tc.attrs...)

			got, want := fast.String(), ref.String()
			if strings.Count(got, "\n") != 1 || !strings.HasSuffix(got, "\n") {
				t.Fatalf("not one line: %q", got)
			}
			if g, w := noTime.ReplaceAllString(got, "{"), noTime.ReplaceAllString(want, "{"); g != w {
				t.Fatalf("line differs from slog's:\n got %s\nwant %s", g, w)
			}
			var v struct{ Time string }
			if err := json.Unmarshal([]byte(got), &v); err != nil {
				t.Fatal(err)
			}
			at, err := time.Parse(time.RFC3339Nano, v.Time)
			if err != nil || at.Before(before) || at.After(time.Now()) {
				t.Fatalf("time %q is not now (%v)", v.Time, err)
			}
		})
	}
}

// TestLoggerIsSlogs: the logger New returns writes what slog's JSONHandler
// at Info writes, drops Debug, and its derived loggers have no Writer.
func TestLoggerIsSlogs(t *testing.T) {
	var got, want bytes.Buffer
	l := jsonlog.New(&got)
	ref := slog.New(slog.NewJSONHandler(&want, nil))
	for _, lg := range []*slog.Logger{l, ref} {
		lg.Debug("hidden", "k", "v")
		lg.With("request_id", "r").WithGroup("g").Warn("shown", "n", 1, "s", "x\"y")
	}
	if g, w := noTime.ReplaceAllString(got.String(), "{"), noTime.ReplaceAllString(want.String(), "{"); g != w || g == "" {
		t.Fatalf("got %q, want %q", g, w)
	}
	for name, other := range map[string]*slog.Logger{
		"nil":              nil,
		"JSONHandler":      ref,
		"Debug level":      slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug})),
		"TextHandler":      slog.New(slog.NewTextHandler(io.Discard, nil)),
		"DiscardHandler":   slog.New(slog.DiscardHandler),
		"New(w).With(...)": l.With("request_id", "r"),
		"New(w).WithGroup": l.WithGroup("g"),
	} {
		if jsonlog.Fast(other) != nil {
			t.Errorf("Fast(%s) is not nil", name)
		}
	}
}

// TestConcurrentLines: lines written at once through the Writer and through
// the logger, to a writer that is not safe for concurrent use, come out
// whole, one a line (go test -race checks the writer is never shared).
func TestConcurrentLines(t *testing.T) {
	var b bytes.Buffer
	l := jsonlog.New(&b)
	w := jsonlog.Fast(l)
	const n, each = 8, 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			long := strings.Repeat("v", 100*i)
			for range each {
				if i%2 == 0 {
					w.Info("fast", nil, slog.String("event", "fast"), slog.String("long", long))
				} else {
					l.LogAttrs(context.Background(), slog.LevelInfo, "slog", slog.String("event", "slog"), slog.String("long", long))
				}
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != n*each {
		t.Fatalf("%d lines, want %d", len(lines), n*each)
	}
	for _, line := range lines {
		var v map[string]string
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
	}
}

func BenchmarkWriterInfo(b *testing.B) {
	w := jsonlog.Fast(jsonlog.New(io.Discard))
	rid := []slog.Attr{slog.String("request_id", "Zm9vYmFyYmF6cXV4cXV1eA")}
	b.ReportAllocs()
	for b.Loop() {
		w.Info("token minted", rid, slog.String("event", "token.mint"), slog.String("mode", "backend"),
			slog.String("org", "acme"), slog.String("agent", "bot"), slog.String("channel", "webrtc"),
			slog.String("auth_method", "api_key"), slog.String("key_id", "main"), slog.String("jti_hash", "0123456789ab"),
			slog.String("client_ip", "192.0.2.1"))
	}
}

func BenchmarkSlogInfo(b *testing.B) {
	l := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	b.ReportAllocs()
	for b.Loop() {
		l.LogAttrs(context.Background(), slog.LevelInfo, "token minted", slog.String("request_id", "Zm9vYmFyYmF6cXV4cXV1eA"),
			slog.String("event", "token.mint"), slog.String("mode", "backend"),
			slog.String("org", "acme"), slog.String("agent", "bot"), slog.String("channel", "webrtc"),
			slog.String("auth_method", "api_key"), slog.String("key_id", "main"), slog.String("jti_hash", "0123456789ab"),
			slog.String("client_ip", "192.0.2.1"))
	}
}
