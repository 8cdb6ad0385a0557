package redis_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voicebroker/voicebroker/internal/store"
	vbredis "github.com/voicebroker/voicebroker/internal/store/redis"
	"github.com/voicebroker/voicebroker/internal/testenv"
	"github.com/voicebroker/voicebroker/pkg/token"
)

// gate is a go-redis hook that counts the exchanges with Redis (a lone
// command or a pipeline) and can hold the next one until released.
type gate struct {
	exchanges atomic.Int32
	mu        sync.Mutex
	hold      chan struct{} // non-nil: the next exchange waits for it to close
	held      chan struct{} // closed when an exchange is being held
	release   func()
}

func (g *gate) DialHook(next redis.DialHook) redis.DialHook { return next }

func (g *gate) wait() {
	g.exchanges.Add(1)
	g.mu.Lock()
	hold, held := g.hold, g.held
	g.hold, g.held = nil, nil
	g.mu.Unlock()
	if hold != nil {
		close(held)
		<-hold
	}
}

func (g *gate) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if storeCommand(cmd) {
			g.wait()
		}
		return next(ctx, cmd)
	}
}

func (g *gate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if storeCommand(cmds[0]) {
			g.wait()
		}
		return next(ctx, cmds)
	}
}

// storeCommand tells the store's own commands from those go-redis sends
// when it opens a connection (HELLO, CLIENT SETINFO).
func storeCommand(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "eval", "evalsha", "set", "getdel", "get":
		return true
	}
	return false
}

// holdNext makes the next exchange wait until release is called; held is
// closed once it waits.
func (g *gate) holdNext() (held <-chan struct{}, release func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	hold := make(chan struct{})
	g.hold, g.held = hold, make(chan struct{})
	var once sync.Once
	g.release = func() { once.Do(func() { close(hold) }) }
	return g.held, g.release
}

// open releases a held exchange, if any (at the end of a test that failed
// while holding one).
func (g *gate) open() {
	g.mu.Lock()
	release := g.release
	g.mu.Unlock()
	if release != nil {
		release()
	}
}

func gatedStore(t *testing.T, addr string) (*vbredis.Store, *gate) {
	t.Helper()
	s, err := vbredis.NewURL("redis://"+addr+"/0", &vbredis.Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if !s.Batched() {
		t.Fatal("the store does not batch")
	}
	g := &gate{}
	s.Client().AddHook(g)
	t.Cleanup(g.open) // before Close, which waits for the held exchange
	return s, g
}

func nonce(t *testing.T) store.Nonce {
	id, err := token.NewNonce()
	if err != nil {
		t.Fatal(err)
	}
	return store.Nonce{Org: "batch", ID: id}
}

func waitQueued(t *testing.T, s *vbredis.Store, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for s.Queued() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d commands queued, want %d", s.Queued(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestBatchesWhileABatchIsOut: the commands that arrive while an exchange
// is out go together in the next one, and each caller gets its own answer.
func TestBatchesWhileABatchIsOut(t *testing.T) {
	s, g := gatedStore(t, testenv.RedisAddr(t))
	ctx := context.Background()
	limit := store.PerMinute(1_000_000)
	if _, err := s.PutNonce(ctx, nonce(t), time.Minute, &limit); err != nil { // load the script
		t.Fatal(err)
	}
	g.exchanges.Store(0)
	held, release := g.holdNext()
	first := nonce(t)
	errc := make(chan error, 50)
	go func() { _, err := s.PutNonce(ctx, first, time.Minute, &limit); errc <- err }()
	<-held
	var ns []store.Nonce
	for range 49 {
		n := nonce(t)
		ns = append(ns, n)
		go func() { _, err := s.PutNonce(ctx, n, time.Minute, &limit); errc <- err }()
	}
	waitQueued(t, s, 50)
	release()
	for range 50 {
		if err := <-errc; err != nil {
			t.Fatalf("put: %v", err)
		}
	}
	if got := g.exchanges.Load(); got != 2 {
		t.Fatalf("%d exchanges with Redis for 50 commands, want 2 (1 alone, then 49 together)", got)
	}
	// Each put stored its own nonce: each consumes once, and only once.
	for _, n := range append(ns, first) {
		if _, err := s.ConsumeNonce(ctx, n, &limit); err != nil {
			t.Fatalf("consume: %v", err)
		}
		if _, err := s.ConsumeNonce(ctx, n, &limit); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second consume: %v, want ErrNotFound", err)
		}
	}
}

// TestCallersThatLeftAreNotSent: a caller whose context ends while its
// command waits gets ErrUnavailable at once, and its command is never sent.
func TestCallersThatLeftAreNotSent(t *testing.T) {
	s, g := gatedStore(t, testenv.RedisAddr(t))
	held, release := g.holdNext()
	first := nonce(t)
	done := make(chan error, 1)
	go func() { _, err := s.PutNonce(context.Background(), first, time.Minute, nil); done <- err }()
	<-held
	var wg sync.WaitGroup
	var ns []store.Nonce
	var cancels []context.CancelFunc
	for range 20 {
		n := nonce(t)
		ns = append(ns, n)
		ctx, cancel := context.WithCancel(context.Background())
		cancels = append(cancels, cancel)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.PutNonce(ctx, n, time.Minute, nil)
			if !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("put whose caller left: %v, want ErrUnavailable", err)
			}
		}()
	}
	waitQueued(t, s, 21)
	for _, cancel := range cancels {
		cancel()
	}
	wg.Wait() // every caller returned while the first exchange is still held
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitQueued(t, s, 0)
	for _, n := range ns {
		if _, err := s.ConsumeNonce(context.Background(), n, nil); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the command of a caller that left was sent: consume = %v", err)
		}
	}
	if got := int(g.exchanges.Load()); got != 1+len(ns) {
		// 1 held put, then one consume each above; the 20 abandoned puts: none.
		t.Fatalf("%d exchanges, want %d", got, 1+len(ns))
	}
}

