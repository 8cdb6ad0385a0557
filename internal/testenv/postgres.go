package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a throwaway PostgreSQL server on loopback, run by the test
// binary: fsync off (it survives its own crash, as Stop makes it, but not
// the machine's), killed when the test process dies. As root (PostgreSQL refuses to run as root) it runs as the
// postgres user.
type Postgres struct {
	dir  string
	bin  string
	port int
	cred *syscall.Credential

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// PostgresBinDir finds PostgreSQL's server binaries: VB_POSTGRES_BIN, or
// the newest /usr/lib/postgresql/*/bin (Debian's layout).
func PostgresBinDir() (string, error) {
	if d := os.Getenv("VB_POSTGRES_BIN"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("PostgreSQL is not installed (apt-get install -y postgresql; scripts/test.sh does it)")
}

func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

var (
	pgOnce   sync.Once
	pgShared *Postgres
	pgErr    error
	pgDBs    atomic.Int64
)

// PostgresURL returns the URL of a new, empty database on a real
// PostgreSQL server: on VB_TEST_POSTGRES_URL's server, or on one started
// for this test binary. The database is dropped when the test ends. Under
// -short the test is skipped; otherwise a missing PostgreSQL fails it.
func PostgresURL(t testing.TB) string {
	t.Helper()
	Needs(t, "PostgreSQL")
	base := os.Getenv("VB_TEST_POSTGRES_URL")
	if base == "" {
		pgOnce.Do(func() { pgShared, pgErr = StartPostgres() })
		if pgErr != nil {
			t.Fatalf("no PostgreSQL for the tests: %v", pgErr)
		}
		base = pgShared.URL("postgres")
	}
	return NewDatabase(t, base)
}

// NewDatabase creates a fresh database on the server of base (a URL to any
// database there) and returns its URL; it is dropped when the test ends.
func NewDatabase(t testing.TB, base string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("PostgreSQL at %s: %v", redact(base), err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("vbtest_%d_%d", os.Getpid(), pgDBs.Add(1))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, base); err == nil {
			c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(ctx)
		}
	})
	u, _ := url.Parse(base)
	u.Path = "/" + name
	return u.String()
}

func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// StartPostgres initialises a data directory and starts a server on a free
// loopback port, with user "vb" and trust authentication on loopback.
func StartPostgres() (*Postgres, error) {
	bin, err := PostgresBinDir()
	if err != nil {
		return nil, err
	}
	p := &Postgres{bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	if p.dir, err = os.MkdirTemp("", "vb-postgres-"); err != nil {
		return nil, err
	}
	if p.cred != nil {
		if err := os.Chown(p.dir, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			return nil, err
		}
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", filepath.Join(p.dir, "data"), "-A", "trust", "-U", "vb",
		"-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	l, err := freePort()
	if err != nil {
		return nil, err
	}
	p.port = l
	if err := p.Start(); err != nil {
		return nil, err
	}
	return p, nil
}

// URL returns the URL of database db on the server.
func (p *Postgres) URL(db string) string {
	return fmt.Sprintf("postgres://vb@127.0.0.1:%d/%s?sslmode=disable", p.port, db)
}

// Start starts the server (again, after Stop) on its port and waits until
// it accepts connections.
func (p *Postgres) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return errors.New("postgres already running")
	}
	cmd := exec.Command(filepath.Join(p.bin, "postgres"), "-D", filepath.Join(p.dir, "data"), "-p", strconv.Itoa(p.port),
		"-k", p.dir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
		"-c", "full_page_writes=off", "-c", "max_connections=200")
	log, err := os.OpenFile(filepath.Join(os.TempDir(), filepath.Base(p.dir)+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	p.cmd, p.done = cmd, done
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		c, err := pgx.Connect(ctx, p.URL("postgres"))
		if err == nil {
			c.Close(ctx)
			return nil
		}
		select {
		case <-done:
			p.cmd = nil
			return fmt.Errorf("postgres exited at start (log: %s)", log.Name())
		case <-ctx.Done():
			return fmt.Errorf("postgres not accepting connections: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop stops the server the way `pg_ctl stop -m immediate` does (SIGQUIT:
// every connection drops, no checkpoint) and waits until it has exited.
func (p *Postgres) Stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	cmd, done := p.cmd, p.done
	p.cmd = nil
	if err := cmd.Process.Signal(syscall.SIGQUIT); err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		return errors.New("postgres did not stop on SIGQUIT; killed")
	}
}

// Close stops the server and removes its data.
func (p *Postgres) Close() {
	p.Stop()
	os.RemoveAll(p.dir)
}

// StartTestPostgres starts a server of the test's own (for fault tests that
// stop it), closed when the test ends; skipped under -short.
func StartTestPostgres(t testing.TB) *Postgres {
	t.Helper()
	Needs(t, "PostgreSQL")
	p, err := StartPostgres()
	if err != nil {
		t.Fatalf("no PostgreSQL for the tests: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}
