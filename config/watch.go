package config

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// ReadFile reads and parses the tenants file at path.
func ReadFile(path string) (*Tenants, []byte, error) {
	data, err := ReadBounded(path)
	if err != nil {
		return nil, nil, err
	}
	t, err := ParseIn(data, filepath.Dir(path))
	return t, data, err
}

// ReadBounded reads the tenants file at path, at most one byte past
// MaxFileSize, so Parse can say the file is too large without reading all
// of it.
func ReadBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("%s is a directory, not a tenants file", path)
	}
	return io.ReadAll(io.LimitReader(f, MaxFileSize+1))
}

// Holder keeps the current tenants and swaps in a new version atomically
// when the file changes. Readers call Current on every request and so see
// a revocation on the next request after a reload.
type Holder struct {
	path     string
	log      *slog.Logger
	onReload func(ok bool)
	checks   []func(*Tenants) error

	cur atomic.Pointer[Tenants]

	mu  sync.Mutex // serialises reloads
	sum [32]byte   // of the file content now in force
}

// NewHolder reads the file at path; an error here means the broker must
// not start. Each of checks must accept the tenants, at start and on every
// reload: they check what lies outside the file (an API secret naming an
// org), and a reload they refuse keeps the tenants in force.
func NewHolder(path string, log *slog.Logger, onReload func(ok bool), checks ...func(*Tenants) error) (*Holder, error) {
	t, data, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	h := &Holder{path: path, log: log, onReload: onReload, checks: checks, sum: sha256.Sum256(data)}
	if err := h.check(t); err != nil {
		return nil, err
	}
	h.cur.Store(t)
	return h, nil
}

func (h *Holder) check(t *Tenants) error {
	for _, c := range h.checks {
		if err := c(t); err != nil {
			return err
		}
	}
	return nil
}

// StaticHolder returns a Holder that always serves t and never reloads.
func StaticHolder(t *Tenants) *Holder {
	h := &Holder{}
	h.cur.Store(t)
	return h
}

// Current returns the tenants now in force.
func (h *Holder) Current() *Tenants { return h.cur.Load() }

// Path returns the file the holder reads, or "" for a static holder.
func (h *Holder) Path() string { return h.path }

// Reload re-reads the file. A file that fails to parse or check leaves the
// old tenants in force; the error names why. An unchanged file is a no-op
// unless force is set.
func (h *Holder) Reload(force bool) (changed bool, err error) {
	if h.path == "" {
		return false, nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	data, err := ReadBounded(h.path)
	if err != nil {
		// Forget the last content, so that the same file coming back is
		// reloaded and clears the stale mark.
		h.sum = [sha256.Size]byte{}
		h.report(false, "read", err)
		return false, err
	}
	sum := sha256.Sum256(data)
	if !force && bytes.Equal(sum[:], h.sum[:]) {
		return false, nil
	}
	t, err := Parse(data)
	stage := "parse"
	if err == nil {
		stage, err = "check", h.check(t)
	}
	if err != nil {
		// Remember the bad content so it is reported once, not every poll.
		h.sum = sum
		h.report(false, stage, err)
		return false, err
	}
	h.sum = sum
	h.cur.Store(t)
	h.report(true, "", nil)
	return true, nil
}

func (h *Holder) report(ok bool, stage string, err error) {
	if h.onReload != nil {
		h.onReload(ok)
	}
	if h.log == nil {
		return
	}
	if ok {
		h.log.Info("tenants file reloaded", "event", "config.reload", "result", "ok", "path", h.path, "orgs", len(h.Current().orgs))
		return
	}
	h.log.Error("tenants file not reloaded; keeping the previous one", "event", "config.reload", "result", "error",
		"stage", stage, "path", h.path, "reason", fmt.Sprint(err))
}

// Watch polls the file every interval and reloads on SIGHUP (hup), until
// ctx ends. Polling the content hash, rather than watching inodes, also
// follows the symlink swaps of Kubernetes ConfigMap volumes.
func (h *Holder) Watch(ctx context.Context, interval time.Duration, hup <-chan os.Signal) {
	if h.path == "" {
		return
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			h.Reload(false)
		case <-hup:
			h.Reload(true)
		}
	}
}