// signalCtx is a request context as app's: it gives its cancellation apart
// from its deadline (CancelSignal), and counts the calls of Done, which in
// app's context make a timer the store's waits should not need.
type signalCtx struct {
	context.Context // the parent, with the request's deadline
	sig             chan struct{}
	cancelled       atomic.Bool
	dones           atomic.Int32
}

func newSignalCtx(d time.Duration) (*signalCtx, context.CancelFunc) {
	parent, cancel := context.WithTimeout(context.Background(), d)
	return &signalCtx{Context: parent, sig: make(chan struct{})}, cancel
}

func (c *signalCtx) CancelSignal() <-chan struct{} { return c.sig }

func (c *signalCtx) Done() <-chan struct{} {
	c.dones.Add(1)
	return c.Context.Done()
}

func (c *signalCtx) Err() error {
	if c.cancelled.Load() {
		return context.Canceled
	}
	return c.Context.Err()
}

func (c *signalCtx) cancel() {
	c.cancelled.Store(true)
	close(c.sig)
}

// TestRequestContextWaitsWithoutDone: a call made with a request context
// that gives its cancellation apart from its deadline, sent at once or
// queued behind an exchange, never asks its Done; a queued one still stops
// when it is cancelled and at its deadline (earlier than the store's
// timeout), and a lone one is answered.
func TestRequestContextWaitsWithoutDone(t *testing.T) {
	s, g := gatedStore(t, testenv.RedisAddr(t))

	lone, stop := newSignalCtx(time.Minute)
	defer stop()
	if _, err := s.PutNonce(lone, nonce(t), time.Minute, nil); err != nil {
		t.Fatalf("lone put: %v", err)
	}
	if n := lone.dones.Load(); n != 0 {
		t.Fatalf("a lone put asked Done %d times", n)
	}

	held, release := g.holdNext()
	first := make(chan error, 1)
	go func() { _, err := s.PutNonce(context.Background(), nonce(t), time.Minute, nil); first <- err }()
	<-held
	gone, stop := newSignalCtx(time.Minute)
	defer stop()
	late, stop2 := newSignalCtx(2 * time.Second) // before the store's 10 s timeout
	defer stop2()
	start := time.Now()
	errs := make(chan error, 2)
	for _, ctx := range []context.Context{gone, late} {
		go func() { _, err := s.PutNonce(ctx, nonce(t), time.Minute, nil); errs <- err }()
	}
	waitQueued(t, s, 3)
	gone.cancel()
	for range 2 {
		// Both return while the first exchange is still held: one cancelled,
		// one past its own deadline.
		if err := <-errs; !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("queued put: %v, want ErrUnavailable", err)
		}
	}
	if time.Since(start) >= 10*time.Second {
		t.Error("a queued put waited for the store's timeout, not its context's earlier deadline")
	}
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for _, c := range []*signalCtx{gone, late} {
		if n := c.dones.Load(); n != 0 {
			t.Errorf("a queued put asked Done %d times", n)
		}
	}
}

