package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/voicebroker/voicebroker/internal/store"
	redisstore "github.com/voicebroker/voicebroker/internal/store/redis"
	"github.com/voicebroker/voicebroker/pkg/token"
)

// floor serves the cost no broker can avoid: Echo, JSON in and out, and the
// same ticket signed with the same key; no auth, no store, no logs.
func floor(args []string) {
	fs := flag.NewFlagSet("floor", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	pprofAddr := fs.String("pprof", "", "listen address of net/http/pprof (off if empty)")
	keyFile := fs.String("key", "", "PEM signing key")
	iss := fs.String("iss", "http://localhost:8080", "the tickets' iss (the broker's BROKER_PUBLIC_URL)")
	headers := fs.Bool("headers", false, "answer with the broker's response headers too (what they cost, apart from the broker's work)")
	redisURL := fs.String("redis", "", "Redis URL: make one Redis round trip per ticket (see -step)")
	step := fs.String("step", "set", "with -redis, through the broker's store client: set (one SET NX PX of the ticket's nonce) or store (exactly the broker's store step: the org's GCRA bucket and the nonce with its record, in one script)")
	fs.Parse(args)
	data, err := os.ReadFile(*keyFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	key, err := token.ParsePEM(data)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	issuer, _ := token.NewIssuer(key, *iss, time.Minute)
	put, err := storeStep(*redisURL, *step, issuer)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if *pprofAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		go http.ListenAndServe(*pprofAddr, mux)
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok") })
	// The harness reads the allocation counters to report allocations per request.
	e.GET("/debug/allocs", func(c echo.Context) error {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return c.String(http.StatusOK, fmt.Sprintf("%d %d\n", m.Mallocs, m.TotalAlloc))
	})
	e.POST("/token", func(c echo.Context) error {
		var req struct{ Agent, Channel string }
		if err := c.Bind(&req); err != nil {
			return err
		}
		s, claims, err := issuer.Mint(token.Ticket{Org: "bench", Agent: req.Agent, Channel: req.Channel, Identity: "user"})
		if err != nil {
			return err
		}
		if put != nil {
			if err := put(c.Request().Context(), s, claims.ID); err != nil {
				return echo.NewHTTPError(http.StatusServiceUnavailable, err.Error())
			}
		}
		if *headers {
			// The headers of the broker's 201, with values of the same length.
			h := c.Response().Header()
			h["Cache-Control"] = []string{"no-store"}
			h["X-Content-Type-Options"] = []string{"nosniff"}
			h["X-Request-Id"] = []string{"hOkem095mzlUMpyL2jjnTg"}
			h["Ratelimit-Limit"] = []string{"1000000"}
			h["Ratelimit-Remaining"] = []string{"999999"}
			h["Ratelimit-Reset"] = []string{"1"}
		}
		return c.JSON(http.StatusCreated, map[string]any{"token": s, "server": "http://localhost:8080", "expiresIn": 60})
	})
	srv := &http.Server{Addr: *addr, Handler: e, ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintln(os.Stderr, srv.ListenAndServe())
}

// storeStep returns what the floor does with Redis for each ticket, or nil
// without a URL. Both steps go through the broker's own store client (one
// command per ticket, batched with the commands of concurrent tickets, as
// the broker's are), with the nonce's lifetime the broker gives it: "set"
// is the least a single-use ticket needs, a SET NX PX of its nonce (the
// store's PutNonce without a limit); "store" is exactly the broker's step,
// PutNonce with the org's limit (redis_rate's GCRA bucket and the nonce
// with its record, in one script). Nothing else of the broker is done.
func storeStep(url, step string, issuer *token.Issuer) (func(ctx context.Context, ticket, nonce string) error, error) {
	if step != "set" && step != "store" {
		return nil, fmt.Errorf("floor: -step is set or store, not %q", step)
	}
	if url == "" {
		return nil, nil
	}
	st, err := redisstore.NewURL(url, nil)
	if err != nil {
		return nil, errors.New("floor: -redis does not parse as a Redis URL") // it may hold a password: not echoed
	}
	ttl := issuer.TTL() + token.DefaultLeeway // as the broker keeps its nonces
	if step == "set" {
		return func(ctx context.Context, _, nonce string) error {
			_, err := st.PutNonce(ctx, store.Nonce{Org: "floor", ID: nonce}, ttl, nil)
			return err
		}, nil
	}
	limit := store.PerMinute(1_000_000)
	return func(ctx context.Context, ticket, nonce string) error {
		res, err := st.PutNonce(ctx, store.Nonce{Org: "floor", ID: nonce, Record: issuer.Record(ticket)}, ttl, &limit)
		if err == nil && !res.Allowed {
			err = errors.New("limited")
		}
		return err
	}, nil
}
