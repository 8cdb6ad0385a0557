package redis

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Errors of the pipeliner; the store reports each as store.ErrUnavailable.
var (
	errQueueFull = errors.New("too many commands waiting for Redis")
	errClosed    = errors.New("store closed")
)

// pipeliner sends the commands of concurrent callers to Redis together.
//
// A caller that finds no exchange with Redis under way sends its command
// itself, at once, as it would without batching. Commands that arrive
// while an exchange is out wait in a queue; when it ends, one sender takes
// every command queued so far and sends them as one go-redis pipeline: one
// write and one read on one connection (on a cluster, one per node, in
// parallel), then wakes their callers. Nothing ever waits for more
// commands to arrive: batches grow with the load, and a command waits at
// most for the exchange before its own.
//
// Batching changes no answer. Replies are matched to commands by their
// position on the connection, so each command gets its own reply or its
// own error; a connection that fails fails every command it carried that
// had no reply yet (go-redis retries nothing: the store sets MaxRetries
// -1), and each of their callers reports the store unavailable, as for a
// lone command on that connection. A caller waits no longer than its
// deadline, the earlier of its context's and the store timeout, and a
// queued caller also stops when its context is cancelled; then it returns
// an error and never reads its command, which the sender may still run
// (exactly as a lone command whose reply is lost may have run). A command
// whose caller has given up before its batch is sent is not sent at all,
// so no work is done for a reply nobody reads. A caller that sends its
// own command (nothing else under way) sends it at once and waits for its
// reply until the deadline, whatever becomes of its context meanwhile.
type pipeliner struct {
	rdb       redis.UniversalClient
	maxQueued int

	mu     sync.Mutex
	queue  *batch // the batch new commands join; nil when none is waiting
	queued int    // commands accepted and not yet answered
	busy   bool   // an exchange is under way (a caller's own, or the sender's)
	closed bool
	wake   chan struct{} // capacity 1: the sender has something to look at
	stop   chan struct{} // closed by close
	done   chan struct{} // closed when the sender has returned
	spare  batch         // emptied slices of an answered batch, for the next

	// The sender's own, reused from batch to batch.
	live []redis.Cmder
	pipe redis.Pipeliner
}

// batch is the commands sent together.
type batch struct {
	cmds      []redis.Cmder
	ctxs      []context.Context
	deadlines []time.Time
	done      chan struct{} // closed when every command of the batch has its result
}

func newPipeliner(rdb redis.UniversalClient, maxQueued int) *pipeliner {
	p := &pipeliner{rdb: rdb, maxQueued: maxQueued, wake: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{}), pipe: rdb.Pipeline()}
	go p.send()
	return p
}

// process sends cmd, itself or through the sender, and waits until it has
// run or its deadline (the earlier of ctx's and timeout from now) passes,
// or, queued, ctx is cancelled. It returns the command's error, or
// context.DeadlineExceeded (the deadline), ctx's error (or
// context.Canceled), errQueueFull or errClosed; on any of those the
// caller must not read cmd, whose result the sender may still write.
func (p *pipeliner) process(ctx context.Context, timeout time.Duration, cmd redis.Cmder) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	p.mu.Lock()
	switch {
	case p.closed:
		p.mu.Unlock()
		return errClosed
	case p.queued >= p.maxQueued:
		p.mu.Unlock()
		return errQueueFull
	case !p.busy:
		// Nothing under way: send it now, from this goroutine.
		p.busy = true
		p.queued++
		p.mu.Unlock()
		// The exchange ends at the deadline, the earlier of ctx's and the
		// timeout; ctx's cancellation (the client gone) no longer stops a
		// command on its way. Not deriving the exchange's context from ctx
		// spares the broker's request context the timer it makes when a
		// context derived from it waits on its Done (app.deadlineCtx).
		dctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
		err := p.rdb.Process(dctx, cmd)
		cancel()
		p.mu.Lock()
		p.queued--
		handOver := p.queue != nil // the sender takes over what arrived meanwhile
		p.busy = handOver
		p.mu.Unlock()
		if handOver {
			p.signal()
		}
		return err
	}
	b := p.queue
	if b == nil {
		// The slices of the last batch answered, not the batch itself:
		// its callers may not have read its done yet.
		b = &batch{cmds: p.spare.cmds, ctxs: p.spare.ctxs, deadlines: p.spare.deadlines, done: make(chan struct{})}
		p.spare = batch{}
		p.queue = b
	}
	b.cmds = append(b.cmds, cmd)
	b.ctxs = append(b.ctxs, ctx)
	b.deadlines = append(b.deadlines, deadline)
	p.queued++
	p.mu.Unlock()
	t := getTimer(time.Until(deadline))
	defer putTimer(t)
	select {
	case <-b.done:
		return cmd.Err()
	case <-cancelled(ctx):
		if err := ctx.Err(); err != nil {
			return err
		}
		return context.Canceled
	case <-t.C:
		return context.DeadlineExceeded
	}
}