// TestFailedExchangeFailsOnlyItsCommands: Redis dies while a batch is
// held; every command of that batch fails with ErrUnavailable (none is
// reported stored), and after a restart the store answers again.
func TestFailedExchangeFailsOnlyItsCommands(t *testing.T) {
	testenv.Needs(t, "redis-server")
	port := testenv.FreePort(t)
	addr, err := testenv.StartRedis(port, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("redis-cli", "-p", strconv.Itoa(port), "shutdown", "nosave").Run() })
	s, g := gatedStore(t, addr)
	ctx := context.Background()
	limit := store.PerMinute(1_000_000)
	if _, err := s.PutNonce(ctx, nonce(t), time.Minute, &limit); err != nil { // connect, load the script
		t.Fatal(err)
	}
	held, release := g.holdNext()
	errc := make(chan error, 30)
	go func() { _, err := s.PutNonce(ctx, nonce(t), time.Minute, &limit); errc <- err }()
	<-held
	for range 29 {
		go func() { _, err := s.PutNonce(ctx, nonce(t), time.Minute, &limit); errc <- err }()
	}
	waitQueued(t, s, 30)
	if out, err := exec.Command("redis-cli", "-p", strconv.Itoa(port), "shutdown", "nosave").CombinedOutput(); err != nil && len(out) > 0 {
		t.Logf("shutdown: %v %s", err, out)
	}
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		c.Close()
		time.Sleep(10 * time.Millisecond)
	}
	release()
	for i := range 30 {
		if err := <-errc; !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("put %d with Redis gone: %v, want ErrUnavailable", i, err)
		}
	}
	if _, err := testenv.StartRedis(port, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	n := nonce(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := s.PutNonce(ctx, n, time.Minute, &limit)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := s.ConsumeNonce(ctx, n, &limit); err != nil {
		t.Fatalf("consume after recovery: %v", err)
	}
}

// TestConcurrentCallersGetTheirOwnAnswers: many goroutines put, consume
// and re-consume nonces of their own; every answer is the right one.
func TestConcurrentCallersGetTheirOwnAnswers(t *testing.T) {
	s, _ := gatedStore(t, testenv.RedisAddr(t))
	limit := store.PerMinute(1_000_000)
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for i := range 100 {
				n := store.Nonce{Org: fmt.Sprintf("o%d", w%4), ID: fmt.Sprintf("w%d-%d-%d", w, i, time.Now().UnixNano())}
				if _, err := s.ConsumeNonce(ctx, n, &limit); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("consume before put: %v", err)
					return
				}
				if _, err := s.PutNonce(ctx, n, time.Minute, &limit); err != nil {
					t.Errorf("put: %v", err)
					return
				}
				if _, err := s.PutNonce(ctx, n, time.Minute, nil); !errors.Is(err, store.ErrExists) {
					t.Errorf("second put: %v", err)
					return
				}
				if _, err := s.ConsumeNonce(ctx, n, nil); err != nil {
					t.Errorf("consume: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestPooledTimerHoldsNoStaleFire: a timer that fired and was never read
// goes back to the pool drained, so its next user does not time out at
// once, even with GODEBUG=asynctimerchan=1, where a fired timer's value
// waits in its channel (cap 1, so len shows it).
func TestPooledTimerHoldsNoStaleFire(t *testing.T) {
	t.Setenv("GODEBUG", "asynctimerchan=1")
	tm := vbredis.GetTimer(time.Nanosecond)
	for deadline := time.Now().Add(10 * time.Second); len(tm.C) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the timer never fired into its channel (is asynctimerchan=1 in force?)")
		}
		runtime.Gosched()
	}
	vbredis.PutTimer(tm)
	next := vbredis.GetTimer(time.Hour)
	defer vbredis.PutTimer(next)
	select {
	case <-next.C:
		t.Fatal("a pooled timer delivered its previous user's fire")
	default:
	}
}
