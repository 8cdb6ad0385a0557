package postgres

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/voicebroker/voicebroker/internal/registry"
)

// A notification's payload is "<version>" followed by the orgs the write
// changed ("<version> acme globex"), or by "*" when it changed too many to
// name (a full refresh): more than maxNamed, or more than maxPayload bytes
// of them (PostgreSQL refuses a payload of 8000 bytes or more, and with it
// the whole write).
const (
	maxNamed   = 200
	maxPayload = 4000
)

func payload(version int64, orgs []string) string {
	v := strconv.FormatInt(version, 10)
	if len(orgs) > maxNamed {
		return v + " *"
	}
	p := v + " " + strings.Join(orgs, " ")
	if len(p) > maxPayload {
		return v + " *"
	}
	return p
}

// parsePayload reads a payload; all is set for "*" or anything unreadable
// (a full refresh is always safe).
func parsePayload(p string) (version int64, orgs []string, all bool) {
	fields := strings.Fields(p)
	if len(fields) == 0 {
		return 0, nil, true
	}
	v, err := strconv.ParseInt(fields[0], 10, 64)
	if err != nil {
		return 0, nil, true
	}
	for _, f := range fields[1:] {
		if f == "*" || len(f) > 63 {
			return v, nil, true
		}
		orgs = append(orgs, f)
	}
	return v, orgs, false
}

// follow keeps a LISTEN connection and the snapshot current until ctx
// ends, reconnecting with backoff.
func (r *Registry) follow(ctx context.Context) {
	backoff := r.opt.Backoff
	for ctx.Err() == nil {
		healthy, err := r.listen(ctx)
		if ctx.Err() != nil {
			return
		}
		if healthy {
			backoff = r.opt.Backoff
		}
		r.log.Warn("registry connection lost; serving the snapshot and reconnecting", "event", "registry.disconnected",
			"error", dbError(err).Error(), "snapshot_age_seconds", int(r.Age().Seconds()), "retry_in_ms", backoff.Milliseconds())
		// Jitter, so that replicas do not reconnect in step.
		wait := backoff/2 + rand.N(backoff/2+1)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, r.opt.MaxBackoff)
	}
}

// listen connects, LISTENs, catches up with a full refresh, then applies
// notifications and refreshes every Refresh until the connection fails.
// healthy reports whether it got as far as serving notifications.
func (r *Registry) listen(ctx context.Context) (healthy bool, err error) {
	cfg, err := pgx.ParseConfig(r.opt.URL)
	if err != nil {
		return false, err
	}
	cctx, cancel := context.WithTimeout(ctx, r.opt.Timeout)
	conn, err := pgx.ConnectConfig(cctx, cfg)
	cancel()
	if err != nil {
		return false, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	call := func(fn func(context.Context) error) error {
		cctx, cancel := context.WithTimeout(ctx, r.opt.Timeout)
		defer cancel()
		return fn(cctx)
	}
	refreshAll := func() error {
		cctx, cancel := context.WithTimeout(ctx, r.opt.fullLoad())
		defer cancel()
		return r.refreshAll(cctx, conn)
	}
	if err := call(func(c context.Context) error { _, err := conn.Exec(c, "LISTEN "+channel); return err }); err != nil {
		return false, err
	}
	// Changes made while this replica was away are in no notification.
	if err := refreshAll(); err != nil {
		return false, err
	}
	r.log.Info("registry following the database", "event", "registry.connected", "version", r.version,
		"orgs", len(r.Current().Orgs()))
	next := time.Now().Add(r.opt.Refresh)
	for {
		wctx, cancel := context.WithDeadline(ctx, next)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return true, nil
		case err != nil && errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			// The full refresh: the fallback for a notification lost.
			next = time.Now().Add(r.opt.Refresh)
			if err := refreshAll(); err != nil {
				return true, err
			}
			continue
		case err != nil:
			return true, err
		}
		// Take what else has arrived, so a burst costs one reload.
		versions, orgs, all := r.pending(n.Payload)
		for len(versions) < 1000 {
			dctx, cancel := context.WithTimeout(ctx, time.Millisecond)
			m, err := conn.WaitForNotification(dctx)
			cancel()
			if err != nil {
				if conn.IsClosed() {
					return true, err
				}
				break
			}
			v, o, a := r.pending(m.Payload)
			versions, orgs, all = append(versions, v...), append(orgs, o...), all || a
		}
		if !all && len(orgs) == 0 {
			if slices.Max(versions) <= r.version {
				continue
			}
			all = true // a change that names no org: look at everything
		}
		if all {
			err = refreshAll()
		} else {
			slices.Sort(orgs)
			err = call(func(c context.Context) error { return r.refreshOrgs(c, conn, slices.Compact(orgs)) })
		}
		if err != nil {
			return true, err
		}
	}
}

func (r *Registry) pending(p string) (versions []int64, orgs []string, all bool) {
	v, o, a := parsePayload(p)
	return []int64{v}, o, a
}

// flushLoop writes last_used_at batches every UsageFlush until ctx ends.
func (r *Registry) flushLoop(ctx context.Context) {
	t := time.NewTicker(r.opt.UsageFlush)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.FlushUsage(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("last_used_at not written; kept for the next batch", "event", "registry.usage", "error", err.Error())
			}
		}
	}
}

// usageColumns returns the uses as the UPDATE's three arrays, ordered by
// org and key id: in one order on every replica, so that two replicas'
// batches lock the rows they share in the same order and never deadlock
// each other (PostgreSQL would abort one, and its uses would wait for the
// next batch).
func usageColumns(used map[registry.KeyRef]time.Time) (orgs, ids []string, ats []time.Time) {
	keys := slices.SortedFunc(maps.Keys(used), func(a, b registry.KeyRef) int {
		return cmp.Or(strings.Compare(a.Org, b.Org), strings.Compare(a.ID, b.ID))
	})
	orgs, ids, ats = make([]string, 0, len(keys)), make([]string, 0, len(keys)), make([]time.Time, 0, len(keys))
	for _, k := range keys {
		orgs, ids, ats = append(orgs, k.Org), append(ids, k.ID), append(ats, used[k].UTC().Truncate(time.Microsecond))
	}
	return orgs, ids, ats
}

// FlushUsage writes the uses recorded since the last flush in one
// statement; a key another replica stamped less than UsageEvery ago is
// left alone. On failure the uses are kept for the next flush.
func (r *Registry) FlushUsage(ctx context.Context) error {
	used := r.usage.Take()
	if len(used) == 0 {
		return nil
	}
	orgs, ids, ats := usageColumns(used)
	ctx, cancel := r.timeout(ctx)
	defer cancel()
	_, err := r.pool.Exec(ctx, `UPDATE voicebroker.secret_keys k SET last_used_at = u.at
		FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS u(org_id, id, at)
		WHERE k.org_id = u.org_id AND k.id = u.id
		  AND (k.last_used_at IS NULL OR k.last_used_at <= u.at - $4::interval)`,
		orgs, ids, ats, r.opt.UsageEvery)
	if err != nil {
		r.usage.Putback(used)
		return dbError(err)
	}
	return nil
}
