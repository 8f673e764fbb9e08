package provider

import (
	"context"
	"sync"
	"sync/atomic"
)

// WaitLen blocks until Len reports at least n connections, ctx is done
// (it returns ctx.Err()) or the Provider is closed (ErrClosed). It does not
// poll: every connection that opens or closes wakes the waiters.
func (p *Provider) WaitLen(ctx context.Context, n int) error {
	p.lenWait.waiters.Add(1)
	defer p.lenWait.waiters.Add(-1)
	for {
		changed := p.lenWait.next()
		if p.Len() >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			return ErrClosed
		}
	}
}

// lenWaiters wakes the WaitLen calls when the connection count changes.
// Without waiters a change costs one atomic load.
type lenWaiters struct {
	waiters atomic.Int32
	mu      sync.Mutex
	ch      chan struct{} // closed at the next change; nil until asked for
}

// next returns a channel closed at the next change.
func (w *lenWaiters) next() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	return w.ch
}

// changed wakes the waiters; called after the count changed.
func (w *lenWaiters) changed() {
	if w.waiters.Load() == 0 {
		return
	}
	w.mu.Lock()
	if w.ch != nil {
		close(w.ch)
		w.ch = nil
	}
	w.mu.Unlock()
}
