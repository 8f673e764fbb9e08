package peers

import (
	"context"
	"sync"
)

// registry is the set of open connections of one server, and a wait group
// over them: every successful add is matched by one remove, and wait returns
// once all members are removed after close. Its methods are safe for
// concurrent use.
type registry[T comparable] struct {
	mu     sync.Mutex
	m      map[T]struct{}
	closed bool
	wg     sync.WaitGroup // one count per member; Add only under mu before close
	snaps  sync.Pool      // *[]T, reused by snapshot
}

func newRegistry[T comparable]() *registry[T] {
	return &registry[T]{m: make(map[T]struct{})}
}

// add records v and reports true, or reports false if the registry was
// closed (the server is shutting down and the caller must drop v).
func (r *registry[T]) add(v T) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.m[v] = struct{}{}
	r.wg.Add(1)
	return true
}

// remove forgets v, which must have been added successfully, exactly once.
func (r *registry[T]) remove(v T) {
	r.mu.Lock()
	delete(r.m, v)
	r.mu.Unlock()
	r.wg.Done()
}

func (r *registry[T]) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.m)
}

// snapshot returns the current members in a pooled slice, which the caller
// must hand back with release once done. Members may close meanwhile.
func (r *registry[T]) snapshot() *[]T {
	p, _ := r.snaps.Get().(*[]T)
	if p == nil {
		p = new([]T)
	}
	s := (*p)[:0]
	r.mu.Lock()
	for v := range r.m {
		s = append(s, v)
	}
	r.mu.Unlock()
	*p = s
	return p
}

func (r *registry[T]) release(p *[]T) {
	clear(*p) // drop references to closed connections
	*p = (*p)[:0]
	r.snaps.Put(p)
}

// close refuses later adds and returns the members at that moment.
func (r *registry[T]) close() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	s := make([]T, 0, len(r.m))
	for v := range r.m {
		s = append(s, v)
	}
	return s
}

// wait blocks until every member is removed or ctx is done. Call it after
// close, so that no member can be added meanwhile.
func (r *registry[T]) wait(ctx context.Context) error {
	return waitCtx(ctx, r.wg.Wait)
}

// waitCtx runs wait in a goroutine and returns when it does or when ctx is
// done. If ctx wins, the goroutine ends when wait does.
func waitCtx(ctx context.Context, wait func()) error {
	done := make(chan struct{})
	go func() {
		wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// removeIfPresent is remove for callers that cannot tell whether v was added
// (a close callback that also fires for a rejected connection).
func (r *registry[T]) removeIfPresent(v T) {
	r.mu.Lock()
	_, ok := r.m[v]
	delete(r.m, v)
	r.mu.Unlock()
	if ok {
		r.wg.Done()
	}
}