// canceller is a context that can signal its cancellation apart from its
// deadline (app's request context): waiting on CancelSignal and on a timer
// for the deadline costs it no timer of its own, where Done makes one.
type canceller interface {
	CancelSignal() <-chan struct{}
}

// cancelled returns what a queued caller waits on besides its batch and its
// timer, which is set to its deadline: ctx's cancellation apart from that
// deadline where ctx can give it, else ctx.Done().
func cancelled(ctx context.Context) <-chan struct{} {
	if c, ok := ctx.(canceller); ok {
		return c.CancelSignal()
	}
	return ctx.Done()
}

// timers holds stopped timers for process's waits: a timer of its own
// cost each waiting caller three allocations (BenchmarkLimitedPut). For a
// module whose go line is 1.23 or later (go.mod's is), nothing is received
// from a timer's channel after Stop returns, so a pooled timer cannot fire
// into its next user's wait; putTimer drains the channel all the same, for
// a broker run with GODEBUG=asynctimerchan=1, where a fired timer's value
// stays in the channel.
var timers sync.Pool

func getTimer(d time.Duration) *time.Timer {
	if t, ok := timers.Get().(*time.Timer); ok {
		t.Reset(d)
		return t
	}
	return time.NewTimer(d)
}

func putTimer(t *time.Timer) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	timers.Put(t)
}

// signal wakes the sender; it is called with busy set for the sender.
func (p *pipeliner) signal() {
	select {
	case p.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// send runs, while busy is handed to it, the batches that queued up.
func (p *pipeliner) send() {
	defer close(p.done)
	for {
		select {
		case <-p.wake:
		case <-p.stop:
			p.mu.Lock()
			b := p.queue
			p.queue = nil
			p.mu.Unlock()
			if b != nil {
				p.finish(b, errClosed)
			}
			return
		}
		for {
			p.mu.Lock()
			b := p.queue
			p.queue = nil
			if b == nil {
				p.busy = false
				p.mu.Unlock()
				break
			}
			p.mu.Unlock()
			p.run(b)
		}
	}
}

// run sends the batch's commands whose callers still wait, then wakes the
// callers.
func (p *pipeliner) run(b *batch) {
	now := time.Now()
	live := p.live[:0]
	var last time.Time
	for i, cmd := range b.cmds {
		switch {
		case b.ctxs[i].Err() != nil:
			cmd.SetErr(b.ctxs[i].Err())
		case !now.Before(b.deadlines[i]):
			cmd.SetErr(context.DeadlineExceeded)
		default:
			live = append(live, cmd)
			if b.deadlines[i].After(last) {
				last = b.deadlines[i]
			}
		}
	}
	// The exchange ends when the last caller stops waiting (and within the
	// client's read and write timeouts); no caller's own context ends it.
	ctx, cancel := context.WithDeadline(context.Background(), last)
	defer cancel()
	switch len(live) {
	case 0:
	case 1:
		_ = p.rdb.Process(ctx, live[0])
	default:
		_ = p.pipe.BatchProcess(ctx, live...)
		_, _ = p.pipe.Exec(ctx) // each command holds its own result or error
	}
	clear(live)
	p.live = live
	p.finish(b, nil)
}

// finish wakes the batch's callers; err, if set, is the result of every
// command.
func (p *pipeliner) finish(b *batch, err error) {
	if err != nil {
		for _, cmd := range b.cmds {
			cmd.SetErr(err)
		}
	}
	n := len(b.cmds)
	// The callers read b.done and their own commands, never b's slices:
	// those go, emptied, to the next batch.
	clear(b.cmds)
	clear(b.ctxs)
	spare := batch{cmds: b.cmds[:0], ctxs: b.ctxs[:0], deadlines: b.deadlines[:0]}
	b.cmds, b.ctxs, b.deadlines = nil, nil, nil
	p.mu.Lock()
	p.queued -= n
	p.spare = spare
	p.mu.Unlock()
	close(b.done)
}

// close stops the sender once the batch in flight is answered; commands
// still queued fail with errClosed.
func (p *pipeliner) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	close(p.stop)
	<-p.done
}
