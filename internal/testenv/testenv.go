// Package testenv finds or starts the real services the tests run against.
// scripts/test.sh installs and starts them and exports their addresses; a
// plain `go test` starts its own when the binaries are on PATH. A missing
// service fails the test: it is never skipped for that. Only
// `go test -short` skips the tests that need an outside process (Needs), so
// that a fresh clone can run everything else with nothing installed.
package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Needs marks a test as needing an outside process (redis-server,
// livekit-server, Chromium, Node.js, ...): under -short it is skipped,
// otherwise it runs and fails if the process is missing.
func Needs(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("needs %s: runs without -short (scripts/test.sh installs it)", what)
	}
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

var (
	redisOnce sync.Once
	redisAddr string
	redisErr  error
)

// RedisAddr returns host:port of a real redis-server on loopback: the one in
// VB_TEST_REDIS_ADDR, or one started for this test binary.
func RedisAddr(t testing.TB) string {
	t.Helper()
	Needs(t, "redis-server")
	if a := os.Getenv("VB_TEST_REDIS_ADDR"); a != "" {
		return a
	}
	redisOnce.Do(func() {
		port := FreePort(t)
		redisAddr, redisErr = StartRedis(port, os.TempDir())
	})
	if redisErr != nil {
		t.Fatalf("no Redis for the tests (run scripts/test.sh, which installs it): %v", redisErr)
	}
	return redisAddr
}

// StartRedis starts a non-persistent redis-server on 127.0.0.1:port, killed
// when the calling process dies.
func StartRedis(port int, dir string) (string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--databases", "64", "--dir", dir, "--daemonize", "no")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	go cmd.Wait()
	if err := WaitTCP(addr, 10*time.Second); err != nil {
		cmd.Process.Kill()
		return "", err
	}
	return addr, nil
}

// WaitTCP waits until addr accepts a TCP connection.
func WaitTCP(addr string, within time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not accepting connections: %w", addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// RepoRoot returns the module root, found by walking up to go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found")
		}
		dir = parent
	}
}

// WaitClosed waits until nothing accepts connections on addr.
func WaitClosed(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s still accepting connections", addr)
}

// FreeUDPPort returns a loopback UDP port that was free a moment ago.
func FreeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

var (
	clusterOnce  sync.Once
	clusterAddrs []string
	clusterErr   error
)

// RedisClusterAddrs returns the nodes of a real 3-master Redis Cluster on
// loopback: VB_TEST_REDIS_CLUSTER_ADDRS, or one started for this test binary.
func RedisClusterAddrs(t testing.TB) []string {
	t.Helper()
	Needs(t, "a Redis Cluster (redis-server)")
	if a := os.Getenv("VB_TEST_REDIS_CLUSTER_ADDRS"); a != "" {
		return strings.Split(a, ",")
	}
	clusterOnce.Do(func() { clusterAddrs, clusterErr = startCluster(t) })
	if clusterErr != nil {
		t.Fatalf("no Redis Cluster for the tests: %v", clusterErr)
	}
	return clusterAddrs
}

// clusterPort returns a free loopback port whose cluster bus port (port +
// 10000, fixed by Redis) exists and is free too: an ephemeral port above
// 55535 would give a bus port past 65535 and a node that never starts.
func clusterPort(t testing.TB) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		if port+10000 > 65535 {
			l.Close()
			continue
		}
		bus, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000))
		l.Close()
		if err != nil {
			continue
		}
		bus.Close()
		return port
	}
	t.Fatal("no loopback port with a free cluster bus port after 100 tries")
	return 0
}

func startCluster(t testing.TB) ([]string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "vb-cluster-")
	if err != nil {
		return nil, err
	}
	var addrs []string
	for range 3 {
		port := clusterPort(t)
		addr := "127.0.0.1:" + strconv.Itoa(port)
		cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes-"+strconv.Itoa(port)+".conf"),
			"--dir", dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		go cmd.Wait()
		if err := WaitTCP(addr, 10*time.Second); err != nil {
			return nil, err
		}
		addrs = append(addrs, addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("redis-cli --cluster create: %v\n%s", err, out)
	}
	host, port, _ := strings.Cut(addrs[0], ":")
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _ := exec.Command("redis-cli", "-h", host, "-p", port, "cluster", "info").Output()
		if strings.Contains(string(out), "cluster_state:ok") {
			return addrs, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("cluster not ok: %s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
